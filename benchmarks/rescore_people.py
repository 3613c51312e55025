"""How much of an older bench's figures was its simulated pool: the H-DNNs it chose, re-measured with today's people.

    .venv/bin/python benchmarks/rescore_people.py --bench runs/bench-small --config configs/bench-small/h_cnn.yaml

For each seed and search strategy in the bench's ``results.json``, the validation-best
H-DNN (the one its bench.md reports) is loaded from its checkpoint and measured again
on the test split with the people of this commit: one shared queue, answers that
depend on the image, ties broken by the network. Nothing is chosen again: the
choice is the old bench's, on validation. Prints, per strategy, the mean over seeds
of the test figures the bench reported and of the same H-DNNs now.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import statistics
import warnings
from pathlib import Path
from typing import Any

import ray

from hgen_ray.bench.search_efficiency import SEARCH_STRATEGIES
from hgen_ray.config import load_config
from hgen_ray.trial import load_split_data, measure_network
from hgen_ray.hdnn import load_hdnn
from hgen_ray.human import HumanPool
from hgen_ray.metric import score
from hgen_ray.report import best_row

MEASURES = ("accuracy", "labor_s_per_1k", "deferral_rate", "human_turnaround_s_p95")


def _rescored(config: Any, row: dict[str, Any]) -> dict[str, Any]:
    hdnn = load_hdnn(row["checkpoint"])
    data = load_split_data(config, "test")
    with HumanPool(config.human_pool, config.seed) as pool:
        metrics = measure_network(config, hdnn.model, hdnn.gate, hdnn.candidate, split="test", data=data,
                                  pool=pool).metrics
    return {**metrics, "feasible": score(metrics, config.constraints, config.reward).feasible}


def _mean(rows: list[dict[str, Any]], measure: str) -> str:
    values = [float(r[measure]) for r in rows if measure in r]
    return f"{statistics.fmean(values):.4g}" if values else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", type=Path, required=True, help="an earlier bench's output folder")
    parser.add_argument("--config", type=Path, required=True, help="the experiment it ran, with today's keys")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger().setLevel(logging.WARNING)
    ray.init(include_dashboard=False, logging_level=logging.WARNING)
    base = load_config(args.config)
    then: dict[str, list[dict[str, Any]]] = {s: [] for s in SEARCH_STRATEGIES}
    now: dict[str, list[dict[str, Any]]] = {s: [] for s in SEARCH_STRATEGIES}
    seeds = []
    for result in json.loads((args.bench / "results.json").read_text()):
        config = dataclasses.replace(base, seed=result["seed"])
        seeds.append(result["seed"])
        for strategy in SEARCH_STRATEGIES:
            chosen = best_row(result["rows"].get(strategy) or [])
            if chosen is None or not chosen.get("checkpoint"):
                continue
            then[strategy].append({m: chosen[f"test/{m}"] for m in (*MEASURES, "feasible")})
            now[strategy].append(_rescored(config, chosen))
            print(f"seed {result['seed']} {strategy}: accuracy {chosen['test/accuracy']:.4f} then, "
                  f"{now[strategy][-1]['accuracy']:.4f} now; rho now {now[strategy][-1]['pool_utilisation']:.2f}",
                  flush=True)
    print(f"\nTest split, seeds {seeds}; each strategy's validation-best H-DNN of {args.bench}, means over seeds.")
    print("| strategy | when | " + " | ".join(MEASURES) + " | pool_utilisation | feasible (seeds) |")
    print("|---" * (len(MEASURES) + 4) + "|")
    for strategy in SEARCH_STRATEGIES:
        for when, rows in (("then", then[strategy]), ("now", now[strategy])):
            feasible = sum(bool(r["feasible"]) for r in rows)
            cells = " | ".join(_mean(rows, m) for m in (*MEASURES, "pool_utilisation"))
            print(f"| {strategy} | {when} | {cells} | {feasible} of {len(rows)} |")


if __name__ == "__main__":
    main()
