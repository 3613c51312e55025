"""Storage: the bytes of the compressed network's weights as they ship.

Storage is the sum of every state-dict tensor's bytes (a fresh contiguous copy of
each: int8 weights count one byte, their per-channel scales four). The container
around them (``torch.save``'s zip entries, ONNX's protobuf) adds a few hundred bytes
per tensor, the same for every candidate, and is left out, so that the search's
projection (:mod:`hgen_ray.controller.storage_projection`) computes the very same
number from shapes alone, with this module's :func:`weights_bytes`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["BYTES_PER_MB", "TensorSpec", "storage_mb", "tensor_specs", "weights_bytes"]

BYTES_PER_MB = 1_000_000  # decimal megabytes, as app stores report sizes

TensorSpec = tuple[tuple[int, ...], int]  # a tensor's shape and bytes per element


def tensor_specs(state_dict: Mapping[str, torch.Tensor]) -> dict[str, TensorSpec]:
    """Each tensor's shape and element size: all that its stored bytes depend on."""
    return {name: (tuple(tensor.shape), tensor.element_size()) for name, tensor in state_dict.items()}


def weights_bytes(specs: Mapping[str, TensorSpec]) -> int:
    """The bytes of the tensors ``specs`` describes."""
    return sum(math.prod(shape) * size for shape, size in specs.values())


def storage_mb(model: nn.Module) -> float:
    """The bytes of ``model``'s state dict tensors, in MB."""
    return weights_bytes(tensor_specs(model.state_dict())) / BYTES_PER_MB
