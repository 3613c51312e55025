from __future__ import annotations

import math

import pytest

from hgen_ray.config import Constraints, RewardConfig
from hgen_ray.metric import (
    MAX_VIOLATION,
    agent_reward,
    failed_reward,
    infeasible_reason,
    pareto_front,
    score,
    violations,
)

LIMITS = Constraints(accuracy_min=0.6, latency_ms_max=10.0, energy_mj_max=1.0, storage_mb_max=0.5,
                     labor_s_per_1k_max=600.0, human_turnaround_s_max=60.0)
WEIGHTS = RewardConfig(accuracy_weight=1.0, latency_weight=0.2, latency_scale_ms=1.0, violation_weight=1.0,
                       labor_weight=0.02, turnaround_weight=0.05, turnaround_scale_s=30.0)


def _m(**overrides: float) -> dict[str, float]:
    base = {"accuracy": 0.7, "dnn_latency_ms": 1.0, "latency_ms": 1.0, "energy_mj": 0.5, "storage_mb": 0.3,
            "labor_s_per_1k": 300.0, "human_turnaround_s_p95": 30.0}
    return {**base, **overrides}


def test_feasible_reward_follows_the_documented_formula() -> None:
    result = score(_m(), LIMITS, WEIGHTS)
    assert result.feasible and result.violation == 0
    assert result.reward == pytest.approx(0.7 + 0.2 * (1 - 1 / 2) - 0.02 * 0.3 - 0.05 * 0.5)


def test_people_change_the_reward_only_through_accuracy_labour_and_turnaround() -> None:
    network_alone = _m(labor_s_per_1k=0.0, human_turnaround_s_p95=0.0)
    with_people = _m(accuracy=0.75, labor_s_per_1k=500.0, human_turnaround_s_p95=12.0,
                     latency_ms=900.0)  # people's seconds in the end-to-end mean must not count
    gain = score(with_people, LIMITS, WEIGHTS).reward - score(network_alone, LIMITS, WEIGHTS).reward
    assert gain == pytest.approx(0.05 - 0.02 * 0.5 - 0.05 * 12 / 42)
    slower_end_to_end = score({**with_people, "latency_ms": 1e6}, LIMITS, WEIGHTS)
    assert slower_end_to_end.reward == score(with_people, LIMITS, WEIGHTS).reward and slower_end_to_end.feasible


def test_the_latency_demand_binds_the_network_alone() -> None:
    assert not score(_m(dnn_latency_ms=12.0), LIMITS, WEIGHTS).feasible
    assert score(_m(latency_ms=5000.0), LIMITS, WEIGHTS).feasible


def test_the_turnaround_demand_is_its_own_limit() -> None:
    late = score(_m(human_turnaround_s_p95=90.0), LIMITS, WEIGHTS)
    assert not late.feasible and late.reward == pytest.approx(-0.5)  # 50% over H_d


def test_any_feasible_candidate_beats_every_infeasible_one() -> None:
    worst_feasible = score(_m(accuracy=0.6, dnn_latency_ms=10.0, labor_s_per_1k=600.0,
                              human_turnaround_s_p95=60.0), LIMITS, WEIGHTS)
    best_infeasible = score(_m(accuracy=0.99, dnn_latency_ms=0.0, storage_mb=0.5001), LIMITS, WEIGHTS)
    assert worst_feasible.feasible and not best_infeasible.feasible
    assert worst_feasible.reward > 0 > best_infeasible.reward


def test_penalty_is_proportional_to_normalised_violation() -> None:
    a = score(_m(storage_mb=0.6), LIMITS, WEIGHTS)  # 20% over
    b = score(_m(storage_mb=0.7), LIMITS, WEIGHTS)  # 40% over
    assert a.reward == pytest.approx(-0.2) and b.reward == pytest.approx(-0.4)
    both = score(_m(storage_mb=0.6, accuracy=0.3), LIMITS, WEIGHTS)  # plus 50% short of A_d
    assert both.reward == pytest.approx(-0.7)


def test_violations_are_capped_and_failures_score_worst() -> None:
    assert violations(_m(labor_s_per_1k=1e9), LIMITS)["labor_s_per_1k"] == MAX_VIOLATION
    worst = score(_m(accuracy=0.0, dnn_latency_ms=1e9, energy_mj=1e9, storage_mb=1e9, labor_s_per_1k=1e9,
                     human_turnaround_s_p95=1e9, pool_utilisation=1e9), LIMITS, WEIGHTS)
    assert failed_reward(WEIGHTS) == pytest.approx(worst.reward)


def test_a_pool_busier_than_its_people_is_infeasible_and_says_so() -> None:
    overloaded = _m(pool_utilisation=1.34)
    result = score(overloaded, LIMITS, WEIGHTS)
    assert not result.feasible and result.reward == pytest.approx(-0.34)
    assert infeasible_reason(overloaded, LIMITS) == "people overloaded (rho=1.34)"
    at_capacity = score(_m(pool_utilisation=1.0), LIMITS, WEIGHTS)  # rho = 1 already falls behind without end
    assert not at_capacity.feasible
    busy_but_keeping_up = _m(pool_utilisation=0.97)
    assert score(busy_but_keeping_up, LIMITS, WEIGHTS).feasible and infeasible_reason(busy_but_keeping_up, LIMITS) == ""
    both = infeasible_reason(_m(accuracy=0.5, pool_utilisation=2.0), LIMITS)
    assert both == "accuracy 0.500 below A_d 0.6; people overloaded (rho=2.00)"


def test_infinite_limits_never_bind() -> None:
    assert score(_m(dnn_latency_ms=1e12, storage_mb=1e6), Constraints(), WEIGHTS).feasible
    assert math.isfinite(score(_m(dnn_latency_ms=1e12), Constraints(), WEIGHTS).reward)


def test_pareto_front_keeps_exactly_the_non_dominated() -> None:
    rows = [
        _m(accuracy=0.8, storage_mb=0.4),  # best accuracy
        _m(accuracy=0.7, storage_mb=0.2),  # smallest
        _m(accuracy=0.7, storage_mb=0.3),  # dominated by the one above
        _m(accuracy=0.6, storage_mb=0.4, labor_s_per_1k=0.0),  # least labour
    ]
    front = pareto_front(rows)
    assert front == [rows[0], rows[1], rows[3]]


def _as_result(metrics: dict[str, float]) -> dict[str, float]:
    """A trial's result: its measures plus the reward and violation the trial reports."""
    scored = score(metrics, LIMITS, WEIGHTS)
    return {**metrics, "reward": scored.reward, "violation": scored.violation}


def test_the_agents_reward_has_no_cliff_at_the_boundary_and_keeps_the_feasible_reward() -> None:
    feasible, just_over = _as_result(_m(storage_mb=0.5)), _as_result(_m(storage_mb=0.501))
    assert feasible["reward"] - just_over["reward"] > 0.5  # the reported reward's cliff
    assert agent_reward(feasible, WEIGHTS) == feasible["reward"]
    assert agent_reward(feasible, WEIGHTS) - agent_reward(just_over, WEIGHTS) == pytest.approx(0.002)
    far_over = _as_result(_m(storage_mb=1.0))
    assert agent_reward(far_over, WEIGHTS) < agent_reward(just_over, WEIGHTS)  # still ordered by violation


def test_a_result_without_measures_is_learned_from_by_its_reward() -> None:
    assert agent_reward({"reward": 0.37}, WEIGHTS) == 0.37
