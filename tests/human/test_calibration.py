from __future__ import annotations

import numpy as np
import pytest

from hgen_ray.config import CHALLENGE_CATEGORIES
from hgen_ray.human.calibration import (
    CLASSIFY_MEDIAN_S,
    CROWD_MAJORITY_OF_3_ACCURACY,
    human_accuracy,
    majority_of_3_accuracy,
    single_person_accuracy,
    wrong_answer_distribution,
)
from hgen_ray.human.pool import _decide
from hgen_ray.human.simulated_human import HumanTask, answer_task

SHIRT, T_SHIRT, PULLOVER, COAT, TROUSER = 6, 0, 2, 4, 1


def test_one_person_is_worse_than_the_crowd_and_the_crowd_is_calibrated() -> None:
    person = single_person_accuracy()
    assert 0.6 < person < CROWD_MAJORITY_OF_3_ACCURACY
    assert majority_of_3_accuracy(person) == pytest.approx(CROWD_MAJORITY_OF_3_ACCURACY, abs=1e-9)


def test_simulated_majority_of_three_matches_the_published_835_percent() -> None:
    labels = np.arange(6000) % 10
    correct = 0
    for key, label in enumerate(labels):
        task = HumanTask(key=key, true_label=int(label), category="clean", severity=1)
        votes = [answer_task(task, person, seed=11).label for person in range(3)]
        correct += _decide(votes) == label
    assert correct / len(labels) == pytest.approx(CROWD_MAJORITY_OF_3_ACCURACY, abs=0.015)  # ~4.8 std errors


def test_wrong_answers_confuse_look_alike_tops() -> None:
    wrong = wrong_answer_distribution(SHIRT)
    assert wrong[SHIRT] == 0 and wrong.sum() == pytest.approx(1.0)
    assert wrong[[T_SHIRT, PULLOVER, COAT]].sum() > 0.6
    assert wrong[TROUSER] < wrong[T_SHIRT]


@pytest.mark.parametrize("category", CHALLENGE_CATEGORIES)
def test_people_degrade_with_severity_but_stay_above_chance(category: str) -> None:
    levels = [human_accuracy(category, s) for s in range(1, 6)]
    assert all(a > b for a, b in zip(levels, levels[1:]))
    assert human_accuracy("clean", 1) > levels[0] and levels[-1] > 0.3


def test_rotation_hurts_people_less_than_noise() -> None:
    assert human_accuracy("rotation", 5) > human_accuracy("gaussian_noise", 5)  # Geirhos et al. 2018


def test_response_times_are_lognormal_around_a_few_seconds() -> None:
    times = np.array([answer_task(HumanTask(k, 0, "clean", 1), 0, seed=3).response_s for k in range(4000)])
    assert np.median(times) == pytest.approx(CLASSIFY_MEDIAN_S, rel=0.05)
    assert np.log(times).std() == pytest.approx(0.5, rel=0.05)
    assert np.mean(times) > np.median(times)  # right-skewed
