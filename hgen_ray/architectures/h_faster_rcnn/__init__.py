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
    gate_rule = "the image goes to people when its best score < tau; their boxes join the RPN's proposals"
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

    def people_pass(self, model: nn.Module, data: DetectionSet, category: str, severity: int, candidate: Candidate,
                    pool: HumanPool, split: str) -> HumanOutcome:
        return human_boxes_pass(model, self.detect(model, data.images), data, category, severity,  # type: ignore[arg-type]
                                candidate, pool, split)

    @torch.no_grad()
    def threshold_labour_curve(self, config: ExperimentConfig, base: nn.Module, data: DetectionData) -> np.ndarray:
        """At each tau, the items on the images whose best score is below it, times one person's mean seconds per box."""
        best, items = [], []
        for category in CHALLENGE_CATEGORIES:
            canvases = data.challenges.sets[category]
            best += [float(d["scores"].max()) if len(d["scores"]) else 0.0 for d in self.detect(base, canvases.images)]
            items += [len(boxes) for boxes in canvases.boxes]
        best_score, item_count = np.array(best), np.array(items, dtype=float)
        boxes = np.array([float(np.mean(item_count * (best_score < tau))) for tau in TAU_GRID])
        return boxes * BOX_DRAW_MEDIAN_S * float(np.exp(BOX_DRAW_SIGMA**2 / 2))  # lognormal mean

    def predict(self, model: nn.Module, gate: FittedGate, human: HumanChoice, images: torch.Tensor) -> Prediction:
        detections = self.detect(model, images)
        return Prediction(detections, unsure_images(detections, human.tau))

    def export(self, model: nn.Module, gate: FittedGate, sample: torch.Tensor, path: Path) -> None:
        # torch.export cannot follow the RPN's data-dependent shapes; the TorchScript-based
        # exporter, which torchvision supports for its detectors, can (one image per call).
        with warnings.catch_warnings():  # the tracer's notes on torchvision's shape arithmetic, expected here
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", UserWarning)
            torch.onnx.export(model.eval(), ([sample[0]],), path, input_names=["image"],
                              output_names=list(self.output_names), opset_version=ONNX_OPSET, dynamo=False)
