"""Search strategies by name, as Tune names its searchers: every one searches the same space with the same help."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hgen_ray.config import ExperimentConfig
from hgen_ray.controller.projection import ProjectedSearcher, action_space
from hgen_ray.controller.searcher import HGenSearcher, RandomSearcher
from hgen_ray.controller.space import SearchSpace

__all__ = ["STRATEGIES", "make_searcher"]


def _hgen(space: SearchSpace, config: ExperimentConfig) -> Any:
    return HGenSearcher(space, config.reward, config.search, config.seed)


def _random(space: SearchSpace, config: ExperimentConfig) -> Any:
    return RandomSearcher(space, config.seed)


def _optuna(space: SearchSpace, config: ExperimentConfig) -> Any:
    from ray.tune.search.optuna import OptunaSearch  # imported only when asked for: Optuna is slow to import

    # Single-objective TPE on the same reward hgen maximises, over the same actions.
    tpe = OptunaSearch(space=action_space(space), metric="reward", mode="max", seed=config.seed)
    return ProjectedSearcher(tpe, space)


# compression_only is hgen's controller on the same space with the human step always off (SearchSpace).
STRATEGIES: dict[str, Callable[[SearchSpace, ExperimentConfig], Any]] = {
    "hgen": _hgen, "random": _random, "compression_only": _hgen, "optuna": _optuna,
}


def make_searcher(space: SearchSpace, config: ExperimentConfig) -> Any:
    """The Tune searcher ``search.algorithm`` names, over ``space``."""
    return STRATEGIES[config.search.algorithm](space, config)
