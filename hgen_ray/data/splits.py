"""Train / validation / test splits and their challenge sets.

The validation images are held out of the clean train split: no training or
fine-tuning ever sees them. A search scores its candidates on the validation
challenge set (``validation_per_category`` of them, each challenge applied with
a corruption seed of its own). The test split is loaded only when asked for
(``with_test=True``), which a search does only after it has chosen its H-DNNs,
to report them and the references (DESIGN.md, "Fair comparisons").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from hgen_ray.config import CHALLENGE_CATEGORIES, DataConfig
from hgen_ray.data.challenges import apply_challenge
from hgen_ray.data.fashion_mnist import load_fashion_mnist, resolve_data_root

__all__ = ["EVALUATED_CATEGORIES", "SPLIT_NAMES", "ChallengeSet", "Splits", "build_challenge_set",
           "corruption_seed", "load_splits"]

EVALUATED_CATEGORIES: tuple[str, ...] = ("clean", *CHALLENGE_CATEGORIES)
SPLIT_NAMES: tuple[str, ...] = ("validation", "test")
# Validation challenges draw their noise, occluders and rotations apart from the test ones, so
# that no corruption pattern a search tuned on reappears in the report. Any constant will do.
VALIDATION_SEED_OFFSET = 7_777_777


@dataclass(frozen=True)
class Splits:
    """Float ``[N, 1, 28, 28]`` images in ``[0, 1]`` with their labels; the test ones only when loaded."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    test_images: torch.Tensor | None = None
    test_labels: torch.Tensor | None = None

    def without_test(self) -> Splits:
        return dataclasses.replace(self, test_images=None, test_labels=None)


@dataclass(frozen=True)
class ChallengeSet:
    """Per category (``clean`` first), the corrupted images of one split; labels are shared."""

    images: dict[str, torch.Tensor]
    labels: torch.Tensor
    severity: int
    split: str  # validation | test


def _as_float(images: torch.Tensor) -> torch.Tensor:
    return images.float().div(255).unsqueeze(1)


def load_splits(config: DataConfig, seed: int, with_test: bool = False) -> Splits:
    """Load Fashion-MNIST and split it reproducibly from ``seed``; the test files are read only ``with_test``."""
    root = resolve_data_root(config.root)
    train = load_fashion_mnist(root, "train", config.download)
    order = torch.randperm(len(train.labels), generator=torch.Generator().manual_seed(seed))
    val_index, train_index = order[: config.validation_size], order[config.validation_size :]
    splits = Splits(train_images=_as_float(train.images[train_index]), train_labels=train.labels[train_index],
                    val_images=_as_float(train.images[val_index]), val_labels=train.labels[val_index])
    if not with_test:
        return splits
    test = load_fashion_mnist(root, "test", config.download)
    test_index = torch.randperm(len(test.labels), generator=torch.Generator().manual_seed(seed + 1))
    test_index = test_index[: config.test_per_category]
    return dataclasses.replace(splits, test_images=_as_float(test.images[test_index]),
                               test_labels=test.labels[test_index])


def corruption_seed(seed: int, split: str) -> int:
    return seed + VALIDATION_SEED_OFFSET if split == "validation" else seed


def build_challenge_set(splits: Splits, config: DataConfig, seed: int, split: str) -> ChallengeSet:
    """Apply ``clean`` and each of the 12 categories to one split's images.

    ``validation``: the first ``validation_per_category`` held-out images; ``test``: the test subset.

    Raises:
        ValueError: ``test`` asked of splits loaded without the test images.
    """
    if split == "validation":
        images, labels = splits.val_images[: config.validation_per_category], \
            splits.val_labels[: config.validation_per_category]
    elif splits.test_images is None or splits.test_labels is None:
        raise ValueError("the test challenge set needs splits loaded with_test=True")
    else:
        images, labels = splits.test_images, splits.test_labels
    noise_seed = corruption_seed(seed, split)
    challenged = {name: apply_challenge(images, name, config.severity, noise_seed) for name in EVALUATED_CATEGORIES}
    return ChallengeSet(images=challenged, labels=labels, severity=config.severity, split=split)
