"""The search controller: space encoding, RLlib agents and Tune searchers."""

from hgen_ray.controller.searcher import HGenSearcher, RandomSearcher
from hgen_ray.controller.space import SearchSpace, candidate_to_flat, describe_layers, flat_to_candidate

__all__ = ["HGenSearcher", "RandomSearcher", "SearchSpace", "candidate_to_flat", "describe_layers", "flat_to_candidate"]
