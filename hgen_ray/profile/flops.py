"""Multiply-accumulates per module, counted by torch's ``FlopCounterMode`` rather than by hand.

Both places that count work read it: the search space's layer facts
(:func:`hgen_ray.controller.space.describe_layers`) and the energy estimate
(:func:`hgen_ray.profile.energy.count_macs_and_bytes`). torch counts a
multiply-accumulate as two FLOPs.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["macs_by_module"]


@torch.no_grad()
def macs_by_module(model: nn.Module, sample: torch.Tensor) -> dict[str, int]:
    """Multiply-accumulates of one forward pass of ``sample``, per module name (each module's own and its
    children's; ``""`` is the whole network), in eval mode."""
    with FlopCounterMode(display=False) as counter:
        model.eval()(sample)
    root = type(model).__name__
    counts = {}
    for key, by_operator in counter.get_flop_counts().items():
        if key == "Global":
            continue
        counts["" if key == root else key.removeprefix(root + ".")] = sum(by_operator.values()) // 2
    return counts
