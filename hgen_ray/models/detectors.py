"""The two detectors behind one small interface: build, loss, detect, train, cache.

H-YOLO and H-Faster-RCNN differ in their heads and human mechanisms, but base
training, fine-tuning after compression, the cache and plain inference are the
same steps; this module holds those, keyed by ``model.name``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

import hgen_ray
from hgen_ray.atomic_write import replaced_atomically
from hgen_ray.config import ExperimentConfig, config_hash
from hgen_ray.data.detection_splits import DetectionSet
from hgen_ray.detection_map import map50
from hgen_ray.models.h_faster_rcnn import (
    FRCNN_COMPRESSIBLE_LAYERS,
    HFasterRCNN,
    build_h_faster_rcnn,
    faster_rcnn_loss,
    rebuild_h_faster_rcnn,
)
from hgen_ray.models.h_yolo import YOLO_COMPRESSIBLE_LAYERS, HYolo, decode_cells, rebuild_h_yolo, yolo_loss

__all__ = ["DETECTOR_LAYERS", "TrainedDetector", "build_detector", "detect", "detection_loss", "detection_map50",
           "load_or_train_detector", "rebuild_detector", "train_detector"]

log = logging.getLogger(__name__)
DETECTOR_LAYERS: dict[str, dict[str, str]] = {"h_yolo": YOLO_COMPRESSIBLE_LAYERS,
                                              "h_faster_rcnn": FRCNN_COMPRESSIBLE_LAYERS}
INFERENCE_BATCH = 100
GRADIENT_CLIP_NORM = 10.0  # Faster R-CNN's early box-regression losses spike without it


def build_detector(name: str, canvas_side: int) -> nn.Module:
    return HYolo() if name == "h_yolo" else build_h_faster_rcnn(canvas_side)


def rebuild_detector(name: str, state_dict: dict[str, torch.Tensor], canvas_side: int) -> nn.Module:
    """A detector shaped like a (possibly compressed) state dict."""
    return rebuild_h_yolo(state_dict) if name == "h_yolo" else rebuild_h_faster_rcnn(state_dict, canvas_side)


def detection_loss(model: nn.Module, images: torch.Tensor, targets: list[dict[str, torch.Tensor]]) -> torch.Tensor:
    if isinstance(model, HFasterRCNN):
        return faster_rcnn_loss(model, images, targets)
    return yolo_loss(model(images), targets, images.shape[-1])


@torch.no_grad()
def detect(model: nn.Module, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    """Boxes, scores and labels (0-9) per image, no people involved."""
    model.eval()
    out: list[dict[str, torch.Tensor]] = []
    for start in range(0, len(images), INFERENCE_BATCH):
        batch = images[start : start + INFERENCE_BATCH]
        if isinstance(model, HFasterRCNN):
            out += model.detect(batch)
        else:
            out += decode_cells(model(batch), batch.shape[-1])
    return out


def detection_batches(data: DetectionSet, batch_size: int, seed: int):  # type: ignore[no-untyped-def]
    """Shuffled ``(images, targets)`` mini-batches, in an order fixed by ``seed``."""
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed)).tolist()
    targets = data.targets()
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        yield data.images[index], [targets[i] for i in index]


def train_detector(model: nn.Module, data: DetectionSet, *, epochs: int, batch_size: int, learning_rate: float,
                   seed: int, label: str = "train",
                   progress: Callable[[int, float], None] | None = None) -> float:
    """Adam with a one-cycle schedule; returns the last epoch's mean loss. ``epochs=0`` changes nothing."""
    if epochs == 0 or len(data) == 0:
        return float("nan")
    torch.manual_seed(seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    steps = epochs * -(-len(data) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=learning_rate, total_steps=steps)
    mean_loss = float("nan")
    for epoch in range(epochs):
        model.train()
        total, count = 0.0, 0
        for images, targets in detection_batches(data, batch_size, seed + epoch):
            optimizer.zero_grad(set_to_none=True)
            loss = detection_loss(model, images.to(device), targets)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), GRADIENT_CLIP_NORM)
            optimizer.step()
            schedule.step()
            total += loss.item() * len(images)
            count += len(images)
        mean_loss = total / count
        log.info("%s epoch %d/%d: loss %.4f", label, epoch + 1, epochs, mean_loss)
        if progress is not None:
            progress(epoch, mean_loss)
    model.to("cpu").eval()
    return mean_loss


@dataclass
class TrainedDetector:
    model: nn.Module
    val_map50: float  # clean validation mAP@0.5 of the base detector


def _cache_path(config: ExperimentConfig) -> Path:
    """Keyed by what shapes the weights: test and validation canvas counts do not, so they share a base."""
    detection = config.detection
    key = config_hash(config.model, detection.canvas_size, detection.max_items, detection.train_canvases,
                      config.data.validation_size, config.seed, hgen_ray.__version__)
    return Path(config.cache_dir) / f"base-{config.model.name}-{key}.pt"


def detection_map50(model: nn.Module, data: DetectionSet) -> float:
    """mAP@0.5 of the network alone on a set of canvases."""
    return map50(detect(model, data.images), data.targets())


def load_or_train_detector(config: ExperimentConfig, train: DetectionSet, val: DetectionSet) -> TrainedDetector:
    """The cached base detector for this config, or a freshly trained (and cached) one."""
    path = _cache_path(config)
    side = config.detection.canvas_size
    if path.is_file():
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            model = rebuild_detector(config.model.name, payload["state_dict"], side)
            return TrainedDetector(model, float(payload["val_map50"]))
        except Exception as error:  # an unreadable or foreign file: retrain rather than fail
            log.warning("ignoring unusable cached base detector %s (%s); retraining", path, error)
    torch.manual_seed(config.seed)
    model = build_detector(config.model.name, side)
    subset = train.subset(config.model.train_subset) if config.model.train_subset else train
    log.info("training the base %s on %d canvases", config.model.name, len(subset))
    train_detector(model, subset, epochs=config.model.epochs, batch_size=config.model.batch_size,
                   learning_rate=config.model.learning_rate, seed=config.seed, label="base")
    trained = TrainedDetector(model, detection_map50(model, val))
    with replaced_atomically(path) as temporary:
        torch.save({"state_dict": model.state_dict(), "val_map50": trained.val_map50}, temporary)
    log.info("trained base %s: clean val mAP@0.5 %.4f, cached at %s", config.model.name, trained.val_map50, path)
    return trained
