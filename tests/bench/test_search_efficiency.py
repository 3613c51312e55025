"""Search efficiency on validation: trials to get near the best, and hgen's best reward against each rival's."""

from __future__ import annotations

import pytest

from hgen_ray.bench.search_efficiency import (
    best_validation_differences,
    median_trials_to_near_best,
    near_best_threshold,
    search_efficiency,
    trials_to_near_best_differences,
    trials_to_reach,
)


def _rows(**curves: list[float]) -> dict[str, list[dict[str, float]]]:
    return {strategy: [{"reward": r} for r in rewards] for strategy, rewards in curves.items()}


def test_trials_to_reach_counts_until_the_running_best_gets_there() -> None:
    assert trials_to_reach([0.1, 0.5, 0.3, 0.9], 0.5) == 2
    assert trials_to_reach([0.1, 0.5, 0.3, 0.9], 0.85) == 4
    assert trials_to_reach([0.1, 0.2], 0.5) is None


def test_95_percent_of_the_best_works_for_negative_bests_too() -> None:
    assert near_best_threshold(0.8) == pytest.approx(0.76)
    assert near_best_threshold(-2.0) == pytest.approx(-2.1)  # 5% of its size below a negative best


def test_search_efficiency_uses_the_best_of_any_strategy_and_leaves_references_out() -> None:
    rows = _rows(hgen=[0.2, -0.3, 0.62], random=[0.5, 0.59, 0.1], compression_only=[-0.1, 0.3, 0.4],
                 original=[0.9])
    best, needed = search_efficiency(rows)
    assert best == pytest.approx(0.62)  # original's 0.9 is a reference, not a search
    assert needed == {"hgen": 3, "random": 2, "compression_only": None}  # threshold 0.589


def test_best_validation_differences_pair_each_seed_and_skip_seeds_a_rival_missed() -> None:
    seeds = [_rows(hgen=[0.1, 0.7], random=[0.6, 0.65]), _rows(hgen=[0.8], random=[0.5]),
             _rows(hgen=[0.7], random=[])]  # random failed in the third seed
    difference = best_validation_differences(seeds, ["random", "optuna"])
    assert set(difference) == {"random"}  # optuna never ran
    assert difference["random"].n == 2 and difference["random"].mean == pytest.approx((0.05 + 0.3) / 2)


def test_never_reaching_the_best_counts_as_one_trial_past_the_budget() -> None:
    seeds = [_rows(hgen=[0.1, 1.0, 1.0], random=[0.1, 0.2, 0.3]),  # random never gets near 1.0: 4
             _rows(hgen=[1.0, 0.0, 0.0], random=[0.0, 0.0, 1.0]),
             _rows(hgen=[0.0, 0.0, 1.0], random=[1.0, 0.0, 0.0])]
    assert median_trials_to_near_best(seeds) == {"hgen": 2, "random": 3}
    fewer = trials_to_near_best_differences(seeds, ["random"])["random"]  # per seed: 2 - 4, 1 - 3, 3 - 1
    assert fewer.n == 3 and fewer.mean == pytest.approx(-2 / 3)
