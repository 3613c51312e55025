"""How well each search strategy searched, on validation: its best reward and how soon it got near the best.

These are the figures of issue 19's claim that hgen's controller learns: in each
seed, hgen's best validation reward against each baseline's (paired, seed by
seed), and the trials each strategy needed to reach 95% of the best reward any
strategy found in that seed. They judge the search, so they stay on the
validation split the search saw; the test split judges the chosen H-DNNs.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from hgen_ray.report.seed_intervals import Interval, bootstrap_mean_interval

__all__ = ["NEAR_BEST_SHARE", "SEARCH_STRATEGIES", "best_validation_differences", "median_trials_to_near_best",
           "near_best_threshold", "reward_curves", "search_efficiency", "trials_to_near_best",
           "trials_to_near_best_differences", "trials_to_reach"]

Rows = Mapping[str, Sequence[Mapping[str, Any]]]  # strategy -> its trial rows, in trial order
SEARCH_STRATEGIES = ("hgen", "random", "compression_only", "optuna")
NEAR_BEST_SHARE = 0.95  # "trials to reach 95% of the best reward found by any strategy"


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


def reward_curves(rows: Rows) -> dict[str, list[float]]:
    """Each search strategy's validation rewards in trial order (references left out)."""
    return {s: [float(r["reward"]) for r in trials] for s, trials in rows.items()
            if s in SEARCH_STRATEGIES and trials}  # a strategy that failed has no rows and no curve


def search_efficiency(rows: Rows) -> tuple[float, dict[str, int | None]]:
    """The best reward any search strategy found, and the trials each needs to reach 95% of it."""
    curves = reward_curves(rows)
    if not curves:
        return math.nan, {}
    best = max(max(rewards) for rewards in curves.values())
    threshold = near_best_threshold(best)
    return best, {strategy: trials_to_reach(rewards, threshold) for strategy, rewards in curves.items()}


def _hgen_minus(per_seed: Sequence[Mapping[str, float]], rivals: Sequence[str]) -> dict[str, Interval]:
    """hgen's figure minus each rival's, seed by seed where both searched, as an interval over seeds."""
    differences = {}
    for rival in rivals:
        values = [float(figures["hgen"] - figures[rival]) for figures in per_seed
                  if "hgen" in figures and rival in figures]
        if values:
            differences[rival] = bootstrap_mean_interval(values)
    return differences


def best_validation_differences(seeds: Sequence[Rows], rivals: Sequence[str]) -> dict[str, Interval]:
    """hgen's best validation reward minus each rival's, seed by seed where both searched."""
    best = [{strategy: max(rewards) for strategy, rewards in reward_curves(rows).items()} for rows in seeds]
    return _hgen_minus(best, rivals)


def trials_to_near_best(rows: Rows) -> dict[str, int]:
    """Per search strategy in one seed, the trials it needed to reach 95% of the best any strategy found there; one
    past its budget where it never got there (so a strategy that rarely gets there cannot look fast)."""
    return {strategy: count if count is not None else len(rows[strategy]) + 1
            for strategy, count in search_efficiency(rows)[1].items()}


def median_trials_to_near_best(seeds: Sequence[Rows]) -> dict[str, float]:
    """Per strategy, the median over the seeds it ran in of :func:`trials_to_near_best`."""
    needed: dict[str, list[int]] = {}
    for rows in seeds:
        for strategy, count in trials_to_near_best(rows).items():
            needed.setdefault(strategy, []).append(count)
    return {strategy: statistics.median(counts) for strategy, counts in needed.items()}


def trials_to_near_best_differences(seeds: Sequence[Rows], rivals: Sequence[str]) -> dict[str, Interval]:
    """hgen's trials to near the best minus each rival's, seed by seed where both searched."""
    return _hgen_minus([trials_to_near_best(rows) for rows in seeds], rivals)
