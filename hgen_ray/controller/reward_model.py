"""A learned reward model the agents imagine with between real trials (Dyna, Sutton 1991).

A real trial costs tens of seconds, so a 30-trial search gives the agents 30
episodes: too few to learn from. Between real trials the searcher rolls its
current policy through the space without running anything, and this model
scores each imagined candidate from the candidates measured so far.

- The model is scikit-learn's extremely randomised trees (Geurts et al. 2006),
  each tree fit on a bootstrap of the finished candidates: an ensemble whose
  spread says where it is unsure.
- An imagined candidate is scored by the ensemble's mean minus one spread.
  The pessimism keeps the agents from chasing a candidate far from every
  measured one (after MOPO, Yu et al. 2020; the weight of 1 is assumed).
- Real trials re-anchor it: the model is refit on every finished trial, and
  every imagined episode is rescored by the newest model before each round
  of updates. The reported reward never comes from it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.ensemble import ExtraTreesRegressor

from hgen_ray.controller.space import NUM_DISCRETE_ACTIONS

__all__ = ["MIN_MEASURED_TO_IMAGINE", "RewardModel", "candidate_features"]

MIN_MEASURED_TO_IMAGINE = 5  # finished candidates before the model scores anything (assumed)
PESSIMISM = 1.0  # spreads subtracted from the ensemble's mean (assumed)
_TREES = 32  # ensemble members: enough for a stable spread on 5-100 candidates


def candidate_features(discrete: Sequence[int], continuous: Sequence[float]) -> np.ndarray:
    """One candidate as the model sees it: per step, its option one-hot and its continuous value."""
    rows = np.zeros((len(discrete), NUM_DISCRETE_ACTIONS + 1), dtype=np.float32)
    rows[np.arange(len(discrete)), list(discrete)] = 1.0
    rows[:, -1] = continuous
    return rows.ravel()


class RewardModel:
    """Shaped reward from a candidate's features, fit on the measured candidates.

    Args:
        seed: Seeds the trees' bootstraps and split draws (with the number of candidates fit on).
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def scores(self, measured: np.ndarray, rewards: Sequence[float], imagined: np.ndarray,
               pessimism: float = PESSIMISM) -> np.ndarray:
        """Fit on ``measured`` (one row per candidate) and their ``rewards``, then score each ``imagined`` row
        pessimistically: the trees' mean minus ``pessimism`` times their spread.

        Raises:
            ValueError: Fewer than ``MIN_MEASURED_TO_IMAGINE`` measured candidates.
        """
        if len(measured) < MIN_MEASURED_TO_IMAGINE:
            raise ValueError(f"the reward model needs {MIN_MEASURED_TO_IMAGINE} measured candidates, "
                             f"got {len(measured)}")
        seed = (self.seed * 100_003 + len(measured)) % 2**32  # a fresh, reproducible draw per refit
        forest = ExtraTreesRegressor(n_estimators=_TREES, bootstrap=True, random_state=seed)
        forest.fit(measured, np.asarray(rewards, dtype=np.float64))
        per_tree = np.stack([tree.predict(imagined) for tree in forest.estimators_])
        return per_tree.mean(axis=0) - pessimism * per_tree.std(axis=0)
