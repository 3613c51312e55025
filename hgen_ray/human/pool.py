"""A fixed pool of simulated people (Ray actors) that answers deferred samples.

Each deferred sample goes to a chain of k different people:

- ``majority``: all k answer; the plurality wins.
- ``sequential``: people answer one after another and the chain stops as soon
  as two answers agree (after at most k); otherwise the plurality wins. Less
  labour than a full majority, more latency.

How the answers become one class is the ``combine`` rule
(:mod:`hgen_ray.human.combination`): ``replace`` takes the plurality, and breaks a
tie (two people who disagree, or three who all differ) by the network's own
calibrated probabilities over the tied classes, so a chain of 2 is more than one
person at twice the labour; ``bayes`` weighs every answer against the network's
belief through people's confusion model. The rule does not change who is asked:
a sequential chain still stops when two agree.

Which people look at an image is fixed by the image (a routing keyed by it), and
what they answer depends only on the image and the look, so every candidate
that defers the same image gets the same answers. When the looks are done is
the shared queue's business (:mod:`hgen_ray.human.pool_timeline`).

Answers come from Ray actors in one batched call per person per round (one
round, or two for a sequential chain with k=3). Every person is a named actor,
``<pool>/person-<p>/gen-<g>``. A person whose actor dies is replaced by the
next generation, with the same identity and seed, and its batch is sent again:
at most ``human_pool.max_restarts`` replacements per request. The replacement
takes a new name rather than the dead one's, because Ray frees a name only once
it knows the actor is dead, which after a node dies takes as long as its health
checks (tens of seconds). A replacement is detached, so it outlives the Tune
trial that made it, and every request first looks up each person's newest
generation: each trial holds its own copy of the pool, and a person lost in one
candidate costs later candidates nothing.

The detectors send whole images instead (:meth:`HumanPool.answer_images`):
every person of the chain does all of an image's tasks (checks each gated cell,
or draws its boxes); their time on the image is the sum of their answers' times,
and the caller times all categories' images in one queue.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass

import numpy as np
import ray
from ray.exceptions import RayActorError

from hgen_ray.config import HumanPoolConfig
from hgen_ray.human.calibration import FASHION_MNIST_CALIBRATION, PeopleCalibration
from hgen_ray.human.combination import check_combination, combine_answers, decide
from hgen_ray.human.pool_timeline import simulate_pool
from hgen_ray.human.simulated_human import AnyAnswer, AnyTask, HumanAnswer, HumanTask, SimulatedHuman

__all__ = ["DeferredSample", "HumanPool", "ImageAnswers", "ImageRequest", "PoolResult", "decide"]

CHAIN_STEPS_MAX = 3
PEOPLE_NAMESPACE = "hgen-ray-people"  # named people, found from any trial of the search
_ROUTING_WEIGHTS = (7919, 104729, 1)  # primes: images next to each other go to different people


@dataclass(frozen=True)
class DeferredSample:
    key: tuple[int, int, int]  # (split, category, sample index) as indices: names the image
    arrival_s: float  # when the app saw it, on the one stream of queries
    true_label: int
    person_accuracy: float  # one person's chance of the right class on this image
    answer_median_s: float  # one person's median seconds on it
    network_probabilities: tuple[float, ...]  # the gate's calibrated softmax: ties (replace), the prior (bayes)
    category_accuracy: float | None = None  # one person's mean accuracy on the category: bayes's confusion model


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

    key: tuple[int, int, int]  # (split, category, image index): names the image
    tasks: tuple[AnyTask, ...]  # each keyed by what it is on the image (a cell's grid index); asked as (image, task, step)


@dataclass(frozen=True)
class ImageAnswers:
    """Per request, in request order."""

    answers: list[list[list[AnyAnswer]]]  # [request][person in chain][task]
    durations: list[list[float]]  # [request][person in chain]: seconds on the whole image


def routed_person(image: tuple[int, ...], step: int, people: int) -> int:
    """Who takes look ``step`` at ``image``: fixed by the image, a different person per step."""
    return (sum(part * weight for part, weight in zip(image, _ROUTING_WEIGHTS)) + step) % people


def _check_combine(combine: str, samples: list[DeferredSample]) -> None:
    """Refuse a request before anyone is asked, rather than after every answer is in."""
    check_combination(combine)
    missing = next((s.key for s in samples if s.category_accuracy is None), None)
    if combine == "bayes" and missing is not None:
        raise ValueError(f"combine='bayes' needs each sample's category_accuracy; sample {missing} has None")


class HumanPool:
    """``size`` people as Ray actors, replaced when they die.

    Args:
        config: Pool size, arrival rate, replacements allowed per request.
        seed: Seeds every person; the same seed gives the same answers.
        calibration: What people are calibrated to on this data (classes, crowd accuracy, retention).
    """

    def __init__(self, config: HumanPoolConfig, seed: int,
                 calibration: PeopleCalibration = FASHION_MNIST_CALIBRATION) -> None:
        self.config = config
        self.seed = seed
        self.calibration = calibration
        self.name = f"pool-{uuid.uuid4().hex[:12]}"
        self._replacements_left = config.max_restarts
        self._generations = [0] * config.size
        self.people = [self._new_person(i, generation=0) for i in range(config.size)]

    def _person_name(self, person: int, generation: int) -> str:
        return f"{self.name}/person-{person}/gen-{generation}"

    def _new_person(self, person: int, generation: int):  # type: ignore[no-untyped-def]
        """Person ``person``'s actor of ``generation``; replacements (generation > 0) are detached."""
        options = {"name": self._person_name(person, generation), "namespace": PEOPLE_NAMESPACE,
                   "get_if_exists": True, "max_restarts": 0}
        return SimulatedHuman.options(**options, **({"lifetime": "detached"} if generation else {})).remote(
            person, self.seed, self.calibration)

    def _registered_names(self) -> list[str]:
        """This pool's names that Ray holds now, the dead ones it has not freed yet included."""
        prefix = f"{self.name}/person-"
        return [entry["name"] for entry in ray.util.list_named_actors(all_namespaces=True)
                if entry["namespace"] == PEOPLE_NAMESPACE and entry["name"].startswith(prefix)]

    def _newest_generations(self) -> dict[int, int]:
        """Each person's newest registered generation (a person with no registered name is left out)."""
        newest: dict[int, int] = {}
        for name in self._registered_names():
            person, generation = (int(part.split("-")[1]) for part in name.rsplit("/", 2)[1:])
            newest[person] = max(generation, newest.get(person, -1))
        return newest

    def _adopt(self, person: int, generation: int) -> None:
        self.people[person] = ray.get_actor(self._person_name(person, generation), namespace=PEOPLE_NAMESPACE)
        self._generations[person] = generation

    def _start_request(self) -> None:
        """A fresh replacement budget, and the people as they are now (replaced elsewhere, perhaps)."""
        self._replacements_left = self.config.max_restarts
        for person, generation in self._newest_generations().items():
            if generation > self._generations[person]:  # keep the creator's own handle: dropping it ends it
                self._adopt(person, generation)

    def _replace(self, person: int) -> None:
        """A live actor for ``person``: one another copy of this pool made already, or the next generation."""
        newest = self._newest_generations().get(person, -1)
        try:
            if newest > self._generations[person]:
                self._adopt(person, newest)
                return
        except ValueError:
            pass  # that newer one died and its name was freed in between: make our own
        generation = max(newest, self._generations[person]) + 1
        self.people[person] = self._new_person(person, generation)
        self._generations[person] = generation

    def shutdown(self) -> None:
        for name in self._registered_names():
            try:
                ray.kill(ray.get_actor(name, namespace=PEOPLE_NAMESPACE), no_restart=True)
            except ValueError:
                pass  # gone between the listing and the kill
        self.people = []

    def __enter__(self) -> HumanPool:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.shutdown()

    def _ask(self, assignments: dict[int, list[AnyTask]]) -> dict[tuple[int, ...], AnyAnswer]:
        """One batched actor call per person; dead people are replaced and asked again. Answers by task key.

        Raises:
            RuntimeError: More than ``max_restarts`` people died during this request.
        """
        pending = {p: self.people[p].answer.remote(tasks) for p, tasks in assignments.items() if tasks}
        by_key: dict[tuple[int, ...], AnyAnswer] = {}
        while pending:
            person, future = next(iter(pending.items()))
            try:
                batch = ray.get(future)
            except RayActorError:
                if self._replacements_left <= 0:
                    raise RuntimeError(f"human pool: more than human_pool.max_restarts={self.config.max_restarts} "
                                       "people died during one request") from None
                self._replacements_left -= 1
                self._replace(person)
                pending[person] = self.people[person].answer.remote(assignments[person])
                continue
            del pending[person]
            by_key.update({answer.key: answer for answer in batch})
        expected = sum(len(t) for t in assignments.values())
        if len(by_key) != expected:
            raise RuntimeError(f"human pool returned {len(by_key)} answers for {expected} tasks")
        return by_key

    def _assignments(self) -> dict[int, list[AnyTask]]:
        return {p: [] for p in range(len(self.people))}

    def _collect(self, samples: list[DeferredSample], mechanism: str, k: int) -> dict[tuple[int, ...], HumanAnswer]:
        def task(sample: DeferredSample, step: int) -> HumanTask:
            return HumanTask((*sample.key, step), sample.true_label, sample.person_accuracy, sample.answer_median_s)

        first_round = k if mechanism == "majority" or k < 3 else 2
        assignments = self._assignments()
        for sample in samples:
            for step in range(first_round):
                assignments[routed_person(sample.key, step, len(self.people))].append(task(sample, step))
        answers = self._ask(assignments)
        if first_round < k:  # a sequential chain asks a third person only on disagreement
            tie_breaks = self._assignments()
            for sample in samples:
                if answers[(*sample.key, 0)].label != answers[(*sample.key, 1)].label:
                    tie_breaks[routed_person(sample.key, 2, len(self.people))].append(task(sample, 2))
            answers.update(self._ask(tie_breaks))
        return answers  # type: ignore[return-value]

    def serve(self, samples: list[DeferredSample], mechanism: str, k: int, combine: str = "replace") -> PoolResult:
        """Answer every deferred sample with a chain of ``k`` people, and time them all in one queue.

        Args:
            samples: The deferred samples, in arrival order or not.
            mechanism: ``"sequential"`` or ``"majority"``: who is asked.
            k: People in the chain.
            combine: ``"replace"`` or ``"bayes"``: how the answers and the network make the final class.

        Raises:
            ValueError: ``k`` exceeds the pool size, the mechanism or rule is unknown, or ``bayes`` lacks a
                sample's ``category_accuracy``.
        """
        self._check_chain(mechanism, k)
        _check_combine(combine, samples)
        self._start_request()
        answers = self._collect(samples, mechanism, k) if samples else {}
        chains = [[answers[(*s.key, step)] for step in range(k) if (*s.key, step) in answers] for s in samples]
        timeline = simulate_pool([s.arrival_s for s in samples], [[a.response_s for a in c] for c in chains],
                                 len(self.people), mechanism)
        labels = [combine_answers([a.label for a in chain], s.network_probabilities, combine, s.category_accuracy,
                                  self.calibration) for s, chain in zip(samples, chains)]
        return PoolResult(np.array(labels, dtype=np.int64), timeline.labor_s, timeline.latency_s, timeline.wait_s,
                          np.array([len(chain) for chain in chains], dtype=np.int64))

    def _check_chain(self, mechanism: str, k: int) -> None:
        if not 1 <= k <= min(CHAIN_STEPS_MAX, len(self.people)):
            raise ValueError(f"chain length k={k} must be between 1 and min(3, pool size {len(self.people)})")
        if mechanism not in ("sequential", "majority"):
            raise ValueError(f"unknown human mechanism {mechanism!r}; allowed: sequential, majority")

    def answer_images(self, requests: list[ImageRequest], mechanism: str, k: int) -> ImageAnswers:
        """Have a chain of ``k`` people each do every task of each image (timed by the caller, in one queue).

        Raises:
            ValueError: ``k`` exceeds the pool size or the mechanism is unknown.
        """
        self._check_chain(mechanism, k)
        self._start_request()
        assignments = self._assignments()
        for request in requests:
            for step in range(k):
                person = routed_person(request.key, step, len(self.people))
                assignments[person] += [dataclasses.replace(task, key=(*request.key, *task.key, step))
                                        for task in request.tasks]
        by_key = self._ask(assignments) if any(assignments.values()) else {}
        answers = [[[by_key[(*r.key, *t.key, step)] for t in r.tasks] for step in range(k)] for r in requests]
        durations = [[sum(a.response_s for a in step) for step in request] for request in answers]
        return ImageAnswers(answers, durations)
