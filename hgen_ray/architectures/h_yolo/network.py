"""H-YOLO: a compact single-shot grid detector, plus grid cells checked by people.

The network follows YOLO v1 (Redmon et al., CVPR 2016) at phone size: four
conv blocks bring a ``S x S`` canvas to a ``S/8 x S/8`` grid, and a per-cell
head predicts objectness, one box and the class. A cell is responsible for the
item whose box centre falls in it. The head is two 1x1 convs, i.e. a fully
connected layer applied per cell, so SVD compresses it like an fc layer.

The human side branches off the head (DESIGN.md): a cell whose objectness is in
the ambiguous band ``[tau, tau_high]`` goes to people. They see the cell's box
on the canvas, confirm or reject it (does it frame an item?), and name the
class (:func:`apply_cell_answers`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.ops import batched_nms

from hgen_ray.architectures.h_cnn.network import FASHION_MNIST_MEAN, FASHION_MNIST_STD, NUM_CLASSES

__all__ = ["CellVerdicts", "GRID_STRIDE", "HYolo", "YOLO_COMPRESSIBLE_LAYERS", "apply_cell_answers", "cell_boxes",
           "cell_targets", "decode_cells", "every_cell_of", "gated_cells", "rebuild_h_yolo", "yolo_loss"]

GRID_STRIDE = 8  # three 2x2 pools: one cell per 8 x 8 px
YOLO_CHANNELS = (16, 32, 64, 64)  # conv1..conv4 widths
YOLO_HEAD_UNITS = 128  # width of the per-cell hidden layer
BOX_LOSS_WEIGHT = 5.0  # lambda_coord in YOLO v1
NO_OBJECT_LOSS_WEIGHT = 0.5  # lambda_noobj in YOLO v1: most cells are empty
SCORE_FLOOR = 0.01  # detections below this never matter for mAP@0.5
NMS_IOU = 0.5
MAX_DETECTIONS = 20  # per canvas; a canvas holds at most 8 items
_OUTPUTS = 5 + NUM_CLASSES  # objectness, (cx, cy, w, h), class logits

YOLO_COMPRESSIBLE_LAYERS: dict[str, str] = {"conv1": "conv", "conv2": "conv", "conv3": "conv", "conv4": "conv",
                                            "head1": "fc"}


def _block(in_channels: int, out_channels: int) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    return nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels)


class HYolo(nn.Module):
    """Raw ``[0, 1]`` canvases in, ``[N, 15, S/8, S/8]`` per-cell predictions out."""

    def __init__(self, channels: tuple[int, int, int, int] = YOLO_CHANNELS, head_units: int = YOLO_HEAD_UNITS) -> None:
        super().__init__()
        self.conv1, self.bn1 = _block(1, channels[0])
        self.conv2, self.bn2 = _block(channels[0], channels[1])
        self.conv3, self.bn3 = _block(channels[1], channels[2])
        self.conv4, self.bn4 = _block(channels[2], channels[3])
        self.head1: nn.Module = nn.Conv2d(channels[3], head_units, 1)
        self.head2 = nn.Conv2d(head_units, _OUTPUTS, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - FASHION_MNIST_MEAN) / FASHION_MNIST_STD
        x = torch.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
        x = torch.max_pool2d(torch.relu(self.bn2(self.conv2(x))), 2)
        x = torch.max_pool2d(torch.relu(self.bn3(self.conv3(x))), 2)
        x = torch.relu(self.bn4(self.conv4(x)))
        return self.head2(torch.relu(self.head1(x)))


def rebuild_h_yolo(state_dict: Mapping[str, torch.Tensor]) -> HYolo:
    """An H-YOLO shaped like ``state_dict`` (pruned widths, an SVD-factorised head1).

    Raises:
        KeyError: The state dict is not an H-YOLO's.
    """
    channels = tuple(state_dict[f"conv{i}.weight"].shape[0] for i in range(1, 5))
    factorised = "head1.0.weight" in state_dict
    head_units = state_dict["head1.1.weight" if factorised else "head1.weight"].shape[0]
    model = HYolo(channels, head_units)  # type: ignore[arg-type]
    if factorised:
        rank, in_channels = state_dict["head1.0.weight"].shape[:2]
        model.head1 = nn.Sequential(nn.Conv2d(in_channels, rank, 1, bias=False), nn.Conv2d(rank, head_units, 1))
    model.load_state_dict(state_dict)
    return model.eval()


def cell_targets(targets: list[dict[str, torch.Tensor]], grid: int, side: int) -> tuple[torch.Tensor, ...]:
    """Per cell: has an item, its box as (cx offset, cy offset, w, h) in [0, 1], and its class."""
    n = len(targets)
    has_item = torch.zeros(n, grid, grid)
    boxes = torch.zeros(n, 4, grid, grid)
    classes = torch.zeros(n, grid, grid, dtype=torch.int64)
    for i, target in enumerate(targets):
        for (x1, y1, x2, y2), label in zip(target["boxes"].tolist(), target["labels"].tolist()):
            cx, cy = (x1 + x2) / 2 / GRID_STRIDE, (y1 + y2) / 2 / GRID_STRIDE
            col, row = min(int(cx), grid - 1), min(int(cy), grid - 1)
            has_item[i, row, col] = 1.0
            boxes[i, :, row, col] = torch.tensor([cx - col, cy - row, (x2 - x1) / side, (y2 - y1) / side])
            classes[i, row, col] = label
    return has_item, boxes, classes


def yolo_loss(output: torch.Tensor, targets: list[dict[str, torch.Tensor]], side: int) -> torch.Tensor:
    """YOLO v1's sum of objectness, box and class terms, averaged over canvases."""
    grid = output.shape[-1]
    has_item, boxes, classes = (t.to(output.device) for t in cell_targets(targets, grid, side))
    objectness = nn.functional.binary_cross_entropy_with_logits(output[:, 0], has_item, reduction="none")
    weights = has_item + NO_OBJECT_LOSS_WEIGHT * (1 - has_item)
    positive = has_item.bool()
    box_error = (torch.sigmoid(output[:, 1:5]) - boxes).square().sum(1)[positive].sum()
    class_logits = output[:, 5:].permute(0, 2, 3, 1)[positive]
    class_error = nn.functional.cross_entropy(class_logits, classes[positive], reduction="sum")
    return ((objectness * weights).sum() + BOX_LOSS_WEIGHT * box_error + class_error) / len(output)


@dataclass
class CellVerdicts:
    """People's answers for gated cells: ``(image, row, col) -> (is an item, class)``."""

    answers: dict[tuple[int, int, int], tuple[bool, int]]


def apply_cell_answers(output: torch.Tensor, verdicts: CellVerdicts) -> torch.Tensor:
    """Per-cell predictions with people's answers written in.

    A confirmed cell gets certain objectness and a certain class (the person's);
    a rejected one gets zero objectness. Cells nobody checked are untouched.
    """
    edited = output.clone()
    certain = 30.0  # a logit whose sigmoid and softmax are 1.0 to float precision
    for (image, row, col), (is_item, label) in verdicts.answers.items():
        edited[image, 0, row, col] = certain if is_item else -certain
        edited[image, 5:, row, col] = -certain
        edited[image, 5 + label, row, col] = certain
    return edited


def gated_cells(output: torch.Tensor, tau: float, tau_high: float) -> torch.Tensor:
    """The gate: cells whose objectness is in ``[tau, tau_high]`` go to people; ``tau = 0`` sends none."""
    objectness = torch.sigmoid(output[:, 0])
    if tau <= 0:
        return torch.zeros_like(objectness, dtype=torch.bool)
    return (objectness >= tau) & (objectness <= tau_high)


def every_cell_of(output: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """The shift gate's cells: all of those of the images marked True (bool per image), none of the others."""
    return images.to(torch.bool)[:, None, None].expand(-1, *output.shape[-2:]).clone()


@torch.no_grad()
def cell_boxes(output: torch.Tensor, side: int) -> torch.Tensor:
    """Each cell's box as ``[N, S/8, S/8, 4]`` (x1, y1, x2, y2) in canvas pixels."""
    grid = output.shape[-1]
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    box = torch.sigmoid(output[:, 1:5])
    cx, cy = (cols + box[:, 0]) * GRID_STRIDE, (rows + box[:, 1]) * GRID_STRIDE
    w, h = box[:, 2] * side, box[:, 3] * side
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1).clamp(0, side)


@torch.no_grad()
def decode_cells(output: torch.Tensor, side: int) -> list[dict[str, torch.Tensor]]:
    """Boxes, scores and labels per canvas, after per-class NMS."""
    detections = []
    for cells, boxes in zip(output, cell_boxes(output, side)):
        probabilities = torch.softmax(cells[5:], 0)
        class_score, label = probabilities.max(0)
        score = (torch.sigmoid(cells[0]) * class_score).flatten()
        boxes = boxes.reshape(-1, 4)
        keep = score > SCORE_FLOOR
        boxes, score, label = boxes[keep], score[keep], label.flatten()[keep]
        kept = batched_nms(boxes, score, label, NMS_IOU)[:MAX_DETECTIONS]
        detections.append({"boxes": boxes[kept], "scores": score[kept], "labels": label[kept]})
    return detections
