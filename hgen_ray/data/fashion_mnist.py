"""Fashion-MNIST from its four original idx .gz files.

The Debian package ``dataset-fashion-mnist`` ships them under
``/usr/share/datasets/fashion-mnist``; ``make data`` unpacks that package into
``data/fashion-mnist`` without root. Zalando's dataset is MIT licensed.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["CLASS_NAMES", "DatasetError", "FashionMNIST", "load_fashion_mnist", "resolve_data_root"]

CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000),
}
_IMAGES_MAGIC = 2051  # idx3, unsigned byte (LeCun's MNIST file format)
_LABELS_MAGIC = 2049  # idx1, unsigned byte
_HOW_TO_GET = "run `make data` (unpacks the Debian package dataset-fashion-mnist) or set HGEN_DATA"


class DatasetError(RuntimeError):
    """The dataset is missing or corrupt; the message says how to fix it."""


@dataclass(frozen=True)
class FashionMNIST:
    """One split: ``images`` uint8 [N, 28, 28] and ``labels`` int64 [N]."""

    images: torch.Tensor
    labels: torch.Tensor


def resolve_data_root(configured: str) -> Path:
    """The env var ``HGEN_DATA`` wins over ``data.root`` from the config."""
    return Path(os.environ.get("HGEN_DATA") or configured)


def _read_gz(path: Path) -> bytes:
    if not path.is_file():
        raise DatasetError(f"Fashion-MNIST file {path} not found; {_HOW_TO_GET}")
    try:
        with gzip.open(path, "rb") as handle:
            return handle.read()
    except (OSError, EOFError, zlib.error) as error:
        raise DatasetError(f"Fashion-MNIST file {path} is corrupt ({error}); {_HOW_TO_GET}") from None


def _parse_idx(raw: bytes, path: Path, magic: int, count: int) -> torch.Tensor:
    dims = 3 if magic == _IMAGES_MAGIC else 1
    header = 4 + 4 * dims
    if len(raw) < header or struct.unpack(">I", raw[:4])[0] != magic:
        raise DatasetError(f"{path} has the wrong idx magic number (expected {magic}); {_HOW_TO_GET}")
    shape = struct.unpack(f">{dims}I", raw[4:header])
    expected = header + int(torch.tensor(shape).prod())
    if shape[0] != count or len(raw) != expected:
        raise DatasetError(f"{path} is truncated or has the wrong shape {shape}; {_HOW_TO_GET}")
    return torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8).reshape(shape)


def _download(root: Path) -> None:
    from torchvision.datasets import FashionMNIST as TorchvisionFashionMNIST

    raw = root / "_torchvision"
    TorchvisionFashionMNIST(str(raw), train=True, download=True)
    TorchvisionFashionMNIST(str(raw), train=False, download=True)
    for name in (n for files in _FILES.values() for n in files[:2]):
        (root / name).write_bytes((raw / "FashionMNIST" / "raw" / name).read_bytes())


def load_fashion_mnist(root: str | Path, split: str, download: bool = False) -> FashionMNIST:
    """Load the ``train`` or ``test`` split.

    Args:
        root: Folder holding the four idx .gz files.
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000 images).
        download: Use torchvision's downloader when files are missing (needs internet).

    Raises:
        DatasetError: The files are missing or corrupt.
    """
    root = Path(root)
    images_name, labels_name, count = _FILES[split]
    if download and not (root / images_name).is_file():
        root.mkdir(parents=True, exist_ok=True)
        _download(root)
    images = _parse_idx(_read_gz(root / images_name), root / images_name, _IMAGES_MAGIC, count)
    labels = _parse_idx(_read_gz(root / labels_name), root / labels_name, _LABELS_MAGIC, count)
    if int(labels.max()) >= len(CLASS_NAMES):
        raise DatasetError(f"{root / labels_name} has labels outside 0-9; {_HOW_TO_GET}")
    return FashionMNIST(images=images, labels=labels.long())
