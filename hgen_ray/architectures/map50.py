"""mAP@0.5, the detectors' accuracy measure, from torchmetrics.

torchmetrics' ``MeanAveragePrecision`` runs the COCO evaluation (pycocotools)
rather than a hand-written matcher, so figures are comparable with the
literature's. At one IoU threshold, 0.5, its ``map`` is PASCAL VOC's mAP@0.5
with COCO's 101-point interpolation.
"""

from __future__ import annotations

import torch
from torchmetrics.detection import MeanAveragePrecision

__all__ = ["IOU_THRESHOLD", "map50"]

IOU_THRESHOLD = 0.5


def map50(predictions: list[dict[str, torch.Tensor]], targets: list[dict[str, torch.Tensor]]) -> float:
    """mAP@0.5 over all classes; ``predictions`` hold boxes, scores, labels; ``targets`` boxes, labels."""
    metric = MeanAveragePrecision(iou_thresholds=[IOU_THRESHOLD], backend="pycocotools")
    metric.update(predictions, targets)
    return float(metric.compute()["map"])
