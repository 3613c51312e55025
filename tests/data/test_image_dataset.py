"""Users' own data: idx of any size, ImageFolder and npz load into splits; bad data is refused naming the key."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from hgen_ray.cli import main
from hgen_ray.config import ConfigError, DataConfig, ExperimentConfig, as_dict, build_dataclass
from hgen_ray.data.dataset_error import DatasetError
from hgen_ray.data.fashion_mnist import CLASS_NAMES
from hgen_ray.data.image_dataset import load_image_dataset
from hgen_ray.data.splits import Splits, load_splits
from tests.datasets import FASHION_MNIST, FOLDER_NAMES, read_fashion_mnist, write_image_folder, write_idx_subset, \
    write_npz

DIGITS = tuple(str(label) for label in range(10))


@pytest.fixture(scope="module")
def idx_subset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_idx_subset(tmp_path_factory.mktemp("idx"), train=3000, test=600)


@pytest.fixture(scope="module")
def rgb_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_image_folder(tmp_path_factory.mktemp("folder"))  # 40 + 10 per class, 32 x 32 RGB


def _folder_config(root: Path, **changes: object) -> DataConfig:
    config = DataConfig(root=str(root), format="image_folder", validation_size=100, validation_per_category=50,
                        test_per_category=50)
    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]


def test_an_idx_cut_of_any_size_loads_with_digit_names(idx_subset: Path) -> None:
    config = DataConfig(root=str(idx_subset), validation_size=500, test_per_category=1000)
    splits = load_splits(config, seed=0, with_test=True)
    assert splits.train_images.shape == (2500, 1, 28, 28) and splits.val_images.shape == (500, 1, 28, 28)
    assert splits.test_images is not None and splits.test_images.shape == (600, 1, 28, 28)  # clipped, not refused
    assert splits.class_names == DIGITS and splits.dataset == "custom"
    assert 0.0 <= float(splits.train_images.min()) and float(splits.train_images.max()) <= 1.0
    _, labels = read_fashion_mnist("test")
    assert sorted(splits.test_labels.tolist()) == sorted(labels[:600].tolist())  # every test image, shuffled


def test_plain_idx_files_read_like_gzipped_ones(idx_subset: Path, tmp_path: Path) -> None:
    plain = write_idx_subset(tmp_path / "plain", train=3000, test=600, gzipped=False)
    gzipped, unzipped = (load_image_dataset(DataConfig(root=str(root)), with_test=True) for root in (idx_subset, plain))
    assert torch.equal(gzipped.train.images, unzipped.train.images)
    assert torch.equal(gzipped.test.images, unzipped.test.images)


def test_fashion_mnist_is_recognised_by_content_not_by_folder_name(tmp_path: Path) -> None:
    renamed = tmp_path / "my-data"
    shutil.copytree(FASHION_MNIST, renamed)
    dataset = load_image_dataset(DataConfig(root=str(renamed)))
    assert dataset.class_names == CLASS_NAMES and dataset.name == "fashion-mnist"
    assert dataset.test is None  # the test split is read only when asked for


def test_configured_class_names_win_and_must_fit(idx_subset: Path) -> None:
    named = tuple(f"class {label}" for label in range(10))
    assert load_image_dataset(DataConfig(root=str(idx_subset), classes=named)).class_names == named
    with pytest.raises(DatasetError, match=r"data\.classes: 3 class names \(from data\.classes\) for 10 classes"):
        load_image_dataset(DataConfig(root=str(idx_subset), classes=("a", "b", "c")))
    with pytest.raises(DatasetError, match=r"data\.classes: the class names \(from data\.classes\) repeat"):
        load_image_dataset(DataConfig(root=str(idx_subset), classes=("a",) * 10))


def test_an_rgb_image_folder_loads_with_its_folder_names_as_classes(rgb_folder: Path) -> None:
    splits = load_splits(_folder_config(rgb_folder), seed=1, with_test=True)
    assert splits.class_names == tuple(sorted(FOLDER_NAMES)) and splits.dataset == "custom"
    assert splits.train_images.shape == (300, 3, 32, 32) and splits.val_images.shape == (100, 3, 32, 32)
    assert splits.test_images is not None and splits.test_images.shape == (50, 3, 32, 32)
    assert torch.bincount(torch.cat([splits.train_labels, splits.val_labels])).tolist() == [40] * 10
    assert not torch.equal(splits.train_images[:, 0], splits.train_images[:, 1])  # really colour
    bags = load_image_dataset(_folder_config(rgb_folder)).train.labels == splits.class_names.index("bag")
    assert int(bags.sum()) == len(list((rgb_folder / "train" / "bag").glob("*.png")))


def test_an_image_folder_is_resized_to_data_image_size(rgb_folder: Path) -> None:
    dataset = load_image_dataset(_folder_config(rgb_folder, image_size=64), with_test=True)
    assert dataset.train.images.shape == (400, 3, 64, 64) and dataset.test.images.shape == (100, 3, 64, 64)
    assert 0.0 <= float(dataset.train.images.min()) and float(dataset.train.images.max()) <= 1.0


def test_grey_pngs_give_one_channel_and_one_colour_png_makes_the_split_rgb(tmp_path: Path) -> None:
    grey = write_image_folder(tmp_path / "grey", train_per_class=3, test_per_class=2, colour=False)
    assert load_image_dataset(_folder_config(grey)).train.images.shape == (30, 1, 32, 32)
    Image.new("RGB", (32, 32), (200, 30, 30)).save(grey / "train" / "bag" / "red.png")
    mixed = load_image_dataset(_folder_config(grey), with_test=True)
    assert mixed.train.images.shape == (31, 3, 32, 32)
    assert mixed.test.images.shape == (20, 3, 32, 32)  # grey test images widened to the train channels
    Image.new("RGB", (32, 32), (200, 30, 30)).save(grey / "test" / "bag" / "red.png")
    (grey / "train" / "bag" / "red.png").unlink()
    with pytest.raises(DatasetError, match="data.root: the test images are colour but the train images are grey"):
        load_image_dataset(_folder_config(grey), with_test=True)


def test_npz_loads_with_its_classes_and_channels_last_rgb(tmp_path: Path) -> None:
    names = tuple(f"kind {label}" for label in range(10))
    grey = write_npz(tmp_path / "grey", train=1000, test=200, classes=names)
    splits = load_splits(DataConfig(root=str(grey), format="npz", validation_size=100), seed=0, with_test=True)
    assert splits.class_names == names and splits.train_images.shape == (900, 1, 28, 28)
    assert splits.test_images is not None and splits.test_images.shape == (200, 1, 28, 28)
    rgb = tmp_path / "rgb"
    rgb.mkdir()
    for split, count in (("train", 300), ("test", 60)):
        images, labels = read_fashion_mnist(split)
        colour = np.repeat(images[:count, :, :, None], 3, axis=3).astype(np.float32) / 255 * [1.0, 0.5, 0.25]
        np.savez(rgb / f"{split}.npz", images=colour, labels=labels[:count].astype(np.int64))
    dataset = load_image_dataset(DataConfig(root=str(rgb), format="npz", image_size=32), with_test=True)
    assert dataset.train.images.shape == (300, 3, 32, 32) and dataset.class_names == DIGITS
    assert dataset.train.images.dtype == torch.float32


def test_splits_built_by_hand_describe_fashion_mnist_and_replace_keeps_the_names() -> None:
    images, labels = torch.zeros(4, 1, 28, 28), torch.zeros(4, dtype=torch.int64)
    splits = Splits(images, labels, images, labels)
    assert splits.class_names == CLASS_NAMES and splits.dataset == "fashion-mnist"
    custom = dataclasses.replace(splits, class_names=("a", "b"), dataset="custom")
    assert custom.without_test().class_names == ("a", "b") and custom.without_test().dataset == "custom"


def _one_class_folder(root: Path) -> Path:
    for split in ("train", "test"):
        (root / split / "only").mkdir(parents=True)
        Image.new("L", (32, 32)).save(root / split / "only" / "0.png")
    return root


def _mixed_sizes(root: Path) -> Path:
    write_image_folder(root, train_per_class=2, test_per_class=1)
    Image.new("RGB", (40, 40)).save(root / "train" / "bag" / "big.png")
    return root


def _empty_class(root: Path) -> Path:
    write_image_folder(root, train_per_class=2, test_per_class=1)
    (root / "train" / "zebra").mkdir()
    (root / "train" / "zebra" / "notes.txt").write_text("no pictures here")
    return root


@pytest.mark.parametrize(
    ("make", "changes", "message"),
    [
        (_one_class_folder, {}, r"data\.root: .*train has 1 class folder\(s\); allowed: at least 2"),
        (_empty_class, {}, r"data\.root: class folder .*zebra holds no images"),
        (_mixed_sizes, {}, r"data\.image_size: the images under .*train have 2 sizes \(32x32, 40x40\)"),
        (lambda root: root, {}, r"data\.root: .*train not found; format image_folder needs"),
        (lambda root: write_image_folder(root, 1, 1), {"format": "tiff"}, r"data\.format: 'tiff' is not one of idx"),
        (lambda root: write_image_folder(root, 1, 1), {"image_size": 8}, r"data\.image_size: 8 px .* allowed: null"),
        (lambda root: write_image_folder(root, 1, 1), {"download": True}, r"data\.download: only format idx"),
        (lambda root: write_image_folder(root, 1, 1), {"classes": ("a", "b")}, r"data\.classes: format image_folder"),
    ],
)
def test_bad_image_folders_are_refused_naming_the_key(tmp_path: Path, make: Callable[[Path], Path], changes: dict,
                                                      message: str) -> None:
    root = make(tmp_path / "data")
    with pytest.raises(DatasetError, match=message):
        load_splits(_folder_config(root, **changes), seed=0, with_test=True)


def test_mixed_sizes_load_once_data_image_size_is_set(tmp_path: Path) -> None:
    root = _mixed_sizes(tmp_path / "data")
    assert load_image_dataset(_folder_config(root, image_size=32)).train.images.shape == (21, 3, 32, 32)


def test_bad_idx_and_npz_data_are_refused_naming_the_key(idx_subset: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"data\.root: idx file .*train-images-idx3-ubyte\[\.gz\] not found"):
        load_image_dataset(DataConfig(root=str(tmp_path)))
    with pytest.raises(DatasetError, match=r"data\.root: .*train\.npz not found; format npz needs"):
        load_image_dataset(DataConfig(root=str(tmp_path), format="npz"))
    np.savez(tmp_path / "train.npz", images=np.zeros((5, 20, 20, 4), np.uint8), labels=np.zeros(5, np.int64))
    with pytest.raises(DatasetError, match=r"data\.root: .*train\.npz has `images` of shape \[5, 20, 20, 4\]"):
        load_image_dataset(DataConfig(root=str(tmp_path), format="npz"))
    np.savez(tmp_path / "train.npz", images=np.full((5, 20, 20), 2.0), labels=np.zeros(5, np.int64))
    with pytest.raises(DatasetError, match=r"data\.root: .*float pixels outside \[0, 1\]"):
        load_image_dataset(DataConfig(root=str(tmp_path), format="npz"))
    mismatched = write_idx_subset(tmp_path / "mismatched", train=300, test=60)
    shutil.copy(idx_subset / "train-labels-idx1-ubyte.gz", mismatched)
    with pytest.raises(DatasetError, match=r"holds 300 images but .* 3000 labels; allowed: one label per image"):
        load_image_dataset(DataConfig(root=str(mismatched)))


def test_a_validation_split_larger_than_the_train_set_allows_is_refused(tmp_path: Path) -> None:
    root = write_idx_subset(tmp_path / "small", train=1000, test=100)
    with pytest.raises(DatasetError, match=r"data\.validation_size: 5000 held out of the 1000 train .* at most 990"):
        load_splits(DataConfig(root=str(root)), seed=0)
    assert len(load_splits(DataConfig(root=str(root), validation_size=990), seed=0).train_labels) == 10


def test_the_new_keys_parse_round_trip_and_refuse_bad_values_in_one_line() -> None:
    data = build_dataclass(DataConfig, {"format": "npz", "image_size": 64, "classes": ["cat", "dog"]}, "data")
    assert data.format == "npz" and data.image_size == 64 and data.classes == ("cat", "dog")
    assert build_dataclass(DataConfig, yaml.safe_load(yaml.safe_dump(as_dict(data))), "data") == data
    assert build_dataclass(DataConfig, as_dict(DataConfig()), "data") == DataConfig()  # saved configs reload
    for bad, message in (({"format": "zip"}, "data.format: 'zip' is not one of idx, image_folder, npz"),
                         ({"image_size": 8}, r"data.image_size: 8 is out of range \[16, 4096\]"),
                         ({"image_size": 32.5}, "data.image_size: expected an integer"),
                         ({"classes": "cat, dog"}, "data.classes: expected a non-empty list of names"),
                         ({"classes": ["cat", 5]}, "data.classes: expected a non-empty list of names")):
        with pytest.raises(ConfigError, match=message):
            build_dataclass(ExperimentConfig, {"data": bad})


def test_the_cli_reports_a_bad_dataset_in_one_line_and_exits_2(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    root = _one_class_folder(tmp_path / "data")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"data": {"root": str(root), "format": "image_folder", "validation_size": 100,
                                               "validation_per_category": 50}}))
    assert main(["show-data", "--config", str(config), "--out", str(tmp_path / "grid.png")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "data.root:" in lines[0] and "at least 2" in lines[0]


def test_show_data_draws_an_rgb_image_folder(rgb_folder: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"data": {"root": str(rgb_folder), "format": "image_folder",
                                               "validation_size": 100, "validation_per_category": 50}}))
    assert main(["show-data", "--config", str(config), "--out", str(tmp_path / "grid.png")]) == 0
    assert Image.open(tmp_path / "grid.png").size[0] > 500
