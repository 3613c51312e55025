"""People on data that is not Fashion-MNIST: any number of classes, colour, any image size.

The colour data is real: Fashion-MNIST's first five classes, resized to 32x32 and
given three differently shaded channels. Fashion-MNIST itself must come out
exactly as before the calibration became per data set (pinned figures).
"""

from __future__ import annotations

import numpy as np
import pytest
import ray
import torch
import torch.nn.functional as F

from hgen_ray.config import CHALLENGE_CATEGORIES, PeopleCalibrationConfig
from hgen_ray.data import apply_challenge
from hgen_ray.data.splits import Splits
from hgen_ray.human import PeopleCalibration, PeopleView, decide, people_view, resolve_calibration, train_ensemble
from hgen_ray.human import image_difficulty
from hgen_ray.human.calibration import majority_of_3_accuracy, retained_accuracy
from hgen_ray.human.image_difficulty import ambiguity, corruption_damage
from hgen_ray.human.simulated_human import HumanTask, SimulatedHuman, answer_task

CLASSES = 5  # T-shirt/top, Trouser, Pullover, Dress, Coat
SEVERITY = 3
IMAGES = 300
REPEATS = 20  # simulated crowds per image: 6000 crowds of 3
NO_NETWORK = tuple([1.0 / CLASSES] * CLASSES)


def _colour_32(images: torch.Tensor) -> torch.Tensor:
    """``[N, 1, 28, 28]`` items as ``[N, 3, 32, 32]``: resized, each channel a different shade of the same pixels."""
    grey = F.interpolate(images, size=(32, 32), mode="bilinear", align_corners=False).clamp(0, 1)
    return torch.cat([grey, 0.8 * grey, grey.sqrt()], dim=1)


def _first_classes(images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    keep = labels < CLASSES
    return _colour_32(images[keep]), labels[keep]


@pytest.fixture(scope="module")
def colour(splits: Splits) -> tuple[dict[str, torch.Tensor], torch.Tensor, list[torch.Tensor]]:
    """Challenge images per category, their labels, and the ambiguity ensemble, all five-class colour."""
    train_images, train_labels = _first_classes(splits.train_images[:5000], splits.train_labels[:5000])
    images, labels = _first_classes(splits.val_images, splits.val_labels)
    images, labels = images[:IMAGES], labels[:IMAGES]
    challenged = {"clean": images} | {c: apply_challenge(images, c, SEVERITY, seed=5) for c in CHALLENGE_CATEGORIES}
    return challenged, labels, train_ensemble(train_images, train_labels, seed=0, num_classes=CLASSES)


@pytest.fixture(scope="module")
def calibration(splits: Splits) -> PeopleCalibration:
    return resolve_calibration(None, "fashion-mnist-colour-5", splits.class_names[:CLASSES])


@pytest.fixture(scope="module")
def view(colour: tuple, calibration: PeopleCalibration) -> PeopleView:
    images, labels, members = colour
    return people_view(images, labels, SEVERITY, members, calibration=calibration)


def test_a_clean_majority_of_three_meets_the_target_on_five_colour_classes(
        colour: tuple, calibration: PeopleCalibration, view: PeopleView) -> None:
    _, labels, _ = colour
    exact = majority_of_3_accuracy(view.person_accuracy["clean"], labels.numpy(), calibration)
    assert float(np.mean(exact)) == pytest.approx(calibration.clean_majority_of_3_accuracy, abs=1e-6)
    assert calibration.clean_majority_of_3_accuracy == 0.835 and calibration.chance == pytest.approx(0.2)
    hits, answered = [], set()
    for repeat in range(REPEATS):
        for i, label in enumerate(labels.tolist()):
            chance = float(view.person_accuracy["clean"][i])
            votes = [answer_task(HumanTask((repeat, i, p), label, chance, 3.0), p, 11, calibration).label
                     for p in range(3)]
            answered.update(votes)
            hits.append(decide(votes, NO_NETWORK) == label)
    assert float(np.mean(hits)) == pytest.approx(calibration.clean_majority_of_3_accuracy, abs=0.015)
    assert answered == set(range(CLASSES))  # wrong answers name the data's classes, and only those


def test_one_person_keeps_the_retention_share_on_every_corruption(
        calibration: PeopleCalibration, view: PeopleView) -> None:
    clean_single = float(view.person_accuracy["clean"].mean())
    for category in CHALLENGE_CATEGORIES:
        target = retained_accuracy(clean_single, category, SEVERITY, calibration)
        assert float(view.person_accuracy[category].mean()) == pytest.approx(target, abs=1e-6), category
        assert view.person_accuracy[category].min() >= calibration.chance
    assert view.answer_median_s["clean"].mean() < view.answer_median_s["gaussian_noise"].mean()


def test_the_users_figures_drive_the_people(colour: tuple, splits: Splits) -> None:
    images, labels, members = colour
    block = PeopleCalibrationConfig(clean_majority_of_3_accuracy=0.95,
                                    look_alike_groups=(("T-shirt/top", "Pullover", "Coat"),))
    calibration = resolve_calibration(block, "fashion-mnist-colour-5", splits.class_names[:CLASSES])
    view = people_view({"clean": images["clean"]}, labels, SEVERITY, members, calibration=calibration)
    exact = majority_of_3_accuracy(view.person_accuracy["clean"], labels.numpy(), calibration)
    assert float(np.mean(exact)) == pytest.approx(0.95, abs=1e-6)


def test_a_person_actor_answers_within_the_datas_classes(ray_session: None, calibration: PeopleCalibration) -> None:
    person = SimulatedHuman.remote(1, 11, calibration)
    tasks = [HumanTask((i,), i % CLASSES, 0.3, 3.0) for i in range(400)]
    answers = ray.get(person.answer.remote(tasks))
    assert answers == [answer_task(task, 1, 11, calibration) for task in tasks]  # the actor holds the calibration
    assert {answer.label for answer in answers} == set(range(CLASSES))


@pytest.mark.parametrize(("channels", "side"), [(1, 64), (3, 224)])
def test_difficulty_works_on_large_images_with_few_features(splits: Splits, channels: int, side: int) -> None:
    keep = splits.val_labels < CLASSES
    grey = F.interpolate(splits.val_images[keep][:120], size=(side, side), mode="bilinear", align_corners=False)
    images, labels = grey.expand(-1, channels, -1, -1).contiguous(), splits.val_labels[keep][:120]
    members = train_ensemble(images, labels, seed=0, num_classes=CLASSES)
    assert members[0].shape[0] - 1 <= 256 and members[0].shape[1] == CLASSES  # pooled before the ridge
    assert ((ambiguity(members, images, labels) >= 0) & (ambiguity(members, images, labels) <= 1)).all()
    noisy = apply_challenge(images, "gaussian_noise", SEVERITY, seed=5)
    assert np.allclose(corruption_damage(images, images), 0.0, atol=1e-6)
    assert corruption_damage(noisy, images).mean() > 0.1


def test_damage_is_the_same_whatever_the_chunking(colour: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    images, _, _ = colour
    whole = corruption_damage(images["fog"], images["clean"])
    monkeypatch.setattr(image_difficulty, "SSIM_CHUNK_VALUES", 70 * 3 * 32 * 32)  # 70 images a pass
    assert np.array_equal(corruption_damage(images["fog"], images["clean"]), whole)


# people_view's person_accuracy on 300 validation images, before and after the calibration became per data set
PINNED_SUMS = {"clean": 223.66516525881283, "gaussian_noise": 177.18552559669777, "low_contrast": 194.61539046999093}
PINNED_FIRST = {"clean": 0.32559428147860336, "gaussian_noise": 0.1872311760465721, "low_contrast": 0.2592668248901801}


def test_fashion_mnist_people_are_unchanged(splits: Splits) -> None:
    images, labels = splits.val_images[:IMAGES], splits.val_labels[:IMAGES]
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(0))
    challenged = {"clean": images, "gaussian_noise": (images + 0.3 * noise).clamp(0, 1),
                  "low_contrast": 0.5 + (images - 0.5) * 0.3}
    members = train_ensemble(splits.train_images, splits.train_labels, seed=0)
    before = people_view(challenged, labels, SEVERITY, members)
    assert {c: float(p.sum()) for c, p in before.person_accuracy.items()} == pytest.approx(PINNED_SUMS, rel=1e-12)
    assert {c: float(p[0]) for c, p in before.person_accuracy.items()} == pytest.approx(PINNED_FIRST, rel=1e-12)
    resolved = resolve_calibration(None, splits.dataset, splits.class_names)
    after = people_view(challenged, labels, SEVERITY, members, calibration=resolved)
    for category, accuracy in before.person_accuracy.items():
        assert np.array_equal(after.person_accuracy[category], accuracy)
        assert np.array_equal(after.answer_median_s[category], before.answer_median_s[category])
