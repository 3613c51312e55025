from __future__ import annotations

import itertools

import numpy as np
import pytest

from hgen_ray.config import COMBINATION_RULES, HumanPoolConfig
from hgen_ray.human import DeferredSample, HumanPool, HumanTask, combine_answers, decide, people_likelihoods
from hgen_ray.human.calibration import FASHION_MNIST_CALIBRATION, PeopleCalibration
from hgen_ray.human.pool import routed_person
from hgen_ray.human.simulated_human import answer_task

T_SHIRT, TROUSER, PULLOVER, SANDAL, SHIRT, SNEAKER, BAG = 0, 1, 2, 5, 6, 7, 8  # Fashion-MNIST labels
UNIFORM = tuple([0.1] * 10)
ACCURACY = 0.7  # one person's mean accuracy on the category: the confusion model's a


def _network(favourite: int, p: float) -> tuple[float, ...]:
    """A softmax with ``p`` on ``favourite`` and the rest spread evenly."""
    return tuple(p if c == favourite else (1.0 - p) / 9 for c in range(10))


# (true class, the chain's answers, the network's softmax): the network and people err differently.
HAND_BUILT = [
    # The network is right and fairly sure; the one person names a look-alike. Replace: wrong; bayes: right.
    (T_SHIRT, [SHIRT], _network(T_SHIRT, 0.8)),
    (SNEAKER, [SANDAL], _network(SNEAKER, 0.8)),
    (PULLOVER, [SHIRT], _network(PULLOVER, 0.7)),
    (TROUSER, [BAG], _network(TROUSER, 0.8)),
    # The network is right and very sure; two of three people agree on a look-alike. Replace: wrong; bayes: right.
    (SHIRT, [T_SHIRT, SHIRT, T_SHIRT], _network(SHIRT, 0.95)),
    # The network is unsure and leans wrong; the person is right. Both rules right.
    (SHIRT, [SHIRT], _network(PULLOVER, 0.15)),
    (SANDAL, [SANDAL], _network(SNEAKER, 0.2)),
    (BAG, [BAG, BAG], _network(TROUSER, 0.2)),
    (T_SHIRT, [T_SHIRT], UNIFORM),
    # Network and person both right. Both rules right.
    (SNEAKER, [SNEAKER], _network(SNEAKER, 0.8)),
    (PULLOVER, [PULLOVER, SHIRT, PULLOVER], _network(PULLOVER, 0.6)),
    # The network is sure and wrong; the one person is right. Replace: right; bayes: wrong (the price of trust).
    (T_SHIRT, [T_SHIRT], _network(SHIRT, 0.9)),
]


def test_bayes_beats_replace_where_the_network_and_people_err_differently() -> None:
    def hits(rule: str) -> list[bool]:
        return [combine_answers(answers, network, rule, ACCURACY) == true for true, answers, network in HAND_BUILT]

    replace, bayes = hits("replace"), hits("bayes")
    assert sum(replace) == 7 and sum(bayes) == 11  # of 12
    assert replace[:5] == [False] * 5 and bayes[:5] == [True] * 5  # a sure network outvotes people who slip
    assert replace[11] and not bayes[11]


def test_a_uniform_network_leaves_a_clear_majority_of_three_alone() -> None:
    for accuracy in (0.4, 0.55, 0.7, 0.9):
        for x, z in itertools.product(range(10), repeat=2):
            for answers in ([x, x, z], [x, z, x], [z, x, x]):
                assert combine_answers(answers, UNIFORM, "bayes", accuracy) == decide(answers, UNIFORM) == x


def test_a_tie_of_two_is_broken_by_the_posterior_not_by_the_network_alone() -> None:
    # A sandal is seldom called a T-shirt (0.2 / 7 of its errors) and a T-shirt a little more often a sandal
    # (0.2 / 5), so the answers favour "T-shirt" by 0.04 / (0.2 / 7) = 1.4, more than the network's 0.30 / 0.25 = 1.2.
    network = tuple(0.25 if c == T_SHIRT else 0.30 if c == SANDAL else 0.45 / 8 for c in range(10))
    likelihoods = people_likelihoods(ACCURACY)
    posterior_t_shirt = network[T_SHIRT] * likelihoods[T_SHIRT, T_SHIRT] * likelihoods[T_SHIRT, SANDAL]
    posterior_sandal = network[SANDAL] * likelihoods[SANDAL, T_SHIRT] * likelihoods[SANDAL, SANDAL]
    assert posterior_t_shirt == pytest.approx(0.25 * 0.7 * 0.3 * 0.04)
    assert posterior_sandal == pytest.approx(0.30 * 0.3 * 0.2 / 7 * 0.7)
    for answers in ([T_SHIRT, SANDAL], [SANDAL, T_SHIRT]):
        assert combine_answers(answers, network, "replace") == SANDAL
        assert combine_answers(answers, network, "bayes", ACCURACY) == T_SHIRT


def test_the_confusion_model_s_likelihoods_sum_to_one_over_answers() -> None:
    three_classes = PeopleCalibration(3, 0.8, {}, (), "test")
    for accuracy, calibration in ((0.7, FASHION_MNIST_CALIBRATION), (0.35, FASHION_MNIST_CALIBRATION),
                                  (0.6, three_classes)):
        likelihoods = people_likelihoods(accuracy, calibration)
        np.testing.assert_allclose(likelihoods.sum(axis=1), 1.0)
        np.testing.assert_allclose(np.diag(likelihoods), accuracy)
    fashion = people_likelihoods(0.7)
    assert fashion[T_SHIRT, SHIRT] == pytest.approx(0.3 * 0.8 / 4)  # most errors stay among the tops
    assert fashion[TROUSER, BAG] == pytest.approx(0.3 / 9)  # a class in no group errs evenly


@pytest.mark.filterwarnings("error")  # log(0) would warn: the floor keeps every log finite
def test_zero_probabilities_leave_the_rest_of_the_evidence_to_decide() -> None:
    # People taken as never wrong give two disagreeing answers likelihood 0 for every class; without the floor
    # every class would score -inf and argmax would fall on class 0. With it, the network settles the tie.
    network = _network(SANDAL, 0.6)
    assert combine_answers([T_SHIRT, SANDAL], network, "bayes", 1.0) == SANDAL
    assert combine_answers([SHIRT, SHIRT, SHIRT], _network(SHIRT, 1.0), "bayes", 0.9) == SHIRT


def test_unknown_rules_and_bayes_without_an_accuracy_are_refused() -> None:
    assert COMBINATION_RULES == ("replace", "bayes")
    with pytest.raises(ValueError, match="unknown combination rule 'vote'; allowed: replace, bayes"):
        combine_answers([1], UNIFORM, "vote")
    with pytest.raises(ValueError, match="category_accuracy is None"):
        combine_answers([1], UNIFORM, "bayes")


# Through the pool: people with a 0.45 chance on each image, a network right and fairly sure on every one.
def _deferred(index: int, accuracy: float | None = 0.45) -> DeferredSample:
    true = index % 10
    return DeferredSample((0, 3, index), float(index), true, 0.45, 4.0, _network(true, 0.6), accuracy)


def _bayes_by_hand(sample: DeferredSample, labels: list[int]) -> int:
    return combine_answers(labels, sample.network_probabilities, "bayes", sample.category_accuracy)


@pytest.mark.usefixtures("ray_session")
def test_serve_combines_by_the_rule_asked() -> None:
    samples = [_deferred(i) for i in range(60)]
    with HumanPool(HumanPoolConfig(size=3), seed=7) as pool:
        with pytest.raises(ValueError, match="unknown combination rule 'mean'; allowed: replace, bayes"):
            pool.serve(samples, "majority", 3, combine="mean")
        with pytest.raises(ValueError, match=r"sample \(0, 3, 60\) has None"):
            pool.serve([*samples, _deferred(60, accuracy=None)], "majority", 3, combine="bayes")
        results = {(mechanism, rule): pool.serve(samples, mechanism, 3, combine=rule)
                   for mechanism in ("majority", "sequential") for rule in COMBINATION_RULES}
    chains = [[answer_task(HumanTask((*s.key, step), s.true_label, 0.45, 4.0), routed_person(s.key, step, 3), 7).label
               for step in range(3)] for s in samples]
    majority_bayes = results["majority", "bayes"].labels
    np.testing.assert_array_equal(majority_bayes, [_bayes_by_hand(s, chain) for s, chain in zip(samples, chains)])
    np.testing.assert_array_equal(results["majority", "replace"].labels,
                                  [decide(chain, s.network_probabilities) for s, chain in zip(samples, chains)])
    sequential_chains = [chain if chain[0] != chain[1] else chain[:2] for chain in chains]
    np.testing.assert_array_equal(results["sequential", "bayes"].labels,
                                  [_bayes_by_hand(s, chain) for s, chain in zip(samples, sequential_chains)])
    # the rule changes the final class, never who is asked nor for how long
    np.testing.assert_array_equal(results["sequential", "bayes"].answers_per_sample,
                                  results["sequential", "replace"].answers_per_sample)
    np.testing.assert_array_equal(results["sequential", "bayes"].labor_s, results["sequential", "replace"].labor_s)
    truth = np.array([s.true_label for s in samples])
    right = {key: int((result.labels == truth).sum()) for key, result in results.items()}
    assert right["majority", "bayes"] > right["majority", "replace"]
    assert right["sequential", "bayes"] > right["sequential", "replace"]
