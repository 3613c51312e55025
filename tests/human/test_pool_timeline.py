"""The pool's one queue in simulated time, checked against queueing theory (no Ray needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hgen_ray.human.pool_timeline import capacity_s_per_1k, pool_utilisation, simulate_pool, stream_arrivals


def erlang_c_mean_wait(arrival_rate: float, service_rate: float, servers: int) -> float:
    """Mean time in queue of an M/M/c queue (Erlang C formula)."""
    offered = arrival_rate / service_rate
    rho = offered / servers
    tail = offered**servers / math.factorial(servers) / (1 - rho)
    waiting = tail / (sum(offered**n / math.factorial(n) for n in range(servers)) + tail)
    return waiting / (servers * service_rate - arrival_rate)


def test_two_streams_sharing_one_person_are_not_served_at_once() -> None:
    # a fog sample and a jpeg sample arrive together; the one person does them one after the other
    timeline = simulate_pool([0.0, 0.0], [[5.0], [5.0]], people=1, mechanism="majority")
    np.testing.assert_allclose(timeline.latency_s, [5.0, 10.0])
    np.testing.assert_allclose(timeline.wait_s, [0.0, 5.0])
    np.testing.assert_allclose(timeline.labor_s, [5.0, 5.0])


def test_a_chain_of_two_uses_two_people_at_once_or_one_after_the_other() -> None:
    majority = simulate_pool([0.0], [[4.0, 6.0]], people=2, mechanism="majority")
    sequential = simulate_pool([0.0], [[4.0, 6.0]], people=2, mechanism="sequential")
    assert majority.latency_s[0] == pytest.approx(6.0) and sequential.latency_s[0] == pytest.approx(10.0)
    lone = simulate_pool([0.0], [[6.0, 4.0]], people=1, mechanism="majority")  # the second look waits 6 s
    assert lone.latency_s[0] == pytest.approx(10.0) and lone.wait_s[0] == pytest.approx(6.0)
    queued = simulate_pool([0.0, 1.0], [[5.0], [2.0, 3.0]], people=1, mechanism="sequential")
    assert queued.wait_s[1] == pytest.approx(4.0)  # its first look waits 4 s; its second starts at once
    assert queued.latency_s[1] == pytest.approx(9.0)


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_mean_wait_matches_erlang_c(rho: float) -> None:
    servers, mean_service_s, customers = 4, 5.0, 200000  # long enough that rho=0.8 waits settle within 3%
    arrival_rate = rho * servers / mean_service_s
    rng = np.random.default_rng(7)
    arrivals = np.cumsum(rng.exponential(1 / arrival_rate, customers))
    services = rng.exponential(mean_service_s, customers)
    timeline = simulate_pool(arrivals, [[s] for s in services], people=servers, mechanism="majority")
    expected = erlang_c_mean_wait(arrival_rate, 1 / mean_service_s, servers)
    simulated = float(timeline.wait_s.mean())
    assert simulated == pytest.approx(expected, rel=0.10), f"simulated {simulated:.3f} s, Erlang C {expected:.3f} s"


def test_the_stream_mixes_every_category_at_the_asked_rate_in_a_seeded_order() -> None:
    counts = {"clean": 3000, "fog": 3000, "jpeg": 3000}
    arrivals = stream_arrivals(counts, rate_per_s=24.0, seed=[3, 0])
    every = np.sort(np.concatenate(list(arrivals.values())))
    assert len(every) == 9000 and len(np.unique(every)) == 9000
    assert 9000 / every[-1] == pytest.approx(24.0, rel=0.05)
    first_thousand = np.sort(every)[999]
    assert all(0.2 < np.mean(a <= first_thousand) * 3 < 0.5 for a in arrivals.values())  # interleaved, not in blocks
    again = stream_arrivals(counts, rate_per_s=24.0, seed=[3, 0])
    other = stream_arrivals(counts, rate_per_s=24.0, seed=[3, 1])
    assert all(np.array_equal(arrivals[c], again[c]) for c in counts)
    assert not np.array_equal(arrivals["fog"], other["fog"])


def test_utilisation_is_busy_time_over_the_people_s_time() -> None:
    assert capacity_s_per_1k(people=8, rate_per_s=24.0) == pytest.approx(1000 * 8 / 24)
    # 2600 queries at 24/s arrive over 108.3 s; 8 people have 866.7 person-seconds in that time
    assert pool_utilisation(433.3, people=8, window_s=2600 / 24.0) == pytest.approx(0.5, rel=1e-4)
    assert pool_utilisation(0.0, people=0, window_s=10.0) == 0.0


def test_nobody_cannot_serve_anyone() -> None:
    with pytest.raises(ValueError, match="a pool of 0 people cannot serve 1 requests"):
        simulate_pool([0.0], [[1.0]], people=0, mechanism="majority")
    assert len(simulate_pool([], [], people=0, mechanism="majority").latency_s) == 0
