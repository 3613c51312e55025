"""95% intervals over seeds: the percentile bootstrap of a mean, and of a paired difference.

A bench has few seeds (5 by default), so the bootstrap distribution of the
mean is computed exactly where that is cheap: every distinct resample (a
multiset of the n values) with its multinomial probability. Beyond
``EXACT_MAX_VALUES`` values it is estimated from ``MONTE_CARLO_RESAMPLES``
seeded resamples, so a report is the same every time it is written.

A percentile interval from 5 values is narrow (it cannot reach beyond the
values seen), which is one more reason a claim needs its interval to clear
the bar, not just its mean.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Interval", "MIN_SEEDS_FOR_A_CLAIM", "bootstrap_mean_interval", "paired_difference_interval"]

LEVEL = 0.95
EXACT_MAX_VALUES = 10  # C(19, 10) = 92378 distinct resamples: exact is still quick
MONTE_CARLO_RESAMPLES = 20000
MIN_SEEDS_FOR_A_CLAIM = 5  # the project's rule: "better" needs at least 5 seeds


@dataclass(frozen=True)
class Interval:
    """A mean over seeds and its bootstrap interval."""

    mean: float
    low: float
    high: float
    n: int

    def clears_above(self, bar: float) -> bool:
        """The whole interval lies above ``bar``, from enough seeds to claim it."""
        return self.n >= MIN_SEEDS_FOR_A_CLAIM and self.low > bar

    def clears_below(self, bar: float) -> bool:
        """The whole interval lies at or below ``bar``, from enough seeds to claim it."""
        return self.n >= MIN_SEEDS_FOR_A_CLAIM and self.high <= bar

    def text(self, scale: float = 1.0, digits: int = 4) -> str:
        return (f"{self.mean * scale:.{digits}g} [{self.low * scale:.{digits}g}, {self.high * scale:.{digits}g}]"
                if self.n else "-")


@functools.lru_cache(maxsize=EXACT_MAX_VALUES)
def _distinct_resamples(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Every distinct resample of n values as counts per value, and its probability under sampling with replacement."""
    counts, weights = [], []
    log_n_factorial = math.lgamma(n + 1)
    for picks in itertools.combinations_with_replacement(range(n), n):
        drawn = np.bincount(picks, minlength=n)
        counts.append(drawn)
        weights.append(math.exp(log_n_factorial - sum(math.lgamma(c + 1) for c in drawn) - n * math.log(n)))
    return np.asarray(counts, dtype=np.float64), np.asarray(weights)


def _exact_distribution(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every distinct resample's mean and its probability."""
    counts, weights = _distinct_resamples(len(values))
    return counts @ values / len(values), weights


def _monte_carlo_distribution(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    picks = rng.integers(len(values), size=(MONTE_CARLO_RESAMPLES, len(values)))
    return values[picks].mean(axis=1), np.full(MONTE_CARLO_RESAMPLES, 1.0 / MONTE_CARLO_RESAMPLES)


def _quantile(means: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The smallest resample mean whose cumulative probability reaches ``q``."""
    order = np.argsort(means, kind="stable")
    cumulative = np.cumsum(weights[order])
    index = int(np.searchsorted(cumulative, q - 1e-12))  # tolerate rounding in the summed probabilities
    return float(means[order][min(index, len(order) - 1)])


def bootstrap_mean_interval(values: Sequence[float], level: float = LEVEL) -> Interval:
    """The mean of ``values`` and its percentile-bootstrap interval at ``level``."""
    data = np.asarray([float(v) for v in values], dtype=np.float64)
    if data.size == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    exact = data.size <= EXACT_MAX_VALUES
    means, weights = _exact_distribution(data) if exact else _monte_carlo_distribution(data)
    tail = (1.0 - level) / 2.0
    return Interval(float(data.mean()), _quantile(means, weights, tail), _quantile(means, weights, 1.0 - tail),
                    int(data.size))


def paired_difference_interval(first: Sequence[float], second: Sequence[float], level: float = LEVEL) -> Interval:
    """``first - second`` seed by seed, its mean and bootstrap interval (seeds resampled in pairs)."""
    if len(first) != len(second):
        raise ValueError(f"paired values need equal counts, got {len(first)} and {len(second)}")
    return bootstrap_mean_interval([float(a) - float(b) for a, b in zip(first, second)], level)
