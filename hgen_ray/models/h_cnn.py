"""H-CNN: a small conv-pool-fc classifier plus a chain of humans behind a gate.

The network is the paper's "original DNN" for classification: two conv blocks
and two fully connected layers. The human side (see :mod:`hgen_ray.models.gate`
and :mod:`hgen_ray.human`) branches off the fc output: a sample whose calibrated
confidence is below tau goes to a chain of k people, and their answer replaces
the network's.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from hgen_ray.config import ModelConfig

__all__ = ["COMPRESSIBLE_LAYERS", "FASHION_MNIST_MEAN", "FASHION_MNIST_STD", "BaseCNN", "build_h_cnn", "rebuild_h_cnn"]

FASHION_MNIST_MEAN = 0.2860  # pixel mean of the train split, in [0, 1]
FASHION_MNIST_STD = 0.3530  # pixel std of the train split
NUM_CLASSES = 10
IMAGE_SIDE = 28

# Layer name -> kind. Conv layers take channel pruning, fc layers SVD. The
# classifier head fc2 is left whole: it is tiny and its width is the class count.
COMPRESSIBLE_LAYERS: dict[str, str] = {"conv1": "conv", "conv2": "conv", "fc1": "fc"}


class BaseCNN(nn.Module):
    """conv-bn-relu-pool x2, then fc-relu-fc; takes raw ``[0, 1]`` images."""

    def __init__(self, conv_channels: tuple[int, int] = (32, 64), fc_units: int = 128) -> None:
        super().__init__()
        first, second = conv_channels
        self.conv1 = nn.Conv2d(1, first, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(first)
        self.conv2 = nn.Conv2d(first, second, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(second)
        self.fc1 = nn.Linear(second * (IMAGE_SIDE // 4) ** 2, fc_units)
        self.dropout = nn.Dropout(0.2)
        self.fc2 = nn.Linear(fc_units, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - FASHION_MNIST_MEAN) / FASHION_MNIST_STD
        x = torch.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
        x = torch.max_pool2d(torch.relu(self.bn2(self.conv2(x))), 2)
        x = self.dropout(torch.relu(self.fc1(torch.flatten(x, 1))))
        return self.fc2(x)


def build_h_cnn(config: ModelConfig) -> BaseCNN:
    """A freshly initialised network with the configured widths."""
    return BaseCNN(tuple(config.conv_channels), config.fc_units)  # type: ignore[arg-type]


def rebuild_h_cnn(state_dict: Mapping[str, torch.Tensor]) -> BaseCNN:
    """An H-CNN shaped like ``state_dict``: pruned widths and an SVD-factorised fc1 are read off the tensors.

    Raises:
        KeyError: The state dict is not an H-CNN's.
    """
    conv1, conv2 = state_dict["conv1.weight"].shape[0], state_dict["conv2.weight"].shape[0]
    factorised = "fc1.0.weight" in state_dict
    fc_units = state_dict["fc1.1.weight" if factorised else "fc1.weight"].shape[0]
    model = BaseCNN((conv1, conv2), fc_units)
    if factorised:
        rank, in_features = state_dict["fc1.0.weight"].shape
        model.fc1 = nn.Sequential(nn.Linear(in_features, rank, bias=False), nn.Linear(rank, fc_units))  # type: ignore[assignment]
    model.load_state_dict(state_dict)
    return model.eval()
