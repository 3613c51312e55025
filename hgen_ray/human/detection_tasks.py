"""What a simulated person does for the detectors: check a grid cell, or draw boxes.

As for classification, every answer is drawn from a generator seeded by
(pool seed, person, task key), the key naming the image, the task and the chain
step, so a retried task, or another candidate asking the same, gets exactly the
same answer.

Check a cell (H-YOLO). The person sees the box one grid cell predicts and says
whether it frames an item, and if so which class. Verifying a cell or a
box takes "about 1-2 s" (DESIGN.md); the median here is the middle of that.
Their class answer follows the classification model (:mod:`calibration`).

Draw boxes (H-Faster-RCNN). The person sees the image's Sobel edge map and
draws a box around every item they see, by extreme clicking: about 7 s per box
(Papadopoulos et al., "Extreme clicking for efficient object annotation",
ICCV 2017), whose boxes reach 88% mIoU with the ground truth in that study.
The simulated box is the true box with Gaussian noise on each edge, scaled to
the box side, and :data:`BOX_EDGE_NOISE` is solved so that the mean IoU is
that 88%. An item whose edges are too faint in the edge map is not seen; small
items are also missed with a probability that grows with the category's
difficulty for people.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hgen_ray.human.calibration import (
    CROWD_MAJORITY_OF_3_ACCURACY,
    HUMAN_RETENTION_AT_SEVERITY_5,
    NUM_CLASSES,
    human_accuracy,
    share_lost,
    wrong_answer_distribution,
)

__all__ = ["BOX_EDGE_NOISE", "BoxAnswer", "BoxTask", "CellAnswer", "CellTask", "draw_boxes", "check_cell",
           "box_noise_for_mean_iou", "missed_small_item_probability"]

CELL_CHECK_MEDIAN_S = 1.5  # DESIGN.md: verifying one grid cell or box takes about 1-2 s
CELL_CHECK_SIGMA = 0.4  # assumed lognormal spread, a little tighter than classification's
CELL_VERDICT_ACCURACY_CLEAN = 0.95  # assumed: "does this box frame an item?" on a clean canvas
BOX_DRAW_MEDIAN_S = 7.0  # Papadopoulos et al. ICCV 2017: 7.0 s per box with extreme clicking
BOX_DRAW_SIGMA = 0.3  # assumed lognormal spread per box
EXTREME_CLICK_MEAN_IOU = 0.88  # Papadopoulos et al. ICCV 2017: mIoU of extreme-click boxes vs ground truth
SMALL_ITEM_MAX_SIDE_PX = 14.0  # "small" items: the small_size challenge's range, 10-14 px
SMALL_ITEM_MISS_CLEAN = 0.05  # assumed: a person overlooks 1 small item in 20 on a clean canvas
SMALL_ITEM_MISS_WORST = 0.5  # assumed: at the largest loss of human accuracy, half of small items are missed
EDGE_VISIBILITY_FLOOR = 0.1  # assumed: strongest Sobel response (on [0, 1] pixels) a person can still see


def missed_small_item_probability(category: str, severity: int) -> float:
    """Chance that a person overlooks a small item; the worst retention (0.6) maps to the worst miss rate."""
    worst_lost = 1.0 - min(HUMAN_RETENTION_AT_SEVERITY_5.values())
    return SMALL_ITEM_MISS_CLEAN + (SMALL_ITEM_MISS_WORST - SMALL_ITEM_MISS_CLEAN) * share_lost(category, severity) / worst_lost


def _noisy_boxes(boxes: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    sides = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]] * 2, axis=1)
    noisy = boxes + rng.normal(0.0, noise, boxes.shape) * sides
    x1, x2 = np.minimum(noisy[:, 0], noisy[:, 2] - 1), np.maximum(noisy[:, 2], noisy[:, 0] + 1)
    y1, y2 = np.minimum(noisy[:, 1], noisy[:, 3] - 1), np.maximum(noisy[:, 3], noisy[:, 1] + 1)
    return np.stack([x1, y1, x2, y2], axis=1)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    width = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    height = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = width * height
    area = lambda box: (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def box_noise_for_mean_iou(target: float = EXTREME_CLICK_MEAN_IOU, samples: int = 20000) -> float:
    """Per-edge noise (as a share of the box side) whose boxes have mean IoU ``target`` (bisection)."""
    unit = np.tile(np.array([[0.0, 0.0, 20.0, 20.0]]), (samples, 1))
    low, high = 0.0, 0.5
    for _ in range(40):
        middle = (low + high) / 2
        iou = _iou(unit, _noisy_boxes(unit, middle, np.random.default_rng(0))).mean()
        low, high = (middle, high) if iou > target else (low, middle)
    return (low + high) / 2


BOX_EDGE_NOISE = box_noise_for_mean_iou()


@dataclass(frozen=True)
class CellTask:
    key: tuple[int, ...]
    on_item: bool  # the cell's box frames an item (IoU >= 0.5 with a true box)
    true_label: int  # that item's class (any value when on_item is False)
    category: str
    severity: int
    clean_majority_of_3: float = CROWD_MAJORITY_OF_3_ACCURACY  # the crowd target people are calibrated to


@dataclass(frozen=True)
class CellAnswer:
    key: tuple[int, ...]
    is_item: bool
    label: int
    response_s: float


@dataclass(frozen=True)
class BoxTask:
    key: tuple[int, ...]
    boxes: tuple[tuple[float, float, float, float], ...]  # the image's true boxes
    edge_strength: tuple[float, ...]  # per box, the strongest Sobel response inside it
    category: str
    severity: int


@dataclass(frozen=True)
class BoxAnswer:
    key: tuple[int, ...]
    boxes: tuple[tuple[float, float, float, float], ...]  # what the person drew
    response_s: float


def check_cell(task: CellTask, person: int, seed: int) -> CellAnswer:
    """Whether ``person`` says the cell's box frames an item, its class, and the time taken."""
    rng = np.random.default_rng([seed, person, *task.key])
    verdict_accuracy = 0.5 + (CELL_VERDICT_ACCURACY_CLEAN - 0.5) * (1.0 - share_lost(task.category, task.severity))
    is_item = task.on_item if rng.random() < verdict_accuracy else not task.on_item
    if task.on_item and rng.random() < human_accuracy(task.category, task.severity, task.clean_majority_of_3):
        label = task.true_label
    elif task.on_item:
        label = int(rng.choice(NUM_CLASSES, p=wrong_answer_distribution(task.true_label)))
    else:
        label = int(rng.integers(NUM_CLASSES))  # a false "yes" names some class
    seconds = float(rng.lognormal(np.log(CELL_CHECK_MEDIAN_S), CELL_CHECK_SIGMA))
    return CellAnswer(task.key, bool(is_item), label, seconds)


def draw_boxes(task: BoxTask, person: int, seed: int) -> BoxAnswer:
    """The boxes ``person`` draws on the edge map, and the time taken (per box drawn)."""
    rng = np.random.default_rng([seed, person, *task.key])
    miss_small = missed_small_item_probability(task.category, task.severity)
    seen = []
    for box, edges in zip(task.boxes, task.edge_strength):
        small = max(box[2] - box[0], box[3] - box[1]) <= SMALL_ITEM_MAX_SIDE_PX
        overlooked = small and rng.random() < miss_small
        if edges >= EDGE_VISIBILITY_FLOOR and not overlooked:
            seen.append(box)
    drawn = _noisy_boxes(np.array(seen, dtype=np.float64).reshape(-1, 4), BOX_EDGE_NOISE, rng)
    seconds = float(rng.lognormal(np.log(BOX_DRAW_MEDIAN_S), BOX_DRAW_SIGMA, len(drawn)).sum())
    return BoxAnswer(task.key, tuple(tuple(float(v) for v in b) for b in drawn), seconds)
