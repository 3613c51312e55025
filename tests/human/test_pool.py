from __future__ import annotations

import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import ray
from ray import cloudpickle

from hgen_ray.config import HumanPoolConfig
from hgen_ray.human import DeferredSample, HumanPool, HumanTask, decide
from hgen_ray.human.pool import PEOPLE_NAMESPACE, routed_person
from hgen_ray.human.simulated_human import answer_task

pytestmark = pytest.mark.usefixtures("ray_session")

FOG = 9  # a category index; keys are (split, category, sample index)
UNSURE_NETWORK = tuple([0.1] * 10)  # no opinion: ties go to the first vote


def _sample(index: int, arrival_s: float = 0.0, category: int = FOG, accuracy: float = 0.6,
            network: tuple[float, ...] = UNSURE_NETWORK) -> DeferredSample:
    return DeferredSample((0, category, index), arrival_s, index % 10, accuracy, 4.0, network)


def _samples(n: int, interval_s: float = 1.0, category: int = FOG) -> list[DeferredSample]:
    return [_sample(i, i * interval_s, category) for i in range(n)]


@pytest.fixture(scope="module")
def pool():
    with HumanPool(HumanPoolConfig(size=4, arrival_rate_per_s=1.0), seed=5) as running:
        yield running


def test_every_sample_gets_one_answer_and_labour_is_the_sum_of_its_people_s_times(pool: HumanPool) -> None:
    samples = _samples(200)
    result = pool.serve(samples, "majority", 3)
    assert len(result.labels) == 200 and (result.answers_per_sample == 3).all()
    expected = [sum(answer_task(HumanTask((*s.key, step), s.true_label, 0.6, 4.0), routed_person(s.key, step, 4), 5)
                    .response_s for step in range(3)) for s in samples]
    np.testing.assert_allclose(result.labor_s, expected)


def test_two_categories_arriving_together_share_the_one_person() -> None:
    together = [_sample(0, 0.0, category=9), _sample(0, 0.0, category=10)]  # a fog and a jpeg sample at once
    with HumanPool(HumanPoolConfig(size=1), seed=1) as lone:
        result = lone.serve(together, "majority", 1)
    assert result.wait_s[0] == 0.0 and result.wait_s[1] == pytest.approx(result.labor_s[0])
    assert result.latency_s[1] == pytest.approx(result.labor_s.sum())


def test_an_image_gets_the_same_answers_whatever_else_a_candidate_defers(pool: HumanPool) -> None:
    shared = [_sample(i, arrival_s=float(i)) for i in range(100)]
    one = pool.serve(shared + [_sample(500 + i, arrival_s=0.5) for i in range(50)], "sequential", 3)
    other = pool.serve([_sample(900 + i, arrival_s=0.2) for i in range(80)] + shared, "sequential", 3)
    np.testing.assert_array_equal(one.labels[:100], other.labels[80:])  # common random numbers
    np.testing.assert_array_equal(one.labor_s[:100], other.labor_s[80:])
    np.testing.assert_array_equal(one.answers_per_sample[:100], other.answers_per_sample[80:])
    assert not np.array_equal(one.latency_s[:100], other.latency_s[80:])  # the queue differs, the answers do not


def test_sequential_chain_of_three_stops_early_when_two_agree(pool: HumanPool) -> None:
    sequential = pool.serve(_samples(300), "sequential", 3)
    majority = pool.serve(_samples(300), "majority", 3)
    asked = sequential.answers_per_sample
    assert set(np.unique(asked)) <= {2, 3} and 0 < (asked == 3).mean() < 0.7
    assert sequential.labor_s.sum() < majority.labor_s.sum()
    assert np.median(sequential.latency_s) > np.median(majority.latency_s)  # answers in series take longer


def test_ties_go_to_the_class_the_network_finds_likelier() -> None:
    network = (0.05, 0.05, 0.3, 0.05, 0.05, 0.05, 0.35, 0.05, 0.05, 0.0)
    assert decide([2, 6], network) == 6 and decide([6, 2], network) == 6
    assert decide([2, 2, 6], network) == 2  # a plurality needs no tie-break
    assert decide([0, 2, 6], network) == 6


def test_requests_queue_when_everyone_is_busy() -> None:
    samples = [_sample(i, 0.0) for i in range(40)]
    with HumanPool(HumanPoolConfig(size=1), seed=1) as busy:
        result = busy.serve(samples, "majority", 1)
    assert result.wait_s[0] == 0.0
    assert (np.diff(result.wait_s) > 0).all()  # everyone arrived at once; each waits for all before
    np.testing.assert_allclose(result.latency_s, np.cumsum(result.labor_s))


def test_chain_longer_than_the_pool_is_refused() -> None:
    with HumanPool(HumanPoolConfig(size=2), seed=0) as small:
        with pytest.raises(ValueError, match="k=3 must be between 1 and min"):
            small.serve(_samples(3), "majority", 3)


def test_a_person_lost_for_good_is_replaced_for_every_later_candidate() -> None:
    samples = _samples(60)
    with HumanPool(HumanPoolConfig(size=3, max_restarts=1), seed=2) as people:
        before = people.serve(samples, "majority", 2)
        for _ in range(2):  # a budget per request: two losses in two requests are both survived
            lost = people.people[1]
            ray.kill(lost, no_restart=True)
            after = people.serve(samples, "majority", 2)
            assert people.people[1] != lost
            np.testing.assert_array_equal(after.labels, before.labels)  # the replacement answers as the lost one did
            np.testing.assert_array_equal(after.labor_s, before.labor_s)


def test_every_trial_s_copy_of_the_pool_finds_the_person_another_trial_replaced() -> None:
    samples = _samples(60)
    with HumanPool(HumanPoolConfig(size=3, max_restarts=1), seed=2) as people:
        before = people.serve(samples, "majority", 2)
        first_trial, later_trial = (cloudpickle.loads(cloudpickle.dumps(people)) for _ in range(2))
        ray.kill(people.people[1], no_restart=True)
        first_trial.serve(samples, "majority", 2)  # replaces person 1
        later_trial.config = dataclasses.replace(later_trial.config, max_restarts=0)  # no replacement of its own
        after = later_trial.serve(samples, "majority", 2)
        np.testing.assert_array_equal(after.labels, before.labels)
        assert later_trial._generations[1] == 1  # it adopted the generation the first trial made
        replacement = ray.get_actor(people._person_name(1, generation=1), namespace=PEOPLE_NAMESPACE)
    assert people._registered_names() == []  # shutting the pool down ends the detached replacement too
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(replacement.pid.remote(), timeout=60)


def test_more_losses_in_one_request_than_max_restarts_fail_it_with_a_clear_error() -> None:
    with HumanPool(HumanPoolConfig(size=3, max_restarts=1), seed=2) as people:
        ray.kill(people.people[0], no_restart=True)
        ray.kill(people.people[1], no_restart=True)
        with pytest.raises(RuntimeError, match="more than human_pool.max_restarts=1 people died"):
            people.serve(_samples(60), "majority", 3)


def test_a_person_killed_while_the_pool_serves_loses_and_doubles_nothing(pool: HumanPool) -> None:
    samples = _samples(20000)
    undisturbed = pool.serve(samples, "majority", 2)
    victim = pool.people[1]
    with ThreadPoolExecutor(max_workers=1) as background:
        serving = background.submit(pool.serve, samples, "majority", 2)
        time.sleep(0.2)  # person 1 is answering its 10000 looks (seconds of work), or about to be asked
        ray.kill(victim, no_restart=True)
        disturbed = serving.result(timeout=300)
    assert pool.people[1] != victim  # person 1 really died and was replaced
    assert len(disturbed.labels) == len(samples) and (disturbed.answers_per_sample == 2).all()
    assert np.array_equal(disturbed.labels, undisturbed.labels)  # every sample answered once, the same way
    assert np.array_equal(disturbed.labor_s, undisturbed.labor_s)  # labour accounting stays exact
    assert np.array_equal(disturbed.latency_s, undisturbed.latency_s)
