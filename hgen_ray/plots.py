"""Figures of a search, in PNG: where people would rather look than read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["plot_reward_curve", "plot_tradeoffs"]

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
        best, running = [], float("-inf")
        for reward in rewards:
            running = max(running, reward)
            best.append(running)
        axis.scatter(trials, rewards, s=14, alpha=0.5, c=colour)
        axis.plot(trials, best, c=colour, label=f"{name} (best so far)")
    axis.set_xlabel("trial")
    axis.set_ylabel("reward")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out
