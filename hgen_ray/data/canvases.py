"""Detection canvases composed from real Fashion-MNIST items, with exact boxes.

Each canvas is a ``size`` x ``size`` black image holding 1-4 items. Every item is
cropped to its own pixels, scaled to a random side (small ones included), and
placed at a random position that does not overlap an earlier item by more than
``MAX_OVERLAP_IOU``. Boxes are read off the pixels actually drawn, so they are
exact. Items for train canvases come from the train split only, for test
canvases from the test split only. Generation is deterministic from the seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["Canvases", "SMALL_ITEM_SIDE_PX", "compose_canvases"]

ITEM_SIDE_PX = (10, 40)  # range of an item's longer side on a 96 px canvas
SMALL_ITEM_SIDE_PX = (10, 14)  # the "small_size" challenge: items at the small end
MAX_OVERLAP_IOU = 0.1  # "no heavy overlap" between items on one canvas
PLACEMENT_TRIES = 50  # attempts to place an item before the canvas keeps fewer
INK_THRESHOLD = 0  # a pixel above this belongs to the item


@dataclass(frozen=True)
class Canvases:
    images: torch.Tensor  # uint8 [N, size, size]
    boxes: list[torch.Tensor]  # per canvas, float [k, 4] as (x1, y1, x2, y2), pixel edges, exclusive max
    labels: list[torch.Tensor]  # per canvas, int64 [k]
    sources: list[torch.Tensor]  # per canvas, the split indices of the items drawn


def _crop_to_ink(item: torch.Tensor) -> torch.Tensor:
    rows = torch.nonzero(item.amax(dim=1) > INK_THRESHOLD).flatten()
    cols = torch.nonzero(item.amax(dim=0) > INK_THRESHOLD).flatten()
    return item[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _scaled(item: torch.Tensor, side: int) -> torch.Tensor:
    """Scale so the longer side is ``side`` px, keeping the aspect ratio."""
    height, width = item.shape
    factor = side / max(height, width)
    size = (max(1, round(height * factor)), max(1, round(width * factor)))
    resized = F.interpolate(item[None, None].float(), size=size, mode="bilinear", antialias=True, align_corners=False)
    return resized[0, 0].round().clamp(0, 255).to(torch.uint8)


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    width = (min(a[2], b[2]) - max(a[0], b[0])).clamp(min=0)
    height = (min(a[3], b[3]) - max(a[1], b[1])).clamp(min=0)
    inter = float(width * height)
    union = float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])) - inter
    return inter / union if union > 0 else 0.0


def _ink_box(patch: torch.Tensor, top: int, left: int) -> torch.Tensor:
    rows = torch.nonzero(patch.amax(dim=1) > INK_THRESHOLD).flatten()
    cols = torch.nonzero(patch.amax(dim=0) > INK_THRESHOLD).flatten()
    return torch.tensor([left + cols[0], top + rows[0], left + cols[-1] + 1, top + rows[-1] + 1], dtype=torch.float32)


def compose_canvases(images: torch.Tensor, labels: torch.Tensor, count: int, seed: int, size: int = 96,
                     item_side: tuple[int, int] = ITEM_SIDE_PX, max_items: int = 4) -> Canvases:
    """Compose ``count`` canvases from items of one split.

    Args:
        images: uint8 ``[N, 28, 28]`` items of one split (train or test).
        labels: Their classes.
        count: Canvases to make.
        seed: Fixes every draw.
        size: Canvas side in pixels.
        item_side: Range of an item's longer side in pixels.
        max_items: Most items per canvas (at least 1).
    """
    gen = torch.Generator().manual_seed(seed)
    canvases = torch.zeros(count, size, size, dtype=torch.uint8)
    all_boxes, all_labels, all_sources = [], [], []
    for index in range(count):
        wanted = int(torch.randint(1, max_items + 1, (1,), generator=gen))
        boxes: list[torch.Tensor] = []
        classes, sources = [], []
        for _ in range(wanted):
            source = int(torch.randint(len(images), (1,), generator=gen))
            side = int(torch.randint(item_side[0], min(item_side[1], size) + 1, (1,), generator=gen))
            patch = _scaled(_crop_to_ink(images[source]), side)
            for _try in range(PLACEMENT_TRIES):
                top = int(torch.randint(0, size - patch.shape[0] + 1, (1,), generator=gen))
                left = int(torch.randint(0, size - patch.shape[1] + 1, (1,), generator=gen))
                box = _ink_box(patch, top, left)
                if all(_iou(box, other) <= MAX_OVERLAP_IOU for other in boxes):
                    region = canvases[index, top : top + patch.shape[0], left : left + patch.shape[1]]
                    torch.maximum(region, patch, out=region)  # items never hide each other's ink
                    boxes.append(box)
                    classes.append(int(labels[source]))
                    sources.append(source)
                    break
        all_boxes.append(torch.stack(boxes))
        all_labels.append(torch.tensor(classes, dtype=torch.int64))
        all_sources.append(torch.tensor(sources, dtype=torch.int64))
    return Canvases(canvases, all_boxes, all_labels, all_sources)
