"""Evaluate one detector candidate (H-YOLO or H-Faster-RCNN): the five measures A, T, E, S, L.

    hgen-ray evaluate --config configs/h_yolo.yaml --out runs/eval-yolo

The same steps as :mod:`hgen_ray.evaluate`, on canvases: load them, get the
base detector, compress and fine-tune (in :mod:`hgen_ray.evaluate`), run the network on one split's 13 sets,
send what the gate picks to the human pool, then profile. ``accuracy`` is
mAP@0.5 (mean over the 12 categories); labour and latency are per image.

- H-YOLO: a cell whose objectness is in ``[tau, tau_high]`` is checked by each
  of the chain's k people, who see its box; the per-cell majority confirms or
  rejects it and names the class; a tie goes the way the network leans.
- H-Faster-RCNN: an image whose best detection score is below tau is sent to
  the chain; every box any of them draws joins the RPN's proposals.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torchvision.ops import box_iou

from hgen_ray.config import CHALLENGE_CATEGORIES, Candidate, ExperimentConfig
from hgen_ray.data.detection_splits import DetectionChallengeSet, DetectionSet, DetectionSplits, load_detection_splits
from hgen_ray.data.splits import EVALUATED_CATEGORIES, SPLIT_NAMES
from hgen_ray.detection_map import map50
from hgen_ray.human import HumanPool, ImageAnswers, ImageRequest, Timeline, decide, simulate_pool
from hgen_ray.human.detection_tasks import BoxTask, CellTask
from hgen_ray.models.detectors import detect
from hgen_ray.models.h_faster_rcnn import HFasterRCNN, sobel_edges, unsure_images
from hgen_ray.models.h_yolo import CellVerdicts, apply_cell_answers, cell_boxes, decode_cells, gated_cells

__all__ = ["DetectionData", "HumanOutcome", "cell_majority", "evaluate_detector", "human_boxes_pass", "human_cells_pass",
           "load_detection_data", "time_people"]

log = logging.getLogger(__name__)
VERIFIED_IOU = 0.5  # a box "frames an item" at the IoU mAP@0.5 counts as a hit


@dataclass(frozen=True)
class DetectionData:
    splits: DetectionSplits
    challenges: DetectionChallengeSet


def load_detection_data(config: ExperimentConfig, split: str = "validation") -> DetectionData:
    """Canvases with one split's challenge sets: ``validation`` for a search, ``test`` for the report."""
    return DetectionData(*load_detection_splits(config, split))


@dataclass
class HumanOutcome:
    """One category's detections after people, and what it cost, per image."""

    detections: list[dict[str, torch.Tensor]]
    dnn_detections: list[dict[str, torch.Tensor]]  # the network's own, before people
    deferred: np.ndarray  # bool: people looked at this image
    looks: dict[int, list[float]]  # per image people looked at: seconds each person of the chain spent on it
    tasks: np.ndarray  # cells checked (H-YOLO) or boxes drawn (H-Faster-RCNN), all people together


def cell_majority(votes: list[tuple[bool, int]], objectness: float, class_probabilities: list[float]) -> tuple[bool, int]:
    """People's verdict on a cell: the majority; a tie goes the way the network leans (objectness, class)."""
    counts = Counter(is_item for is_item, _ in votes)
    is_item = counts[True] > counts[False] or (counts[True] == counts[False] and objectness >= 0.5)
    return is_item, decide([label for said_item, label in votes if said_item] or [label for _, label in votes],
                           class_probabilities)


def _image_key(split: str, category: str, image: int) -> tuple[int, int, int]:
    return SPLIT_NAMES.index(split), EVALUATED_CATEGORIES.index(category), image


def _looks(served: ImageAnswers, requests: list[ImageRequest]) -> dict[int, list[float]]:
    return {request.key[2]: durations for request, durations in zip(requests, served.durations)}


@torch.no_grad()
def human_cells_pass(model: nn.Module, data: DetectionSet, category: str, severity: int, candidate: Candidate,
                     pool: HumanPool, split: str) -> HumanOutcome:
    """H-YOLO with people checking the ambiguous cells of every image."""
    output = torch.cat([model.eval()(data.images[i : i + 100]) for i in range(0, len(data), 100)])
    side = data.images.shape[-1]
    plain = decode_cells(output, side)
    gated = gated_cells(output, candidate.human.tau, candidate.human.tau_high)
    boxes = cell_boxes(output, side)
    requests, cells, grid = [], [], gated.shape[-1]
    for image in torch.nonzero(gated.flatten(1).any(1)).flatten().tolist():
        where = [tuple(c) for c in torch.nonzero(gated[image]).tolist()]
        overlap = box_iou(torch.stack([boxes[image, r, c] for r, c in where]), data.boxes[image]).max(1)
        tasks = tuple(CellTask((r * grid + c,), bool(overlap.values[j] >= VERIFIED_IOU),
                               int(data.labels[image][overlap.indices[j]]), category, severity,
                               pool.config.clean_majority_of_3_accuracy)
                      for j, (r, c) in enumerate(where))
        requests.append(ImageRequest(_image_key(split, category, image), tasks))
        cells.append([(image, r, c) for r, c in where])
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
        looks = _looks(served, requests)
        for request in requests:
            tasks[request.key[2]] = len(request.tasks) * candidate.human.k
    deferred = gated.flatten(1).any(1).numpy()
    return HumanOutcome(decode_cells(output, side), plain, deferred, looks, tasks)


def _box_task(image: torch.Tensor, boxes: torch.Tensor, category: str, severity: int) -> BoxTask:
    edges = sobel_edges(image[None])[0, 0]
    strength = tuple(float(edges[int(y1) : int(y2), int(x1) : int(x2)].max()) for x1, y1, x2, y2 in boxes.tolist())
    return BoxTask((0,), tuple(tuple(b) for b in boxes.tolist()), strength, category, severity)


@torch.no_grad()
def human_boxes_pass(model: HFasterRCNN, data: DetectionSet, category: str, severity: int, candidate: Candidate,
                     pool: HumanPool, split: str) -> HumanOutcome:
    """H-Faster-RCNN with people drawing boxes on the images it is least sure of."""
    plain = detect(model, data.images)
    detections = list(plain)
    deferred = unsure_images(plain, candidate.human.tau).numpy()
    tasks, looks = np.zeros(len(data)), {}
    gated = np.flatnonzero(deferred).tolist()
    if gated:
        requests = [ImageRequest(_image_key(split, category, i),
                                 (_box_task(data.images[i], data.boxes[i], category, severity),)) for i in gated]
        served = pool.answer_images(requests, candidate.human.mechanism, candidate.human.k)
        drawn = [torch.tensor([b for person in answers for b in person[0].boxes], dtype=torch.float32).reshape(-1, 4)
                 for answers in served.answers]
        redone = model.detect(data.images[gated], drawn)
        for i, boxes, result in zip(gated, drawn, redone):
            detections[i] = result
            tasks[i] = len(boxes)
        looks = _looks(served, requests)
    return HumanOutcome(detections, plain, deferred, looks, tasks)


def _category_measures(outcomes: dict[str, HumanOutcome], challenges: DetectionChallengeSet) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for category in EVALUATED_CATEGORIES:
        targets = challenges.sets[category].targets()
        metrics[f"accuracy/{category}"] = map50(outcomes[category].detections, targets)
        metrics[f"dnn_accuracy/{category}"] = map50(outcomes[category].dnn_detections, targets)
        metrics[f"deferral_rate/{category}"] = float(outcomes[category].deferred.mean())
    challenges_only = list(CHALLENGE_CATEGORIES)
    metrics["accuracy"] = float(np.mean([metrics[f"accuracy/{c}"] for c in challenges_only]))
    metrics["accuracy_clean"] = metrics["accuracy/clean"]
    metrics["dnn_accuracy"] = float(np.mean([metrics[f"dnn_accuracy/{c}"] for c in challenges_only]))
    metrics["human_tasks_per_image"] = float(np.mean([outcomes[c].tasks.mean() for c in challenges_only]))
    return metrics


def time_people(outcomes: dict[str, HumanOutcome], arrivals: dict[str, np.ndarray], people: int,
                mechanism: str) -> dict[str, Timeline]:
    """Every category's images in the pool's one queue: per category, a timeline over all its images (0 where
    nobody looked)."""
    rows = [(category, image) for category, outcome in outcomes.items() for image in sorted(outcome.looks)]
    timeline = simulate_pool([float(arrivals[c][i]) for c, i in rows], [outcomes[c].looks[i] for c, i in rows],
                             people, mechanism)
    timed = {c: Timeline(np.zeros(len(o.deferred)), np.zeros(len(o.deferred)), np.zeros(len(o.deferred)))
             for c, o in outcomes.items()}
    for row, (category, image) in enumerate(rows):
        timed[category].labor_s[image] = timeline.labor_s[row]
        timed[category].latency_s[image] = timeline.latency_s[row]
        timed[category].wait_s[image] = timeline.wait_s[row]
    return timed


def evaluate_detector(config: ExperimentConfig, model: nn.Module, candidate: Candidate, pool: HumanPool,
                      data: DetectionData) -> tuple[dict[str, float], dict[str, HumanOutcome]]:
    """Run a compressed detector with people on ``data``'s challenge sets; the accuracy-side measures.

    Returns them and each category's outcome; timing the looks in one queue (:func:`time_people`)
    and profiling are left to the caller, which does them the same way for every architecture.
    """
    human_pass = human_cells_pass if config.model.name == "h_yolo" else human_boxes_pass
    severity, split = data.challenges.severity, data.challenges.split
    outcomes = {category: human_pass(model, canvases, category, severity, candidate, pool, split)  # type: ignore[arg-type]
                for category, canvases in data.challenges.sets.items()}
    return _category_measures(outcomes, data.challenges), outcomes
