"""Low-rank factorisation of fully connected layers by truncated SVD.

``W (out x in) ~= U_r S_r V_r^T`` becomes two linear layers, ``in -> r`` (no
bias) and ``r -> out``, which cuts parameters whenever
``r < in * out / (in + out)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["factorize_linear", "rank_for_ratio", "replace_module"]


def rank_for_ratio(layer: nn.Linear, ratio: float) -> int:
    """Rank kept when ``ratio`` of the full rank is removed (at least 1)."""
    full_rank = min(layer.in_features, layer.out_features)
    return max(1, math.ceil((1.0 - ratio) * full_rank))


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
