"""The benchmark report: per-architecture tables, ratios, search efficiency, goals, system figures.

Everything here works on plain trial rows (as in ``trials.csv``), so it can be
checked on a small fixed set of rows without running anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hgen_ray.atomic_write import write_text_atomic
from hgen_ray.config import CHALLENGE_CATEGORIES
from hgen_ray.plots import plot_reward_curve
from hgen_ray.report import best_row, chosen_test_measures, format_cell

__all__ = ["ArchitectureResult", "Goal", "SEARCH_STRATEGIES", "best_by_strategy", "check_goals", "format_bench_report",
           "ratios_against_original", "search_efficiency", "trials_to_reach", "write_bench_report"]

Row = Mapping[str, Any]
SEARCH_STRATEGIES = ("hgen", "random", "compression_only", "optuna")
NEAR_BEST_SHARE = 0.95  # "trials to reach 95% of the best reward found by any strategy"
ACCURACY_GAIN_GOAL = 0.05  # bench goal: +5 points of mean challenge accuracy over `original`
STORAGE_SHARE_GOAL = 0.25  # bench goal: at most 1/4 of the original's storage
TABLE_COLUMNS = ("accuracy", "accuracy_clean", "dnn_latency_ms", "human_turnaround_s_p95", "energy_mj", "energy_source", "storage_mb",
                 "labor_s_per_1k", "deferral_rate", "reward", "feasible")


@dataclass
class ArchitectureResult:
    """One architecture's runs: trial rows per strategy (a reference has one row)."""

    label: str
    model: str
    labor_limit: float  # L_c of its experiment, for the goals
    trials: int  # the budget every search strategy had here
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # strategy -> why it produced no rows


@dataclass(frozen=True)
class Goal:
    text: str
    met: bool
    evidence: str


def _reported(row: Row | None) -> Row | None:
    """A search's chosen row with its test measures in place of its validation ones (references are test rows)."""
    if row is None:
        return None
    return {**row, **chosen_test_measures(row)}


def best_by_strategy(result: ArchitectureResult) -> dict[str, Row | None]:
    """Each strategy's validation-best trial (feasible first), with its test measures."""
    return {strategy: _reported(best_row(rows)) for strategy, rows in result.rows.items()}


def ratios_against_original(row: Row, original: Row) -> dict[str, float]:
    """Storage and latency reduction (x times smaller), and accuracy change on challenges (points)."""
    return {
        "storage_reduction_x": float(original["storage_mb"]) / float(row["storage_mb"]),
        "latency_reduction_x": float(original["dnn_latency_ms"]) / float(row["dnn_latency_ms"]),
        "accuracy_change_points": 100.0 * (float(row["accuracy"]) - float(original["accuracy"])),
    }


def trials_to_reach(rewards: Sequence[float], threshold: float) -> int | None:
    """1-based count of trials until the running best reaches ``threshold``; None if it never does."""
    best = -math.inf
    for count, reward in enumerate(rewards, start=1):
        best = max(best, reward)
        if best >= threshold:
            return count
    return None


def near_best_threshold(best: float) -> float:
    """95% of the best reward; for a negative best, 5% of its size below it (the same distance)."""
    return best - (1.0 - NEAR_BEST_SHARE) * abs(best)


def _reward_curves(result: ArchitectureResult) -> dict[str, list[float]]:
    """Each search strategy's rewards in trial order (references left out)."""
    return {s: [float(r["reward"]) for r in rows] for s, rows in result.rows.items() if s in SEARCH_STRATEGIES}


def search_efficiency(result: ArchitectureResult) -> tuple[float, dict[str, int | None]]:
    """The best reward any search strategy found, and the trials each needs to reach 95% of it."""
    curves = _reward_curves(result)
    if not curves:
        return math.nan, {}
    best = max(max(rewards) for rewards in curves.values())
    threshold = near_best_threshold(best)
    return best, {strategy: trials_to_reach(rewards, threshold) for strategy, rewards in curves.items()}


def _best_feasible(rows: Sequence[Row]) -> Row | None:
    best = _reported(best_row(rows))  # the validation-best feasible row when there is one, on test
    return best if best is not None and bool(best["feasible"]) else None


def check_goals(result: ArchitectureResult) -> list[Goal]:
    """The issue's goals for the best feasible ``hgen`` H-DNN, judged on this architecture's rows."""
    goals = []
    hgen = _best_feasible(result.rows.get("hgen", []))
    original = (result.rows.get("original") or [None])[0]
    if original is not None:
        if hgen is None:
            goals.append(Goal("hgen finds a feasible H-DNN", False, "no feasible hgen trial"))
        else:
            gain = float(hgen["accuracy"]) - float(original["accuracy"])
            share = float(hgen["storage_mb"]) / float(original["storage_mb"])
            labor = float(hgen["labor_s_per_1k"])
            goals += [
                Goal(f"mean challenge accuracy >= original + {ACCURACY_GAIN_GOAL * 100:.0f} points",
                     gain >= ACCURACY_GAIN_GOAL, f"{hgen['accuracy']:.4f} vs {original['accuracy']:.4f} "
                     f"({gain * 100:+.1f} points)"),
                Goal(f"storage <= {STORAGE_SHARE_GOAL:g} x original", share <= STORAGE_SHARE_GOAL,
                     f"{hgen['storage_mb']:.4f} MB = {share:.3f} x {original['storage_mb']:.4f} MB"),
                Goal("labour <= L_c", labor <= result.labor_limit,
                     f"{labor:.0f} s per 1k vs L_c {result.labor_limit:g}; deferral {hgen['deferral_rate']:.3f}"),
            ]
    best = {s: max((float(r["reward"]) for r in rows), default=-math.inf) for s, rows in result.rows.items()}
    for rival in ("random", "compression_only"):
        if "hgen" in best and rival in best:
            goals.append(Goal(f"hgen's best reward > {rival}'s", best["hgen"] > best[rival],
                              f"{best['hgen']:.4f} vs {best[rival]:.4f}"))
    return goals


def _fmt(value: Any) -> str:
    return "-" if value is None or value == "" else format_cell(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]


def _strategy_table(result: ArchitectureResult) -> list[str]:
    best = best_by_strategy(result)
    original = best.get("original")
    header = ["strategy", *TABLE_COLUMNS, "storage reduction x", "latency reduction x", "accuracy change (points)"]
    rows = []
    for strategy, row in best.items():
        if row is None:
            rows.append([strategy, *(["no finished trial"] + [""] * (len(header) - 2))])
            continue
        ratios = ratios_against_original(row, original) if original else {}
        rows.append([strategy, *(row.get(c) for c in TABLE_COLUMNS), ratios.get("storage_reduction_x"),
                     ratios.get("latency_reduction_x"), ratios.get("accuracy_change_points")])
    return _table(header, rows)


def _category_table(result: ArchitectureResult) -> list[str]:
    best = best_by_strategy(result)
    shown = [s for s in ("original", "compression_only", "hgen") if best.get(s) is not None]
    rows = [[c, *(best[s].get(f"accuracy/{c}") for s in shown)]  # type: ignore[union-attr]
            for c in ("clean", *CHALLENGE_CATEGORIES)]
    return _table(["category", *shown], rows)


def _efficiency_lines(result: ArchitectureResult) -> list[str]:
    best, needed = search_efficiency(result)
    if not needed:
        return ["No search strategy ran."]
    threshold = near_best_threshold(best)
    lines = [f"Best reward found by any search strategy: {best:.4f}; 95% of it: {threshold:.4f}.", ""]
    return lines + _table(["strategy", "trials to reach 95% of the best", "of"],
                          [[s, n if n is not None else "not reached", len(result.rows[s])] for s, n in needed.items()])


def format_bench_report(results: Sequence[ArchitectureResult], header: Mapping[str, Any],
                        system: Sequence[str]) -> str:
    """bench.md: provenance, then per architecture the tables, efficiency and goals, then system figures."""
    lines = ["# hgen-ray bench", "", f"- command: `{header['command']}`", f"- git commit: `{header['commit']}`",
             f"- machine: {header['machine']}",
             "- fine-tuning: the same budget on the clean train split for every strategy and reference "
             "(no challenge augmentation)",
             "- splits: every search scored its trials on validation challenge images; each figure below is "
             "the **test** split, of each strategy's validation-best H-DNN and of the references (one seed)",
             f"- wall time: {header['elapsed_s']:.0f} s", ""]
    for result in results:
        lines += [f"## {result.label} ({result.model})", "", f"Trial budget per search strategy: {result.trials}. Best "
                  "H-DNN per strategy (best feasible trial, else the least infeasible). Ratios are against "
                  "`original`.", "", *_strategy_table(result), "",
                  "### Accuracy per category", "", *_category_table(result), "",
                  "### Search efficiency", "", f"![best reward against trials]({result.label}-reward.png)", "",
                  *_efficiency_lines(result), "", "### Goals", ""]
        goals = check_goals(result)
        lines += [f"- {'MET' if g.met else 'MISSED'}: {g.text} ({g.evidence})" for g in goals] or ["- none judged"]
        lines.append("")
        if result.errors:
            lines += ["### Strategies that failed", ""] + [f"- {s}: {e}" for s, e in result.errors.items()] + [""]
    lines += ["## System", "", *system, ""]
    return "\n".join(lines)


def write_bench_report(out: Path, results: Sequence[ArchitectureResult], header: Mapping[str, Any],
                       system: Sequence[str]) -> Path:
    """Write bench.md and one reward-curve plot per architecture into ``out``."""
    for result in results:
        curves = _reward_curves(result)
        if curves:
            plot_reward_curve(curves, out / f"{result.label}-reward.png")
    path = out / "bench.md"
    write_text_atomic(path, format_bench_report(results, header, system))
    return path
