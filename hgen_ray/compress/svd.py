"""Low-rank factorisation of fully connected layers by truncated SVD.

``W (out x in) ~= U_r S_r V_r^T`` becomes two linear layers, ``in -> r`` (no
bias) and ``r -> out``, which cuts parameters whenever
``r < in * out / (in + out)``. A 1x1 conv is a linear layer applied at every
pixel (H-YOLO's per-cell head), so it is factorised the same way into two 1x1 convs.
"""

from __future__ import annotations

import torch
from torch import nn

from hgen_ray.config.shrinkage import kept_rank

__all__ = ["factorize", "factorize_linear", "factorize_pointwise_conv", "rank_for_ratio", "replace_module"]


def _features(layer: nn.Module) -> tuple[int, int]:
    if isinstance(layer, nn.Linear):
        return layer.in_features, layer.out_features
    if isinstance(layer, nn.Conv2d) and layer.kernel_size == (1, 1) and layer.groups == 1:
        return layer.in_channels, layer.out_channels
    raise TypeError(f"SVD applies to linear layers and 1x1 convs, not {type(layer).__name__}")


def rank_for_ratio(layer: nn.Module, ratio: float) -> int:
    """Rank kept when ``ratio`` of the full rank is removed (at least 1)."""
    return kept_rank(min(_features(layer)), ratio)


@torch.no_grad()
def factorize_linear(layer: nn.Linear, rank: int) -> nn.Sequential:
    """Best rank-``rank`` approximation of ``layer`` (Eckart-Young) as two linears."""
    u, s, vh = torch.linalg.svd(layer.weight, full_matrices=False)
    root = s[:rank].sqrt()
    first = nn.Linear(layer.in_features, rank, bias=False)
    second = nn.Linear(rank, layer.out_features, bias=layer.bias is not None)
    first.weight.copy_(root[:, None] * vh[:rank])  # split S evenly for balanced scales
    second.weight.copy_(u[:, :rank] * root[None, :])
    if layer.bias is not None:
        second.bias.copy_(layer.bias)
    return nn.Sequential(first, second)


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Swap the submodule at dotted ``name`` for ``new``."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


@torch.no_grad()
def factorize_pointwise_conv(layer: nn.Conv2d, rank: int) -> nn.Sequential:
    """Best rank-``rank`` approximation of a 1x1 conv, as two 1x1 convs."""
    as_linear = nn.Linear(layer.in_channels, layer.out_channels, bias=layer.bias is not None)
    as_linear.weight.copy_(layer.weight[:, :, 0, 0])
    if layer.bias is not None:
        as_linear.bias.copy_(layer.bias)
    first, second = factorize_linear(as_linear, rank)
    convs = nn.Sequential(nn.Conv2d(layer.in_channels, rank, 1, bias=False),
                          nn.Conv2d(rank, layer.out_channels, 1, bias=layer.bias is not None))
    convs[0].weight.copy_(first.weight[:, :, None, None])
    convs[1].weight.copy_(second.weight[:, :, None, None])
    if layer.bias is not None:
        convs[1].bias.copy_(second.bias)
    return convs


def factorize(layer: nn.Module, ratio: float) -> nn.Sequential:
    """Factorise a linear layer or 1x1 conv, removing ``ratio`` of its rank.

    Raises:
        TypeError: The layer is neither.
    """
    rank = rank_for_ratio(layer, ratio)
    if isinstance(layer, nn.Linear):
        return factorize_linear(layer, rank)
    return factorize_pointwise_conv(layer, rank)  # type: ignore[arg-type]
