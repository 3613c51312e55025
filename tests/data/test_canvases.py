"""Detection canvases (groundwork for H-YOLO and H-Faster-RCNN)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hgen_ray.data.canvases import MAX_OVERLAP_IOU, SMALL_ITEM_SIDE_PX, _iou, compose_canvases
from hgen_ray.data.fashion_mnist import load_fashion_mnist, resolve_data_root

DATA = Path(__file__).resolve().parents[2] / "data" / "fashion-mnist"


@pytest.fixture(scope="module")
def items():  # type: ignore[no-untyped-def]
    test = load_fashion_mnist(resolve_data_root(str(DATA)), "test")
    return test.images[:500], test.labels[:500]


def test_boxes_are_exact_tight_and_cover_all_ink(items) -> None:  # type: ignore[no-untyped-def]
    canvases = compose_canvases(*items, count=40, seed=3)
    for image, boxes in zip(canvases.images, canvases.boxes):
        covered = torch.zeros_like(image, dtype=torch.bool)
        for x1, y1, x2, y2 in boxes.long().tolist():
            covered[y1:y2, x1:x2] = True
            inside = image[y1:y2, x1:x2]
            # tight: ink touches every edge of the box
            assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
        assert not (image[~covered] > 0).any(), "ink outside every box"


def test_canvases_hold_one_to_four_items_without_heavy_overlap(items) -> None:  # type: ignore[no-untyped-def]
    canvases = compose_canvases(*items, count=60, seed=4)
    counts = [len(b) for b in canvases.boxes]
    assert min(counts) >= 1 and max(counts) <= 4 and len(set(counts)) >= 3
    for boxes in canvases.boxes:
        for i in range(len(boxes)):
            for j in range(i):
                assert _iou(boxes[i], boxes[j]) <= MAX_OVERLAP_IOU


def test_labels_come_from_the_items_drawn(items) -> None:  # type: ignore[no-untyped-def]
    images, labels = items
    canvases = compose_canvases(images, labels, count=20, seed=5)
    for drawn, classes in zip(canvases.sources, canvases.labels):
        assert torch.equal(labels[drawn], classes)


def test_generation_is_deterministic_and_seeded(items) -> None:  # type: ignore[no-untyped-def]
    a = compose_canvases(*items, count=10, seed=7)
    b = compose_canvases(*items, count=10, seed=7)
    c = compose_canvases(*items, count=10, seed=8)
    assert torch.equal(a.images, b.images) and all(torch.equal(x, y) for x, y in zip(a.boxes, b.boxes))
    assert not torch.equal(a.images, c.images)


def test_small_items_stay_at_the_small_end(items) -> None:  # type: ignore[no-untyped-def]
    canvases = compose_canvases(*items, count=30, seed=9, item_side=SMALL_ITEM_SIDE_PX)
    sides = torch.cat([torch.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) for b in canvases.boxes])
    assert sides.max() <= SMALL_ITEM_SIDE_PX[1] and sides.min() >= 4
