"""Which layers of any classifier to compress when the user names none: its costliest plain convs and hidden linears."""

from __future__ import annotations

import torch
from torch import nn

from hgen_ray.config import ConfigError

__all__ = ["AUTOMATIC_CONVS", "automatic_layers"]

# A network of a zoo has dozens of convs; an episode over all of them would teach the agents little in a
# few dozen trials. By default the few that do the most work are searched (assumed; set model.layers).
AUTOMATIC_CONVS = 4


@torch.no_grad()
def _macs(model: nn.Module, convs: list[str], sample: torch.Tensor) -> dict[str, int]:
    """Multiply-accumulates of each conv on one sample: weights times output pixels."""
    macs: dict[str, int] = {}
    hooks = [model.get_submodule(n).register_forward_hook(
        lambda module, _inputs, out, name=n: macs.__setitem__(name, module.weight.numel() * out.shape[-1] * out.shape[-2]))
        for n in convs]
    try:
        model.eval()(sample)
    finally:
        for hook in hooks:
            hook.remove()
    return macs


def automatic_layers(model: nn.Module, sample: torch.Tensor, names: tuple[str, ...] = ()) -> dict[str, str]:
    """Compressible layers of any network: the named ones, or its costliest plain convs and hidden linears.

    A conv is prunable when it is not grouped (depthwise convs follow their input's channels).
    The stem sees the raw image and the last linear layer is the head, whose width is the class
    count: both are left whole. Convs are ranked by their work on one sample, so a squeeze-and-
    excitation block's 1x1 convs, run on a single pixel, rank below the main path's.

    Raises:
        ConfigError: A named layer is not a plain conv or linear layer, or the network has none to compress.
    """
    kinds = {n: ("conv" if isinstance(m, nn.Conv2d) else "fc") for n, m in model.named_modules()
             if isinstance(m, nn.Linear) or (isinstance(m, nn.Conv2d) and m.groups == 1)}
    unknown = [n for n in names if n not in kinds]
    if unknown:
        shown = ", ".join(list(kinds)[:12]) + (", ..." if len(kinds) > 12 else "")
        raise ConfigError(f"model.layers: {unknown[0]!r} is not a plain conv or linear layer of the network; "
                          f"allowed: {shown}")
    if names:
        return {n: kinds[n] for n in names}
    linears = [n for n, k in kinds.items() if k == "fc"][:-1]
    convs = [n for n, k in kinds.items() if k == "conv"][1:]
    macs = _macs(model, convs, sample)
    costliest = sorted(convs, key=lambda n: macs.get(n, 0), reverse=True)[:AUTOMATIC_CONVS]
    layers = {n: kinds[n] for n in kinds if n in costliest or n in linears}
    if not layers:
        raise ConfigError("model.layers: the network has no plain conv past its first and no linear layer before "
                          "its head to compress; allowed: name its layers in model.layers")
    return layers
