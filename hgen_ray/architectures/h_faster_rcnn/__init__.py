"""H-Faster-RCNN: a two-stage detector; people draw boxes on the images it is least sure of."""

from __future__ import annotations

from typing import Any

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hgen_ray.architectures.base import TAU_GRID, Prediction
from hgen_ray.architectures.gate import FittedGate
from hgen_ray.architectures.detector import Detector, HumanOutcome
from hgen_ray.architectures.h_faster_rcnn.network import (
    FRCNN_COMPRESSIBLE_LAYERS,
    SPEEDUP_MODULE,
    build_h_faster_rcnn,
    faster_rcnn_loss,
    rebuild_h_faster_rcnn,
    unsure_images,
)
from hgen_ray.architectures.h_faster_rcnn.people import human_boxes_pass
from hgen_ray.compress import CompressionPlan
from hgen_ray.config import CHALLENGE_CATEGORIES, Candidate, ExperimentConfig, FinetuneConfig, HumanChoice
from hgen_ray.data.detection_splits import DetectionData, DetectionSet
from hgen_ray.human import HumanPool
from hgen_ray.human.detection_tasks import BOX_DRAW_MEDIAN_S, BOX_DRAW_SIGMA

__all__ = ["HFasterRCNNArchitecture"]

ONNX_OPSET = 17  # the TorchScript-based exporter's newest well-supported opset


class HFasterRCNNArchitecture(Detector):
    name = "h_faster_rcnn"
    gate_rule = ("the image goes to people when its best score < tau (msp) or its gate_confidence < tau "
                 "(mahalanobis); their boxes join the RPN's proposals")
    output_names = ("boxes", "labels", "scores")

    def build(self, config: ExperimentConfig) -> nn.Module:
        return build_h_faster_rcnn(config.detection.canvas_size)

    def rebuild(self, config: ExperimentConfig, state_dict: dict[str, torch.Tensor],
                input_shape: tuple[int, ...]) -> nn.Module:
        return rebuild_h_faster_rcnn(state_dict, input_shape[-1])

    def loss(self, model: nn.Module, images: torch.Tensor, targets: list[dict[str, torch.Tensor]]) -> torch.Tensor:
        return faster_rcnn_loss(model, images, targets)  # type: ignore[arg-type]

    def detect_batch(self, model: nn.Module, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        return model.detect(images)  # type: ignore[operator]

    def compressible_layers(self, config: ExperimentConfig, base: nn.Module, data: Any) -> dict[str, str]:
        return dict(FRCNN_COMPRESSIBLE_LAYERS)

    def declared_layers(self, config: ExperimentConfig) -> dict[str, str]:
        return dict(FRCNN_COMPRESSIBLE_LAYERS)

    def compression_plan(self, config: ExperimentConfig, train: DetectionSet, finetune: FinetuneConfig) -> CompressionPlan:
        """The forward has data-dependent control flow NNI's tracer cannot follow: prune the backbone alone."""
        plan = super().compression_plan(config, train, finetune)
        return CompressionPlan(plan.dummy_input, plan.taylor, plan.finetune, pruned_part=SPEEDUP_MODULE,
                               part_input=lambda model, dummy: model.transform(list(dummy))[0].tensors)

    def people_pass(self, model: nn.Module, gate: FittedGate, data: DetectionSet, category: str, severity: int,
                    candidate: Candidate, pool: HumanPool, split: str) -> HumanOutcome:
        shifted = self.shifted_images(model, gate, data.images, candidate.human.tau)
        return human_boxes_pass(model, self.detect(model, data.images), data, category, severity,  # type: ignore[arg-type]
                                candidate, pool, split, shifted)

    def image_features(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return model.backbone(model.transform(list(images))[0].tensors).mean(dim=(2, 3))

    def whole_image_seconds(self, data: DetectionSet) -> np.ndarray:
        """A box drawn around every item, each at one person's mean seconds per box (a lognormal's mean)."""
        items = np.array([len(boxes) for boxes in data.boxes], dtype=float)
        return items * BOX_DRAW_MEDIAN_S * float(np.exp(BOX_DRAW_SIGMA**2 / 2))

    @torch.no_grad()
    def threshold_labour_curve(self, config: ExperimentConfig, base: nn.Module, data: DetectionData) -> np.ndarray:
        """At each tau, the items on the images whose best score is below it, times one person's mean seconds per box."""
        sets = [data.challenges.sets[c] for c in CHALLENGE_CATEGORIES]
        best = np.array([float(d["scores"].max()) if len(d["scores"]) else 0.0
                         for canvases in sets for d in self.detect(base, canvases.images)])
        seconds = np.concatenate([self.whole_image_seconds(canvases) for canvases in sets])
        return np.array([float(np.mean(seconds * (best < tau))) for tau in TAU_GRID])

    def predict(self, model: nn.Module, gate: FittedGate, human: HumanChoice, images: torch.Tensor) -> Prediction:
        detections = self.detect(model, images)
        shifted = self.shifted_images(model, gate, images, human.tau)
        return Prediction(detections, unsure_images(detections, human.tau) if shifted is None else shifted)

    def export(self, model: nn.Module, gate: FittedGate, sample: torch.Tensor, path: Path) -> None:
        # torch.export cannot follow the RPN's data-dependent shapes; the TorchScript-based
        # exporter, which torchvision supports for its detectors, can (one image per call).
        with warnings.catch_warnings():  # the tracer's notes on torchvision's shape arithmetic, expected here
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", UserWarning)
            torch.onnx.export(self.exported_module(model, gate), ([sample[0]],), path, input_names=["image"],
                              output_names=list(self.onnx_outputs(gate)), opset_version=ONNX_OPSET, dynamo=False)
