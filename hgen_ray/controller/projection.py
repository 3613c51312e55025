"""Any Tune searcher over the controller's action space, with the same budget projection as hgen's.

``ProjectedSearcher`` lets a library searcher (Optuna's TPE) propose raw actions,
one discrete and one continuous per step (``d0``, ``c0``, ``d1``, ...), exactly
the actions hgen's agents choose. Each proposal is then passed through
:meth:`SearchSpace.legal_actions`, the storage projection and labour cap hgen's
rollouts get, and decoded into the candidate the trial evaluates. The inner
searcher learns the reward of its proposal, as hgen's agents learn the reward of
theirs, so no strategy gets help another does not.
"""

from __future__ import annotations

from typing import Any

from ray import tune
from ray.tune.search import Searcher

from hgen_ray.config import candidate_to_config
from hgen_ray.controller.space import SearchSpace

__all__ = ["ProjectedSearcher", "action_space"]


def action_space(space: SearchSpace) -> dict[str, Any]:
    """Tune's search space of raw actions: per step, an option index and a value in [-1, 1]."""
    params: dict[str, Any] = {}
    for step in range(space.num_steps):
        params[f"d{step}"] = tune.choice(list(range(len(space.options(step)))))
        params[f"c{step}"] = tune.uniform(-1.0, 1.0)
    return params


class ProjectedSearcher(Searcher):
    """Wraps ``inner`` (built on :func:`action_space`); its proposals go through the space's projection."""

    def __init__(self, inner: Searcher, space: SearchSpace, metric: str = "reward", mode: str = "max") -> None:
        super().__init__(metric=metric, mode=mode)
        self.inner = inner
        self.space = space

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        proposal = self.inner.suggest(trial_id)
        if proposal is None or proposal == Searcher.FINISHED:
            return proposal
        steps = range(self.space.num_steps)
        discrete, continuous = self.space.legal_actions([int(proposal[f"d{s}"]) for s in steps],
                                                        [float(proposal[f"c{s}"]) for s in steps])
        return candidate_to_config(self.space.decode(discrete, continuous))

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.inner.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self.inner.on_trial_complete(trial_id, result=result, error=error)

    def save(self, checkpoint_path: str) -> None:
        self.inner.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.inner.restore(checkpoint_path)
