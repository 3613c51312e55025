"""People who look at the image: calibrated per category on real Fashion-MNIST challenge images.

Every figure is measured from simulated answers (:func:`answer_task`), not from the formulas that set them.
"""

from __future__ import annotations

import numpy as np
import pytest

from hgen_ray.config import CHALLENGE_CATEGORIES, ExperimentConfig
from hgen_ray.data.splits import EVALUATED_CATEGORIES, ChallengeSet, Splits, build_challenge_set
from hgen_ray.human import PeopleView, decide, majority_of_3_accuracy, people_view, train_ensemble
from hgen_ray.human.calibration import CROWD_MAJORITY_OF_3_ACCURACY, retained_accuracy
from hgen_ray.human.image_difficulty import ambiguity, corruption_damage
from hgen_ray.human.simulated_human import HumanTask, answer_task

REPEATS = 60  # independent crowds per image: 200 images x 60 = 12000 answers per person and category
NO_NETWORK = tuple([0.1] * 10)


@pytest.fixture(scope="module")
def challenge(tiny_config: ExperimentConfig, splits: Splits) -> ChallengeSet:
    return build_challenge_set(splits, tiny_config.data, tiny_config.seed, "validation")


@pytest.fixture(scope="module")
def view(challenge: ChallengeSet, splits: Splits) -> PeopleView:
    return people_view(challenge.images, challenge.labels, challenge.severity,
                       train_ensemble(splits.train_images, splits.train_labels, seed=0))


def _correct(view: PeopleView, challenge: ChallengeSet, category: str, person: int) -> np.ndarray:
    """[repeat, image]: whether ``person`` of each simulated crowd named the true class."""
    labels = challenge.labels.numpy()
    right = np.zeros((REPEATS, len(labels)), dtype=bool)
    for repeat in range(REPEATS):
        for i, label in enumerate(labels):
            task = HumanTask((repeat, EVALUATED_CATEGORIES.index(category), i, person), int(label),
                             float(view.person_accuracy[category][i]), float(view.answer_median_s[category][i]))
            right[repeat, i] = answer_task(task, person, seed=11).label == label
    return right


def _simulated_majority_of_3(view: PeopleView, challenge: ChallengeSet, category: str) -> float:
    """Share of images a crowd of 3 gets right; with no network opinion, three different votes go to the first."""
    labels = challenge.labels.numpy()
    hits = []
    for repeat in range(REPEATS):
        for i, label in enumerate(labels):
            votes = [answer_task(HumanTask((repeat, 0, i, p), int(label), float(view.person_accuracy[category][i]),
                                           3.0), p, seed=11).label for p in range(3)]
            hits.append(decide(votes, NO_NETWORK) == label)
    return float(np.mean(hits))


def test_a_clean_majority_of_three_meets_the_published_crowd(view: PeopleView, challenge: ChallengeSet) -> None:
    simulated = _simulated_majority_of_3(view, challenge, "clean")
    assert simulated == pytest.approx(CROWD_MAJORITY_OF_3_ACCURACY, abs=0.01)  # Xiao et al. 2017: 83.5%


@pytest.mark.parametrize("category", CHALLENGE_CATEGORIES)
def test_one_person_on_a_corruption_keeps_the_geirhos_share(view: PeopleView, challenge: ChallengeSet,
                                                           category: str) -> None:
    clean_single = float(_correct(view, challenge, "clean", person=0).mean())
    simulated = float(_correct(view, challenge, category, person=0).mean())
    target = retained_accuracy(clean_single, category, challenge.severity)
    assert simulated == pytest.approx(target, abs=0.01)


def test_people_err_on_the_same_images_so_a_majority_gains_less_than_under_independence(
    view: PeopleView, challenge: ChallengeSet
) -> None:
    first, second = _correct(view, challenge, "gaussian_noise", 0), _correct(view, challenge, "gaussian_noise", 1)
    correlation = float(np.corrcoef(first.ravel(), second.ravel())[0, 1])
    single = float(_correct(view, challenge, "clean", 0).mean())
    majority = _simulated_majority_of_3(view, challenge, "clean")
    independent = majority_of_3_accuracy(single)  # the same mean person, errors independent
    message = (f"correlation of two people's correctness {correlation:.3f}; clean: one person {single:.3f}, "
               f"majority of 3 {majority:.3f}, {independent:.3f} if errors were independent")
    assert correlation > 0.05, message
    assert majority < independent - 0.01, message


def test_difficulty_has_its_two_parts(challenge: ChallengeSet, splits: Splits) -> None:
    clean = challenge.images["clean"]
    assert np.allclose(corruption_damage(clean, clean), 0.0, atol=1e-6)  # an untouched image lost nothing
    noisier = corruption_damage(challenge.images["gaussian_noise"], clean)
    assert 0.2 < noisier.mean() < 1.0
    rotated = corruption_damage(challenge.images["rotation"], clean)
    jpeg = corruption_damage(challenge.images["jpeg"], clean)
    assert jpeg.mean() < rotated.mean()  # block artefacts keep the structure a 45-degree turn moves
    members = train_ensemble(splits.train_images, splits.train_labels, seed=0)
    unclear = ambiguity(members, clean, challenge.labels)
    tops = np.isin(challenge.labels.numpy(), [0, 2, 4, 6])  # T-shirt, pullover, coat, shirt: the look-alikes
    assert unclear[tops].mean() > unclear[~tops].mean() + 0.1
