"""Train / validation / test splits and the challenge test set.

The validation images are held out of the clean train split (they calibrate
the gate); every challenge category is applied to the same subset of the
held-out test split, so categories differ only in their corruption.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hgen_ray.config import CHALLENGE_CATEGORIES, DataConfig
from hgen_ray.data.challenges import apply_challenge
from hgen_ray.data.fashion_mnist import load_fashion_mnist, resolve_data_root

__all__ = ["EVALUATED_CATEGORIES", "ChallengeSet", "Splits", "build_challenge_set", "load_splits"]

EVALUATED_CATEGORIES: tuple[str, ...] = ("clean", *CHALLENGE_CATEGORIES)


@dataclass(frozen=True)
class Splits:
    """Float ``[N, 1, 28, 28]`` images in ``[0, 1]`` with their labels."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor


@dataclass(frozen=True)
class ChallengeSet:
    """Per category (``clean`` first), the corrupted test images; labels are shared."""

    images: dict[str, torch.Tensor]
    labels: torch.Tensor
    severity: int


def _as_float(images: torch.Tensor) -> torch.Tensor:
    return images.float().div(255).unsqueeze(1)


def load_splits(config: DataConfig, seed: int) -> Splits:
    """Load Fashion-MNIST and split it reproducibly from ``seed``."""
    root = resolve_data_root(config.root)
    train = load_fashion_mnist(root, "train", config.download)
    test = load_fashion_mnist(root, "test", config.download)
    order = torch.randperm(len(train.labels), generator=torch.Generator().manual_seed(seed))
    val_index, train_index = order[: config.validation_size], order[config.validation_size :]
    test_index = torch.randperm(len(test.labels), generator=torch.Generator().manual_seed(seed + 1))
    test_index = test_index[: config.test_per_category]
    return Splits(
        train_images=_as_float(train.images[train_index]),
        train_labels=train.labels[train_index],
        val_images=_as_float(train.images[val_index]),
        val_labels=train.labels[val_index],
        test_images=_as_float(test.images[test_index]),
        test_labels=test.labels[test_index],
    )


def build_challenge_set(splits: Splits, severity: int, seed: int) -> ChallengeSet:
    """Apply ``clean`` and each of the 12 categories to the test subset."""
    images = {name: apply_challenge(splits.test_images, name, severity, seed) for name in EVALUATED_CATEGORIES}
    return ChallengeSet(images=images, labels=splits.test_labels, severity=severity)
