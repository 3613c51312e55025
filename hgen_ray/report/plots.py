"""Figures of a search, in PNG: where people would rather look than read."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hgen_ray.atomic_write import replaced_atomically
from hgen_ray.gate_quality import risk_coverage
from hgen_ray.report.seed_intervals import bootstrap_mean_interval

__all__ = ["plot_reward_bands", "plot_reward_curve", "plot_risk_coverage", "plot_tradeoffs", "running_best"]

FEASIBLE_COLOUR = "tab:green"
INFEASIBLE_COLOUR = "tab:red"


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")  # servers and CI have no display
    import matplotlib.pyplot as plt

    return plt


def plot_tradeoffs(rows: Sequence[Mapping[str, Any]], references: Mapping[str, Mapping[str, Any]], out: Path) -> Path:
    """Accuracy against storage and against labour, coloured by feasibility, references marked."""
    plt = _pyplot()
    done = [r for r in rows if r.get("status") == "TERMINATED"]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for axis, measure, label in ((axes[0], "storage_mb", "storage (MB)"), (axes[1], "labor_s_per_1k", "labour (s per 1000 samples)")):
        for feasible, colour, name in ((True, FEASIBLE_COLOUR, "feasible"), (False, INFEASIBLE_COLOUR, "infeasible")):
            points = [r for r in done if bool(r["feasible"]) == feasible]
            axis.scatter([r[measure] for r in points], [r["accuracy"] for r in points], c=colour, label=name, s=28,
                         alpha=0.8)
        for ref_name, ref in references.items():
            axis.scatter([ref[measure]], [ref["accuracy"]], marker="*", s=160, c="black")
            axis.annotate(ref_name, (ref[measure], ref["accuracy"]), textcoords="offset points", xytext=(6, 4),
                          fontsize=8)
        axis.set_xlabel(label)
        axis.set_ylabel("accuracy (mean of 12 challenges)")
        axis.grid(alpha=0.3)
    axes[0].legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out


def plot_reward_curve(curves: Mapping[str, Sequence[float]], out: Path) -> Path:
    """Reward per trial and the best so far, one colour per strategy."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 4.2))
    for index, (name, rewards) in enumerate(curves.items()):
        colour = f"C{index}"
        trials = range(1, len(rewards) + 1)
        axis.scatter(trials, rewards, s=14, alpha=0.5, c=colour)
        axis.plot(trials, running_best(rewards), c=colour, label=f"{name} (best so far)")
    return _save_against_trials(plt, figure, axis, "reward", out)


def running_best(rewards: Sequence[float]) -> list[float]:
    """The best reward so far, trial by trial."""
    return list(itertools.accumulate(rewards, max))


def plot_reward_bands(curves: Mapping[str, Sequence[Sequence[float]]], out: Path, ylabel: str) -> Path:
    """Per strategy, the best reward so far averaged over seeds, with its 95% bootstrap band per trial."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7.5, 4.4))
    for index, (name, per_seed) in enumerate(curves.items()):
        bests = [running_best(rewards) for rewards in per_seed if rewards]
        length = min((len(b) for b in bests), default=0)  # trials every seed finished
        if not length:
            continue
        intervals = [bootstrap_mean_interval([b[t] for b in bests]) for t in range(length)]
        trials = range(1, length + 1)
        axis.plot(trials, [i.mean for i in intervals], c=f"C{index}", label=f"{name} ({len(bests)} seeds)")
        axis.fill_between(trials, [i.low for i in intervals], [i.high for i in intervals], color=f"C{index}",
                          alpha=0.18)
    return _save_against_trials(plt, figure, axis, ylabel, out)


def _save_against_trials(plt, figure, axis, ylabel: str, out: Path) -> Path:  # type: ignore[no-untyped-def]
    axis.set_xlabel("trial")
    axis.set_ylabel(ylabel)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out


def plot_risk_coverage(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], out: Path, title: str) -> Path:
    """Risk against coverage, one line per gate score, each with its AURC in the legend; written atomically.

    Args:
        curves: Gate score name -> (its confidence per sample, high = trust; bool per sample, the network right).
        out: Where the PNG goes; readers see the old file or the new one, never half of it.
        title: The figure's title (say which split and categories the samples come from).
    """
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.5, 4.4))
    for index, (name, (confidence, correct)) in enumerate(curves.items()):
        coverage, risk = risk_coverage(confidence, correct)
        area = float(risk.mean()) if risk.size else float("nan")  # the AURC: mean risk over coverages 1/n..n/n
        axis.plot(coverage, risk, c=f"C{index}", label=f"{name} (AURC {area:.4f})")
    axis.set_xlabel("coverage (share of samples the network keeps)")
    axis.set_ylabel("risk (network's error rate on them)")
    axis.set_xlim(0.0, 1.0)
    axis.set_ylim(bottom=0.0)
    axis.set_title(title)
    axis.grid(alpha=0.3)
    if curves:
        axis.legend()
    figure.tight_layout()
    with replaced_atomically(out) as temporary:
        figure.savefig(temporary, dpi=110, format="png")
    plt.close(figure)
    return out
