"""DESIGN.md's measures from per-category outcomes: one copy for every architecture.

Accuracy, deferral and people's costs are means over the 12 challenges;
``accuracy_clean`` is the clean category's. ``pool_utilisation`` is over
everything the pool served (clean samples too) in the window the stream took to arrive.
The gate's quality (:mod:`hgen_ray.gate_quality`) is judged per category too; its means skip
categories where it is undefined (nothing deferred, no error).
"""

from __future__ import annotations

import numpy as np

from hgen_ray.architectures import CategoryOutcome
from hgen_ray.config import CHALLENGE_CATEGORIES
from hgen_ray.gate_quality import GATE_MEASURES, aurc, deferral_precision, errors_caught
from hgen_ray.human import pool_utilisation

__all__ = ["accuracy_measures", "gate_measures", "people_measures"]

MS_PER_S = 1000.0
SAMPLES_PER_LABOR_UNIT = 1000  # labour is reported per 1000 samples
TURNAROUND_PERCENTILE = 95  # human_turnaround_s_p95 and human_wait_s_p95: over deferred samples


def accuracy_measures(outcomes: dict[str, CategoryOutcome]) -> dict[str, float]:
    """Per category and over the 12 challenges: accuracy with people, the network's alone, deferral."""
    metrics: dict[str, float] = {}
    for category, outcome in outcomes.items():
        metrics[f"accuracy/{category}"] = outcome.accuracy
        metrics[f"dnn_accuracy/{category}"] = outcome.dnn_accuracy
        metrics[f"deferral_rate/{category}"] = float(np.mean(outcome.deferred))
    challenges = list(CHALLENGE_CATEGORIES)
    metrics["accuracy"] = float(np.mean([metrics[f"accuracy/{c}"] for c in challenges]))
    metrics["accuracy_clean"] = metrics["accuracy/clean"]
    metrics["dnn_accuracy"] = float(np.mean([metrics[f"dnn_accuracy/{c}"] for c in challenges]))
    if all(outcomes[c].tasks is not None for c in challenges):
        metrics["human_tasks_per_image"] = float(np.mean([outcomes[c].tasks.mean() for c in challenges]))  # type: ignore[union-attr]
    return metrics


def _nan_mean(values: list[float]) -> float:
    """The mean of the defined values (a category with nothing deferred has no precision); nan if none is."""
    defined = [v for v in values if not np.isnan(v)]
    return float(np.mean(defined)) if defined else float("nan")


def gate_measures(outcomes: dict[str, CategoryOutcome]) -> dict[str, float]:
    """Per category and over the 12 challenges: deferral precision, errors caught and the gate's AURC.

    Returns {} when an outcome lacks the network's per-sample correctness or the gate's scores (detectors).
    """
    if any(o.dnn_correct is None or o.gate_confidence is None for o in outcomes.values()):
        return {}
    metrics: dict[str, float] = {}
    for category, outcome in outcomes.items():
        correct = np.asarray(outcome.dnn_correct, dtype=bool)
        metrics[f"deferral_precision/{category}"] = deferral_precision(outcome.deferred, correct)
        metrics[f"errors_caught/{category}"] = errors_caught(outcome.deferred, correct)
        metrics[f"gate_aurc/{category}"] = aurc(outcome.gate_confidence, correct)  # type: ignore[arg-type]
    for measure in GATE_MEASURES:
        metrics[measure] = _nan_mean([metrics[f"{measure}/{c}"] for c in CHALLENGE_CATEGORIES])
    return metrics


def _deferred_percentile(values: np.ndarray, deferred: np.ndarray) -> float:
    return float(np.percentile(values[deferred], TURNAROUND_PERCENTILE)) if deferred.any() else 0.0


def people_measures(outcomes: dict[str, CategoryOutcome], dnn_latency_ms: float, pool_size: int,
                    window_s: float) -> dict[str, float]:
    """People's cost: labour per 1000 samples, deferral, p95 turnaround and wait, end-to-end mean latency, rho.

    ``dnn_latency_ms`` (the network alone) is what the latency demand and the reward use; people's time is
    judged by ``human_turnaround_s_p95`` against a demand of its own. ``latency_ms``, the end-to-end mean
    with people's seconds in it, is reported only.
    """
    challenges = [outcomes[c] for c in CHALLENGE_CATEGORIES]
    human_s = np.concatenate([o.latency_s for o in challenges])
    was_deferred = np.concatenate([o.deferred for o in challenges]).astype(bool)
    labor = np.concatenate([o.labor_s for o in challenges])
    busy_s = float(sum(o.labor_s.sum() for o in outcomes.values()))
    return {
        "dnn_latency_ms": dnn_latency_ms,
        "latency_ms": dnn_latency_ms + float(human_s.mean() * MS_PER_S),
        "human_turnaround_s_p95": _deferred_percentile(human_s, was_deferred),
        "human_wait_s_p95": _deferred_percentile(np.concatenate([o.wait_s for o in challenges]), was_deferred),
        "pool_utilisation": pool_utilisation(busy_s, pool_size, window_s),
        "labor_s_per_1k": float(labor.mean() * SAMPLES_PER_LABOR_UNIT),
        "deferral_rate": float(np.mean([o.deferred.mean() for o in challenges])),
    }
