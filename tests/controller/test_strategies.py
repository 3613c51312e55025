from __future__ import annotations

from hgen_ray.config import SEARCH_ALGORITHMS
from hgen_ray.controller.strategies import STRATEGIES


def test_every_algorithm_a_config_may_name_has_a_strategy() -> None:
    assert set(STRATEGIES) == set(SEARCH_ALGORITHMS)
