"""The benchmark report: per-architecture tables, ratios, search efficiency, goals, system figures.

Everything here works on plain trial rows (as in ``trials.csv``), so it can be
checked on a small fixed set of rows without running anything.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hgen_ray.atomic_write import write_text_atomic
from hgen_ray.bench.search_efficiency import best_validation_differences, median_trials_to_near_best, \
    reward_curves, search_efficiency, trials_to_near_best_differences
from hgen_ray.config import CHALLENGE_CATEGORIES
from hgen_ray.gate_quality import GATE_MEASURES, is_gate_measure
from hgen_ray.report.plots import plot_reward_bands
from hgen_ray.report import best_row, chosen_test_measures, format_cell
from hgen_ray.report.seed_intervals import MIN_SEEDS_FOR_A_CLAIM, Interval, bootstrap_mean_interval

__all__ = ["ArchitectureResult", "Goal", "best_by_strategy", "check_goals", "format_bench_report",
           "paired_differences", "ratios_against_original", "write_bench_report"]

Row = Mapping[str, Any]
ACCURACY_GAIN_GOAL = 0.05  # bench goal: +5 points of mean challenge accuracy over `original`
STORAGE_SHARE_GOAL = 0.1  # bench goal: at most 1/10 of the original's storage (issue 16)
MOONSHOT_GAIN = 0.10  # the moonshot: +10 points over `original`, at most 10% deferral and 1/10 storage
MOONSHOT_DEFERRAL = 0.10
RIVALS = ("compression_only", "random", "optuna")  # the baselines hgen must beat, paired seed by seed
SUMMARY_MEASURES = ("accuracy", "accuracy_clean", "dnn_latency_ms", "storage_mb", "labor_s_per_1k", "deferral_rate",
                    *GATE_MEASURES, "human_turnaround_s_p95", "pool_utilisation", "reward")
TABLE_COLUMNS = ("accuracy", "accuracy_clean", "dnn_latency_ms", "human_turnaround_s_p95", "energy_mj", "energy_source",
                 "storage_mb", "labor_s_per_1k", "deferral_rate", *GATE_MEASURES, "reward", "feasible")


@dataclass
class ArchitectureResult:
    """One architecture's runs in one seed: trial rows per strategy (a reference has one row)."""

    label: str
    model: str
    labor_limit: float  # L_c of its experiment, for the goals
    trials: int  # the budget every search strategy had here
    seed: int = 0  # the experiment's seed in this run: base model, splits, corruptions, people
    distill: bool = False  # fine-tuning distilled from the uncompressed base (every strategy and reference alike)
    int8: bool = True  # layers could choose int8 weights (every strategy alike)
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # strategy -> why it produced no rows


@dataclass(frozen=True)
class Goal:
    text: str
    met: bool
    evidence: str


def _reported(row: Row | None) -> Row | None:
    """A search's chosen row with its test measures in place of its validation ones (references are test rows).

    A search row without test measures has no test figure: None, never its validation figures. Nor does a
    gate measure its test columns lack (a search from before they were measured on test): no figure, not validation's.
    """
    if row is None:
        return None
    tested = chosen_test_measures(row)
    if row.get("split") == "validation":
        if not tested:
            return None
        row = {k: v for k, v in row.items() if not is_gate_measure(k)}
    return {**row, **tested, "split": "test"}


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


Chosen = Sequence[Mapping[str, Row | None]]  # per seed, each strategy's chosen row on test


def _chosen(results: Sequence[ArchitectureResult]) -> list[dict[str, Row | None]]:
    return [best_by_strategy(r) for r in results]


def _paired(chosen: Chosen, first: str, second: str, value: Callable[[Row, Row], float]) -> Interval:
    """``value(first's row, second's row)`` in each seed where both strategies have a chosen row."""
    values = [value(best[first], best[second]) for best in chosen  # type: ignore[arg-type]
              if best.get(first) is not None and best.get(second) is not None]
    return bootstrap_mean_interval(values)


def _difference(measure: str) -> Callable[[Row, Row], float]:
    return lambda a, b: float(a[measure]) - float(b[measure])


def _share(measure: str) -> Callable[[Row, Row], float]:
    return lambda a, b: float(a[measure]) / float(b[measure])


def _differences(chosen: Chosen) -> dict[str, dict[str, Interval]]:
    present = dict.fromkeys(s for best in chosen for s in best if s != "hgen")
    return {rival: {"reward": _paired(chosen, "hgen", rival, _difference("reward")),
                    "accuracy": _paired(chosen, "hgen", rival, _difference("accuracy"))} for rival in present}


def paired_differences(results: Sequence[ArchitectureResult]) -> dict[str, dict[str, Interval]]:
    """hgen minus each other strategy and reference, seed by seed, in test reward and test accuracy."""
    return _differences(_chosen(results))


def _too_few(count: int) -> str:
    return "" if count >= MIN_SEEDS_FOR_A_CLAIM else f"; a claim needs at least {MIN_SEEDS_FOR_A_CLAIM}"


def _seeds_text(count: int, total: int) -> str:
    """How many seeds a figure stands on, of how many ran (a seed drops out where a strategy has no test figure)."""
    return f"{count} of {total} seeds" + _too_few(count)


def check_goals(results: Sequence[ArchitectureResult]) -> list[Goal]:
    """The bench's goals for hgen's chosen H-DNNs over seeds: each MET only when its 95% interval clears the bar."""
    if not any("hgen" in r.rows for r in results):
        return []  # a bench of baselines only judges nothing
    goals = []
    labor_limit = results[0].labor_limit
    chosen = _chosen(results)
    hgen = [best.get("hgen") for best in chosen]
    feasible = sum(1 for row in hgen if row is not None and bool(row["feasible"]))
    goals.append(Goal("hgen's validation-best H-DNN is feasible on test in every seed",
                      feasible == len(results) >= MIN_SEEDS_FOR_A_CLAIM,
                      f"feasible in {feasible} of {len(results)} seeds" + _too_few(len(results))))
    gain = _paired(chosen, "hgen", "original", _difference("accuracy"))
    if gain.n:
        goals.append(Goal(f"mean challenge accuracy > original + {ACCURACY_GAIN_GOAL * 100:.0f} points",
                          gain.clears_above(ACCURACY_GAIN_GOAL),
                          f"hgen - original: {gain.text(100, 3)} points, {_seeds_text(gain.n, len(results))}"))
    share = _paired(chosen, "hgen", "original", _share("storage_mb"))
    if share.n:
        goals.append(Goal(f"storage <= {STORAGE_SHARE_GOAL:g} x original", share.clears_below(STORAGE_SHARE_GOAL),
                          f"hgen / original: {share.text(1, 3)}, {_seeds_text(share.n, len(results))}"))
        alone = _paired(chosen, "hgen", "original", lambda a, b: float(a["dnn_accuracy"]) - float(b["accuracy"]))
        goals.append(Goal("at that storage, the network alone is as accurate as original (its interval reaches 0)",
                          alone.n >= MIN_SEEDS_FOR_A_CLAIM and alone.high >= 0.0,
                          f"hgen's network alone - original: {alone.text(100, 3)} points, "
                          f"{_seeds_text(alone.n, len(results))}"))
        goals.append(_moonshot(chosen, hgen, gain, share, len(results)))
    labor = bootstrap_mean_interval([float(row["labor_s_per_1k"]) for row in hgen if row is not None])
    if labor.n:
        goals.append(Goal("labour <= L_c", labor.clears_below(labor_limit),
                          f"{labor.text(1, 4)} s per 1k vs L_c {labor_limit:g}, {_seeds_text(labor.n, len(results))}"))
    differences = _differences(chosen)
    for rival in RIVALS:
        if rival in differences and differences[rival]["reward"].n:
            reward = differences[rival]["reward"]
            goals.append(Goal(f"hgen's test reward > {rival}'s", reward.clears_above(0.0),
                              f"hgen - {rival}: {reward.text(1, 3)}, {_seeds_text(reward.n, len(results))}"))
    return goals + _search_goals(results)


def _search_goals(results: Sequence[ArchitectureResult]) -> list[Goal]:
    """Issue 19's: hgen's best validation reward beats each rival's, and it gets near the best in fewer trials."""
    seeds = [r.rows for r in results]
    goals = []
    for rival, best in best_validation_differences(seeds, RIVALS).items():
        goals.append(Goal(f"hgen's best validation reward > {rival}'s", best.clears_above(0.0),
                          f"hgen - {rival}: {best.text(1, 3)}, {_seeds_text(best.n, len(results))}"))
    medians = median_trials_to_near_best(seeds)
    for rival, fewer in trials_to_near_best_differences(seeds, RIVALS).items():
        goals.append(Goal(f"hgen needs fewer trials than {rival} to reach 95% of the best",
                          fewer.n >= MIN_SEEDS_FOR_A_CLAIM and fewer.high < 0.0 and medians["hgen"] < medians[rival],
                          f"median {medians['hgen']:g} against {medians[rival]:g}; hgen - {rival}: "
                          f"{fewer.text(1, 3)} trials (validation; never reached counts as budget + 1), "
                          f"{_seeds_text(fewer.n, len(results))}"))
    return goals


def _moonshot(chosen: Chosen, hgen: Sequence[Row | None], gain: Interval, share: Interval, seeds: int) -> Goal:
    """+10 points over original at most 10% deferral and 1/10 storage: the gain's interval clears +10 and every
    seed's chosen H-DNN keeps both limits."""
    within = [row is not None and float(row["deferral_rate"]) <= MOONSHOT_DEFERRAL for row in hgen]
    met = gain.clears_above(MOONSHOT_GAIN) and all(within) and share.clears_below(STORAGE_SHARE_GOAL)
    return Goal(f"moonshot: > original + {MOONSHOT_GAIN * 100:.0f} points at <= {MOONSHOT_DEFERRAL:.0%} deferral and "
                f"<= {STORAGE_SHARE_GOAL:g} x storage", met,
                f"hgen - original: {gain.text(100, 3)} points; deferral within {MOONSHOT_DEFERRAL:.0%} in "
                f"{sum(within)} of {seeds} seeds; storage share {share.text(1, 3)}")


def _fmt(value: Any) -> str:
    return "-" if _missing(value) else format_cell(value)


def _missing(value: Any) -> bool:
    """No figure: absent, blank in a CSV, or NaN (a gate measure of a detector, or one with nothing deferred)."""
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


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
            rows.append([strategy, *(["no test figure"] + [""] * (len(header) - 2))])
            continue
        ratios = ratios_against_original(row, original) if original else {}
        rows.append([strategy, *(row.get(c) for c in TABLE_COLUMNS), ratios.get("storage_reduction_x"),
                     ratios.get("latency_reduction_x"), ratios.get("accuracy_change_points")])
    return _table(header, rows)


def _category_table(results: Sequence[ArchitectureResult]) -> list[str]:
    """Test accuracy per category of the chosen H-DNNs, mean over seeds."""
    per_seed = _chosen(results)
    shown = [s for s in ("original", "compression_only", "hgen") if any(b.get(s) is not None for b in per_seed)]
    rows = []
    for category in ("clean", *CHALLENGE_CATEGORIES):
        cells = []
        for strategy in shown:
            values = [float(b[strategy][f"accuracy/{category}"]) for b in per_seed if b.get(strategy) is not None]
            cells.append(statistics.fmean(values))
        rows.append([category, *cells])
    return _table(["category", *shown], rows)


def _values(rows: Sequence[Row], measure: str) -> list[float]:
    """``measure`` of each row; a gate measure only where it has a figure (detectors and older runs have none)."""
    if not is_gate_measure(measure):
        return [float(r[measure]) for r in rows]
    return [float(r[measure]) for r in rows if not _missing(r.get(measure))]


def _interval_cell(values: Sequence[float], seeds: int) -> str:
    """Mean [95% interval], saying how many seeds it stands on where some had no figure."""
    interval = bootstrap_mean_interval(values)
    return interval.text() + (f" ({interval.n} of {seeds} seeds)" if 0 < interval.n < seeds else "")


ABLATION_MEASURES = ("accuracy", "dnn_accuracy", "storage_mb", "deferral_rate", "reward")


def _ablation_lines(grouped: Mapping[str, Sequence[ArchitectureResult]]) -> list[str]:
    """hgen's chosen H-DNN in each experiment of one model side by side: the search space's ablations (int8 or
    not, distillation or not) as rows; empty with fewer than two experiments of a model."""
    by_model: dict[str, list[str]] = {}
    for label, results in grouped.items():
        by_model.setdefault(results[0].model, []).append(label)
    lines: list[str] = []
    for model, labels in by_model.items():
        if len(labels) < 2:
            continue
        rows = []
        for label in labels:
            chosen = [best["hgen"] for best in _chosen(grouped[label]) if best.get("hgen") is not None]
            first = grouped[label][0]
            rows.append([label, "int8" if first.int8 else "fp32 only", "KD" if first.distill else "labels",
                         *[_interval_cell(_values(chosen, m), len(grouped[label])) for m in ABLATION_MEASURES]])
        lines += [f"## Ablations of {model}: hgen's chosen H-DNN on test", "",
                  *_table(["experiment", "weights", "fine-tuning", *ABLATION_MEASURES], rows), ""]
    return lines


def _summary_table(results: Sequence[ArchitectureResult]) -> list[str]:
    """Per strategy, each test measure's mean over seeds with its 95% bootstrap interval."""
    per_seed = _chosen(results)
    strategies = dict.fromkeys(s for b in per_seed for s in b)
    rows = []
    for strategy in strategies:
        chosen = [b[strategy] for b in per_seed if b.get(strategy) is not None]
        cells = [_interval_cell(_values(chosen, m), len(chosen)) for m in SUMMARY_MEASURES]
        feasible = sum(bool(r["feasible"]) for r in chosen)
        rows.append([strategy, *cells, f"{feasible} of {len(chosen)}"])
    return _table(["strategy", *SUMMARY_MEASURES, "feasible (seeds)"], rows)


def _differences_table(results: Sequence[ArchitectureResult]) -> list[str]:
    rows = [[f"hgen - {rival}", d["reward"].text(1, 3), d["accuracy"].text(100, 3), d["reward"].n]
            for rival, d in paired_differences(results).items()]
    return _table(["paired difference", "test reward", "test accuracy (points)", "seeds"], rows)


def _efficiency_lines(result: ArchitectureResult) -> list[str]:
    best, needed = search_efficiency(result.rows)
    if not needed:
        return ["No search strategy ran."]
    reached = ", ".join(f"{s} {n if n is not None else 'not reached'}/{len(result.rows[s])}" for s, n in needed.items())
    return [f"Best validation reward of any strategy: {best:.4f}; trials to reach 95% of it: {reached}."]


def _seed_lines(result: ArchitectureResult) -> list[str]:
    lines = [f"#### seed {result.seed}", "", *_strategy_table(result), "", *_efficiency_lines(result), ""]
    if result.errors:
        lines += ["Strategies that failed:", ""] + [f"- {s}: {e}" for s, e in result.errors.items()] + [""]
    return lines


def _by_label(results: Sequence[ArchitectureResult]) -> dict[str, list[ArchitectureResult]]:
    grouped: dict[str, list[ArchitectureResult]] = {}
    for result in results:
        grouped.setdefault(result.label, []).append(result)
    return grouped


def _architecture_lines(label: str, results: Sequence[ArchitectureResult]) -> list[str]:
    first = results[0]
    seeds = ", ".join(str(r.seed) for r in results)
    lines = [f"## {label} ({first.model})", "",
             f"Trial budget per search strategy: {first.trials}. Seeds: {seeds} ({len(results)}). Each strategy's "
             "H-DNN is its validation-best trial (best feasible, else the least infeasible), measured once on test. "
             "Cells are the mean over seeds [95% bootstrap interval]. "
             f"Fine-tuning {'distils from the uncompressed base (KD)' if first.distill else 'uses the labels alone'}, "
             f"and the space {'offers' if first.int8 else 'does not offer'} int8 weights, for every strategy and "
             "reference alike.", "",
             "### Test measures of each strategy's chosen H-DNN", "", *_summary_table(results), "",
             "### Paired differences, seed by seed (test)", "", *_differences_table(results), "",
             "### Goals (MET only when the 95% interval clears the bar, from at least "
             f"{MIN_SEEDS_FOR_A_CLAIM} seeds)", ""]
    lines += [f"- {'MET' if g.met else 'MISSED'}: {g.text} ({g.evidence})" for g in check_goals(results)] or [
        "- none judged: hgen did not run"]
    lines += ["", "### Best validation reward against trials", "",
              f"![best validation reward so far, mean over seeds with 95% band]({label}-reward.png)", "",
              "### Test accuracy per category (mean over seeds)", "", *_category_table(results), "",
              "### Each seed (test measures; ratios against that seed's `original`)", ""]
    for result in results:
        lines += _seed_lines(result)
    return lines


def format_bench_report(results: Sequence[ArchitectureResult], header: Mapping[str, Any],
                        system: Sequence[str]) -> str:
    """bench.md: provenance, then per architecture the intervals over seeds, goals and each seed, then system."""
    lines = ["# hgen-ray bench", "", f"- command: `{header['command']}`", f"- git commit: `{header['commit']}`",
             f"- machine: {header['machine']}",
             "- fine-tuning: the same budget on the clean train split for every strategy and reference "
             "(no challenge augmentation)",
             "- splits: every search scored its trials on validation challenge images; every figure below is "
             "the **test** split, of each strategy's validation-best H-DNN and of the references, except the "
             "reward curves and trial counts, which are validation",
             "- help: every strategy searched the same space through the same storage projection and labour cap, "
             "with the same base model, data and simulated people in each seed",
             f"- wall time: {header['elapsed_s']:.0f} s", ""]
    grouped = _by_label(results)
    lines += _ablation_lines(grouped)
    for label, label_results in grouped.items():
        lines += _architecture_lines(label, label_results)
    lines += ["## System", "", *system, ""]
    return "\n".join(lines)


def write_bench_report(out: Path, results: Sequence[ArchitectureResult], header: Mapping[str, Any],
                       system: Sequence[str]) -> Path:
    """Write bench.md and one reward-band plot per architecture into ``out``."""
    for label, label_results in _by_label(results).items():
        curves: dict[str, list[list[float]]] = {}
        for result in label_results:
            for strategy, rewards in reward_curves(result.rows).items():
                curves.setdefault(strategy, []).append(rewards)
        if curves:
            plot_reward_bands(curves, out / f"{label}-reward.png", "best validation reward so far")
    path = out / "bench.md"
    write_text_atomic(path, format_bench_report(results, header, system))
    return path
