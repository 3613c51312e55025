"""How good a gate is at sending people the network's mistakes: DESIGN.md's gate-quality measures.

A gate scores each sample (its confidence; low means doubt) and defers the samples scored below tau.
Two measures judge the deferrals at the chosen tau, one judges the score at every tau:

- ``deferral_precision``: of the deferred samples, the share the network got wrong (people's time well spent);
- ``errors_caught``: of the network's errors, the share deferred (the recall of the gate on errors);
- ``gate_aurc``: the area under the risk-coverage curve of selective classification (Geifman & El-Yaniv,
  "Selective Classification for Deep Neural Networks", NeurIPS 2017; AURC as defined in Geifman, Uziel &
  El-Yaniv, "Bias-Reduced Uncertainty Estimation for Deep Neural Classifiers", ICLR 2019). Lower is better.

Only numpy: the trial computes them, the reports and plots show them.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["GATE_MEASURES", "aurc", "deferral_precision", "errors_caught", "is_gate_measure", "risk_coverage"]

GATE_MEASURES = ("deferral_precision", "errors_caught", "gate_aurc")  # names, also as ``<name>/<category>``


def is_gate_measure(name: str) -> bool:
    """Whether a measure (or a per-category ``<measure>/<category>``) is one of :data:`GATE_MEASURES`."""
    return name.split("/", 1)[0] in GATE_MEASURES


def _as_bool(values: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one value per sample (1-D), got shape {array.shape}")
    return array.astype(bool)


def _pair(first: np.ndarray, second: np.ndarray, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_bool(first, names[0]), _as_bool(second, names[1])
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} need one value per sample each, got {a.size} and {b.size}")
    return a, b


def deferral_precision(deferred: np.ndarray, correct: np.ndarray) -> float:
    """The share of deferred samples that the network alone got wrong; nan when nothing was deferred.

    Args:
        deferred: Bool per sample: the gate sent it to people.
        correct: Bool per sample: the network alone was right.
    """
    deferred, correct = _pair(deferred, correct, ("deferred", "correct"))
    return float(np.mean(~correct[deferred])) if deferred.any() else math.nan


def errors_caught(deferred: np.ndarray, correct: np.ndarray) -> float:
    """The share of the network's errors that the gate deferred; nan when the network made no error.

    Args:
        deferred: Bool per sample: the gate sent it to people.
        correct: Bool per sample: the network alone was right.
    """
    deferred, correct = _pair(deferred, correct, ("deferred", "correct"))
    wrong = ~correct
    return float(np.mean(deferred[wrong])) if wrong.any() else math.nan


def risk_coverage(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The risk-coverage curve: keep the samples the gate trusts most, and see how often the network errs on them.

    At coverage ``i / n`` the ``i`` most confident samples are kept, and the risk is the error rate of the
    network among them (Geifman & El-Yaniv 2017). Ties in confidence are averaged: where the ``i`` kept
    samples take only part of a group of equal scores, that group contributes its mean error rate per kept
    sample, which is the expected risk when ties are broken at random. So the curve does not depend on the
    order the samples came in, and a gate that scores every sample the same has a flat curve at the error rate.

    Args:
        confidence: The gate's score per sample; high means trust (a sample is deferred when it is below tau).
        correct: Bool per sample: the network alone was right.

    Returns:
        ``(coverage, risk)``, each of length n: coverage ``1/n .. n/n`` and the risk at each.

    Raises:
        ValueError: Arrays of different lengths or not 1-D, or a NaN confidence.
    """
    scores = np.asarray(confidence, dtype=np.float64)
    if scores.ndim != 1:
        raise ValueError(f"confidence must be one value per sample (1-D), got shape {scores.shape}")
    correct = _as_bool(correct, "correct")
    if scores.shape != correct.shape:
        raise ValueError(f"confidence and correct need one value per sample each, got {scores.size} and {correct.size}")
    if np.isnan(scores).any():
        raise ValueError("confidence holds NaN: a gate score must order every sample")
    n = scores.size
    if n == 0:
        return np.zeros(0), np.zeros(0)
    order = np.argsort(-scores, kind="stable")
    errors = (~correct[order]).astype(np.float64)
    _, starts, group, sizes = np.unique(-scores[order], return_index=True, return_inverse=True, return_counts=True)
    group_errors = np.add.reduceat(errors, starts)
    errors_before = np.cumsum(group_errors) - group_errors
    kept = np.arange(1, n + 1, dtype=np.float64)
    expected_errors = errors_before[group] + (kept - starts[group]) * group_errors[group] / sizes[group]
    return kept / n, expected_errors / kept


def aurc(confidence: np.ndarray, correct: np.ndarray) -> float:
    """The area under the risk-coverage curve: the mean risk over coverages ``1/n .. n/n``; nan for no samples.

    As in Geifman, Uziel & El-Yaniv (ICLR 2019). Lower is better. With ``e`` errors among ``n`` samples, a
    perfect ranking (every error scored below every correct sample) reaches the least possible value,
    ``(1/n) * sum_{i=n-e+1}^{n} (i - n + e) / i``; the paper's continuous approximation of it is
    ``r + (1 - r) ln(1 - r)`` with ``r = e / n``. Ties are averaged as in :func:`risk_coverage`.

    Args:
        confidence: The gate's score per sample; high means trust.
        correct: Bool per sample: the network alone was right.
    """
    _, risk = risk_coverage(confidence, correct)
    return float(risk.mean()) if risk.size else math.nan
