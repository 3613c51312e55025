"""What distillation buys, paired: a bench's chosen hgen candidates fine-tuned with and without KD, on test.

    .venv/bin/python benchmarks/distillation.py --bench runs/bench-int8 --label h_cnn \\
        --config configs/bench-small/h_cnn.yaml [--out docs/results/distillation]

For each seed of the bench's ``--label`` experiment, hgen's validation-best candidate
(chosen on validation by the bench) is compressed and fine-tuned twice from that
seed's base model, with ``finetune.distill`` false and true (temperature and weight as
the config says), and both networks are measured on the test split with the same
people. The same candidates, the same seeds: the differences are paired. Prints them
with 95% bootstrap intervals over seeds and writes ``OUT.md`` and ``OUT.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import subprocess
import warnings
from pathlib import Path
from typing import Any

import ray

from hgen_ray.bench.report import ArchitectureResult, best_by_strategy
from hgen_ray.config import Candidate, ExperimentConfig, config_to_candidate, json_text, load_config
from hgen_ray.human import HumanPool
from hgen_ray.report.seed_intervals import bootstrap_mean_interval
from hgen_ray.trial import evaluate_candidate

MEASURES = ("accuracy", "dnn_accuracy", "accuracy_clean")


def _candidate(row: dict[str, Any]) -> Candidate:
    """The candidate a trials row describes (its ``layers/...`` and ``human/...`` columns)."""
    nested: dict[str, Any] = {"layers": {}, "human": {}}
    for key, value in row.items():
        parts = key.split("/")
        if parts[0] == "layers" and len(parts) == 3:
            nested["layers"].setdefault(parts[1], {})[parts[2]] = value
        elif parts[0] == "human" and len(parts) == 2 and value is not None:
            nested["human"][parts[1]] = value
    return config_to_candidate(nested)


def _chosen_candidates(bench: Path, label: str) -> dict[int, Candidate]:
    results = [ArchitectureResult(**r) for r in json.loads((bench / "results.json").read_text()) if r["label"] == label]
    chosen = {}
    for result in results:
        row = best_by_strategy(result).get("hgen")
        if row is not None:
            chosen[result.seed] = _candidate(dict(row))
    return chosen


def _measure(config: ExperimentConfig, candidate: Candidate, distill: bool) -> dict[str, float]:
    tuned = dataclasses.replace(config, finetune=dataclasses.replace(config.finetune, distill=distill))
    with HumanPool(tuned.human_pool, tuned.seed) as pool:
        metrics = evaluate_candidate(tuned, candidate, pool=pool, split="test").metrics
    return {m: float(metrics[m]) for m in MEASURES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", required=True, help="a bench's OUT folder (its results.json)")
    parser.add_argument("--label", default="h_cnn", help="the experiment whose hgen candidates are re-tuned")
    parser.add_argument("--config", default="configs/bench-small/h_cnn.yaml", help="that experiment's config")
    parser.add_argument("--out", default="docs/results/distillation", help="writes OUT.md and OUT.json")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING)
    config = load_config(args.config)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    per_seed = {}
    for seed, candidate in sorted(_chosen_candidates(Path(args.bench), args.label).items()):
        seeded = dataclasses.replace(config, seed=seed)
        per_seed[seed] = {"labels": _measure(seeded, candidate, False), "kd": _measure(seeded, candidate, True)}
        print(f"seed {seed}: " + ", ".join(f"{m} {per_seed[seed]['labels'][m]:.4f} -> {per_seed[seed]['kd'][m]:.4f}"
                                           for m in MEASURES), flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    finetune = config.finetune
    lines = ["# What distillation buys (paired, test split)", "",
             f"- command: `python benchmarks/distillation.py --bench {args.bench} --label {args.label} "
             f"--config {args.config}`", f"- commit: `{commit}`",
             f"- seeds: {', '.join(map(str, per_seed))}; candidates: hgen's validation-best in each seed of the bench",
             f"- KD: temperature {finetune.distill_temperature}, weight {finetune.distill_weight} (assumed, not tuned); "
             f"fine-tuning otherwise as the config: {finetune.epochs} epoch(s) on {finetune.subset} clean images", "",
             "| measure | labels alone | with KD | KD - labels (points) [95% interval] |", "|---|---|---|---|"]
    for measure in MEASURES:
        alone = [s["labels"][measure] for s in per_seed.values()]
        kd = [s["kd"][measure] for s in per_seed.values()]
        gain = bootstrap_mean_interval([b - a for a, b in zip(alone, kd)])
        lines.append(f"| {measure} | {sum(alone) / len(alone):.4f} | {sum(kd) / len(kd):.4f} | {gain.text(100, 3)} |")
    report = "\n".join(lines) + "\n"
    print(report)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".md").write_text(report)
    Path(args.out + ".json").write_text(json_text({"commit": commit, "seeds": per_seed}, indent=2))


if __name__ == "__main__":
    main()
