"""Small real datasets on disk, cut from Fashion-MNIST, in each format ``data.format`` reads.

Import as ``from tests.datasets import write_image_folder, write_idx_subset, write_npz`` (the suite
runs as ``python -m pytest tests`` from the repository root). The writers parse the idx files with
numpy themselves, so a bug in the package's readers cannot hide in the data it is tested on.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
FASHION_MNIST = REPO / "data" / "fashion-mnist"
IDX_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# Fashion-MNIST's classes as folder names (no "/"); sorted, they are not in label order, on purpose.
FOLDER_NAMES = ("tshirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                "ankle_boot")


def read_fashion_mnist(split: str, source: Path = FASHION_MNIST) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images ``[N, 28, 28]`` and labels ``[N]`` straight from the idx .gz files."""
    images_name, labels_name = IDX_NAMES[split]
    images = np.frombuffer(gzip.decompress((source / f"{images_name}.gz").read_bytes()), np.uint8, offset=16)
    labels = np.frombuffer(gzip.decompress((source / f"{labels_name}.gz").read_bytes()), np.uint8, offset=8)
    return images.reshape(-1, 28, 28), labels


def _idx_bytes(array: np.ndarray) -> bytes:
    magic = 2051 if array.ndim == 3 else 2049
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + np.ascontiguousarray(array, np.uint8).tobytes()


def write_idx_subset(target: Path, train: int, test: int, gzipped: bool = True,
                     source: Path = FASHION_MNIST) -> Path:
    """The first ``train`` and ``test`` images of Fashion-MNIST as four idx files in ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", train), ("test", test)):
        images, labels = read_fashion_mnist(split, source)
        for name, array in zip(IDX_NAMES[split], (images[:count], labels[:count])):
            raw = _idx_bytes(array)
            (target / f"{name}.gz" if gzipped else target / name).write_bytes(gzip.compress(raw) if gzipped else raw)
    return target


def _first_per_class(labels: np.ndarray, per_class: int) -> list[int]:
    return [int(i) for label in range(len(FOLDER_NAMES)) for i in np.flatnonzero(labels == label)[:per_class]]


def _as_picture(pixels: np.ndarray, side: int, tint: np.ndarray | None) -> Image.Image:
    """A 28 px item resized to ``side``; with a tint, an RGB picture of that colour, else grey."""
    grey = Image.fromarray(pixels).resize((side, side), Image.BILINEAR)
    if tint is None:
        return grey
    rgb = np.asarray(grey, np.float32)[..., None] * tint
    return Image.fromarray(rgb.round().astype(np.uint8), "RGB")


def write_image_folder(target: Path, train_per_class: int = 40, test_per_class: int = 10, side: int = 32,
                       colour: bool = True, source: Path = FASHION_MNIST) -> Path:
    """Fashion-MNIST items as PNGs in ImageFolder layout: ``target/<split>/<class>/<n>.png``.

    With ``colour`` each item is tinted a random colour (seeded), so the three channels differ.
    """
    tints = np.random.default_rng(0)
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        images, labels = read_fashion_mnist(split, source)
        for index in _first_per_class(labels, per_class):
            tint = tints.uniform(0.3, 1.0, 3).astype(np.float32) if colour else None
            folder = target / split / FOLDER_NAMES[labels[index]]
            folder.mkdir(parents=True, exist_ok=True)
            _as_picture(images[index], side, tint).save(folder / f"{index}.png")
    return target


def write_npz(target: Path, train: int, test: int, classes: tuple[str, ...] | None = None,
              source: Path = FASHION_MNIST) -> Path:
    """The first ``train`` and ``test`` images as ``train.npz`` / ``test.npz``: uint8 ``[N, 28, 28]``, labels."""
    target.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", train), ("test", test)):
        images, labels = read_fashion_mnist(split, source)
        arrays = {"images": images[:count], "labels": labels[:count].astype(np.int64)}
        if classes is not None:
            arrays["classes"] = np.array(classes)
        np.savez(target / f"{split}.npz", **arrays)
    return target
