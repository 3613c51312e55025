"""The chain a served sample needs, and how its answers count: the simulated pool's rules."""

from __future__ import annotations

import pytest

from hgen_ray.config import HumanChoice
from hgen_ray.human.calibration import FASHION_MNIST_CALIBRATION, human_accuracy
from hgen_ray.serve.chain import ChainRule, mean_person_accuracy


def _rule(mechanism: str, k: int, combine: str = "replace") -> ChainRule:
    return ChainRule.of(HumanChoice(mechanism=mechanism, k=k, combine=combine), 3, FASHION_MNIST_CALIBRATION)


@pytest.mark.parametrize("mechanism, k, labels, needed", [
    ("majority", 3, [1, 1], 3), ("majority", 2, [], 2), ("sequential", 2, [1], 2),
    ("sequential", 3, [1], 2), ("sequential", 3, [1, 1], 2), ("sequential", 3, [1, 2], 3), ("sequential", 1, [], 1),
])
def test_answers_needed_follow_the_pool_s_chain(mechanism: str, k: int, labels: list[int], needed: int) -> None:
    assert _rule(mechanism, k).needed(labels) == needed


def test_replace_takes_the_people_and_bayes_lets_a_sure_network_outvote_one_person() -> None:
    sure = [0.0] * 10
    sure[7] = 1.0
    assert _rule("majority", 1, "replace").final([2], sure) == 2
    assert _rule("majority", 1, "bayes").final([2], [0.001] * 7 + [0.99] + [0.001] * 2) == 7
    assert _rule("majority", 1, "bayes").final([2], [0.1] * 10) == 2


def test_bayes_trusts_people_as_much_as_the_challenge_mix_says() -> None:
    accuracy = mean_person_accuracy(3, FASHION_MNIST_CALIBRATION)
    clean = human_accuracy("clean", 3, calibration=FASHION_MNIST_CALIBRATION)
    assert 0.1 < accuracy < clean  # the challenges cost people accuracy, so the mix is below clean
    assert _rule("majority", 2, "bayes").person_accuracy == pytest.approx(accuracy)
