"""Detection data: canvases for train / validation / test, and their 12 challenges.

Train canvases are composed from the train split's items, validation canvases
(which a search scores on, challenged with their own corruption seed) from the
held-out validation items, test canvases (read for the report) from the test split only
(DESIGN.md, "Fair comparisons"). Composition costs seconds, so the canvases
are cached in ``cache_dir`` by a hash of everything that shapes them, as
tensors only, and read back with ``weights_only=True``.

Challenges on canvases keep every box exact:

- Most categories corrupt the whole canvas (noise, blur, light, fog, JPEG...);
  the items stay where they were, so their boxes do not change.
- ``low_resolution`` squeezes by the same factor as on a 28 px item.
- ``small_size`` composes canvases whose items are all at the small end of the
  scale (:data:`SMALL_ITEM_SIDE_PX`).
- ``rotation`` rotates each item before it is placed; its box is read off the
  pixels actually drawn.
- ``occlusion`` puts the grey square over one item per canvas, scaled to it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision.transforms.v2.functional as TF

from hgen_ray.atomic_write import replaced_atomically
from hgen_ray.config import CHALLENGE_CATEGORIES, ExperimentConfig, config_hash
from hgen_ray.data.canvases import SMALL_ITEM_SIDE_PX, Canvases, compose_canvases
from hgen_ray.data.challenges import apply_challenge
from hgen_ray.data.fashion_mnist import load_fashion_mnist, resolve_data_root
from hgen_ray.data.splits import EVALUATED_CATEGORIES, corruption_seed
from hgen_ray.version import __version__

__all__ = ["DetectionChallengeSet", "DetectionData", "DetectionSet", "DetectionSplits", "build_detection_challenges",
           "load_detection_data", "load_detection_splits"]

log = logging.getLogger(__name__)
ITEM_SIDE_PX = 28  # Fashion-MNIST's side: the classification severity tables are set for it
_OCCLUSION_SIDE_PX = (8, 10, 12, 14, 16)  # as challenges.occlusion, on a 28 px item
_OCCLUDER_GREY = 0.5
_LOW_RESOLUTION_PX = (18, 14, 12, 10, 8)  # as challenges.low_resolution, on a 28 px item
_ROTATION_PAD_PX = 6  # 28 px rotated by up to 60 degrees spans at most 38.3 px
_SEED_STRIDE = 7919  # keeps the per-split and per-category canvas seeds apart


@dataclass(frozen=True)
class DetectionSet:
    """Float ``[N, 1, S, S]`` canvases in ``[0, 1]``, with per-canvas boxes (x1, y1, x2, y2) and labels."""

    images: torch.Tensor
    boxes: list[torch.Tensor]
    labels: list[torch.Tensor]

    def __len__(self) -> int:
        return len(self.images)

    def targets(self) -> list[dict[str, torch.Tensor]]:
        """Per canvas, the ``{"boxes", "labels"}`` dict torchvision and torchmetrics take."""
        return [{"boxes": b, "labels": c} for b, c in zip(self.boxes, self.labels)]

    def subset(self, count: int) -> DetectionSet:
        return DetectionSet(self.images[:count], self.boxes[:count], self.labels[:count])


@dataclass(frozen=True)
class DetectionSplits:
    train: DetectionSet
    val: DetectionSet
    test: DetectionSet | None  # clean test canvases (None in a search's data); test challenges come from them


@dataclass(frozen=True)
class DetectionChallengeSet:
    """Per category (``clean`` first), one split's canvases and their boxes."""

    sets: dict[str, DetectionSet]
    severity: int
    split: str  # validation | test


def _as_set(canvases: Canvases) -> DetectionSet:
    return DetectionSet(canvases.images.float().div(255).unsqueeze(1), canvases.boxes, canvases.labels)


def _cache_path(config: ExperimentConfig, part: str) -> Path:
    """Where one part's canvases are cached: ``search`` (train and validation) or ``test``."""
    key = config_hash(config.detection, config.data.validation_size, config.data.severity, config.seed,
                      __version__)
    return Path(config.cache_dir) / f"canvases-{key}-{part}.pt"


# Each part is composed from its own images and cached on its own, so a search never reads a test image.
_CANVAS_SEED_OFFSET = {"train": 0, "val": 1, "test": 2}
_COMPOSED_PREFIX = {"test": "", "val": "val_"}  # cache keys of the composed categories, per challenged split
_COMPOSED_SEED_OFFSET = {"test": 3, "val": 5}
_SPLIT_OF = {"val": "validation", "test": "test"}
_CACHED_SETS = {"search": ("train", "val", "val_small_size", "val_rotation"),
                "test": ("test", "small_size", "rotation")}


def _load_items(config: ExperimentConfig, part: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The items one part's canvases are made of: the train file for ``search``, the test file for ``test``."""
    root = resolve_data_root(config.data.root)
    if part == "test":
        test = load_fashion_mnist(root, "test", config.data.download)
        return {"test": (test.images, test.labels)}
    train = load_fashion_mnist(root, "train", config.data.download)
    order = torch.randperm(len(train.labels), generator=torch.Generator().manual_seed(config.seed))
    val_index, train_index = order[: config.data.validation_size], order[config.data.validation_size :]
    return {"train": (train.images[train_index], train.labels[train_index]),
            "val": (train.images[val_index], train.labels[val_index])}


def _compose(config: ExperimentConfig, items: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, Canvases]:
    detection, seed = config.detection, config.seed * _SEED_STRIDE
    counts = {"train": detection.train_canvases, "val": detection.validation_canvases, "test": detection.test_canvases}
    composed = {name: compose_canvases(*items[name], count=counts[name], seed=seed + _CANVAS_SEED_OFFSET[name],
                                       size=detection.canvas_size, max_items=detection.max_items)
                for name in items}
    for split in (s for s in ("test", "val") if s in items):  # the composed categories, for each challenged split
        images, labels = items[split]
        count, prefix, offset = counts[split], _COMPOSED_PREFIX[split], _COMPOSED_SEED_OFFSET[split]
        composed[f"{prefix}small_size"] = compose_canvases(images, labels, count, seed + offset, detection.canvas_size,
                                                           SMALL_ITEM_SIDE_PX, detection.max_items)
        # Pad before rotating so that no corner of an item is cut off by its 28 px frame.
        padded = torch.nn.functional.pad(images.float().div(255).unsqueeze(1), [_ROTATION_PAD_PX] * 4)
        rotated = apply_challenge(padded, "rotation", config.data.severity,
                                  corruption_seed(config.seed, _SPLIT_OF[split]))
        composed[f"{prefix}rotation"] = compose_canvases((rotated[:, 0] * 255).round().to(torch.uint8), labels, count,
                                                         seed + offset + 1, detection.canvas_size,
                                                         max_items=detection.max_items)
    return composed


def _to_payload(composed: dict[str, Canvases]) -> dict[str, dict[str, object]]:
    return {name: {"images": c.images, "boxes": c.boxes, "labels": c.labels} for name, c in composed.items()}


def _load_cached(path: Path, names: tuple[str, ...]) -> dict[str, DetectionSet] | None:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        sets = {name: DetectionSet(payload[name]["images"].float().div(255).unsqueeze(1), payload[name]["boxes"],
                                   payload[name]["labels"]) for name in names}
        if any(len(s.boxes) != len(s.images) or len(s.labels) != len(s.images) for s in sets.values()):
            raise ValueError("boxes and images disagree in count")
        return sets
    except Exception as error:  # unreadable, foreign or incomplete: compose again rather than fail
        log.warning("ignoring unusable canvas cache %s (%s); composing again", path, error)
        return None


def _canvas_sets(config: ExperimentConfig, part: str) -> dict[str, DetectionSet]:
    path = _cache_path(config, part)
    if path.is_file():
        cached = _load_cached(path, _CACHED_SETS[part])
        if cached is not None:
            return cached
    log.info("composing %s detection canvases (cached at %s)", part, path)
    composed = _compose(config, _load_items(config, part))
    with replaced_atomically(path) as temporary:
        torch.save(_to_payload(composed), temporary)
    return {name: _as_set(c) for name, c in composed.items()}


def load_detection_splits(config: ExperimentConfig, split: str) -> tuple[DetectionSplits, DetectionChallengeSet]:
    """Train and validation canvases, plus the 13 evaluated sets of ``split`` (validation or test).

    The test canvases are read (or composed from the test file) only for ``test``.
    """
    sets = _canvas_sets(config, "search")
    if split == "test":
        sets = {**sets, **_canvas_sets(config, "test")}
    splits = DetectionSplits(train=sets["train"], val=sets["val"], test=sets["test"] if split == "test" else None)
    return splits, build_detection_challenges(sets, config.data.severity, config.seed, split)


@dataclass(frozen=True)
class DetectionData:
    """What a detector's search or report reads: the canvases and one split's challenge sets."""

    splits: DetectionSplits
    challenges: DetectionChallengeSet


def load_detection_data(config: ExperimentConfig, split: str = "validation") -> DetectionData:
    """Canvases with one split's challenge sets: ``validation`` for a search, ``test`` for the report."""
    return DetectionData(*load_detection_splits(config, split))


def _low_resolution(images: torch.Tensor, severity: int) -> torch.Tensor:
    side = images.shape[-1]
    squeezed = max(4, round(_LOW_RESOLUTION_PX[severity - 1] * side / ITEM_SIDE_PX))
    small = TF.resize(images, [squeezed, squeezed], antialias=True)
    return TF.resize(small, [side, side], antialias=False).clamp(0, 1)


def _occlude_one_item(test: DetectionSet, severity: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    images = test.images.clone()
    for image, boxes in zip(images, test.boxes):
        x1, y1, x2, y2 = boxes[int(torch.randint(len(boxes), (1,), generator=gen))].tolist()
        side = max(2, round(_OCCLUSION_SIDE_PX[severity - 1] * max(x2 - x1, y2 - y1) / ITEM_SIDE_PX))
        cx = x1 + float(torch.rand(1, generator=gen)) * (x2 - x1)
        cy = y1 + float(torch.rand(1, generator=gen)) * (y2 - y1)
        top, left = max(0, round(cy - side / 2)), max(0, round(cx - side / 2))
        image[:, top : top + side, left : left + side] = _OCCLUDER_GREY
    return images


def build_detection_challenges(sets: dict[str, DetectionSet], severity: int, seed: int,
                               split: str) -> DetectionChallengeSet:
    """One split's clean canvases and the 12 challenge categories on them (corruption seed per split)."""
    canvases = "val" if split == "validation" else "test"
    clean, prefix, noise_seed = sets[canvases], _COMPOSED_PREFIX[canvases], corruption_seed(seed, split)
    out: dict[str, DetectionSet] = {}
    for category in EVALUATED_CATEGORIES:
        if category in ("small_size", "rotation"):
            out[category] = sets[prefix + category]
        elif category == "low_resolution":
            out[category] = DetectionSet(_low_resolution(clean.images, severity), clean.boxes, clean.labels)
        elif category == "occlusion":
            out[category] = DetectionSet(_occlude_one_item(clean, severity, noise_seed), clean.boxes, clean.labels)
        else:
            out[category] = DetectionSet(apply_challenge(clean.images, category, severity, noise_seed, item_side=ITEM_SIDE_PX), clean.boxes,
                                         clean.labels)
    assert tuple(out) == ("clean", *CHALLENGE_CATEGORIES)
    return DetectionChallengeSet(out, severity, split)
