"""H-Faster-RCNN's people: they draw boxes on the images the detector is least sure of.

An image whose best detection score is below tau (the msp gate), or that the shift
score sends (the mahalanobis gate), goes to the chain; every box any of them draws
joins the RPN's proposals, and the box head classifies them.
"""

from __future__ import annotations

import numpy as np
import torch

from hgen_ray.architectures.detector import HumanOutcome, image_key, looks_of
from hgen_ray.architectures.h_faster_rcnn.network import HFasterRCNN, sobel_edges, unsure_images
from hgen_ray.config import Candidate
from hgen_ray.data.detection_splits import DetectionSet
from hgen_ray.human import HumanPool, ImageRequest
from hgen_ray.human.detection_tasks import BoxTask

__all__ = ["human_boxes_pass"]


def _box_task(image: torch.Tensor, boxes: torch.Tensor, category: str, severity: int) -> BoxTask:
    edges = sobel_edges(image[None])[0, 0]
    strength = tuple(float(edges[int(y1) : int(y2), int(x1) : int(x2)].max()) for x1, y1, x2, y2 in boxes.tolist())
    return BoxTask((0,), tuple(tuple(b) for b in boxes.tolist()), strength, category, severity)


@torch.no_grad()
def human_boxes_pass(model: HFasterRCNN, plain: list[dict[str, torch.Tensor]], data: DetectionSet, category: str,
                     severity: int, candidate: Candidate, pool: HumanPool, split: str,
                     shifted: torch.Tensor | None = None) -> HumanOutcome:
    """H-Faster-RCNN with people drawing boxes on the images it is least sure of (``plain``: its own detections),
    or (given ``shifted``, bool per image) on those the shift score sends."""
    detections = list(plain)
    deferred = (unsure_images(plain, candidate.human.tau) if shifted is None else shifted).numpy()
    tasks, looks = np.zeros(len(data)), {}
    gated = np.flatnonzero(deferred).tolist()
    if gated:
        requests = [ImageRequest(image_key(split, category, i),
                                 (_box_task(data.images[i], data.boxes[i], category, severity),)) for i in gated]
        served = pool.answer_images(requests, candidate.human.mechanism, candidate.human.k)
        drawn = [torch.tensor([b for person in answers for b in person[0].boxes], dtype=torch.float32).reshape(-1, 4)
                 for answers in served.answers]
        redone = model.detect(data.images[gated], drawn)
        for i, boxes, result in zip(gated, drawn, redone):
            detections[i] = result
            tasks[i] = len(boxes)
        looks = looks_of(served, requests)
    return HumanOutcome(detections, plain, deferred, looks, tasks)
