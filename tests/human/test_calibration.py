from __future__ import annotations

import numpy as np
import pytest

from hgen_ray.config import CHALLENGE_CATEGORIES
from hgen_ray.human.calibration import (
    CLASSIFY_MEDIAN_S,
    CLASSIFY_SIGMA,
    CROWD_MAJORITY_OF_3_ACCURACY,
    HARD_IMAGE_SLOWDOWN,
    answer_median_s,
    human_accuracy,
    majority_of_3_accuracy,
    retained_accuracy,
    single_person_accuracy,
    wrong_answer_distribution,
)
from hgen_ray.human.simulated_human import HumanTask, answer_task

SHIRT, T_SHIRT, PULLOVER, COAT, TROUSER = 6, 0, 2, 4, 1


def test_the_exact_majority_of_three_matches_simulated_votes_of_equally_able_people() -> None:
    person = single_person_accuracy()
    assert 0.6 < person < CROWD_MAJORITY_OF_3_ACCURACY
    assert majority_of_3_accuracy(person) == pytest.approx(CROWD_MAJORITY_OF_3_ACCURACY, abs=1e-9)
    labels = np.arange(6000) % 10
    correct = 0
    for index, label in enumerate(labels):
        votes = [answer_task(HumanTask((index, step), int(label), person, 3.0), step, seed=11).label for step in range(3)]
        plurality = max(votes, key=votes.count) if len(set(votes)) < 3 else votes[0]
        correct += plurality == label
    assert correct / len(labels) == pytest.approx(CROWD_MAJORITY_OF_3_ACCURACY, abs=0.015)  # ~4.8 std errors
    per_image = majority_of_3_accuracy(np.full(10, person), np.arange(10))
    assert per_image.mean() == pytest.approx(CROWD_MAJORITY_OF_3_ACCURACY, abs=1e-9)


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
    assert retained_accuracy(0.9, category, 5) > retained_accuracy(0.7, category, 5)


def test_rotation_hurts_people_less_than_noise() -> None:
    assert human_accuracy("rotation", 5) > human_accuracy("gaussian_noise", 5)  # Geirhos et al. 2018


def test_answer_times_are_lognormal_and_slower_on_images_people_are_unsure_of() -> None:
    def times(accuracy: float) -> np.ndarray:
        median = answer_median_s(accuracy)
        return np.array([answer_task(HumanTask((k,), 0, accuracy, median), 0, seed=3).response_s
                         for k in range(4000)])

    sure, guessing = times(1.0), times(0.1)
    assert np.median(sure) == pytest.approx(CLASSIFY_MEDIAN_S, rel=0.05)
    assert np.median(guessing) == pytest.approx(CLASSIFY_MEDIAN_S * (1 + HARD_IMAGE_SLOWDOWN), rel=0.05)
    assert np.log(sure).std() == pytest.approx(CLASSIFY_SIGMA, rel=0.05)
    assert np.mean(sure) > np.median(sure)  # right-skewed
