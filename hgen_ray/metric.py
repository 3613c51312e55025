"""From the measures to a reward, feasibility and the Pareto front.

The search maximises accuracy A and minimises the network's latency T (``dnn_latency_ms``)
subject to the user's demands and limits: A >= A_d, T <= T_d, E <= E_c, S <= S_c,
L <= L_c and people's p95 turnaround H <= H_d. People are charged once, on their
own scale: labour L and turnaround H, never through the network's latency.

    feasible:    R = w_A * A + w_T * (1 - t) - w_L * l - w_H * h
                 t = T / (T + T_s),  l = L / 1000 (person-seconds per sample),  h = H / (H + H_s)
    infeasible:  R = -w_V * sum_i min(v_i, V_max)
    failed:      R = -w_V * (1 + 5 * V_max)          (the worst infeasible score)

where T_s is ``reward.latency_scale_ms`` and H_s ``reward.turnaround_scale_s`` (where
each saturated term is half spent) and v_i are the normalised violations
(A_d - A) / A_d, (T - T_d) / T_d, (E - E_c) / E_c, (S - S_c) / S_c, (L - L_c) / L_c
and (H - H_d) / H_d, each counted only when positive, and the pool's overload
rho - 1 once rho (``pool_utilisation``) reaches 1: a pool busier than it has people
falls behind without end. People pay for themselves
when the accuracy they add, times w_A, beats what they cost, w_L * l + w_H * h.

A feasible candidate scores above 0 whenever w_A * A > w_L * l + w_H. A feasible
candidate keeps rho below 1, so its labour is below about the pool's size / arrival
rate person-seconds per sample (8 / 24 = 0.33 with the shipped H-CNN configs; up to
13/12 of it, as rho also counts the clean samples), and with
the shipped weights (w_L = w_H = 0.02) that holds for any A above 0.03: a feasible
candidate then beats every infeasible one, and an infeasible one is penalised in
proportion to how far it is from the feasible region.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hgen_ray.config import Constraints, RewardConfig

__all__ = ["MAX_VIOLATION", "PARETO_OBJECTIVES", "Score", "agent_reward", "failed_reward", "infeasible_reason",
           "objective", "pareto_front", "score", "violations"]

MAX_VIOLATION = 5.0  # cap per measure, so one absurd value does not swamp the agent's value estimates
PARETO_OBJECTIVES: dict[str, str] = {
    "accuracy": "max",
    "dnn_latency_ms": "min",
    "energy_mj": "min",
    "storage_mb": "min",
    "labor_s_per_1k": "min",
    "human_turnaround_s_p95": "min",
}
_LIMITS = (
    ("dnn_latency_ms", "latency_ms_max"),
    ("energy_mj", "energy_mj_max"),
    ("storage_mb", "storage_mb_max"),
    ("labor_s_per_1k", "labor_s_per_1k_max"),
    ("human_turnaround_s_p95", "human_turnaround_s_max"),
)
OVERLOAD_FLOOR = 0.01  # the violation of a pool at exactly rho = 1, so that it counts as infeasible
SAMPLES_PER_LABOR_UNIT = 1000.0  # labor_s_per_1k is per 1000 samples; the reward charges per sample


@dataclass(frozen=True)
class Score:
    reward: float
    feasible: bool
    violation: float  # summed normalised violation, 0 when feasible


def _over(value: float, limit: float) -> float:
    if math.isinf(limit) or value <= limit:
        return 0.0
    if limit <= 0:
        return MAX_VIOLATION
    return min((value - limit) / limit, MAX_VIOLATION)


def violations(metrics: Mapping[str, Any], constraints: Constraints) -> dict[str, float]:
    """Normalised violation per measure (0 where the demand or limit holds)."""
    found = {"accuracy": 0.0}
    if constraints.accuracy_min > 0 and metrics["accuracy"] < constraints.accuracy_min:
        found["accuracy"] = min((constraints.accuracy_min - metrics["accuracy"]) / constraints.accuracy_min,
                                MAX_VIOLATION)
    for measure, limit in _LIMITS:
        found[measure] = _over(float(metrics[measure]), getattr(constraints, limit))
    rho = float(metrics.get("pool_utilisation", 0.0))
    found["pool_utilisation"] = min(max(rho - 1.0, OVERLOAD_FLOOR), MAX_VIOLATION) if rho >= 1.0 else 0.0
    return found


def infeasible_reason(metrics: Mapping[str, Any], constraints: Constraints) -> str:
    """What makes a candidate infeasible, in words ("" when it is feasible)."""
    found = violations(metrics, constraints)
    reasons = []
    if found["accuracy"] > 0:
        reasons.append(f"accuracy {float(metrics['accuracy']):.3f} below A_d {constraints.accuracy_min}")
    for measure, limit in _LIMITS:
        if found[measure] > 0:
            reasons.append(f"{measure} {float(metrics[measure]):.4g} above {getattr(constraints, limit)}")
    if found["pool_utilisation"] > 0:
        reasons.append(f"people overloaded (rho={float(metrics['pool_utilisation']):.2f})")
    return "; ".join(reasons)


def score(metrics: Mapping[str, Any], constraints: Constraints, weights: RewardConfig) -> Score:
    """The reward of one evaluated candidate; see the module docstring for the formula."""
    violation = sum(violations(metrics, constraints).values())
    if violation > 0:
        return Score(reward=-weights.violation_weight * violation, feasible=False, violation=violation)
    return Score(reward=objective(metrics, weights), feasible=True, violation=0.0)


def agent_reward(result: Mapping[str, Any], weights: RewardConfig) -> float:
    """What the search's agents learn from: the objective less the weighted violation, for every candidate.

    Equal to the reward where the candidate is feasible; where it is not, it falls smoothly from the
    objective as the violation grows, instead of the reward's cliff down to ``-w_V * violation``, so that
    "just infeasible" tells the agents where the boundary is. A result without the measures is learned
    from as it is, by its reward. The reported reward is unchanged.
    """
    if not {"violation", "accuracy", "dnn_latency_ms", "labor_s_per_1k", "human_turnaround_s_p95"} <= set(result):
        return float(result["reward"])  # an objective of its own (the synthetic ones the tests learn)
    return objective(result, weights) - weights.violation_weight * float(result["violation"])


def objective(metrics: Mapping[str, Any], weights: RewardConfig) -> float:
    """The reward's feasible side: accuracy and the network's speed, less people's labour and turnaround."""
    latency = float(metrics["dnn_latency_ms"])
    saturated_latency = latency / (latency + weights.latency_scale_ms)
    labor_per_sample = float(metrics["labor_s_per_1k"]) / SAMPLES_PER_LABOR_UNIT
    turnaround = float(metrics["human_turnaround_s_p95"])
    saturated_turnaround = turnaround / (turnaround + weights.turnaround_scale_s)
    return (weights.accuracy_weight * float(metrics["accuracy"])
            + weights.latency_weight * (1.0 - saturated_latency)
            - weights.labor_weight * labor_per_sample
            - weights.turnaround_weight * saturated_turnaround)


def failed_reward(weights: RewardConfig) -> float:
    """What a crashed candidate scores: the worst an infeasible candidate can."""
    most_short_of_accuracy = 1.0  # (A_d - 0) / A_d
    return -weights.violation_weight * (most_short_of_accuracy + MAX_VIOLATION * (len(_LIMITS) + 1))


def _dominates(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    at_least_as_good = all(
        (a[m] >= b[m]) if mode == "max" else (a[m] <= b[m]) for m, mode in PARETO_OBJECTIVES.items()
    )
    strictly_better = any((a[m] > b[m]) if mode == "max" else (a[m] < b[m]) for m, mode in PARETO_OBJECTIVES.items())
    return at_least_as_good and strictly_better


def pareto_front(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The rows no other row dominates over (A up; T, E, S, L down)."""
    return [row for row in rows if not any(_dominates(other, row) for other in rows if other is not row)]
