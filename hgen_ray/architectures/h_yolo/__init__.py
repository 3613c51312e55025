"""H-YOLO: a compact grid detector whose ambiguous cells people check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hgen_ray.architectures.base import TAU_GRID, Prediction
from hgen_ray.architectures.gate import FittedGate, forward_with_input_of
from hgen_ray.architectures.detector import Detector, HumanOutcome, batched_output
from hgen_ray.architectures.h_yolo.network import (
    GRID_STRIDE,
    YOLO_COMPRESSIBLE_LAYERS,
    HYolo,
    decode_cells,
    every_cell_of,
    gated_cells,
    rebuild_h_yolo,
    yolo_loss,
)
from hgen_ray.architectures.h_yolo.people import human_cells_pass
from hgen_ray.config import CHALLENGE_CATEGORIES, Candidate, ConfigError, ExperimentConfig, HumanChoice
from hgen_ray.data.detection_splits import DetectionData, DetectionSet
from hgen_ray.human import HumanPool
from hgen_ray.human.detection_tasks import CELL_CHECK_MEDIAN_S, CELL_CHECK_SIGMA

__all__ = ["HYOLO"]

# "Human only" for H-YOLO: every cell with any objectness at all goes to a person.
EVERY_CELL = HumanChoice(mechanism="sequential", tau=1e-6, k=1, tau_high=1.0)


class HYOLO(Detector):
    name = "h_yolo"
    gate_rule = ("msp: a cell goes to people when tau > 0 and tau <= sigmoid(cells[:, 0]) <= tau_high; "
                 "mahalanobis: every cell of an image whose gate_confidence < tau")
    output_names = ("cells",)

    def build(self, config: ExperimentConfig) -> nn.Module:
        return HYolo()

    def rebuild(self, config: ExperimentConfig, state_dict: dict[str, torch.Tensor],
                input_shape: tuple[int, ...]) -> nn.Module:
        return rebuild_h_yolo(state_dict)

    def loss(self, model: nn.Module, images: torch.Tensor, targets: list[dict[str, torch.Tensor]]) -> torch.Tensor:
        return yolo_loss(model(images), targets, images.shape[-1])

    def detect_batch(self, model: nn.Module, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        return decode_cells(model(images), images.shape[-1])

    def compressible_layers(self, config: ExperimentConfig, base: nn.Module, data: Any) -> dict[str, str]:
        return dict(YOLO_COMPRESSIBLE_LAYERS)

    def declared_layers(self, config: ExperimentConfig) -> dict[str, str]:
        return dict(YOLO_COMPRESSIBLE_LAYERS)

    def people_pass(self, model: nn.Module, gate: FittedGate, data: DetectionSet, category: str, severity: int,
                    candidate: Candidate, pool: HumanPool, split: str) -> HumanOutcome:
        shifted = self.shifted_images(model, gate, data.images, candidate.human.tau)
        return human_cells_pass(model, data, category, severity, candidate, pool, split, shifted)

    def image_features(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return forward_with_input_of(model, model.head1, images)[1].mean(dim=(2, 3))

    def whole_image_seconds(self, data: DetectionSet) -> np.ndarray:
        """Every cell of the grid checked, each at one person's mean seconds per cell check."""
        cells = (data.images.shape[-1] // GRID_STRIDE) ** 2
        return np.full(len(data), cells * CELL_CHECK_MEDIAN_S * float(np.exp(CELL_CHECK_SIGMA**2 / 2)))

    def reference_candidates(self, config: ExperimentConfig) -> dict[str, Candidate]:
        return {"original": Candidate(), "human_only": Candidate(human=EVERY_CELL)}

    def max_tau(self, config: ExperimentConfig) -> float:
        """The band is ``[tau, tau_high]`` with the config candidate's ``tau_high``: tau may not pass it."""
        return config.candidate.human.tau_high

    def check_candidate(self, candidate: Candidate, config: ExperimentConfig) -> None:
        super().check_candidate(candidate, config)
        human = candidate.human
        if human.tau > 0 and human.tau_high < human.tau:
            raise ConfigError(f"candidate.human.tau_high: {human.tau_high} is below tau {human.tau}; "
                              f"allowed for h_yolo: tau_high >= tau")

    @torch.no_grad()
    def threshold_labour_curve(self, config: ExperimentConfig, base: nn.Module, data: DetectionData) -> np.ndarray:
        """Cells in the band per image at each tau, times one person's mean seconds per cell check."""
        objectness = torch.cat([torch.sigmoid(batched_output(base, data.challenges.sets[c].images)[:, 0]).flatten(1)
                                for c in CHALLENGE_CATEGORIES])
        tau_high = self.max_tau(config)
        cells = np.array([float(((objectness >= tau) & (objectness <= tau_high)).sum(1).float().mean()) if tau > 0
                          else 0.0 for tau in TAU_GRID])
        return cells * CELL_CHECK_MEDIAN_S * float(np.exp(CELL_CHECK_SIGMA**2 / 2))  # lognormal mean

    def export(self, model: nn.Module, gate: FittedGate, sample: torch.Tensor, path: Path) -> None:
        super().export(self.exported_module(model, gate), gate, sample, path)

    def gate_settings(self, human: HumanChoice) -> dict[str, float]:
        return {"tau_high": human.tau_high}

    def predict(self, model: nn.Module, gate: FittedGate, human: HumanChoice, images: torch.Tensor) -> Prediction:
        output = model.eval()(images)
        shifted = self.shifted_images(model, gate, images, human.tau)
        gated = gated_cells(output, human.tau, human.tau_high) if shifted is None else every_cell_of(output, shifted)
        return Prediction(decode_cells(output, images.shape[-1]), gated.flatten(1).any(1))
