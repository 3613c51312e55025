"""How hard each image is for people, and each person's chance on it.

People look at the image. One image's difficulty is shared by everyone who sees
it, so people err on the same images and a majority gains less than it would
if their errors were independent. The difficulty has two parts:

- **Ambiguity of the clean item**: the share of a small ensemble, trained on
  clean train images, that does not name the true class. The members are
  least-squares linear classifiers on 14x14 images (each on its own bootstrap
  sample), so they err on look-alikes and odd items, not on the CNN's blind spots.
- **Damage done by the corruption**: ``1 - SSIM`` between the corrupted image
  and its clean original (Wang et al., "Image quality assessment: from error
  visibility to structural similarity", IEEE TIP 2004: C1 = 0.01^2, C2 = 0.03^2
  on [0, 1] pixels; their 11x11 Gaussian window is replaced by a 7x7 uniform
  one on our 28x28 images, assumed).

A person's chance on image i is ``chance + (1 - chance) * sigmoid(a_c - DIFFICULTY_SLOPE * h_i)``
with ``h_i`` the ambiguity plus the damage (equal weights, assumed). The offset
``a_c`` is solved per category on the images evaluated (each split's own, so each
split's people meet the targets; nothing a search chooses reads the test split's),
so that the category's mean meets its target
(:mod:`hgen_ray.human.calibration`): on clean images the majority of 3 is the
crowd's 83.5%; on each corruption one person's mean keeps the Geirhos share
of the clean single-person mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from hgen_ray.config import CHALLENGE_CATEGORIES
from hgen_ray.human.calibration import (
    CHANCE,
    CROWD_MAJORITY_OF_3_ACCURACY,
    NUM_CLASSES,
    answer_median_s,
    majority_of_3_accuracy,
    retained_accuracy,
)

__all__ = ["DIFFICULTY_SLOPE", "PeopleView", "ambiguity", "corruption_damage", "people_view", "train_ensemble"]

DIFFICULTY_SLOPE = 3.0  # assumed: logits of a person's odds lost per unit of difficulty (ambiguity + damage)
ENSEMBLE_MEMBERS = 16  # assumed: enough members for ambiguity in steps of 1/16
ENSEMBLE_TRAIN_IMAGES = 2000  # assumed: the first clean train images the ensemble learns from (all, if fewer)
ENSEMBLE_BOOTSTRAP = 1000  # assumed: images per member, drawn with replacement: members disagree on the hard ones
RIDGE_PENALTY = 1.0  # assumed: keeps each member's least-squares fit stable on 1000 images
SSIM_WINDOW = 7  # assumed: a 7x7 uniform window for 28x28 images (Wang et al. 2004: 11x11 Gaussian)
SSIM_C1, SSIM_C2 = 0.01**2, 0.03**2  # Wang et al. 2004, for a dynamic range of 1
_SOLVE_LOW, _SOLVE_HIGH, _SOLVE_STEPS = -30.0, 30.0, 80


@dataclass(frozen=True)
class PeopleView:
    """Per category, per image of one challenge set: one person's chance and median answer time."""

    person_accuracy: dict[str, np.ndarray]
    answer_median_s: dict[str, np.ndarray]
    difficulty: dict[str, np.ndarray]  # ambiguity + damage, the input of both


def _features(images: torch.Tensor) -> torch.Tensor:
    small = F.avg_pool2d(images.float(), 2).flatten(1)
    return torch.cat([small, torch.ones(len(small), 1)], dim=1).double()


def train_ensemble(images: torch.Tensor, labels: torch.Tensor, seed: int) -> list[torch.Tensor]:
    """Weights of ``ENSEMBLE_MEMBERS`` ridge classifiers on bootstrap samples of clean train images."""
    images, labels = images[:ENSEMBLE_TRAIN_IMAGES], labels[:ENSEMBLE_TRAIN_IMAGES]
    features = _features(images)
    targets = F.one_hot(labels.long(), NUM_CLASSES).double()
    generator = torch.Generator().manual_seed(seed)
    penalty = RIDGE_PENALTY * torch.eye(features.shape[1], dtype=torch.float64)
    members = []
    for _ in range(ENSEMBLE_MEMBERS):
        pick = torch.randint(len(features), (ENSEMBLE_BOOTSTRAP,), generator=generator)
        x, y = features[pick], targets[pick]
        members.append(torch.linalg.solve(x.T @ x + penalty, x.T @ y))
    return members


def ambiguity(members: list[torch.Tensor], clean_images: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Share of the ensemble that does not name the true class, per clean image."""
    features = _features(clean_images)
    votes = torch.stack([(features @ weights).argmax(1) for weights in members])
    return (votes != labels.long()).double().mean(0).numpy()


def corruption_damage(corrupted: torch.Tensor, clean: torch.Tensor) -> np.ndarray:
    """``1 - SSIM`` per image (mean over its windows), clipped to [0, 1]."""
    def local_mean(x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, SSIM_WINDOW, stride=1)

    x, y = corrupted.double(), clean.double()
    mean_x, mean_y = local_mean(x), local_mean(y)
    var_x = local_mean(x * x) - mean_x**2
    var_y = local_mean(y * y) - mean_y**2
    covariance = local_mean(x * y) - mean_x * mean_y
    ssim = ((2 * mean_x * mean_y + SSIM_C1) * (2 * covariance + SSIM_C2)
            / ((mean_x**2 + mean_y**2 + SSIM_C1) * (var_x + var_y + SSIM_C2)))
    return np.clip(1.0 - ssim.flatten(1).mean(1).numpy(), 0.0, 1.0)


def _chance(offset: float, difficulty: np.ndarray) -> np.ndarray:
    return CHANCE + (1.0 - CHANCE) / (1.0 + np.exp(-(offset - DIFFICULTY_SLOPE * difficulty)))


def _solve_offset(difficulty: np.ndarray, mean_of: callable, target: float) -> float:  # type: ignore[valid-type]
    """The offset whose per-image chances give ``mean_of(chances) == target`` (bisection; it rises with the offset)."""
    low, high = _SOLVE_LOW, _SOLVE_HIGH
    for _ in range(_SOLVE_STEPS):
        middle = (low + high) / 2
        low, high = (middle, high) if mean_of(_chance(middle, difficulty)) < target else (low, middle)
    return (low + high) / 2


def people_view(images: dict[str, torch.Tensor], labels: torch.Tensor, severity: int, members: list[torch.Tensor],
                clean_majority_of_3: float = CROWD_MAJORITY_OF_3_ACCURACY) -> PeopleView:
    """Each person's chance and answer time on every image of a challenge set (``images["clean"]`` first).

    Args:
        images: Per category, the set's images; every category holds the same items as ``clean``.
        labels: The items' true classes.
        severity: The challenge severity, for the Geirhos retention.
        members: The ambiguity ensemble (:func:`train_ensemble`).
        clean_majority_of_3: The crowd's clean majority-of-3 accuracy the clean images are solved for.
    """
    label_array = labels.numpy()
    unclear = ambiguity(members, images["clean"], labels)
    difficulty = {"clean": unclear}
    clean_offset = _solve_offset(unclear, lambda p: float(np.mean(majority_of_3_accuracy(p, label_array))),
                                 clean_majority_of_3)
    accuracy = {"clean": _chance(clean_offset, unclear)}
    clean_single = float(accuracy["clean"].mean())
    for category in CHALLENGE_CATEGORIES:
        if category not in images:
            continue
        difficulty[category] = unclear + corruption_damage(images[category], images["clean"])
        target = retained_accuracy(clean_single, category, severity)
        offset = _solve_offset(difficulty[category], lambda p: float(np.mean(p)), target)
        accuracy[category] = _chance(offset, difficulty[category])
    medians = {c: np.asarray(answer_median_s(p)) for c, p in accuracy.items()}
    return PeopleView(person_accuracy=accuracy, answer_median_s=medians, difficulty=difficulty)
