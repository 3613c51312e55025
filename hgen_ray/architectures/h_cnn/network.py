"""H-CNN's network: a small conv-pool-fc classifier.

The paper's "original DNN" for classification: two conv blocks and two fully
connected layers. The human side branches off the fc output (the gate of
:class:`hgen_ray.architectures.classifier.ImageClassifier`).
"""

from __future__ import annotations

import torch
from torch import nn

from hgen_ray.config import ModelConfig

__all__ = ["COMPRESSIBLE_LAYERS", "FASHION_MNIST_MEAN", "FASHION_MNIST_STD", "NUM_CLASSES", "BaseCNN", "build_h_cnn"]

FASHION_MNIST_MEAN = 0.2860  # pixel mean of the train split, in [0, 1]
FASHION_MNIST_STD = 0.3530  # pixel std of the train split
NUM_CLASSES = 10
POOLED_SIDE = 7  # two 2x2 pools bring Fashion-MNIST's 28 px to 7; other sizes are pooled to it

# Layer name -> kind. Conv layers take channel pruning, fc layers SVD. The
# classifier head fc2 is left whole: it is tiny and its width is the class count.
COMPRESSIBLE_LAYERS: dict[str, str] = {"conv1": "conv", "conv2": "conv", "fc1": "fc"}


class BaseCNN(nn.Module):
    """conv-bn-relu-pool x2, then fc-relu-fc; takes raw ``[0, 1]`` images."""

    def __init__(self, conv_channels: tuple[int, int] = (32, 64), fc_units: int = 128, in_channels: int = 1,
                 num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        first, second = conv_channels
        self.conv1 = nn.Conv2d(in_channels, first, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(first)
        self.conv2 = nn.Conv2d(first, second, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(second)
        self.fc1 = nn.Linear(second * POOLED_SIDE**2, fc_units)
        self.dropout = nn.Dropout(0.2)
        self.fc2 = nn.Linear(fc_units, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - FASHION_MNIST_MEAN) / FASHION_MNIST_STD
        x = torch.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
        x = torch.max_pool2d(torch.relu(self.bn2(self.conv2(x))), 2)
        x = nn.functional.adaptive_avg_pool2d(x, POOLED_SIDE)  # on Fashion-MNIST's 7 x 7 maps, the identity
        x = self.dropout(torch.relu(self.fc1(torch.flatten(x, 1))))
        return self.fc2(x)


def build_h_cnn(config: ModelConfig, in_channels: int = 1, num_classes: int = NUM_CLASSES) -> BaseCNN:
    """A freshly initialised network with the configured widths."""
    return BaseCNN(tuple(config.conv_channels), config.fc_units, in_channels, num_classes)  # type: ignore[arg-type]
