"""Any torchvision classification model, built from scratch (no weights are ever downloaded).

    model: {name: torchvision, arch: mobilenet_v3_small, weights: path/to/weights.pt}

torchvision's classifiers take 3-channel images; greyscale data is repeated to
3 channels in front of the network. With ``weights`` the network starts from
that state dict and is not trained here.
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from hgen_ray.architectures.classifier import ImageClassifier
from hgen_ray.architectures.weights import file_digest, load_user_weights
from hgen_ray.config import ConfigError, ExperimentConfig

__all__ = ["GreyToColour", "TorchvisionClassifier"]

ZOO_CHANNELS = 3
AUXILIARY_HEADS = ("googlenet", "inception_v3")


class GreyToColour(nn.Module):
    """Repeats a greyscale image to the 3 channels a zoo network takes."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x.repeat(1, ZOO_CHANNELS, 1, 1))


def classification_models() -> list[str]:
    return sorted(torchvision.models.list_models(module=torchvision.models))


class TorchvisionClassifier(ImageClassifier):
    name = "torchvision"

    def check_config(self, config: ExperimentConfig) -> None:
        known = classification_models()
        if config.model.arch not in known:
            raise ConfigError(f"model.arch: {config.model.arch!r} is not a torchvision classification model; "
                              f"allowed: one of torchvision.models.list_models(), e.g. mobilenet_v3_small, "
                              f"resnet18, efficientnet_b0 ({len(known)} in all)")

    def build(self, config: ExperimentConfig, channels: int, num_classes: int) -> nn.Module:
        # Inception-style nets add auxiliary heads in training; hgen-ray trains on the main output only.
        auxiliary = {"aux_logits": False, "init_weights": True} if config.model.arch in AUXILIARY_HEADS else {}
        network = torchvision.models.get_model(config.model.arch, weights=None, num_classes=num_classes, **auxiliary)
        return network if channels == ZOO_CHANNELS else GreyToColour(network)

    def starting_point(self, config: ExperimentConfig) -> str:
        return file_digest(config.model.weights) if config.model.weights else ""

    def starting_weights(self, config: ExperimentConfig, model: nn.Module) -> bool:
        if not config.model.weights:
            return False
        # A torchvision state dict names the zoo network's own layers, also when greyscale data wraps it.
        load_user_weights(model.network if isinstance(model, GreyToColour) else model, config.model.weights)
        return True
