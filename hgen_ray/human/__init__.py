"""Simulated people (Ray actors), how hard each image is for them, the pool's one queue, and how answers combine."""

from typing import Any

from hgen_ray.human.calibration import (
    PeopleCalibration,
    human_accuracy,
    majority_of_3_accuracy,
    resolve_calibration,
    single_person_accuracy,
)
from hgen_ray.human.combination import bayes_decide, combine_answers, decide, people_likelihoods
from hgen_ray.human.pool import DeferredSample, HumanPool, ImageAnswers, ImageRequest, PoolResult
from hgen_ray.human.pool_timeline import Timeline, pool_utilisation, simulate_pool, stream_arrivals
from hgen_ray.human.simulated_human import HumanAnswer, HumanTask, SimulatedHuman

__all__ = [
    "DeferredSample",
    "HumanAnswer",
    "HumanPool",
    "HumanTask",
    "ImageAnswers",
    "ImageRequest",
    "PeopleCalibration",
    "PeopleView",
    "PoolResult",
    "SimulatedHuman",
    "Timeline",
    "bayes_decide",
    "combine_answers",
    "decide",
    "human_accuracy",
    "majority_of_3_accuracy",
    "people_likelihoods",
    "people_view",
    "pool_utilisation",
    "resolve_calibration",
    "simulate_pool",
    "single_person_accuracy",
    "stream_arrivals",
    "train_ensemble",
]

# How hard each image is (PeopleView and the ensemble that measures it) needs torch; every simulated person's
# actor imports this package, and with torch in it a fresh pool of 8 answered 8.62 s after it was made instead
# of 2.87 s (benchmarks/pool_start.py, median of 3, on a 2-core machine). So those names load on first use.
_NEEDS_TORCH = {"PeopleView", "people_view", "train_ensemble"}


def __getattr__(name: str) -> Any:
    if name in _NEEDS_TORCH:
        from hgen_ray.human import image_difficulty

        return getattr(image_difficulty, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _NEEDS_TORCH)
