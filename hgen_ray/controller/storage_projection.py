"""A candidate's storage, exactly, from shapes alone: what the search's budget help checks.

The base network's state dict is described by its tensors' shapes
(:class:`StorageLayout`), plus, for each compressible conv, which dimensions of
which tensors shrink with its output channels: its own weight, bias and batch
norm, the next layer's input, and an fc layer's input when the conv's maps are
flattened into it. That coupling is measured once per search by pruning each conv
for real (``hgen_ray.search.setup.storage_layout``), so that pruning a conv buys
the fc layer after it the rank it frees. A candidate's tensors then follow from
arithmetic: channels kept, the rank an SVD keeps, and int8 weights (one byte each
plus one fp32 scale per output row). Their bytes are counted by the same function
the measured storage uses (:func:`hgen_ray.profile.storage.weights_bytes`), so the
projection and the measurement agree to the byte (``tests/controller`` checks 50
random candidates).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hgen_ray.config import LayerChoice
from hgen_ray.config.shrinkage import kept_channels, kept_rank
from hgen_ray.profile.storage import TensorSpec, weights_bytes

__all__ = ["StorageLayout"]

INT8_BYTES, SCALE_BYTES = 1, 4


@dataclass(frozen=True)
class StorageLayout:
    """The base network's tensors, and how compressing each layer reshapes them.

    Attributes:
        tensors: The base state dict's tensors (name -> shape and element size).
        kinds: Compressible layer -> ``conv`` (pruned) or ``fc`` (SVD).
        coupled: Conv -> the ``(tensor, dim)`` pairs whose size is proportional to its output channels.
        out_channels: Conv -> its output channels in the base.
    """

    tensors: Mapping[str, TensorSpec]
    kinds: Mapping[str, str]
    coupled: Mapping[str, tuple[tuple[str, int], ...]]
    out_channels: Mapping[str, int]

    def projected_bytes(self, layers: Mapping[str, LayerChoice]) -> int:
        """The stored bytes of the network these layer choices make."""
        return weights_bytes(self.projected_tensors(layers))

    def projected_tensors(self, layers: Mapping[str, LayerChoice]) -> dict[str, TensorSpec]:
        """The compressed network's state dict tensors, in order: pruned, then factorised, then int8."""
        shapes = {name: list(shape) for name, (shape, _) in self.tensors.items()}
        sizes = {name: size for name, (_, size) in self.tensors.items()}
        for conv, choice in layers.items():
            if self.kinds[conv] == "conv" and choice.technique != "none" and choice.ratio > 0:
                out = self.out_channels[conv]
                kept = kept_channels(out, choice.ratio)
                for tensor, dim in self.coupled[conv]:
                    shapes[tensor][dim] = self.tensors[tensor][0][dim] // out * kept
        for fc, choice in layers.items():
            if self.kinds[fc] == "fc" and choice.technique == "svd" and choice.ratio > 0:
                _factorise(shapes, sizes, fc, choice.ratio)
        for layer, choice in layers.items():
            if choice.bits == 8:
                _to_int8(shapes, sizes, layer)
        return {name: (tuple(shape), sizes[name]) for name, shape in shapes.items()}


def _factorise(shapes: dict[str, list[int]], sizes: dict[str, int], layer: str, ratio: float) -> None:
    """``layer.weight [out, in, ...]`` -> ``layer.0.weight [r, in, ...]`` and ``layer.1.weight [out, r, ...]``,
    the bias moving to the second factor (:func:`hgen_ray.compress.svd.factorize`)."""
    out, inputs, *kernel = shapes.pop(f"{layer}.weight")
    size = sizes[f"{layer}.weight"]
    rank = kept_rank(min(out, inputs), ratio)
    shapes[f"{layer}.0.weight"], sizes[f"{layer}.0.weight"] = [rank, inputs, *kernel], size
    shapes[f"{layer}.1.weight"], sizes[f"{layer}.1.weight"] = [out, rank, *kernel], size
    if f"{layer}.bias" in shapes:
        shapes[f"{layer}.1.bias"], sizes[f"{layer}.1.bias"] = shapes.pop(f"{layer}.bias"), sizes[f"{layer}.bias"]


def _to_int8(shapes: dict[str, list[int]], sizes: dict[str, int], layer: str) -> None:
    """Each weight of the layer (or of its two SVD factors) as int8 values plus one fp32 scale per output row
    (:mod:`hgen_ray.compress.quantization`)."""
    for weight in [f"{layer}.weight", f"{layer}.0.weight", f"{layer}.1.weight"]:
        if weight in shapes:
            shape = shapes.pop(weight)
            shapes[f"{weight}_int8"], sizes[f"{weight}_int8"] = shape, INT8_BYTES
            shapes[f"{weight}_scale"], sizes[f"{weight}_scale"] = [shape[0]], SCALE_BYTES
