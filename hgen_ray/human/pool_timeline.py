"""One shared queue in simulated time: when each request to the pool is done.

The deployed app sees one stream of queries (:func:`stream_arrivals`): every
category mixed, in an order fixed by a seed, with exponential gaps (a Poisson
stream) at ``human_pool.arrival_rate_per_s``. Deferred samples join one FIFO
queue served by the pool's people; a person does one look at a time, whatever
its category. A chain's looks:

- ``majority``: all k join the queue when the sample arrives; done when the last is.
- ``sequential``: one after another; each joins the queue when the one before is done.

The simulation is simpy's (a well-kept discrete-event library): each look is a
process that holds one of the ``people`` units of a :class:`simpy.Resource`
for its duration. People are exchangeable in speed and skill, so the queue
decides only *when* a look is done; what it answers depends on the image
(:mod:`hgen_ray.human.simulated_human`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import simpy

__all__ = ["Timeline", "capacity_s_per_1k", "pool_utilisation", "simulate_pool", "stream_arrivals"]


@dataclass(frozen=True)
class Timeline:
    """Per request, in request order."""

    labor_s: np.ndarray  # person-seconds spent on it
    latency_s: np.ndarray  # arrival to final answer, queueing included
    wait_s: np.ndarray  # of that latency, time spent waiting for a free person


def stream_arrivals(counts: Mapping[str, int], rate_per_s: float, seed: int) -> dict[str, np.ndarray]:
    """Arrival time (s) of every sample of every category in one mixed Poisson stream at ``rate_per_s``."""
    keys = [(category, index) for category, count in counts.items() for index in range(count)]
    rng = np.random.default_rng(seed)
    times = np.cumsum(rng.exponential(1.0 / rate_per_s, len(keys)))
    order = rng.permutation(len(keys))
    arrivals = {category: np.zeros(count) for category, count in counts.items()}
    for slot, key_index in enumerate(order):
        category, index = keys[key_index]
        arrivals[category][index] = times[slot]
    return arrivals


def pool_utilisation(labor_s: float, people: int, window_s: float) -> float:
    """rho: busy person-time over the person-time the pool had while the queries arrived."""
    return labor_s / (people * window_s) if people and window_s > 0 else 0.0


def capacity_s_per_1k(people: int, rate_per_s: float) -> float:
    """Person-seconds the pool has per 1000 queries: the labour at which rho reaches 1."""
    return 1000.0 * people / rate_per_s


def simulate_pool(arrival_s: Sequence[float], durations: Sequence[Sequence[float]], people: int,
                  mechanism: str) -> Timeline:
    """Serve each request's looks (``durations[i]``, in chain order) with ``people`` people sharing one queue.

    A request's wait is the longest any of its looks waited for a free person (``majority``), or the sum
    of its looks' waits (``sequential``, where they wait one after another).
    """
    count = len(arrival_s)
    if count and people < 1:
        raise ValueError(f"a pool of {people} people cannot serve {count} requests")
    finish, wait = np.zeros(count), np.zeros(count)
    environment = simpy.Environment()
    crew = simpy.Resource(environment, capacity=max(people, 1))

    def look(i: int, seconds: float):  # type: ignore[no-untyped-def]
        asked = environment.now
        with crew.request() as turn:
            yield turn
            waited = environment.now - asked
            wait[i] = max(wait[i], waited) if mechanism == "majority" else wait[i] + waited
            yield environment.timeout(seconds)

    def request(i: int):  # type: ignore[no-untyped-def]
        yield environment.timeout(arrival_s[i])
        if mechanism == "majority":
            yield simpy.AllOf(environment, [environment.process(look(i, d)) for d in durations[i]])
        else:
            for seconds in durations[i]:
                yield environment.process(look(i, seconds))
        finish[i] = environment.now

    for i in range(count):
        environment.process(request(i))
    environment.run()
    labor = np.array([float(sum(d)) for d in durations])
    return Timeline(labor_s=labor, latency_s=finish - np.asarray(arrival_s, dtype=np.float64), wait_s=wait)
