"""How hard each image is for people, and each person's chance on it.

People look at the image. One image's difficulty is shared by everyone who sees
it, so people err on the same images and a majority gains less than it would
if their errors were independent. The difficulty has two parts:

- **Ambiguity of the clean item**: the share of a small ensemble, trained on
  clean train images, that does not name the true class. The members are
  least-squares linear classifiers on average-pooled images, every channel kept
  (14x14 for Fashion-MNIST's 28x28, about as many values for any other size;
  each member on its own bootstrap sample), so they err on look-alikes and odd
  items, not on the CNN's blind spots, and stay cheap on large images.
- **Damage done by the corruption**: ``1 - SSIM`` between the corrupted image
  and its clean original, averaged over windows and channels (Wang et al.,
  "Image quality assessment: from error visibility to structural similarity",
  IEEE TIP 2004: C1 = 0.01^2, C2 = 0.03^2 on [0, 1] pixels; their 11x11 Gaussian
  window is replaced by a 7x7 uniform one, sized for 28x28 images, assumed).
  Images larger than ``SSIM_MAX_SIDE`` are average-pooled first: the SSIM
  authors' reference code also downsamples large images before comparing them;
  the bound here is assumed, to keep the cost near Fashion-MNIST's.

A person's chance on image i is ``chance + (1 - chance) * sigmoid(a_c - DIFFICULTY_SLOPE * h_i)``
with ``h_i`` the ambiguity plus the damage (equal weights, assumed). The offset
``a_c`` is solved per category on the images evaluated (each split's own, so each
split's people meet the targets; nothing a search chooses reads the test split's),
so that the category's mean meets its target
(:class:`hgen_ray.human.calibration.PeopleCalibration`): on clean images the
majority of 3 is the crowd's (83.5% on Fashion-MNIST); on each corruption one
person's mean keeps the retention share (Geirhos's) of the clean single-person mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from hgen_ray.config import CHALLENGE_CATEGORIES
from hgen_ray.human.calibration import (
    FASHION_MNIST_CALIBRATION,
    NUM_CLASSES,
    PeopleCalibration,
    answer_median_s,
    majority_of_3_accuracy,
    retained_accuracy,
)

__all__ = ["DIFFICULTY_SLOPE", "PeopleView", "ambiguity", "corruption_damage", "people_view", "person_chance",
           "train_ensemble"]

DIFFICULTY_SLOPE = 3.0  # assumed: logits of a person's odds lost per unit of difficulty (ambiguity + damage)
ENSEMBLE_MEMBERS = 16  # assumed: enough members for ambiguity in steps of 1/16
ENSEMBLE_TRAIN_IMAGES = 2000  # assumed: the first clean train images the ensemble learns from (all, if fewer)
ENSEMBLE_BOOTSTRAP = 1000  # assumed: images per member, drawn with replacement: members disagree on the hard ones
RIDGE_PENALTY = 1.0  # assumed: keeps each member's least-squares fit stable on 1000 images
ENSEMBLE_MAX_FEATURES = 256  # assumed: pixel values (all channels) a member sees; 28x28 grey pools 2x2 to 196
SSIM_WINDOW = 7  # assumed: a 7x7 uniform window for 28x28 images (Wang et al. 2004: 11x11 Gaussian)
SSIM_C1, SSIM_C2 = 0.01**2, 0.03**2  # Wang et al. 2004, for a dynamic range of 1
SSIM_MAX_SIDE = 64  # assumed: damage is measured on images pooled to at most 64 px a side (28x28 as they are)
SSIM_CHUNK_VALUES = 2**24  # pixel values per SSIM pass: bounds memory on large images (a 28x28 set is one pass)
_SOLVE_LOW, _SOLVE_HIGH, _SOLVE_STEPS = -30.0, 30.0, 80


@dataclass(frozen=True)
class PeopleView:
    """Per category, per image of one challenge set: one person's chance and median answer time."""

    person_accuracy: dict[str, np.ndarray]
    answer_median_s: dict[str, np.ndarray]
    difficulty: dict[str, np.ndarray]  # ambiguity + damage, the input of both


def _features(images: torch.Tensor) -> torch.Tensor:
    """``[N, C, H, W]`` images pooled to at most ``ENSEMBLE_MAX_FEATURES`` values, flattened, plus a bias."""
    channels, height, width = images.shape[1:]
    factor = math.ceil(math.sqrt(channels * height * width / ENSEMBLE_MAX_FEATURES))
    small = F.avg_pool2d(images.float(), max(1, min(factor, height, width))).flatten(1)
    return torch.cat([small, torch.ones(len(small), 1)], dim=1).double()


def train_ensemble(images: torch.Tensor, labels: torch.Tensor, seed: int,
                   num_classes: int = NUM_CLASSES) -> list[torch.Tensor]:
    """Weights of ``ENSEMBLE_MEMBERS`` ridge classifiers on bootstrap samples of clean ``[N, C, H, W]`` train images.

    Args:
        images: Clean train images, 1 or 3 channels, any size; the first ``ENSEMBLE_TRAIN_IMAGES`` are used.
        labels: Their classes.
        seed: Seeds the bootstrap samples.
        num_classes: The data's classes (a class missing from the sample must still be a column).
    """
    images, labels = images[:ENSEMBLE_TRAIN_IMAGES], labels[:ENSEMBLE_TRAIN_IMAGES]
    features = _features(images)
    targets = F.one_hot(labels.long(), num_classes).double()
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
    """``1 - SSIM`` per ``[C, H, W]`` image (mean over its windows and channels), clipped to [0, 1].

    Computed a chunk of images at a time, so large images do not hold gigabytes of doubles at once.
    """
    per_chunk = max(1, SSIM_CHUNK_VALUES // math.prod(clean.shape[1:]))
    return np.concatenate([_damage(x, y) for x, y in zip(corrupted.split(per_chunk), clean.split(per_chunk))])


def _damage(corrupted: torch.Tensor, clean: torch.Tensor) -> np.ndarray:
    factor = math.ceil(max(clean.shape[-2:]) / SSIM_MAX_SIDE)
    if factor > 1:
        corrupted, clean = F.avg_pool2d(corrupted, factor), F.avg_pool2d(clean, factor)
    window = min(SSIM_WINDOW, *clean.shape[-2:])  # an image smaller than the window is one window

    def local_mean(x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, window, stride=1)

    x, y = corrupted.double(), clean.double()
    mean_x, mean_y = local_mean(x), local_mean(y)
    var_x = local_mean(x * x) - mean_x**2
    var_y = local_mean(y * y) - mean_y**2
    covariance = local_mean(x * y) - mean_x * mean_y
    ssim = ((2 * mean_x * mean_y + SSIM_C1) * (2 * covariance + SSIM_C2)
            / ((mean_x**2 + mean_y**2 + SSIM_C1) * (var_x + var_y + SSIM_C2)))
    return np.clip(1.0 - ssim.flatten(1).mean(1).numpy(), 0.0, 1.0)


def _chance(offset: float, difficulty: np.ndarray, chance: float) -> np.ndarray:
    return chance + (1.0 - chance) / (1.0 + np.exp(-(offset - DIFFICULTY_SLOPE * difficulty)))


def _solve_offset(difficulty: np.ndarray, mean_of: callable, target: float,  # type: ignore[valid-type]
                  chance: float) -> float:
    """The offset whose per-image chances give ``mean_of(chances) == target`` (bisection; it rises with the offset)."""
    low, high = _SOLVE_LOW, _SOLVE_HIGH
    for _ in range(_SOLVE_STEPS):
        middle = (low + high) / 2
        low, high = (middle, high) if mean_of(_chance(middle, difficulty, chance)) < target else (low, middle)
    return (low + high) / 2


def people_view(images: dict[str, torch.Tensor], labels: torch.Tensor, severity: int, members: list[torch.Tensor],
                clean_majority_of_3: float | None = None,
                calibration: PeopleCalibration = FASHION_MNIST_CALIBRATION) -> PeopleView:
    """Each person's chance and answer time on every image of a challenge set (``images["clean"]`` first).

    Args:
        images: Per category, the set's ``[N, C, H, W]`` images; every category holds the same items as ``clean``.
        labels: The items' true classes.
        severity: The challenge severity, for the retention table.
        members: The ambiguity ensemble (:func:`train_ensemble`).
        clean_majority_of_3: Overrides the calibration's crowd target (kept for callers that pass the figure alone).
        calibration: The data's figures (:func:`hgen_ray.human.calibration.resolve_calibration`).
    """
    label_array = labels.numpy()
    chance = calibration.chance
    target = calibration.clean_majority_of_3_accuracy if clean_majority_of_3 is None else clean_majority_of_3
    unclear = ambiguity(members, images["clean"], labels)
    difficulty = {"clean": unclear}
    clean_offset = _solve_offset(
        unclear, lambda p: float(np.mean(majority_of_3_accuracy(p, label_array, calibration))), target, chance)
    accuracy = {"clean": _chance(clean_offset, unclear, chance)}
    clean_single = float(accuracy["clean"].mean())
    for category in CHALLENGE_CATEGORIES:
        if category not in images:
            continue
        difficulty[category] = unclear + corruption_damage(images[category], images["clean"])
        retained = retained_accuracy(clean_single, category, severity, calibration)
        offset = _solve_offset(difficulty[category], lambda p: float(np.mean(p)), retained, chance)
        accuracy[category] = _chance(offset, difficulty[category], chance)
    medians = {c: np.asarray(answer_median_s(p, calibration)) for c, p in accuracy.items()}
    return PeopleView(person_accuracy=accuracy, answer_median_s=medians, difficulty=difficulty)


def person_chance(corrupted: torch.Tensor, clean: torch.Tensor, labels: torch.Tensor, members: list[torch.Tensor],
                  calibration: PeopleCalibration = FASHION_MNIST_CALIBRATION) -> np.ndarray:
    """One person's chance on each corrupted image, for corruptions with no sourced retention figure.

    The offset is the clean one (the crowd's target on these clean items), so people lose only what
    the image's ambiguity and damage cost them (assumed): the rejector's held-out families have no
    psychophysics figure of their own.
    """
    label_array = labels.numpy()
    unclear = ambiguity(members, clean, labels)
    offset = _solve_offset(unclear, lambda p: float(np.mean(majority_of_3_accuracy(p, label_array, calibration))),
                           calibration.clean_majority_of_3_accuracy, calibration.chance)
    return _chance(offset, unclear + corruption_damage(corrupted, clean), calibration.chance)
