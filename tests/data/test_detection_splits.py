"""Detection splits: cached canvases for train / validation / test and their 12 challenges."""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from hgen_ray.config import CHALLENGE_CATEGORIES, DataConfig, DetectionConfig, ExperimentConfig
from hgen_ray.data import detection_splits
from hgen_ray.data.canvases import SMALL_ITEM_SIDE_PX
from hgen_ray.data.detection_splits import (
    DetectionChallengeSet,
    DetectionSet,
    DetectionSplits,
    _cache_path,
    load_detection_splits,
)

REPO = Path(__file__).resolve().parents[2]
DETECTION = DetectionConfig(train_canvases=40, validation_canvases=20, test_canvases=30)
PIXELWISE = tuple(c for c in CHALLENGE_CATEGORIES if c not in ("small_size", "rotation", "occlusion"))


def _config(cache_dir: Path, seed: int = 0, detection: DetectionConfig = DETECTION) -> ExperimentConfig:
    data_root = os.environ.get("HGEN_DATA") or str(REPO / "data" / "fashion-mnist")
    return ExperimentConfig(seed=seed, cache_dir=str(cache_dir), detection=detection,
                            data=DataConfig(root=data_root, validation_size=1000, severity=3))


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> tuple[DetectionSplits, DetectionChallengeSet]:
    return load_detection_splits(_config(tmp_path_factory.mktemp("canvases")), "test")


def _same_set(a: DetectionSet, b: DetectionSet) -> bool:
    return (torch.equal(a.images, b.images) and len(a.boxes) == len(b.boxes)
            and all(torch.equal(x, y) for x, y in zip(a.boxes, b.boxes))
            and all(torch.equal(x, y) for x, y in zip(a.labels, b.labels)))


def _all_sets(result: tuple[DetectionSplits, DetectionChallengeSet]) -> dict[str, DetectionSet]:
    splits, challenges = result
    return {"train": splits.train, "val": splits.val, "test": splits.test, **challenges.sets}


def _assert_boxes_exact(images: torch.Tensor, boxes_per_canvas: list[torch.Tensor]) -> None:
    """All ink lies inside the union of the boxes, and each box is tight (ink on its four edges)."""
    for image, boxes in zip(images[:, 0], boxes_per_canvas):
        covered = torch.zeros_like(image, dtype=torch.bool)
        for x1, y1, x2, y2 in boxes.long().tolist():
            assert 0 <= x1 < x2 <= image.shape[-1] and 0 <= y1 < y2 <= image.shape[-2]
            covered[y1:y2, x1:x2] = True
            inside = image[y1:y2, x1:x2] > 0
            assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
        assert not (image[~covered] > 0).any(), "ink outside every box"


# 1. caching ------------------------------------------------------------------------------------------------------


def test_second_load_reads_the_cache_and_gives_identical_canvases(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    config = _config(tmp_path)
    first = load_detection_splits(config, "test")
    for part in ("search", "test"):
        path = _cache_path(config, part)
        assert path.is_file() and path.parent == tmp_path and path.name.startswith("canvases-")

    def no_compose(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("canvases composed again despite a valid cache")

    monkeypatch.setattr(detection_splits, "_compose", no_compose)
    second = load_detection_splits(config, "test")
    a, b = _all_sets(first), _all_sets(second)
    assert list(a) == list(b)
    for name in a:
        assert _same_set(a[name], b[name]), name
    assert second[1].severity == first[1].severity == 3


def test_a_different_seed_gives_different_canvases(tmp_path: Path) -> None:
    one, other = _config(tmp_path, seed=0), _config(tmp_path, seed=1)
    assert _cache_path(one, "search") != _cache_path(other, "search")
    a, _ = load_detection_splits(one, "test")
    b, _ = load_detection_splits(other, "test")
    for name in ("train", "val", "test"):
        x, y = getattr(a, name), getattr(b, name)
        assert len(x) == len(y)
        assert not torch.equal(x.images, y.images), name
    assert len(list(tmp_path.glob("canvases-*.pt"))) == 4  # two seeds, each a search part and a test part


def test_a_search_reads_no_test_image_and_composes_no_test_canvas(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    real_loader = detection_splits.load_fashion_mnist

    def train_file_only(root, split, download):  # type: ignore[no-untyped-def]
        assert split == "train", f"the {split} file was read while loading a search's canvases"
        return real_loader(root, split, download)

    monkeypatch.setattr(detection_splits, "load_fashion_mnist", train_file_only)
    config = _config(tmp_path)
    splits, challenges = load_detection_splits(config, "validation")
    assert splits.test is None and challenges.split == "validation"
    assert all(len(s) == DETECTION.validation_canvases for s in challenges.sets.values())
    assert not _cache_path(config, "test").exists()


def test_a_corrupt_cache_is_composed_over(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = _config(tmp_path)
    fresh = load_detection_splits(config, "test")
    path = _cache_path(config, "test")
    path.write_bytes(b"\x00not a torch file\xff" * 64)
    with caplog.at_level(logging.WARNING, logger=detection_splits.__name__):
        recomposed = load_detection_splits(config, "test")
    assert any("unusable canvas cache" in r.getMessage() for r in caplog.records)
    a, b = _all_sets(fresh), _all_sets(recomposed)
    for name in a:
        assert _same_set(a[name], b[name]), name
    # the garbage was replaced by a readable cache holding the same canvases
    payload = torch.load(path, map_location="cpu", weights_only=True)
    assert set(payload) == {"test", "small_size", "rotation"}
    assert torch.equal(payload["test"]["images"].float().div(255).unsqueeze(1), fresh[0].test.images)
    reread = load_detection_splits(config, "test")
    assert _same_set(reread[0].train, fresh[0].train)


# 2. counts and shared test boxes ---------------------------------------------------------------------------------


def test_every_split_and_category_has_the_configured_count(loaded) -> None:  # type: ignore[no-untyped-def]
    splits, challenges = loaded
    assert (len(splits.train), len(splits.val), len(splits.test)) == (40, 20, 30)
    assert tuple(challenges.sets) == ("clean", *CHALLENGE_CATEGORIES)
    for name, data in challenges.sets.items():
        assert len(data) == 30 and len(data.boxes) == 30 and len(data.labels) == 30, name
    for name, data in _all_sets(loaded).items():
        for boxes, labels in zip(data.boxes, data.labels):
            assert boxes.dtype == torch.float32 and boxes.shape[1] == 4, name
            assert labels.dtype == torch.int64 and len(labels) == len(boxes), name
            assert 1 <= len(boxes) <= DETECTION.max_items, name
            assert 0 <= int(labels.min()) and int(labels.max()) <= 9, name
        assert [t["boxes"] for t in data.targets()] == data.boxes and data.subset(5).images.shape[0] == 5


def test_test_categories_share_the_clean_boxes_except_small_size_and_rotation(loaded) -> None:  # type: ignore[no-untyped-def]
    splits, challenges = loaded
    clean = challenges.sets["clean"]
    assert _same_set(clean, splits.test)
    for name in CHALLENGE_CATEGORIES:
        data = challenges.sets[name]
        same = (all(torch.equal(x, y) for x, y in zip(data.boxes, clean.boxes))
                and all(torch.equal(x, y) for x, y in zip(data.labels, clean.labels)))
        if name in ("small_size", "rotation"):
            assert not same, f"{name} should be composed afresh"
        else:
            assert same, name


# 3. small_size ---------------------------------------------------------------------------------------------------


def test_small_size_items_stay_within_the_small_side_range(loaded) -> None:  # type: ignore[no-untyped-def]
    small = loaded[1].sets["small_size"]
    sides = torch.cat([torch.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) for b in small.boxes])
    # The longer side of an ink box is at most the drawn side (SMALL_ITEM_SIDE_PX[1]); its low end could in
    # principle lose a faint edge row to rounding, but on this deterministic draw it never does.
    assert int(sides.max()) <= SMALL_ITEM_SIDE_PX[1]
    assert int(sides.min()) >= SMALL_ITEM_SIDE_PX[0]
    clean = loaded[1].sets["clean"]
    clean_sides = torch.cat([torch.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) for b in clean.boxes])
    assert float(clean_sides.mean()) > float(sides.mean()) + 5  # clean items are clearly larger
    _assert_boxes_exact(small.images, small.boxes)


# 4. exact boxes --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["rotation", "clean", "train", "val"])
def test_boxes_are_exact_and_tight(loaded, name: str) -> None:  # type: ignore[no-untyped-def]
    data = _all_sets(loaded)[name]
    _assert_boxes_exact(data.images, data.boxes)


# 5. pixel-wise categories ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PIXELWISE)
def test_pixelwise_categories_change_pixels_not_boxes(loaded, name: str) -> None:  # type: ignore[no-untyped-def]
    clean, data = loaded[1].sets["clean"], loaded[1].sets[name]
    assert data.images.shape == clean.images.shape and data.images.dtype == torch.float32
    changed = (data.images != clean.images).flatten(1).any(dim=1)
    assert bool(changed.all()), f"{name} left {int((~changed).sum())} canvases untouched"
    assert data.boxes is clean.boxes and data.labels is clean.labels


def test_low_resolution_keeps_the_shape_and_loses_detail(loaded) -> None:  # type: ignore[no-untyped-def]
    clean, low = loaded[1].sets["clean"], loaded[1].sets["low_resolution"]
    assert low.images.shape == clean.images.shape == (30, 1, 96, 96)
    assert not torch.equal(low.images, clean.images)
    # squeezed to round(12 * 96 / 28) = 41 px and scaled back up (bilinear): the edges soften, so every
    # canvas loses total variation, and the ink mass stays about the same
    def variation(x: torch.Tensor) -> torch.Tensor:
        return (x.diff(dim=-1).abs().sum(dim=(1, 2, 3)) + x.diff(dim=-2).abs().sum(dim=(1, 2, 3)))

    assert bool((variation(low.images) < 0.9 * variation(clean.images)).all())
    mass_low, mass_clean = low.images.sum(dim=(1, 2, 3)), clean.images.sum(dim=(1, 2, 3))
    assert torch.allclose(mass_low, mass_clean, rtol=0.05)
    assert float(low.images.min()) >= 0 and float(low.images.max()) <= 1


def test_occlusion_puts_one_grey_square_over_a_box_on_every_canvas(loaded) -> None:  # type: ignore[no-untyped-def]
    clean, occluded = loaded[1].sets["clean"], loaded[1].sets["occlusion"]
    assert occluded.boxes is clean.boxes
    size = clean.images.shape[-1]
    for image, original, boxes in zip(occluded.images[:, 0], clean.images[:, 0], clean.boxes):
        grey = image == 0.5  # k / 255 is never exactly 0.5, so these pixels are the occluder
        assert grey.any()
        rows, cols = torch.nonzero(grey.any(dim=1)).flatten(), torch.nonzero(grey.any(dim=0)).flatten()
        top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        assert grey[top:bottom, left:right].all(), "the occluder is one solid rectangle"
        assert torch.equal(image[~grey], original[~grey]), "nothing outside the occluder changes"
        height, width = bottom - top, right - left
        # a square unless clipped by the canvas border
        assert height == width or bottom == size or right == size or top == 0 or left == 0
        # scaled to the item it covers: side = max(2, round(12 * longer_side / 28)) at severity 3
        expected_sides = {max(2, round(12 * float(max(b[2] - b[0], b[3] - b[1])) / 28)) for b in boxes}
        assert max(height, width) <= max(expected_sides)
        overlaps = [
            min(right, x2) > max(left, x1) and min(bottom, y2) > max(top, y1)
            for x1, y1, x2, y2 in boxes.tolist()
        ]
        assert any(overlaps), "the occluder must cover part of an item's box"


# 6. dtype, range and shape at a non-default canvas size -----------------------------------------------------------


def test_images_are_float_in_unit_range_at_a_custom_canvas_size(tmp_path: Path) -> None:
    detection = replace(DETECTION, canvas_size=64, train_canvases=12, validation_canvases=10, test_canvases=10)
    result = load_detection_splits(_config(tmp_path, detection=detection), "test")
    counts = {"train": 12, "val": 10}
    for name, data in _all_sets(result).items():
        assert data.images.dtype == torch.float32, name
        assert data.images.shape == (counts.get(name, 10), 1, 64, 64), name
        assert float(data.images.min()) >= 0.0 and float(data.images.max()) <= 1.0, name
        assert float(data.images.max()) > 0.0, name
        for boxes in data.boxes:
            assert float(boxes.min()) >= 0 and float(boxes[:, 2:].max()) <= 64, name
