"""H-CNN: the paper's small classifier on Fashion-MNIST (or any image data), with a confidence gate."""

from __future__ import annotations

from typing import Any

from torch import nn

from hgen_ray.architectures.classifier import ImageClassifier
from hgen_ray.architectures.h_cnn.network import COMPRESSIBLE_LAYERS, BaseCNN, build_h_cnn
from hgen_ray.config import ExperimentConfig

__all__ = ["HCNN", "BaseCNN", "build_h_cnn"]


class HCNN(ImageClassifier):
    name = "h_cnn"

    def build(self, config: ExperimentConfig, channels: int, num_classes: int) -> nn.Module:
        return build_h_cnn(config.model, channels, num_classes)

    def compressible_layers(self, config: ExperimentConfig, base: nn.Module, data: Any) -> dict[str, str]:
        return dict(COMPRESSIBLE_LAYERS)

    def declared_layers(self, config: ExperimentConfig) -> dict[str, str]:
        # The classifier head fc2 is left whole: it is tiny and its width is the class count.
        return dict(COMPRESSIBLE_LAYERS)
