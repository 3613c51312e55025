"""The search controller: space encoding, RLlib agents and Tune searchers."""

from hgen_ray.controller.searcher import HGenSearcher, RandomSearcher
from hgen_ray.controller.space import SearchSpace, candidate_to_config, describe_layers, config_to_candidate

__all__ = ["HGenSearcher", "RandomSearcher", "SearchSpace", "candidate_to_config", "describe_layers", "config_to_candidate"]
