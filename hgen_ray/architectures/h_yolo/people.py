"""H-YOLO's people: they check the grid cells whose objectness is in the ambiguous band.

A cell whose objectness is in ``[tau, tau_high]`` (the msp gate), or any cell of an
image the shift score sends (the mahalanobis gate), is checked by each of the chain's
k people, who see its box: the per-cell majority confirms or rejects it and names the
class; a tie goes the way the network leans.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch
from torch import nn
from torchvision.ops import box_iou

from hgen_ray.architectures.detector import HumanOutcome, batched_output, image_key, looks_of
from hgen_ray.architectures.h_yolo.network import (
    CellVerdicts,
    apply_cell_answers,
    cell_boxes,
    decode_cells,
    every_cell_of,
    gated_cells,
)
from hgen_ray.config import Candidate
from hgen_ray.data.detection_splits import DetectionSet
from hgen_ray.human import HumanPool, ImageRequest, decide
from hgen_ray.human.detection_tasks import CellTask

__all__ = ["VERIFIED_IOU", "cell_majority", "human_cells_pass"]

VERIFIED_IOU = 0.5  # a box "frames an item" at the IoU mAP@0.5 counts as a hit


def cell_majority(votes: list[tuple[bool, int]], objectness: float, class_probabilities: list[float]) -> tuple[bool, int]:
    """People's verdict on a cell: the majority; a tie goes the way the network leans (objectness, class)."""
    counts = Counter(is_item for is_item, _ in votes)
    is_item = counts[True] > counts[False] or (counts[True] == counts[False] and objectness >= 0.5)
    return is_item, decide([label for said_item, label in votes if said_item] or [label for _, label in votes],
                           class_probabilities)


def _requests(output: torch.Tensor, gated: torch.Tensor, data: DetectionSet, category: str, severity: int,
              crowd: float, split: str) -> tuple[list[ImageRequest], list[list[tuple[int, int, int]]]]:
    """One request per image with gated cells: a task per cell, keyed by its grid index."""
    boxes, grid = cell_boxes(output, data.images.shape[-1]), gated.shape[-1]
    requests, cells = [], []
    for image in torch.nonzero(gated.flatten(1).any(1)).flatten().tolist():
        where = [tuple(c) for c in torch.nonzero(gated[image]).tolist()]
        overlap = box_iou(torch.stack([boxes[image, r, c] for r, c in where]), data.boxes[image]).max(1)
        tasks = tuple(CellTask((r * grid + c,), bool(overlap.values[j] >= VERIFIED_IOU),
                               int(data.labels[image][overlap.indices[j]]), category, severity, crowd)
                      for j, (r, c) in enumerate(where))
        requests.append(ImageRequest(image_key(split, category, image), tasks))
        cells.append([(image, r, c) for r, c in where])
    return requests, cells


@torch.no_grad()
def human_cells_pass(model: nn.Module, data: DetectionSet, category: str, severity: int, candidate: Candidate,
                     pool: HumanPool, split: str, shifted: torch.Tensor | None = None) -> HumanOutcome:
    """H-YOLO with people checking the ambiguous cells of every image, or (given ``shifted``, bool per image)
    every cell of the images the shift score sends."""
    output = batched_output(model, data.images)
    side = data.images.shape[-1]
    plain = decode_cells(output, side)
    gated = (gated_cells(output, candidate.human.tau, candidate.human.tau_high) if shifted is None
             else every_cell_of(output, shifted))
    requests, cells = _requests(output, gated, data, category, severity, pool.config.clean_majority_of_3_accuracy,
                                split)
    tasks, looks = np.zeros(len(data)), {}
    if requests:
        served = pool.answer_images(requests, candidate.human.mechanism, candidate.human.k)
        verdicts = {}
        objectness, classes = torch.sigmoid(output[:, 0]), torch.softmax(output[:, 5:], dim=1)
        for where, answers in zip(cells, served.answers):
            for j, (image, r, c) in enumerate(where):
                votes = [(person[j].is_item, person[j].label) for person in answers]
                verdicts[(image, r, c)] = cell_majority(votes, float(objectness[image, r, c]),
                                                        classes[image, :, r, c].tolist())
        output = apply_cell_answers(output, CellVerdicts(verdicts))
        looks = looks_of(served, requests)
        for request in requests:
            tasks[request.key[2]] = len(request.tasks) * candidate.human.k
    deferred = gated.flatten(1).any(1).numpy()
    return HumanOutcome(decode_cells(output, side), plain, deferred, looks, tasks)
