"""A fixed pool of simulated people that answers deferred samples.

Deferred samples arrive in streams (one per challenge category), one sample
every ``arrival_interval_s``. Each goes to a chain of k different people:

- ``majority``: all k answer at once; the plurality wins, ties go to the first.
- ``sequential``: people answer one after another and the chain stops as soon
  as two answers agree (after at most k); otherwise the plurality wins. Less
  labour than a full majority, more latency.

A person works on one task at a time. Work is handed out in rotation, and a
task waits in its person's queue while they are busy; that queueing time is
part of the H-DNN's latency. Answers come from Ray actors in one batched call
per person per round (one round, or two for a sequential chain with k=3), and
the timeline is then replayed in simulated time.

The detectors send whole images instead (:meth:`HumanPool.serve_images`): every
person of the chain does all of an image's tasks (checks each gated cell, or
draws its boxes), one after another (``sequential``) or side by side
(``majority``); their time on the image is the sum of their answers' times.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass

import numpy as np
import ray

from hgen_ray.config import HumanPoolConfig
from hgen_ray.human.simulated_human import AnyAnswer, AnyTask, HumanAnswer, HumanTask, SimulatedHuman

__all__ = ["DeferredSample", "HumanPool", "ImagePoolResult", "ImageRequest", "PoolResult"]

_CHAIN_STEPS_MAX = 3


@dataclass(frozen=True)
class DeferredSample:
    stream: str  # challenge category; each stream is timed on its own
    position: int  # index of the sample in its stream, which fixes its arrival time
    true_label: int
    severity: int


@dataclass(frozen=True)
class PoolResult:
    """Per deferred sample, in request order."""

    labels: np.ndarray  # the chain's answer
    labor_s: np.ndarray  # person-seconds spent on it
    latency_s: np.ndarray  # arrival to final answer, queueing included
    wait_s: np.ndarray  # of that latency, time spent queueing
    answers_per_sample: np.ndarray  # people who answered (k, or fewer when a chain stopped early)


@dataclass(frozen=True)
class ImageRequest:
    """One image for people: its tasks are all cell checks, or one box drawing."""

    stream: str  # challenge category; each stream is timed on its own
    position: int  # index of the image in its stream, which fixes its arrival time
    tasks: tuple[AnyTask, ...]  # keys need only be unique within the request


@dataclass(frozen=True)
class ImagePoolResult:
    """Per request, in request order."""

    answers: list[list[list[AnyAnswer]]]  # [request][person in chain][task]
    labor_s: np.ndarray
    latency_s: np.ndarray
    wait_s: np.ndarray


def _decide(labels: list[int]) -> int:
    counts = Counter(labels)
    best = max(counts.values())
    return next(label for label in labels if counts[label] == best)  # ties: earliest vote


class HumanPool:
    """``size`` people as Ray actors that restart on a crash and retry the task.

    Args:
        config: Pool size, arrival interval, restart budget.
        seed: Seeds every person; the same seed gives the same answers.
    """

    def __init__(self, config: HumanPoolConfig, seed: int) -> None:
        self.config = config
        self.seed = seed
        options = {"max_restarts": config.max_restarts, "max_task_retries": config.max_restarts}
        self.people = [SimulatedHuman.options(**options).remote(i, seed) for i in range(config.size)]

    def shutdown(self) -> None:
        for person in self.people:
            ray.kill(person, no_restart=True)
        self.people = []

    def __enter__(self) -> HumanPool:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.shutdown()

    def _person_for(self, order: int, step: int, k: int) -> int:
        return (order * k + step) % len(self.people)

    def _ask(self, assignments: dict[int, list[AnyTask]]) -> dict[int, AnyAnswer]:
        """One batched actor call per person; returns answers by task key."""
        futures = [self.people[p].answer.remote(tasks) for p, tasks in assignments.items() if tasks]
        answers = [a for batch in ray.get(futures) for a in batch]
        by_key = {a.key: a for a in answers}
        expected = sum(len(t) for t in assignments.values())
        if len(by_key) != expected:
            raise RuntimeError(f"human pool returned {len(by_key)} answers for {expected} tasks")
        return by_key

    def _collect(self, samples: list[DeferredSample], mechanism: str, k: int) -> dict[int, HumanAnswer]:
        def task(i: int, step: int) -> HumanTask:
            s = samples[i]
            return HumanTask(key=i * _CHAIN_STEPS_MAX + step, true_label=s.true_label, category=s.stream,
                             severity=s.severity)

        first_round = k if mechanism == "majority" or k < 3 else 2
        assignments: dict[int, list[AnyTask]] = {p: [] for p in range(len(self.people))}
        for i in range(len(samples)):
            for step in range(first_round):
                assignments[self._person_for(i, step, k)].append(task(i, step))
        answers = self._ask(assignments)
        if first_round < k:  # a sequential chain asks a third person only on disagreement
            tie_breaks: dict[int, list[AnyTask]] = {p: [] for p in range(len(self.people))}
            for i in range(len(samples)):
                if answers[i * _CHAIN_STEPS_MAX].label != answers[i * _CHAIN_STEPS_MAX + 1].label:
                    tie_breaks[self._person_for(i, 2, k)].append(task(i, 2))
            answers.update(self._ask(tie_breaks))
        return answers

    def serve(self, samples: list[DeferredSample], mechanism: str, k: int) -> PoolResult:
        """Answer every deferred sample with a chain of ``k`` people.

        Raises:
            ValueError: ``k`` exceeds the pool size or the mechanism is unknown.
        """
        self._check_chain(mechanism, k)
        answers = self._collect(samples, mechanism, k) if samples else {}
        steps = [[s for s in range(k) if i * _CHAIN_STEPS_MAX + s in answers] for i in range(len(samples))]
        durations = [[answers[i * _CHAIN_STEPS_MAX + s].response_s for s in chain] for i, chain in enumerate(steps)]
        labor, latency, wait = self._timeline([(s.stream, s.position) for s in samples], durations, mechanism, k)
        labels = [_decide([answers[i * _CHAIN_STEPS_MAX + s].label for s in chain]) for i, chain in enumerate(steps)]
        return PoolResult(np.array(labels, dtype=np.int64), labor, latency, wait,
                          np.array([len(chain) for chain in steps], dtype=np.int64))

    def _check_chain(self, mechanism: str, k: int) -> None:
        if not 1 <= k <= min(_CHAIN_STEPS_MAX, len(self.people)):
            raise ValueError(f"chain length k={k} must be between 1 and min(3, pool size {len(self.people)})")
        if mechanism not in ("sequential", "majority"):
            raise ValueError(f"unknown human mechanism {mechanism!r}; allowed: sequential, majority")

    def serve_images(self, requests: list[ImageRequest], mechanism: str, k: int) -> ImagePoolResult:
        """Have a chain of ``k`` people each do every task of each image.

        Raises:
            ValueError: ``k`` exceeds the pool size or the mechanism is unknown.
        """
        self._check_chain(mechanism, k)
        keys: list[list[list[int]]] = []
        assignments: dict[int, list[AnyTask]] = {p: [] for p in range(len(self.people))}
        renamed = 0
        for i, request in enumerate(requests):
            keys.append([])
            for step in range(k):
                keys[i].append([])
                for task in request.tasks:
                    keys[i][step].append(renamed)
                    assignments[self._person_for(i, step, k)].append(dataclasses.replace(task, key=renamed))
                    renamed += 1
        by_key = self._ask(assignments) if renamed else {}
        answers = [[[by_key[key] for key in step] for step in request] for request in keys]
        durations = [[sum(a.response_s for a in step) for step in request] for request in answers]
        labor, latency, wait = self._timeline([(r.stream, r.position) for r in requests], durations, mechanism, k)
        return ImagePoolResult(answers, labor, latency, wait)

    def _timeline(self, arrivals: list[tuple[str, int]], durations: list[list[float]], mechanism: str,
                  k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Labour, latency and queueing per request: FIFO per person, in arrival order, per stream."""
        n = len(arrivals)
        labor, latency, wait = np.zeros(n), np.zeros(n), np.zeros(n)
        streams: dict[str, list[int]] = {}
        for i, (stream, _) in enumerate(arrivals):
            streams.setdefault(stream, []).append(i)
        for indices in streams.values():
            free_at = np.zeros(len(self.people))
            for i in sorted(indices, key=lambda j: arrivals[j][1]):
                arrival = arrivals[i][1] * self.config.arrival_interval_s
                finish, busy = arrival, 0.0
                for step, duration in enumerate(durations[i]):
                    person = self._person_for(i, step, k)
                    ready = arrival if mechanism == "majority" else finish
                    start = max(ready, free_at[person])
                    free_at[person] = start + duration
                    finish = max(finish, start + duration) if mechanism == "majority" else start + duration
                    busy = max(busy, duration) if mechanism == "majority" else busy + duration
                labor[i] = sum(durations[i])
                latency[i] = finish - arrival
                wait[i] = max(0.0, finish - arrival - busy)
        return labor, latency, wait
