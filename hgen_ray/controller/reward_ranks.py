"""What the agents learn from: each candidate's shaped reward as its rank within the search.

The shaped reward (:func:`hgen_ray.metric.agent_reward`) has no feasibility cliff, but
its scale still depends on the weights and the budget, and one failed trial's huge
penalty would squash every other difference. Ranks put every search on one scale,
[-1, 1], and keep the ordering: the agents see which candidates were better, not by
how much. They are recomputed as trials finish; the reported reward is unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["centred_ranks", "ranks_among"]


def centred_ranks(values: Sequence[float]) -> np.ndarray:
    """Each value's rank among all, mapped onto [-1, 1]: the lowest -1, the highest 1, equal values sharing
    their mean rank; a single value is 0."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return np.zeros(len(values))
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values), dtype=np.float64)
    for value in np.unique(values):  # ties share their mean rank
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return 2.0 * ranks / (len(values) - 1) - 1.0


def ranks_among(values: Sequence[float], reference: Sequence[float]) -> np.ndarray:
    """Where each value would rank among ``reference``, on the scale :func:`centred_ranks` gives the
    reference: interpolated between its values, -1 at or below the lowest, 1 at or above the highest.
    An imagined candidate is ranked against the measured ones without moving their ranks."""
    reference = np.asarray(reference, dtype=np.float64)
    if len(reference) < 2:
        return np.zeros(len(values))
    ranks = centred_ranks(reference)
    levels = np.unique(reference)  # sorted; ties share their mean rank
    level_ranks = np.array([ranks[reference == level].mean() for level in levels])
    return np.interp(np.asarray(values, dtype=np.float64), levels, level_ranks)
