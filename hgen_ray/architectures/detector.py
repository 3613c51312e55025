"""Detectors on Fashion-MNIST canvases: what H-YOLO and H-Faster-RCNN share.

The two differ in their heads and in how people help (a subclass writes
:meth:`Detector.build`, :meth:`~Detector.loss`, :meth:`~Detector.detect` and
:meth:`~Detector.people_pass`), but their data, base training, cache,
fine-tuning after compression and the timing of people's looks are the same
steps, held here. ``accuracy`` is mAP@0.5; labour and latency are per image.

**The gate.** ``msp`` is each detector's own score on a raw tau (H-YOLO's objectness
band, H-Faster-RCNN's best detection score). Under shift those scores stay confidently
wrong, so the detectors also gate by ``mahalanobis``, a shift score on the image: minus
the squared Mahalanobis distance of the image's pooled last backbone feature map to one
Gaussian fitted on clean train canvases (Lee et al., NeurIPS 2018, with one class: a
canvas holds several items, so it has no class of its own). It defers by rate: the
candidate names the share d of the validation challenges' images that go to people, and
people then help on the whole image (H-YOLO: every cell; H-Faster-RCNN: boxes drawn).
"""

from __future__ import annotations

import dataclasses
import logging
from abc import abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hgen_ray.architectures.base import TAU_GRID, Architecture, CategoryOutcome
from hgen_ray.architectures.gate import FittedGate, fit_mahalanobis, mahalanobis_confidence, tau_for_rate
from hgen_ray.architectures.map50 import map50
from hgen_ray.architectures.stream import query_stream
from hgen_ray.atomic_write import replaced_atomically
from hgen_ray.compress import CompressionPlan, TaylorData, compress_network
from hgen_ray.config import CHALLENGE_CATEGORIES, Candidate, ConfigError, ExperimentConfig, FinetuneConfig, config_hash
from hgen_ray.data.detection_splits import DetectionData, DetectionSet, load_detection_data
from hgen_ray.data.preview import draw_canvas_grid
from hgen_ray.data.splits import EVALUATED_CATEGORIES, SPLIT_NAMES
from hgen_ray.human import HumanPool, ImageAnswers, ImageRequest, Timeline, simulate_pool
from hgen_ray.version import __version__

__all__ = ["Detector", "HumanOutcome", "ShiftGatedDetector", "batched_output", "detection_batches", "image_key", "looks_of", "time_people"]

log = logging.getLogger(__name__)
INFERENCE_BATCH = 100
GRADIENT_CLIP_NORM = 10.0  # Faster R-CNN's early box-regression losses spike without it
TAYLOR_BATCH = 16
DUMMY_BATCH = 2  # batch norm in train mode needs more than one sample per channel
SHIFT_FIT_CANVASES = 1000  # assumed: clean train canvases the feature Gaussian of the mahalanobis gate is fitted on


@dataclass
class HumanOutcome:
    """One category's detections after people, and what it cost, per image."""

    detections: list[dict[str, torch.Tensor]]
    dnn_detections: list[dict[str, torch.Tensor]]  # the network's own, before people
    deferred: np.ndarray  # bool: people looked at this image
    looks: dict[int, list[float]]  # per image people looked at: seconds each person of the chain spent on it
    tasks: np.ndarray  # cells checked (H-YOLO) or boxes drawn (H-Faster-RCNN), all people together


def image_key(split: str, category: str, image: int) -> tuple[int, int, int]:
    """An image's key for the pool: fixed by the image, so every candidate's people see it the same."""
    return SPLIT_NAMES.index(split), EVALUATED_CATEGORIES.index(category), image


def looks_of(served: ImageAnswers, requests: list[ImageRequest]) -> dict[int, list[float]]:
    return {request.key[2]: durations for request, durations in zip(requests, served.durations)}


@torch.no_grad()
def batched_output(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The network's raw output for many images, in eval mode, ``INFERENCE_BATCH`` at a time."""
    model.eval()
    starts = range(0, len(images), INFERENCE_BATCH)
    return torch.cat([model(images[start : start + INFERENCE_BATCH]) for start in starts])


def detection_batches(data: DetectionSet, batch_size: int, seed: int) -> Iterator[tuple[torch.Tensor, list]]:
    """Shuffled ``(images, targets)`` mini-batches, in an order fixed by ``seed``."""
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed)).tolist()
    targets = data.targets()
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        yield data.images[index], [targets[i] for i in index]


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


class ShiftGatedDetector(nn.Module):
    """A detector and its shift gate as one module, for export: the network's outputs, then ``gate_confidence``.

    Takes what the network takes: an image batch (H-YOLO) or a list of images (H-Faster-RCNN, whose export
    holds one image; its outputs are then that image's boxes, labels and scores).
    """

    def __init__(self, detector: Detector, network: nn.Module, gate: FittedGate) -> None:
        super().__init__()
        self.network = network
        self.features = detector.image_features
        self.register_buffer("means", gate.tensors["means"])
        self.register_buffer("precision", gate.tensors["precision"])

    def forward(self, images: torch.Tensor | list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        output = self.network(images)
        batch = images if isinstance(images, torch.Tensor) else torch.stack(list(images))
        confidence = mahalanobis_confidence(self.features(self.network, batch), self.means, self.precision)
        if isinstance(output, torch.Tensor):
            return output, confidence
        found = output[0]
        return found["boxes"], found["labels"], found["scores"], confidence


class Detector(Architecture):
    """A detector of Fashion-MNIST items on canvases, helped by people per cell or per image."""

    gate_scores = ("msp", "mahalanobis")
    rate_scores = ("mahalanobis",)

    @abstractmethod
    def build(self, config: ExperimentConfig) -> nn.Module:
        """A freshly initialised detector for the configured canvas side."""

    @abstractmethod
    def loss(self, model: nn.Module, images: torch.Tensor, targets: list[dict[str, torch.Tensor]]) -> torch.Tensor:
        """The training loss of one batch (the model is in train mode)."""

    @abstractmethod
    def detect_batch(self, model: nn.Module, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """Boxes, scores and labels (0-9) per image of one batch, no people involved."""

    @abstractmethod
    def people_pass(self, model: nn.Module, gate: FittedGate, data: DetectionSet, category: str, severity: int,
                    candidate: Candidate, pool: HumanPool, split: str) -> HumanOutcome:
        """One category's images through the network, its gate and the people."""

    @abstractmethod
    def threshold_labour_curve(self, config: ExperimentConfig, base: nn.Module, data: DetectionData) -> np.ndarray:
        """One person's mean seconds per challenge image at each raw tau of :data:`TAU_GRID` (the msp gate)."""

    @abstractmethod
    def whole_image_seconds(self, data: DetectionSet) -> np.ndarray:
        """Per image, one person's mean seconds to help on all of it (what a shifted image costs)."""

    @abstractmethod
    def image_features(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """``[N, F]``: each image's last backbone feature map, averaged over its positions (eval mode)."""

    def labour_curves(self, config: ExperimentConfig, base: nn.Module, data: DetectionData,
                      scores: tuple[str, ...]) -> dict[str, np.ndarray]:
        """msp on raw thresholds; the shift score at each share d, the base's least confident images first."""
        curves = {}
        for score in scores:
            if score == "msp":
                curves[score] = self.threshold_labour_curve(config, base, data)
                continue
            gate = self.fit_gate(config, base, data, score)
            sets = [data.challenges.sets[c] for c in CHALLENGE_CATEGORIES]
            confidence = torch.cat([self.image_confidence(base, gate, s.images) for s in sets]).numpy()
            seconds = np.concatenate([self.whole_image_seconds(s) for s in sets])[np.argsort(confidence, kind="stable")]
            spent = np.concatenate([[0.0], np.cumsum(seconds)])
            curves[score] = spent[np.round(TAU_GRID * len(seconds)).astype(int)] / len(seconds)
        return curves

    @torch.no_grad()
    def batched_features(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """:meth:`image_features` of many images, in eval mode, ``INFERENCE_BATCH`` at a time."""
        model.eval()
        return torch.cat([self.image_features(model, images[start : start + INFERENCE_BATCH])
                          for start in range(0, len(images), INFERENCE_BATCH)])

    def image_confidence(self, model: nn.Module, gate: FittedGate, images: torch.Tensor) -> torch.Tensor:
        """The shift score per image: minus its squared Mahalanobis distance to the clean feature Gaussian."""
        return mahalanobis_confidence(self.batched_features(model, images), gate.tensors["means"],
                                      gate.tensors["precision"])

    def onnx_outputs(self, gate: FittedGate) -> tuple[str, ...]:
        return (*self.output_names, "gate_confidence") if gate.score == "mahalanobis" else self.output_names

    def exported_module(self, model: nn.Module, gate: FittedGate) -> nn.Module:
        """What export writes: the network, with its shift gate where the gate has one."""
        return ShiftGatedDetector(self, model, gate).eval() if gate.score == "mahalanobis" else model.eval()

    def shifted_images(self, model: nn.Module, gate: FittedGate, images: torch.Tensor,
                       tau: float) -> torch.Tensor | None:
        """Bool per image where the gate is the shift score: it sends the image to people (confidence below
        tau); None for the msp gate, whose own rule decides."""
        return self.image_confidence(model, gate, images) < tau if gate.score == "mahalanobis" else None

    def fit_gate(self, config: ExperimentConfig, model: nn.Module, data: DetectionData, score: str) -> FittedGate:
        """msp needs no fitting; mahalanobis fits one Gaussian to clean train canvases' pooled features."""
        if score != "mahalanobis":
            return FittedGate(score)
        features = self.batched_features(model, data.splits.train.images[:SHIFT_FIT_CANVASES])
        return FittedGate(score, tensors=fit_mahalanobis(features, torch.zeros(len(features), dtype=torch.int64), 1))

    def tau_for_deferral(self, config: ExperimentConfig, model: nn.Module, gate: FittedGate, data: DetectionData,
                         deferral: float) -> float:
        if gate.score != "mahalanobis":
            return super().tau_for_deferral(config, model, gate, data, deferral)
        confidence = torch.cat([self.image_confidence(model, gate, data.challenges.sets[c].images)
                                for c in CHALLENGE_CATEGORIES])
        return tau_for_rate(confidence, deferral)

    @torch.no_grad()
    def detect(self, model: nn.Module, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        model.eval()
        return [found for start in range(0, len(images), INFERENCE_BATCH)
                for found in self.detect_batch(model, images[start : start + INFERENCE_BATCH])]

    def train(self, model: nn.Module, data: DetectionSet, *, epochs: int, batch_size: int, learning_rate: float,
              seed: int, label: str = "train") -> float:
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
                loss = self.loss(model, images.to(device), targets)
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), GRADIENT_CLIP_NORM)
                optimizer.step()
                schedule.step()
                total += loss.item() * len(images)
                count += len(images)
            mean_loss = total / count
            log.info("%s epoch %d/%d: loss %.4f", label, epoch + 1, epochs, mean_loss)
        model.to("cpu").eval()
        return mean_loss

    def check_config(self, config: ExperimentConfig) -> None:
        """The canvases are composed from Fashion-MNIST's idx files: other data settings would be ignored."""
        data = config.data
        if data.format != "idx" or data.image_size is not None or data.classes is not None:
            raise ConfigError(f"data: {self.name} composes its canvases from Fashion-MNIST's idx files; allowed: "
                              "data.format idx, with no data.image_size or data.classes")
        if config.finetune.distill:
            raise ConfigError(f"finetune.distill: {self.name} has no distillation loss (its outputs are boxes, not one "
                              "class distribution); allowed: false")

    # --- setup ---------------------------------------------------------------------------------

    def load_data(self, config: ExperimentConfig, split: str) -> DetectionData:
        return load_detection_data(config, split)

    def data_split(self, data: DetectionData) -> str:
        return data.challenges.split

    def trial_data(self, config: ExperimentConfig, data: DetectionData) -> DetectionData:
        """What every trial needs: the train canvases cut to the fine-tuning subset, and validation."""
        if not config.finetune.subset:
            return data
        return dataclasses.replace(data, splits=dataclasses.replace(
            data.splits, train=data.splits.train.subset(config.finetune.subset)))

    def base_cache_path(self, config: ExperimentConfig) -> Path:
        """Keyed by what shapes the weights: test and validation canvas counts do not, so they share a base."""
        detection = config.detection
        key = config_hash(config.model, detection.canvas_size, detection.max_items, detection.train_canvases,
                          config.data.validation_size, config.seed, __version__)
        return Path(config.cache_dir) / f"base-{self.name}-{key}.pt"

    def map50(self, model: nn.Module, data: DetectionSet) -> float:
        """mAP@0.5 of the network alone on a set of canvases."""
        return map50(self.detect(model, data.images), data.targets())

    def load_base(self, config: ExperimentConfig, data: DetectionData) -> nn.Module:
        """The cached base detector for this config, or a freshly trained (and cached) one."""
        path = self.base_cache_path(config)
        if path.is_file():
            try:
                payload = torch.load(path, map_location="cpu", weights_only=True)
                return self.rebuild(config, payload["state_dict"], self.input_shape(config))
            except Exception as error:  # an unreadable or foreign file: retrain rather than fail
                log.warning("ignoring unusable cached base detector %s (%s); retraining", path, error)
        torch.manual_seed(config.seed)
        model = self.build(config)
        train = data.splits.train
        subset = train.subset(config.model.train_subset) if config.model.train_subset else train
        log.info("training the base %s on %d canvases", self.name, len(subset))
        self.train(model, subset, epochs=config.model.epochs, batch_size=config.model.batch_size,
                   learning_rate=config.model.learning_rate, seed=config.seed, label="base")
        val_map50 = self.map50(model, data.splits.val)
        with replaced_atomically(path) as temporary:
            torch.save({"state_dict": model.state_dict(), "val_map50": val_map50}, temporary)
        log.info("trained base %s: clean val mAP@0.5 %.4f, cached at %s", self.name, val_map50, path)
        return model

    def input_shape(self, config: ExperimentConfig) -> tuple[int, int, int]:
        side = config.detection.canvas_size
        return 1, side, side

    def input_shape_before_it_was_saved(self, config: ExperimentConfig) -> tuple[int, ...]:
        return self.input_shape(config)

    def draw_preview(self, config: ExperimentConfig, data: DetectionData, out: Path) -> Path:
        return draw_canvas_grid(data.challenges.sets, out)

    def profile_sample(self, data: DetectionData) -> torch.Tensor:
        return data.splits.val.images[:1]

    def input_sample(self, config: ExperimentConfig, data: Any) -> torch.Tensor:
        return torch.rand(1, *self.input_shape(config), generator=torch.Generator().manual_seed(config.seed))

    # --- trial ---------------------------------------------------------------------------------

    def compression_plan(self, config: ExperimentConfig, train: DetectionSet, finetune: FinetuneConfig) -> CompressionPlan:
        """Taylor scores from the whole detector's loss in training mode: NNI puts only the pruned part in it."""
        def taylor(model: nn.Module) -> TaylorData:
            return TaylorData(lambda: detection_batches(train, TAYLOR_BATCH, config.seed),
                              lambda batch, _part: self.loss(model.train(), *batch))

        def tune(model: nn.Module) -> None:
            self.train(model, train, epochs=finetune.epochs, batch_size=finetune.batch_size,
                       learning_rate=finetune.learning_rate, seed=config.seed, label="fine-tune")

        return CompressionPlan(train.images[:DUMMY_BATCH], taylor, tune)

    def compress(self, config: ExperimentConfig, base: nn.Module, candidate: Candidate, data: DetectionData,
                 finetune: FinetuneConfig) -> nn.Module:
        train = data.splits.train.subset(finetune.subset) if finetune.subset else data.splits.train
        plan = self.compression_plan(config, train, finetune)
        return compress_network(base, candidate, self.compressible_layers(config, base, data), plan)

    def run_with_people(self, config: ExperimentConfig, model: nn.Module, gate: FittedGate, candidate: Candidate,
                        data: DetectionData, pool: HumanPool) -> dict[str, CategoryOutcome]:
        severity, split = data.challenges.severity, data.challenges.split
        outcomes = {category: self.people_pass(model, gate, canvases, category, severity, candidate, pool, split)
                    for category, canvases in data.challenges.sets.items()}
        arrivals = query_stream(config, split, {c: len(o.deferred) for c, o in outcomes.items()})
        timed = time_people(outcomes, arrivals, config.human_pool.size, candidate.human.mechanism)
        result = {}
        for category in EVALUATED_CATEGORIES:
            targets = data.challenges.sets[category].targets()
            outcome, timeline = outcomes[category], timed[category]
            result[category] = CategoryOutcome(map50(outcome.detections, targets),
                                               map50(outcome.dnn_detections, targets), outcome.deferred,
                                               timeline.labor_s, timeline.latency_s, timeline.wait_s, outcome.tasks)
        return result
