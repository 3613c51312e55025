"""The four gate scores on the same compressed network: errors caught, what people add, and the gate's quality.

    .venv/bin/python benchmarks/gate_scores.py --config configs/bench-small/h_cnn.yaml --seeds 5 \\
        --out docs/results/gate-scores.md

Each seed has its own base model, splits, corruptions and people, as a bench's seeds do. In a seed the
experiment's ``candidate`` compression (fixed in the config before any of these figures existed) is
applied and fine-tuned once; every gate score is fitted to that one network on validation (Mahalanobis
also on clean train features; the rejector on held-out corruption families only). Per score and
severity, tau is set on validation to defer d = 10% of the 12 validation challenges pooled (the rule
every trial uses). Only then is the test
split read: the network alone, and with the candidate's chain of people under ``replace`` and ``bayes``,
with the gate's quality per category. Nothing here is tuned on test.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import statistics
import subprocess
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch

from hgen_ray.architectures.gate import pooled_confidence
from hgen_ray.config import CHALLENGE_CATEGORIES, GATE_SCORES, ExperimentConfig, json_text, load_config
from hgen_ray.architectures.training import predict_logits
from hgen_ray.data.held_out_corruptions import OVERLAP_WITH_TEST, families_for
from hgen_ray.data.splits import build_challenge_set
from hgen_ray.human import HumanPool
from hgen_ray.report import plot_risk_coverage
from hgen_ray.report.seed_intervals import bootstrap_mean_interval
from hgen_ray.search.setup import prepare
from hgen_ray.trial import load_split_data, measure_network

DEFERRAL_BUDGET = 0.10  # the labour budget: at most 10% of challenge samples deferred
SEVERITIES = (3, 5)
GAIN_GOAL = 0.04  # the bar: people add at least +4 points over the same network alone
NEAR_CHANCE = 0.30  # "the categories where the network is below 30% at severity 5"
COMBINATIONS = ("replace", "bayes")


def _near_chance_on_validation(config: ExperimentConfig, model: torch.nn.Module, data: Any) -> list[str]:
    """The challenges where the network alone is below 30% on validation at severity 5: chosen before test is read."""
    at = dataclasses.replace(config, data=dataclasses.replace(config.data, severity=5))
    challenge = build_challenge_set(data, at.data, at.seed, "validation")
    accuracy = {c: float((predict_logits(model, challenge.images[c]).argmax(1) == challenge.labels).float().mean())
                for c in CHALLENGE_CATEGORIES}
    return [c for c, value in accuracy.items() if value < NEAR_CHANCE]


def _seed_figures(config: ExperimentConfig) -> dict[str, Any]:
    """Every gate score at both severities, on test, for one seed's compressed network."""
    prepared = prepare(config)
    architecture, data = prepared.architecture, prepared.data
    candidate = config.candidate
    model = architecture.compress(prepared.config, prepared.base, candidate, data, config.finetune)
    test_data = load_split_data(prepared.config, "test")
    figures: dict[str, Any] = {"curves": {}, "hard": _near_chance_on_validation(prepared.config, model, data)}
    calibration = architecture.people_calibration(config, data)
    severity_5 = dataclasses.replace(prepared.config.data, severity=5)
    hard_test = build_challenge_set(test_data, severity_5, config.seed, "test")  # for the risk-coverage plot
    hard_test = dataclasses.replace(hard_test, images={c: hard_test.images[c] for c in CHALLENGE_CATEGORIES})
    with HumanPool(config.human_pool, config.seed, calibration) as pool:
        for score in GATE_SCORES:
            gate = architecture.fit_gate(prepared.config, model, data, score)
            for severity in SEVERITIES:
                at = dataclasses.replace(prepared.config, data=dataclasses.replace(prepared.config.data,
                                                                                   severity=severity))
                tau = architecture.tau_for_deferral(at, model, gate, data, DEFERRAL_BUDGET)
                for combine in COMBINATIONS:
                    human = dataclasses.replace(candidate.human, gate=score, deferral=DEFERRAL_BUDGET, tau=tau,
                                                combine=combine)
                    metrics = measure_network(at, model, gate, dataclasses.replace(candidate, human=human),
                                              split="test", data=test_data, pool=pool).metrics
                    figures[(score, severity, combine)] = metrics
                logging.getLogger("gate_scores").info("seed %d %s severity %d: tau %.4g", config.seed, score,
                                                      severity, tau)
            figures["curves"][score] = pooled_confidence(model, gate, hard_test.images, hard_test.labels)
    return figures


def _interval(differences: list[float]) -> str:
    """A paired difference's mean over seeds and its 95% bootstrap interval."""
    interval = bootstrap_mean_interval(differences)
    return f"{interval.mean:+.4f} [{interval.low:+.4f}, {interval.high:+.4f}]"


def _gain_table(seeds: list[dict[str, Any]], severity: int) -> list[str]:
    lines = [f"### Severity {severity}: what people add at 10% deferral (test, mean of the 12 challenges)", "",
             f"The goal: at least +{GAIN_GOAL:.2f}; MET only when the interval clears it.", "",
             "| gate | test deferral | network alone | with people, bayes | gain, bayes [95% CI] | "
             "gain, replace [95% CI] | goal (bayes, replace) | labour s/1k |", "|---|---|---|---|---|---|---|---|"]
    for score in GATE_SCORES:
        rows = {c: [s[(score, severity, c)] for s in seeds] for c in COMBINATIONS}
        bayes = rows["bayes"]

        def mean(key: str, chosen: list[dict[str, Any]] = bayes) -> float:
            return statistics.fmean(float(r[key]) for r in chosen)

        gains = {c: [float(r["accuracy"]) - float(r["dnn_accuracy"]) for r in rows[c]] for c in COMBINATIONS}
        goal = ", ".join("MET" if bootstrap_mean_interval(gains[c]).low >= GAIN_GOAL else "MISSED"
                         for c in COMBINATIONS[::-1])
        lines.append(f"| {score} | {mean('deferral_rate'):.3f} | {mean('dnn_accuracy'):.4f} | {mean('accuracy'):.4f} | "
                     f"{_interval(gains['bayes'])} | {_interval(gains['replace'])} | {goal} | "
                     f"{mean('labor_s_per_1k'):.0f} |")
    return [*lines, ""]


def _near_chance(seeds: list[dict[str, Any]]) -> list[str]:
    """Per seed, the share of the network's errors caught on its near-chance categories, each score against msp."""
    def caught(seed: dict[str, Any], score: str) -> float:
        row = seed[(score, 5, "bayes")]
        hard = seed["hard"]
        return statistics.fmean(float(row[f"errors_caught/{c}"]) for c in hard) if hard else float("nan")

    hard_names = sorted({c for s in seeds for c in s["hard"]})
    msp = [caught(s, "msp") for s in seeds]
    lines = ["### Errors caught at severity 5 on the categories where the network is below 30% (test)", "",
             f"Categories, chosen per seed on validation (in any seed): {', '.join(hard_names) or 'none'}.", "",
             "The goal: at least twice msp's share. MET only when the paired interval of (score - 2 x msp) clears 0.",
             "", "| gate | errors caught | ratio to msp (of the means) | score - 2 x msp [95% CI] | goal |",
             "|---|---|---|---|---|"]
    for score in GATE_SCORES:
        mine = [caught(s, score) for s in seeds]
        margin = bootstrap_mean_interval([m - 2 * b for m, b in zip(mine, msp)])
        ratio = statistics.fmean(mine) / statistics.fmean(msp) if statistics.fmean(msp) > 0 else float("inf")
        goal = "—" if score == "msp" else ("MET" if margin.low > 0 else "MISSED")
        lines.append(f"| {score} | {statistics.fmean(mine):.3f} | {ratio:.2f} | "
                     f"{margin.mean:+.3f} [{margin.low:+.3f}, {margin.high:+.3f}] | {goal} |")
    return [*lines, ""]


def _quality_table(seeds: list[dict[str, Any]], severity: int) -> list[str]:
    lines = [f"### Gate quality per category, severity {severity} (test, mean of seeds; precision / caught / AURC)",
             "", "| category | " + " | ".join(GATE_SCORES) + " |", "|---|" + "---|" * len(GATE_SCORES)]
    for category in ("clean", *CHALLENGE_CATEGORIES):
        cells = []
        for score in GATE_SCORES:
            rows = [s[(score, severity, "bayes")] for s in seeds]
            values = [np.nanmean([float(r.get(f"{m}/{category}", float("nan"))) for r in rows])
                      for m in ("deferral_precision", "errors_caught", "gate_aurc")]
            cells.append(" / ".join("—" if np.isnan(v) else f"{v:.2f}" for v in values))
        lines.append(f"| {category} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", required=True, help="the markdown report; the plot goes beside it")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="[%(name)s %(asctime)s] %(message)s", datefmt="%H:%M:%S")
    warnings.filterwarnings("ignore")
    ray.init(include_dashboard=False, logging_level=logging.WARNING)
    config = load_config(args.config)
    seeds = [_seed_figures(dataclasses.replace(config, seed=seed)) for seed in range(args.seeds)]
    out = Path(args.out)
    raw = [{f"{k[0]}/severity-{k[1]}/{k[2]}" if isinstance(k, tuple) else k: v for k, v in seed.items()
            if k != "curves"} for seed in seeds]
    out.with_suffix(".json").write_text(json_text(raw, indent=1, default=str))  # every figure, per seed
    plot = plot_risk_coverage(seeds[0]["curves"], out.with_suffix(".png"),
                              "seed 0, test, severity 5, the 12 challenges pooled")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    lines = [f"# Gate scores on one compressed H-CNN ({args.seeds} seeds)", "",
             f"Command: `.venv/bin/python benchmarks/gate_scores.py --config {args.config} --seeds {args.seeds} "
             f"--out {args.out}` at commit {commit}. Split: d chosen on validation, every figure below on test. "
             f"Network: the config's candidate compression, fine-tuned; chain: {config.candidate.human.mechanism} "
             f"k={config.candidate.human.k}. Intervals: 95% bootstrap over seeds, paired (with people minus the "
             "same network alone).", "",
             "The rejector's training families (none is a test category), and how each relates in kind to the "
             "12 test categories:", "",
             *(f"- `{family}`: {OVERLAP_WITH_TEST[family]}"
               for family in families_for(1, config.gate.rejector_families)),
             "",
             *_gain_table(seeds, 3), *_gain_table(seeds, 5), *_near_chance(seeds),
             *_quality_table(seeds, 3), *_quality_table(seeds, 5),
             f"![risk-coverage]({plot.name})", ""]
    out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
