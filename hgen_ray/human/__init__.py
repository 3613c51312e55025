"""Simulated people (Ray actors), how hard each image is for them, the pool's one queue, and how answers combine."""

from hgen_ray.human.calibration import (
    PeopleCalibration,
    human_accuracy,
    majority_of_3_accuracy,
    resolve_calibration,
    single_person_accuracy,
)
from hgen_ray.human.combination import bayes_decide, combine_answers, decide, people_likelihoods
from hgen_ray.human.image_difficulty import PeopleView, people_view, train_ensemble
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
