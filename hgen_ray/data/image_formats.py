"""The three on-disk layouts of an image-classification dataset, read into float tensors.

- ``idx``: LeCun's idx files, as Fashion-MNIST ships (:mod:`hgen_ray.data.idx_files`).
- ``image_folder``: ``root/<split>/<class>/*.png|jpg|jpeg``, torchvision's ImageFolder layout;
  the sorted folder names are the classes.
- ``npz``: ``root/<split>.npz`` with arrays ``images`` (``[N, H, W]`` or ``[N, H, W, C]``, uint8
  0-255 or float 0-1), ``labels`` (integers) and optionally ``classes`` (strings).

Every reader returns float ``[N, C, H, W]`` in ``[0, 1]`` with C = 1 (grey) or 3 (RGB). With an
``image_size`` every image is resized to that square side as it is read, so a folder of large photos
never sits in memory at full size; without, every image of the split must already share one size.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from PIL import Image

from hgen_ray.data.dataset_error import DatasetError
from hgen_ray.data.idx_files import read_idx_split

__all__ = ["FORMATS", "IMAGE_SUFFIXES", "ImageSplit", "read_split", "resize_square"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_GREY_MODES = ("1", "L")  # PIL modes read as one channel; any other mode is read as RGB
_SIZES_SHOWN = 4  # sizes quoted when a split mixes them


@dataclass(frozen=True)
class ImageSplit:
    """One split: float ``images`` [N, C, H, W] in [0, 1], int64 ``labels`` [N], and any class names stored."""

    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...] | None = None  # folder names, or an npz's ``classes``; None when not stored


def resize_square(images: torch.Tensor, side: int | None) -> torch.Tensor:
    """Resize a float batch to ``side`` x ``side`` (bilinear, antialiased); None or the same size leaves it untouched.

    Leaving same-size batches alone keeps stored-size data bit-exact, whatever ``data.image_size`` says.
    """
    if side is None or tuple(images.shape[-2:]) == (side, side):
        return images
    return F.interpolate(images, size=(side, side), mode="bilinear", antialias=True, align_corners=False)


def _unit_float(images: torch.Tensor, where: Path) -> torch.Tensor:
    """uint8 (or any integers in 0-255) divided by 255; floats must already lie in [0, 1]."""
    if images.dtype.is_floating_point:
        if not bool(((images >= 0) & (images <= 1)).all()):
            raise DatasetError(f"data.root: {where} has float pixels outside [0, 1]; allowed: uint8 0-255 or "
                               "float 0-1")
        return images.float()
    if images.dtype != torch.uint8 and len(images) and not 0 <= int(images.min()) <= int(images.max()) <= 255:
        raise DatasetError(f"data.root: {where} has integer pixels outside 0-255; allowed: uint8 0-255 or float 0-1")
    return images.float().div(255)


def read_idx(root: Path, split: str, image_size: int | None) -> ImageSplit:
    images, labels = read_idx_split(root, split)
    return ImageSplit(images=resize_square(_unit_float(images.unsqueeze(1), root), image_size), labels=labels)


def _npz_arrays(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DatasetError(f"data.root: {path} not found; format npz needs train.npz and test.npz in data.root "
                           "(or the env var HGEN_DATA)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DatasetError(f"data.root: {path} is corrupt or not an npz archive ({error})") from None


def _npz_images(arrays: dict[str, np.ndarray], path: Path) -> torch.Tensor:
    images = arrays.get("images")
    if images is None or images.dtype.kind not in "uif":
        raise DatasetError(f"data.root: {path} needs a numeric array `images`; allowed: [N, H, W] or [N, H, W, C], "
                           "uint8 0-255 or float 0-1")
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4 and images.shape[-1] in (1, 3):
        images = images.transpose(0, 3, 1, 2)
    else:
        raise DatasetError(f"data.root: {path} has `images` of shape {list(images.shape)}; allowed: [N, H, W] or "
                           "[N, H, W, C] with C 1 or 3")
    return _unit_float(torch.from_numpy(np.ascontiguousarray(images)), path)


def _npz_labels(arrays: dict[str, np.ndarray], path: Path, count: int) -> torch.Tensor:
    labels = arrays.get("labels")
    if labels is None or labels.dtype.kind not in "ui" or labels.shape != (count,):
        shape = None if labels is None else list(labels.shape)
        raise DatasetError(f"data.root: {path} needs an integer array `labels` with one entry per image ({count}), "
                           f"got shape {shape}")
    return torch.from_numpy(labels.astype(np.int64))


def _npz_classes(arrays: dict[str, np.ndarray], path: Path) -> tuple[str, ...] | None:
    classes = arrays.get("classes")
    if classes is None:
        return None
    if classes.dtype.kind != "U" or classes.ndim != 1:
        raise DatasetError(f"data.root: {path} has `classes` of type {classes.dtype}; allowed: a 1-D string array")
    return tuple(str(name) for name in classes)


def read_npz(root: Path, split: str, image_size: int | None) -> ImageSplit:
    path = root / f"{split}.npz"
    arrays = _npz_arrays(path)
    images = _npz_images(arrays, path)
    return ImageSplit(images=resize_square(images, image_size), labels=_npz_labels(arrays, path, len(images)),
                      class_names=_npz_classes(arrays, path))


def _class_folders(split_dir: Path) -> list[Path]:
    if not split_dir.is_dir():
        raise DatasetError(f"data.root: {split_dir} not found; format image_folder needs data.root/train/<class>/ "
                           "and data.root/test/<class>/ folders of .png, .jpg or .jpeg images")
    folders = sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(folders) < 2:
        raise DatasetError(f"data.root: {split_dir} has {len(folders)} class folder(s); allowed: at least 2, one "
                           "folder of images per class")
    return folders


def _image_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DatasetError(f"data.root: class folder {folder} holds no images; allowed: .png, .jpg or .jpeg files "
                           "in every class folder")
    return files


def _open(path: Path) -> Image.Image:
    try:
        return Image.open(path)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise DatasetError(f"data.root: cannot read image {path} ({error})") from None


def _mode(path: Path) -> str:
    with _open(path) as image:
        return image.mode


def _decode(path: Path, mode: str, image_size: int | None) -> torch.Tensor:
    """uint8 ``[C, H, W]`` as stored, or float ``[C, side, side]`` when resized."""
    with _open(path) as image:
        try:
            pixels = TF.pil_to_tensor(image.convert(mode))
        except (OSError, ValueError, SyntaxError) as error:
            raise DatasetError(f"data.root: cannot decode image {path} ({error})") from None
    if image_size is None:
        return pixels
    return resize_square(pixels[None].float().div(255), image_size)[0]


def _stack(images: list[torch.Tensor], image_size: int | None, split_dir: Path) -> torch.Tensor:
    sizes = sorted({tuple(image.shape[-2:]) for image in images})
    if len(sizes) > 1:
        shown = ", ".join(f"{h}x{w}" for h, w in sizes[:_SIZES_SHOWN]) + (", ..." if len(sizes) > _SIZES_SHOWN else "")
        raise DatasetError(f"data.image_size: the images under {split_dir} have {len(sizes)} sizes ({shown}); "
                           "allowed: set data.image_size (16 to 4096) to resize every image to that square side")
    stacked = torch.stack(images)
    return stacked.float().div(255) if image_size is None else stacked


def read_image_folder(root: Path, split: str, image_size: int | None) -> ImageSplit:
    """Grey images (PIL mode ``L``) give one channel; one colour image makes the whole split RGB."""
    folders = _class_folders(root / split)
    files = [(path, label) for label, folder in enumerate(folders) for path in _image_files(folder)]
    mode = "L" if all(_mode(path) in _GREY_MODES for path, _ in files) else "RGB"
    images = [_decode(path, mode, image_size) for path, _ in files]
    return ImageSplit(images=_stack(images, image_size, root / split),
                      labels=torch.tensor([label for _, label in files], dtype=torch.int64),
                      class_names=tuple(folder.name for folder in folders))


_READERS: dict[str, Callable[[Path, str, int | None], ImageSplit]] = {
    "idx": read_idx,
    "image_folder": read_image_folder,
    "npz": read_npz,
}
FORMATS: tuple[str, ...] = tuple(_READERS)


def read_split(root: Path, data_format: str, split: str, image_size: int | None = None) -> ImageSplit:
    """Read the ``train`` or ``test`` split of the dataset in ``root``.

    Args:
        root: The dataset folder (``data.root``, or the env var HGEN_DATA).
        data_format: ``idx``, ``image_folder`` or ``npz`` (``data.format``).
        split: ``"train"`` or ``"test"``.
        image_size: Square side every image is resized to; None keeps the stored size.

    Raises:
        DatasetError: The format is unknown, or the files are missing, corrupt or inconsistent.
    """
    reader = _READERS.get(data_format)
    if reader is None:
        raise DatasetError(f"data.format: {data_format!r} is not one of {', '.join(FORMATS)}")
    return reader(root, split, image_size)
