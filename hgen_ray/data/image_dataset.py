"""A user's image-classification dataset: train (and test) read, checked against each other, and named.

Class names come from, in order: the folder names (``image_folder``); ``data.classes``; an npz's
``classes`` array; Fashion-MNIST's names when the train labels are Fashion-MNIST's (recognised by
content, whatever the folder is called); else the labels as digit strings ``"0"``, ``"1"``, ...

The train split decides the channels: grey test images are widened to RGB for an RGB train set
(as PIL's own grey-to-RGB conversion does), while colour test images for a grey train set are refused,
since the model never saw colour. Reading the test split is left to the caller's ``with_test``,
so that nothing about it (not even its channels) shapes a search.
"""

from __future__ import annotations

from dataclasses import dataclass

from hgen_ray.config import DataConfig
from hgen_ray.data.dataset_error import DatasetError
from hgen_ray.data.fashion_mnist import CLASS_NAMES, DATASET_NAME, download_if_missing, is_fashion_mnist, \
    resolve_data_root
from hgen_ray.data.image_formats import ImageSplit, read_split

__all__ = ["CUSTOM_DATASET", "MAX_SIDE_PX", "MIN_SIDE_PX", "ImageDataset", "load_image_dataset"]

CUSTOM_DATASET = "custom"
# The challenges' pixel sizes are set for 28 px and scale with the side; below 16 px an occluder or a
# blur kernel would cover most of the image.
MIN_SIDE_PX = 16
MAX_SIDE_PX = 4096


@dataclass(frozen=True)
class ImageDataset:
    """Both splits as read (test only when asked for), the class names, and what the data was recognised as."""

    train: ImageSplit
    test: ImageSplit | None
    class_names: tuple[str, ...]  # label i is class_names[i]
    name: str  # "fashion-mnist" when recognised by content, else "custom"


def _check_options(config: DataConfig) -> None:
    """What the config file's validation checks too, for a ``DataConfig`` built in code."""
    if config.image_size is not None and not MIN_SIDE_PX <= config.image_size <= MAX_SIDE_PX:
        raise DatasetError(f"data.image_size: {config.image_size} px is outside what the challenges support; "
                           f"allowed: null (keep the stored size) or {MIN_SIDE_PX} to {MAX_SIDE_PX}")
    if config.download and config.format != "idx":
        raise DatasetError(f"data.download: only format idx can download (it fetches Fashion-MNIST); allowed: "
                           f"false with data.format {config.format}")


def _check_side(split: ImageSplit) -> None:
    height, width = split.images.shape[-2:]
    if min(height, width) < MIN_SIDE_PX:
        raise DatasetError(f"data.image_size: the images are {height}x{width} px, smaller than the {MIN_SIDE_PX} px "
                           f"the challenges need; allowed: set data.image_size to {MIN_SIDE_PX} to {MAX_SIDE_PX}")


def _class_names(config: DataConfig, train: ImageSplit, fashion: bool) -> tuple[str, ...]:
    if config.format == "image_folder":
        if config.classes is not None:
            raise DatasetError("data.classes: format image_folder names the classes after its folders; allowed: "
                               "null (rename the folders instead)")
        assert train.class_names is not None  # the folder reader always names them
        return train.class_names
    count = int(train.labels.max()) + 1 if len(train.labels) else 0
    digits = tuple(str(label) for label in range(count))
    names = config.classes or train.class_names or (CLASS_NAMES if fashion else digits)
    source = "data.classes" if config.classes else "the npz `classes` array"  # the defaults always fit
    if len(names) != count:
        raise DatasetError(f"data.classes: {len(names)} class names (from {source}) for {count} classes (train "
                           f"labels 0 to {count - 1}); allowed: exactly {count} names, one per label")
    if len(set(names)) != len(names):
        raise DatasetError(f"data.classes: the class names (from {source}) repeat; allowed: {count} distinct names")
    return names


def _check_labels(split: ImageSplit, names: tuple[str, ...], which: str) -> None:
    if len(split.labels) and not 0 <= int(split.labels.min()) <= int(split.labels.max()) < len(names):
        raise DatasetError(f"data.root: the {which} labels run from {int(split.labels.min())} to "
                           f"{int(split.labels.max())}; allowed: 0 to {len(names) - 1}, one per class "
                           f"({', '.join(names)})")


def _matched_test(train: ImageSplit, test: ImageSplit) -> ImageSplit:
    """The test split in the train split's size and channels, or an error saying why it cannot be."""
    if train.class_names and test.class_names and train.class_names != test.class_names:
        raise DatasetError(f"data.root: the test classes ({', '.join(test.class_names)}) differ from the train "
                           f"classes ({', '.join(train.class_names)}); allowed: the same classes in both splits")
    if train.images.shape[-2:] != test.images.shape[-2:]:
        train_size, test_size = "x".join(map(str, train.images.shape[-2:])), "x".join(map(str, test.images.shape[-2:]))
        raise DatasetError(f"data.image_size: the train images are {train_size} but the test images {test_size}; "
                           f"allowed: set data.image_size ({MIN_SIDE_PX} to {MAX_SIDE_PX}) to resize both")
    train_channels, test_channels = train.images.shape[1], test.images.shape[1]
    if test_channels == train_channels:
        return test
    if test_channels == 1:
        return ImageSplit(test.images.expand(-1, train_channels, -1, -1).contiguous(), test.labels, test.class_names)
    raise DatasetError("data.root: the test images are colour but the train images are greyscale; allowed: the "
                       "same channels in both splits (make the test images greyscale too)")


def load_image_dataset(config: DataConfig, with_test: bool = False) -> ImageDataset:
    """Read ``data.root`` in ``data.format``: train always, test only ``with_test``.

    Raises:
        DatasetError: Its message names the ``data.*`` key to change and what is allowed.
    """
    _check_options(config)
    root = resolve_data_root(config.root)
    if config.download:
        download_if_missing(root, "train")
    train = read_split(root, config.format, "train", config.image_size)
    _check_side(train)
    fashion = is_fashion_mnist(train.labels)
    names = _class_names(config, train, fashion)
    _check_labels(train, names, "train")
    test = None
    if with_test:
        if config.download:
            download_if_missing(root, "test")
        test = _matched_test(train, read_split(root, config.format, "test", config.image_size))
        _check_labels(test, names, "test")
    return ImageDataset(train=train, test=test, class_names=names, name=DATASET_NAME if fashion else CUSTOM_DATASET)
