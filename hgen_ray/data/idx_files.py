"""LeCun's idx format (the MNIST family's files), gzipped or not, of any size.

A split is two files: ``<prefix>-images-idx3-ubyte`` (unsigned bytes,
``[N, H, W]``) and ``<prefix>-labels-idx1-ubyte`` (``[N]``), each optionally
with a ``.gz`` suffix. Fashion-MNIST ships in exactly this layout.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import torch

from hgen_ray.data.dataset_error import DatasetError

__all__ = ["IDX_FILES", "find_idx_file", "read_idx_split"]

IDX_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IMAGES_MAGIC = 2051  # idx3, unsigned byte
_LABELS_MAGIC = 2049  # idx1, unsigned byte
_HOW_TO_FIX = ("set data.root (or the env var HGEN_DATA) to the folder holding the four idx files, "
               "or run `make data` for Fashion-MNIST")


def find_idx_file(root: Path, name: str) -> Path | None:
    """The gzipped file if there is one, else the plain one, else ``None``."""
    for candidate in (root / f"{name}.gz", root / name):
        if candidate.is_file():
            return candidate
    return None


def _read(root: Path, name: str) -> tuple[bytes, Path]:
    path = find_idx_file(root, name)
    if path is None:
        raise DatasetError(f"data.root: idx file {root / name}[.gz] not found; {_HOW_TO_FIX}")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read(), path
        return path.read_bytes(), path
    except (OSError, EOFError, zlib.error) as error:
        raise DatasetError(f"data.root: idx file {path} is corrupt ({error}); {_HOW_TO_FIX}") from None


def _parse(raw: bytes, path: Path, magic: int) -> torch.Tensor:
    dims = 3 if magic == _IMAGES_MAGIC else 1
    header = 4 + 4 * dims
    if len(raw) < header or struct.unpack(">I", raw[:4])[0] != magic:
        raise DatasetError(f"data.root: {path} has the wrong idx magic number (expected {magic}); {_HOW_TO_FIX}")
    shape = struct.unpack(f">{dims}I", raw[4:header])
    if len(raw) != header + int(torch.tensor(shape).prod()):
        raise DatasetError(f"data.root: {path} is truncated or has the wrong shape {shape}; {_HOW_TO_FIX}")
    return torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8).reshape(shape)


def read_idx_split(root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Read one split's images (uint8 ``[N, H, W]``) and labels (int64 ``[N]``).

    Args:
        root: Folder holding the idx files.
        split: ``"train"`` or ``"test"``.

    Raises:
        DatasetError: A file is missing or corrupt, or the two files disagree on N.
    """
    images_name, labels_name = IDX_FILES[split]
    images_raw, images_path = _read(root, images_name)
    labels_raw, labels_path = _read(root, labels_name)
    images = _parse(images_raw, images_path, _IMAGES_MAGIC)
    labels = _parse(labels_raw, labels_path, _LABELS_MAGIC)
    if len(images) != len(labels):
        raise DatasetError(f"data.root: {images_path} holds {len(images)} images but {labels_path} "
                           f"{len(labels)} labels; allowed: one label per image")
    return images, labels.long()
