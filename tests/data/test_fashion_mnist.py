from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import pytest
import torch

from hgen_ray.data.fashion_mnist import DatasetError, load_fashion_mnist, resolve_data_root

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "data" / "fashion-mnist"


def _copy_dataset(target: Path) -> Path:
    target.mkdir()
    for file in resolve_data_root(str(DATA)).glob("*.gz"):
        shutil.copy(file, target / file.name)
    return target


def test_real_splits_have_the_published_sizes_and_balanced_classes() -> None:
    root = resolve_data_root(str(DATA))
    train = load_fashion_mnist(root, "train")
    test = load_fashion_mnist(root, "test")
    assert train.images.shape == (60000, 28, 28) and train.images.dtype == torch.uint8
    assert test.images.shape == (10000, 28, 28)
    assert torch.bincount(train.labels).tolist() == [6000] * 10  # Fashion-MNIST is exactly balanced
    assert torch.bincount(test.labels).tolist() == [1000] * 10


def test_missing_files_say_how_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="make data"):
        load_fashion_mnist(tmp_path, "test")


def test_truncated_archive_is_reported(tmp_path: Path) -> None:
    root = _copy_dataset(tmp_path / "fm")
    archive = root / "t10k-images-idx3-ubyte.gz"
    archive.write_bytes(archive.read_bytes()[:5000])
    with pytest.raises(DatasetError, match="corrupt"):
        load_fashion_mnist(root, "test")


def test_wrong_magic_number_is_reported(tmp_path: Path) -> None:
    root = _copy_dataset(tmp_path / "fm")
    labels = root / "t10k-labels-idx1-ubyte.gz"
    raw = gzip.decompress(labels.read_bytes())
    labels.write_bytes(gzip.compress(struct.pack(">I", 9999) + raw[4:]))
    with pytest.raises(DatasetError, match="wrong idx magic number"):
        load_fashion_mnist(root, "test")


def test_env_var_overrides_the_configured_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HGEN_DATA", str(tmp_path))
    assert resolve_data_root("data/fashion-mnist") == tmp_path
    monkeypatch.delenv("HGEN_DATA")
    assert resolve_data_root("data/fashion-mnist") == Path("data/fashion-mnist")
