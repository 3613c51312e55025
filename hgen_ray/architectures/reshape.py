"""Shape a freshly built network like a saved, compressed one, so that its state dict loads.

Compression changes only the widths of convs, batch norms and linears (pruning),
and turns a linear or 1x1 conv into two (SVD). A saved H-DNN holds only tensors,
never code, so it is rebuilt from its architecture and those tensors' shapes.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from hgen_ray.compress.svd import replace_module

__all__ = ["reshape_like"]


def _resized_conv(conv: nn.Conv2d, weight: torch.Tensor, has_bias: bool) -> nn.Conv2d:
    out_channels, per_group = weight.shape[:2]
    depthwise = conv.groups > 1 and conv.groups == conv.in_channels == conv.out_channels
    groups = out_channels if depthwise else conv.groups
    return nn.Conv2d(per_group * groups, out_channels, tuple(weight.shape[2:]), conv.stride, conv.padding,  # type: ignore[arg-type]
                     conv.dilation, groups, has_bias, conv.padding_mode)


def _factorised(layer: nn.Module, first: torch.Tensor, second: torch.Tensor, has_bias: bool) -> nn.Sequential:
    if isinstance(layer, nn.Linear):
        return nn.Sequential(nn.Linear(first.shape[1], first.shape[0], bias=False),
                             nn.Linear(second.shape[1], second.shape[0], bias=has_bias))
    return nn.Sequential(nn.Conv2d(first.shape[1], first.shape[0], 1, bias=False),
                         nn.Conv2d(second.shape[1], second.shape[0], 1, bias=has_bias))


def _resized(name: str, layer: nn.Module, state: Mapping[str, torch.Tensor]) -> nn.Module | None:
    """A replacement for ``layer`` fitting the saved tensors, or None when it fits already."""
    prefix = f"{name}." if name else ""
    if isinstance(layer, (nn.Linear, nn.Conv2d)) and f"{prefix}0.weight" in state and f"{prefix}weight" not in state:
        return _factorised(layer, state[f"{prefix}0.weight"], state[f"{prefix}1.weight"], f"{prefix}1.bias" in state)
    weight = state.get(f"{prefix}weight")
    if isinstance(layer, nn.Conv2d) and weight is not None and weight.shape != layer.weight.shape:
        return _resized_conv(layer, weight, f"{prefix}bias" in state)
    if isinstance(layer, nn.Linear) and weight is not None and weight.shape != layer.weight.shape:
        return nn.Linear(weight.shape[1], weight.shape[0], bias=f"{prefix}bias" in state)
    mean = state.get(f"{prefix}running_mean")
    if isinstance(layer, nn.BatchNorm2d) and mean is not None and mean.shape[0] != layer.num_features:
        return nn.BatchNorm2d(mean.shape[0], layer.eps, layer.momentum, layer.affine, layer.track_running_stats)
    return None


def reshape_like(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> nn.Module:
    """``model`` with every pruned or factorised layer replaced to fit ``state_dict``, loaded with it.

    Raises:
        RuntimeError: The state dict is not this network's (names or other shapes differ).
    """
    for name, layer in list(model.named_modules()):
        replacement = _resized(name, layer, state_dict)
        if replacement is not None:
            replace_module(model, name, replacement)
    model.load_state_dict(state_dict)
    return model.eval()
