from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import ray

from hgen_ray.config import HumanPoolConfig
from hgen_ray.human import DeferredSample, HumanPool, HumanTask
from hgen_ray.human.simulated_human import answer_task

pytestmark = pytest.mark.usefixtures("ray_session")


def _samples(n: int, stream: str = "fog") -> list[DeferredSample]:
    return [DeferredSample(stream, position=i, true_label=i % 10, severity=3) for i in range(n)]


@pytest.fixture(scope="module")
def pool():
    with HumanPool(HumanPoolConfig(size=4, arrival_interval_s=1.0), seed=5) as running:
        yield running


def test_every_sample_gets_one_answer_and_labour_is_the_sum_of_answer_times(pool: HumanPool) -> None:
    samples = _samples(200)
    result = pool.serve(samples, "majority", 3)
    assert len(result.labels) == 200 and (result.answers_per_sample == 3).all()
    keys = [(i * 3 + s) for i in range(200) for s in range(3)]
    expected = [sum(answer_task(HumanTask(k, samples[k // 3].true_label, "fog", 3), (i * 3 + k % 3) % 4, 5)
                    .response_s for k in keys[i * 3 : i * 3 + 3]) for i in range(200)]
    np.testing.assert_allclose(result.labor_s, expected)


def test_same_seed_same_answers(pool: HumanPool) -> None:
    first = pool.serve(_samples(50), "sequential", 2)
    second = pool.serve(_samples(50), "sequential", 2)
    np.testing.assert_array_equal(first.labels, second.labels)
    np.testing.assert_array_equal(first.latency_s, second.latency_s)


def test_sequential_chain_of_three_stops_early_when_two_agree(pool: HumanPool) -> None:
    sequential = pool.serve(_samples(300), "sequential", 3)
    majority = pool.serve(_samples(300), "majority", 3)
    asked = sequential.answers_per_sample
    assert set(np.unique(asked)) <= {2, 3} and 0 < (asked == 3).mean() < 0.7
    assert sequential.labor_s.sum() < majority.labor_s.sum()
    assert np.median(sequential.latency_s) > np.median(majority.latency_s)  # answers in series take longer


def test_more_people_per_chain_means_more_accuracy_and_more_labour(pool: HumanPool) -> None:
    samples = _samples(600, "clean")
    truth = np.array([s.true_label for s in samples])
    one = pool.serve(samples, "majority", 1)
    three = pool.serve(samples, "majority", 3)
    assert (three.labels == truth).mean() > (one.labels == truth).mean() + 0.05
    assert three.labor_s.sum() > 2.5 * one.labor_s.sum()


def test_requests_queue_when_everyone_is_busy() -> None:
    samples = _samples(40)
    with HumanPool(HumanPoolConfig(size=1, arrival_interval_s=0.0), seed=1) as busy:
        result = busy.serve(samples, "majority", 1)
    assert result.wait_s[0] == 0.0
    assert (np.diff(result.wait_s) > 0).all()  # everyone arrived at once; each waits for all before
    np.testing.assert_allclose(result.latency_s, np.cumsum(result.labor_s))


def test_streams_are_timed_independently(pool: HumanPool) -> None:
    mixed = _samples(20, "fog") + _samples(20, "jpeg")
    result = pool.serve(mixed, "majority", 1)
    assert result.wait_s[0] == 0.0 and result.wait_s[20] == 0.0


def test_chain_longer_than_the_pool_is_refused() -> None:
    with HumanPool(HumanPoolConfig(size=2), seed=0) as small:
        with pytest.raises(ValueError, match="k=3 must be between 1 and min"):
            small.serve(_samples(3), "majority", 3)


def test_a_killed_person_restarts_and_the_request_is_retried(pool: HumanPool) -> None:
    tasks = [HumanTask(k, k % 10, "fog", 3) for k in range(20000)]
    person = pool.people[0]
    pid_before = ray.get(person.pid.remote())
    pending = person.answer.remote(tasks)
    ray.kill(person, no_restart=False)  # crash mid-request; max_task_retries resubmits it
    answers = ray.get(pending, timeout=120)
    assert [a.key for a in answers] == list(range(20000))  # none lost, none doubled
    assert answers[123] == answer_task(tasks[123], 0, seed=5)  # the retry answers identically
    assert ray.get(person.answer.remote(tasks[:1]))[0] == answers[0]  # and the person serves again
    assert ray.get(person.pid.remote()) != pid_before  # from a new process: it really died


def test_a_person_killed_while_the_pool_serves_loses_and_doubles_nothing(pool: HumanPool) -> None:
    samples = _samples(20000)
    started = time.perf_counter()
    undisturbed = pool.serve(samples, "majority", 2)
    half_way = (time.perf_counter() - started) / 2
    victim = pool.people[1]
    pid_before = ray.get(victim.pid.remote())
    with ThreadPoolExecutor(max_workers=1) as background:
        serving = background.submit(pool.serve, samples, "majority", 2)
        time.sleep(half_way)  # person 1 is mid-request
        ray.kill(victim, no_restart=False)
        disturbed = serving.result(timeout=300)
    assert ray.get(victim.pid.remote()) != pid_before  # person 1 really died and came back
    assert len(disturbed.labels) == len(samples) and (disturbed.answers_per_sample == 2).all()
    assert np.array_equal(disturbed.labels, undisturbed.labels)  # every sample answered once, the same way
    assert np.array_equal(disturbed.labor_s, undisturbed.labor_s)  # labour accounting stays exact
    assert np.array_equal(disturbed.latency_s, undisturbed.latency_s)
