"""The search controller: space encoding, RLlib agents and Tune searchers."""

from hgen_ray.controller.searcher import HGenSearcher, RandomSearcher
from hgen_ray.controller.space import SearchSpace, describe_layers

__all__ = ["HGenSearcher", "RandomSearcher", "SearchSpace", "describe_layers"]
