"""Simulated people (Ray actors) and the pool that serves deferred samples."""

from hgen_ray.human.calibration import human_accuracy, majority_of_3_accuracy, single_person_accuracy
from hgen_ray.human.pool import DeferredSample, HumanPool, PoolResult
from hgen_ray.human.simulated_human import HumanAnswer, HumanTask, SimulatedHuman

__all__ = [
    "DeferredSample",
    "HumanAnswer",
    "HumanPool",
    "HumanTask",
    "PoolResult",
    "SimulatedHuman",
    "human_accuracy",
    "majority_of_3_accuracy",
    "single_person_accuracy",
]
