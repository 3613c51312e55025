"""Train / validation / test splits and their challenge sets.

The images come from ``data.root`` in ``data.format`` (:mod:`hgen_ray.data.image_dataset`);
Fashion-MNIST's idx files by default.

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
from hgen_ray.data.dataset_error import DatasetError
from hgen_ray.data.fashion_mnist import CLASS_NAMES, DATASET_NAME
from hgen_ray.data.image_dataset import load_image_dataset

__all__ = ["EVALUATED_CATEGORIES", "SPLIT_NAMES", "ChallengeSet", "Splits", "build_challenge_set",
           "corruption_seed", "load_splits"]

EVALUATED_CATEGORIES: tuple[str, ...] = ("clean", *CHALLENGE_CATEGORIES)
SPLIT_NAMES: tuple[str, ...] = ("validation", "test")
# Validation challenges draw their noise, occluders and rotations apart from the test ones, so
# that no corruption pattern a search tuned on reappears in the report. Any constant will do.
VALIDATION_SEED_OFFSET = 7_777_777


@dataclass(frozen=True)
class Splits:
    """Float ``[N, C, H, W]`` images in ``[0, 1]`` with their labels; the test ones only when loaded.

    The defaults of ``class_names`` and ``dataset`` describe Fashion-MNIST, which splits built by hand hold.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    test_images: torch.Tensor | None = None
    test_labels: torch.Tensor | None = None
    class_names: tuple[str, ...] = CLASS_NAMES  # label i is class_names[i]
    dataset: str = DATASET_NAME  # "fashion-mnist" when recognised by content, else "custom"

    def without_test(self) -> Splits:
        return dataclasses.replace(self, test_images=None, test_labels=None)


@dataclass(frozen=True)
class ChallengeSet:
    """Per category (``clean`` first), the corrupted images of one split; labels are shared."""

    images: dict[str, torch.Tensor]
    labels: torch.Tensor
    severity: int
    split: str  # validation | test


def _check_validation_size(config: DataConfig, train_count: int, class_count: int) -> None:
    """What is held out must leave at least one train image per class."""
    most = train_count - class_count
    if config.validation_size > most:
        raise DatasetError(f"data.validation_size: {config.validation_size} held out of the {train_count} train "
                           f"images would leave fewer than {class_count} (one per class) to train on; allowed: at "
                           f"most {most}")


def load_splits(config: DataConfig, seed: int, with_test: bool = False) -> Splits:
    """Load ``data.root`` and split it reproducibly from ``seed``; the test split is read only ``with_test``.

    Raises:
        DatasetError: The data is missing, corrupt or does not fit the ``data`` section; the message names the key.
    """
    dataset = load_image_dataset(config, with_test)
    train = dataset.train
    _check_validation_size(config, len(train.labels), len(dataset.class_names))
    order = torch.randperm(len(train.labels), generator=torch.Generator().manual_seed(seed))
    val_index, train_index = order[: config.validation_size], order[config.validation_size :]
    splits = Splits(train_images=train.images[train_index], train_labels=train.labels[train_index],
                    val_images=train.images[val_index], val_labels=train.labels[val_index],
                    class_names=dataset.class_names, dataset=dataset.name)
    if dataset.test is None:
        return splits
    test = dataset.test
    test_index = torch.randperm(len(test.labels), generator=torch.Generator().manual_seed(seed + 1))
    test_index = test_index[: config.test_per_category]  # a smaller test set gives all it has
    return dataclasses.replace(splits, test_images=test.images[test_index], test_labels=test.labels[test_index])


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
