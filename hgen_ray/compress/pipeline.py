"""One candidate's compression: prune convs, factorise fcs, fine-tune, then int8 where chosen.

Generic: it knows no model and no data. The architecture hands it a
:class:`CompressionPlan`: an input to trace with, where Taylor scores take their
gradients, which part of the network traces (all of it for most; Faster R-CNN's
forward has data-dependent control flow that NNI's tracer cannot follow, so its
backbone is pruned and sped up as its own module) and how to fine-tune.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from hgen_ray.compress.pruning import TaylorData, prune_conv_channels
from hgen_ray.compress.quantization import NotQuantizable, quantize_layers
from hgen_ray.compress.svd import factorize, replace_module
from hgen_ray.config import CONV_TECHNIQUES, FC_TECHNIQUES, Candidate, ConfigError

__all__ = ["CompressionPlan", "compress_network", "validate_candidate"]

log = logging.getLogger(__name__)
_TECHNIQUES = {"conv": CONV_TECHNIQUES, "fc": FC_TECHNIQUES}


@dataclass(frozen=True)
class CompressionPlan:
    """What compression needs of an architecture."""

    dummy_input: torch.Tensor  # a batch the tracer runs through the pruned part's owner
    taylor: Callable[[nn.Module], TaylorData]  # gradients for Taylor scores, given the copy being compressed
    finetune: Callable[[nn.Module], None]  # trains the compressed copy in place (a no-op for 0 epochs)
    pruned_part: str = ""  # the submodule that traces and is pruned; "" = the whole network
    part_input: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None  # the part's input, from dummy_input


def validate_candidate(candidate: Candidate, layers: dict[str, str]) -> None:
    """Check layer names and that each technique suits its layer kind.

    Raises:
        ConfigError: Naming the layer and what is allowed.
    """
    for name, choice in candidate.layers.items():
        if name not in layers:
            raise ConfigError(f"candidate.layers.{name}: no such compressible layer; allowed: {', '.join(layers)}")
        allowed = _TECHNIQUES[layers[name]]
        if choice.technique not in allowed:
            raise ConfigError(
                f"candidate.layers.{name}.technique: {choice.technique!r} does not apply to a "
                f"{layers[name]} layer; allowed: {', '.join(allowed)}"
            )


def compress_network(base: nn.Module, candidate: Candidate, layers: dict[str, str], plan: CompressionPlan) -> nn.Module:
    """A compressed, fine-tuned copy of ``base``; ``base`` itself is untouched.

    Args:
        base: The trained base network.
        candidate: Per-layer technique, ratio and bits (the human part is not used here).
        layers: The network's compressible layers, name -> ``conv`` or ``fc``.
        plan: The architecture's tracing input, Taylor data, pruned part and fine-tuning.
    """
    validate_candidate(candidate, layers)
    model = copy.deepcopy(base).eval()
    convs = {n: c for n, c in candidate.layers.items() if layers[n] == "conv"}
    if plan.pruned_part:
        prefix = plan.pruned_part + "."
        part = model.get_submodule(plan.pruned_part)
        within = {name.removeprefix(prefix): choice for name, choice in convs.items()}
        dummy = plan.part_input(model, plan.dummy_input) if plan.part_input else plan.dummy_input
        prune_conv_channels(part, within, dummy, plan.taylor(model))
    else:
        model = prune_conv_channels(model, convs, plan.dummy_input, plan.taylor(model))
    for name, choice in candidate.layers.items():
        if layers[name] == "fc" and choice.technique == "svd" and choice.ratio > 0:
            replace_module(model, name, factorize(model.get_submodule(name), choice.ratio))
    plan.finetune(model)  # uncompressed too: every candidate and reference gets the same training (fair comparison)
    int8 = [name for name, choice in candidate.layers.items() if choice.bits == 8]
    try:  # after fine-tuning: int8 weights are not trained (post-training quantization)
        quantize_layers(model, int8)
    except NotQuantizable as error:
        raise ConfigError(f"candidate.layers.{error.layer}.bits: 8 does not apply to a {error.kind}; "
                          "allowed: 32") from None
    return model.eval()
