"""One simulated person, as a Ray actor.

A person answers a batch of tasks: classify an image, or, for the detectors,
check a grid cell or draw boxes (:mod:`hgen_ray.human.detection_tasks`). Each answer and its response
time are drawn from a generator seeded by (pool seed, person, task key), not
from a running stream. The key names the image and the chain step (split,
category, sample index, step), so a task retried after a crash gets exactly the
same answer, and every candidate that defers the same image gets the same
answer from the same person: common random numbers across candidates.

A classification task carries the image's difficulty for people (one person's
chance of the right class and their median time, :mod:`hgen_ray.human.image_difficulty`),
shared by everyone who looks at it. Which wrong class a person names depends on the
data (its classes and look-alikes), so a person holds the pool's calibration from
construction: one pool serves one data set, and tasks stay small.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import ray

from hgen_ray.human.calibration import (
    FASHION_MNIST_CALIBRATION,
    PeopleCalibration,
    wrong_answer_distribution,
)
from hgen_ray.human.detection_tasks import BoxAnswer, BoxTask, CellAnswer, CellTask, check_cell, draw_boxes

__all__ = ["AnyAnswer", "AnyTask", "HumanAnswer", "HumanTask", "SimulatedHuman", "answer_any", "answer_task"]


@dataclass(frozen=True)
class HumanTask:
    key: tuple[int, ...]  # (split, category, sample index, chain step), as indices
    true_label: int
    person_accuracy: float  # this image's chance of the right class, the same for everyone
    answer_median_s: float  # this image's median answer time


@dataclass(frozen=True)
class HumanAnswer:
    key: tuple[int, ...]
    label: int
    response_s: float


def answer_task(task: HumanTask, person: int, seed: int,
                calibration: PeopleCalibration = FASHION_MNIST_CALIBRATION) -> HumanAnswer:
    """What ``person`` answers to ``task``, and how long it takes them; a wrong answer is one of the data's classes."""
    rng = np.random.default_rng([seed, person, *task.key])
    if rng.random() < task.person_accuracy:
        label = task.true_label
    else:
        wrong = wrong_answer_distribution(task.true_label, calibration)
        label = int(rng.choice(calibration.num_classes, p=wrong))
    return HumanAnswer(task.key, label, float(rng.lognormal(np.log(task.answer_median_s), calibration.answer_sigma)))


AnyTask = HumanTask | CellTask | BoxTask
AnyAnswer = HumanAnswer | CellAnswer | BoxAnswer


def answer_any(task: AnyTask, person: int, seed: int,
               calibration: PeopleCalibration = FASHION_MNIST_CALIBRATION) -> AnyAnswer:
    """Route a task to what a person does with its kind (the detectors' tasks are on Fashion-MNIST canvases)."""
    if isinstance(task, CellTask):
        return check_cell(task, person, seed)
    if isinstance(task, BoxTask):
        return draw_boxes(task, person, seed)
    return answer_task(task, person, seed, calibration)


@ray.remote(num_cpus=0)
class SimulatedHuman:
    """A person in the pool. ``num_cpus=0``: people wait, they do not compute.

    Zero CPUs also keeps actors created inside a Tune trial from deadlocking
    a small machine whose CPUs the trials already hold.

    Args:
        person: Who this is in the pool.
        seed: The pool's seed.
        calibration: The data's figures (:func:`hgen_ray.human.calibration.resolve_calibration`).
    """

    def __init__(self, person: int, seed: int, calibration: PeopleCalibration = FASHION_MNIST_CALIBRATION) -> None:
        self.person = person
        self.seed = seed
        self.calibration = calibration

    def answer(self, tasks: list[AnyTask]) -> list[AnyAnswer]:
        return [answer_any(task, self.person, self.seed, self.calibration) for task in tasks]

    def pid(self) -> int:
        """The worker process id, so tests can kill a person mid-request."""
        return os.getpid()
