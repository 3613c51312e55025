"""One simulated person, as a Ray actor.

A person answers a batch of tasks: classify an image, or, for the detectors,
check a grid cell or draw boxes (:mod:`hgen_ray.human.detection_tasks`). Each answer and its response
time are drawn from a generator seeded by (pool seed, person, task key), not
from a running stream, so a task retried after the actor crashed gets exactly
the same answer: nothing is lost or doubled by a restart.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import ray

from hgen_ray.human.calibration import CLASSIFY_SIGMA, human_accuracy, response_median_s, wrong_answer_distribution
from hgen_ray.human.detection_tasks import BoxAnswer, BoxTask, CellAnswer, CellTask, check_cell, draw_boxes

__all__ = ["AnyAnswer", "AnyTask", "HumanAnswer", "HumanTask", "SimulatedHuman", "answer_any", "answer_task"]


@dataclass(frozen=True)
class HumanTask:
    key: int  # unique per (sample, chain step) within one pool request
    true_label: int
    category: str
    severity: int


@dataclass(frozen=True)
class HumanAnswer:
    key: int
    label: int
    response_s: float


def answer_task(task: HumanTask, person: int, seed: int) -> HumanAnswer:
    """What ``person`` answers to ``task``, and how long it takes them."""
    rng = np.random.default_rng([seed, person, task.key])
    if rng.random() < human_accuracy(task.category, task.severity):
        label = task.true_label
    else:
        label = int(rng.choice(len(wrong_answer_distribution(0)), p=wrong_answer_distribution(task.true_label)))
    median = response_median_s(task.category, task.severity)
    return HumanAnswer(task.key, label, float(rng.lognormal(np.log(median), CLASSIFY_SIGMA)))


AnyTask = HumanTask | CellTask | BoxTask
AnyAnswer = HumanAnswer | CellAnswer | BoxAnswer


def answer_any(task: AnyTask, person: int, seed: int) -> AnyAnswer:
    """Route a task to what a person does with its kind."""
    if isinstance(task, CellTask):
        return check_cell(task, person, seed)
    if isinstance(task, BoxTask):
        return draw_boxes(task, person, seed)
    return answer_task(task, person, seed)


@ray.remote(num_cpus=0)
class SimulatedHuman:
    """A person in the pool. ``num_cpus=0``: people wait, they do not compute.

    Zero CPUs also keeps actors created inside a Tune trial from deadlocking
    a small machine whose CPUs the trials already hold.
    """

    def __init__(self, person: int, seed: int) -> None:
        self.person = person
        self.seed = seed

    def answer(self, tasks: list[AnyTask]) -> list[AnyAnswer]:
        return [answer_any(task, self.person, self.seed) for task in tasks]

    def pid(self) -> int:
        """The worker process id, so tests can kill a person mid-request."""
        return os.getpid()
