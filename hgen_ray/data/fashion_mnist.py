"""Fashion-MNIST: its class names, how to recognise it, and its four idx .gz files.

The Debian package ``dataset-fashion-mnist`` ships them under
``/usr/share/datasets/fashion-mnist``; ``make data`` unpacks that package into
``data/fashion-mnist`` without root. Zalando's dataset is MIT licensed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from hgen_ray.data.dataset_error import DatasetError
from hgen_ray.data.idx_files import IDX_FILES, find_idx_file, read_idx_split

__all__ = [
    "CLASS_NAMES",
    "DATASET_NAME",
    "DatasetError",
    "FashionMNIST",
    "download_if_missing",
    "is_fashion_mnist",
    "load_fashion_mnist",
    "resolve_data_root",
]

CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
DATASET_NAME = "fashion-mnist"
# sha256 of the 60,000 train labels, one byte each, as stored in train-labels-idx1-ubyte. The labels alone
# identify the data whatever its format, and are read without touching the test split.
_TRAIN_LABELS_SHA256 = "657fbd221bfc9f4198cc14b5619cc33ec57c58dd0e47af4d99d6650759e869a7"
_TRAIN_COUNT = 60000


@dataclass(frozen=True)
class FashionMNIST:
    """One split: ``images`` uint8 [N, 28, 28] and ``labels`` int64 [N]."""

    images: torch.Tensor
    labels: torch.Tensor


def resolve_data_root(configured: str) -> Path:
    """The env var ``HGEN_DATA`` wins over ``data.root`` from the config."""
    return Path(os.environ.get("HGEN_DATA") or configured)


def is_fashion_mnist(train_labels: torch.Tensor) -> bool:
    """Whether these train labels are Fashion-MNIST's, in its published order (by content, not folder name)."""
    if len(train_labels) != _TRAIN_COUNT or not 0 <= int(train_labels.min()) <= int(train_labels.max()) < 256:
        return False
    digest = hashlib.sha256(train_labels.to(torch.uint8).numpy().tobytes()).hexdigest()
    return digest == _TRAIN_LABELS_SHA256


def _download(root: Path) -> None:
    """Fetch the four files with torchvision's downloader (needs internet) into ``root``."""
    from torchvision.datasets import FashionMNIST as TorchvisionFashionMNIST

    root.mkdir(parents=True, exist_ok=True)
    raw = root / "_torchvision"
    TorchvisionFashionMNIST(str(raw), train=True, download=True)
    TorchvisionFashionMNIST(str(raw), train=False, download=True)
    for name in (f"{n}.gz" for names in IDX_FILES.values() for n in names):
        (root / name).write_bytes((raw / "FashionMNIST" / "raw" / name).read_bytes())


def download_if_missing(root: Path, split: str) -> None:
    """Download Fashion-MNIST into ``root`` unless the split's images are there already."""
    if find_idx_file(root, IDX_FILES[split][0]) is None:
        _download(root)


def load_fashion_mnist(root: str | Path, split: str, download: bool = False) -> FashionMNIST:
    """Load the ``train`` or ``test`` split of Fashion-MNIST (or of idx data with its ten labels).

    Args:
        root: Folder holding the four idx files, gzipped or not.
        split: ``"train"`` or ``"test"``.
        download: Use torchvision's downloader when files are missing (needs internet).

    Raises:
        DatasetError: The files are missing or corrupt, or a label is outside 0-9.
    """
    root = Path(root)
    if download:
        download_if_missing(root, split)
    images, labels = read_idx_split(root, split)
    if len(labels) and int(labels.max()) >= len(CLASS_NAMES):
        raise DatasetError(f"data.root: the {split} labels in {root} go beyond 0-9, Fashion-MNIST's classes; "
                           "allowed: labels 0 to 9")
    return FashionMNIST(images=images, labels=labels)
