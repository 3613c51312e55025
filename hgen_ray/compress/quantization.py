"""int8 weights: per output channel, symmetric, stored as int8 bytes and dequantized in the forward pass.

A layer that chooses ``bits: 8`` keeps its weight as int8 plus one fp32 scale per output
channel (Jacob et al., "Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference", CVPR 2018, symmetric per-channel weights). Its state
dict holds those int8 bytes, so the measured storage is what ships, and its ONNX export
holds int8 initializers followed by a Cast and a Mul (DequantizeLinear's arithmetic),
which onnxruntime runs.

Why weight-only rather than torch's quantized modules or onnxruntime's quantizer: torch's
quantized modules (dynamic Linear, FX static Conv) do not export through torch 2.x's ONNX
exporter, and they are no longer ``nn.Linear``, whose input the gate's feature scores read;
onnxruntime's quantizer would move the evaluated network out of torch, where the gate, the
people and the profiler run. The cost, stated wherever it shows: the arithmetic stays
fp32, so int8 saves storage and weight traffic (energy), not multiply-accumulates, and its
latency does not fall.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from hgen_ray.compress.svd import replace_module

__all__ = ["INT8_MAX", "Int8Conv2d", "Int8Linear", "NotQuantizable", "dequantized_state", "int8_layers", "quantize_layers",
           "quantize_weight", "rebuilt_with_int8"]

INT8_MAX = 127  # symmetric: -127..127, so that zero is exact and the range is the same both ways


def quantize_weight(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """int8 values and one scale per output channel (dim 0), with ``weight ~= values * scale``."""
    flat = weight.detach().reshape(len(weight), -1).float()
    scale = (flat.abs().amax(dim=1) / INT8_MAX).clamp_min(torch.finfo(torch.float32).tiny)
    values = torch.round(flat / scale[:, None]).clamp(-INT8_MAX, INT8_MAX).to(torch.int8)
    return values.reshape(weight.shape), scale


class _Int8Weight(nn.Module):
    """An int8 weight with its per-channel scales, and the layer's fp32 bias."""

    def __init__(self, shape: tuple[int, ...], bias: bool) -> None:
        super().__init__()
        self.register_buffer("weight_int8", torch.zeros(shape, dtype=torch.int8))
        self.register_buffer("weight_scale", torch.ones(shape[0]))
        self.bias = nn.Parameter(torch.zeros(shape[0])) if bias else None

    @property
    def weight(self) -> torch.Tensor:
        """The dequantized weight the arithmetic uses."""
        scale = self.weight_scale.reshape(-1, *([1] * (self.weight_int8.dim() - 1)))
        return self.weight_int8.to(scale.dtype) * scale

    def _load_from(self, layer: nn.Linear | nn.Conv2d) -> None:
        values, scale = quantize_weight(layer.weight)
        self.weight_int8.copy_(values)
        self.weight_scale.copy_(scale)
        if self.bias is not None:
            self.bias.data.copy_(layer.bias.detach())  # type: ignore[union-attr]


class Int8Linear(_Int8Weight):
    """``nn.Linear`` with int8 weights."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__((out_features, in_features), bias)
        self.in_features, self.out_features = in_features, out_features

    @classmethod
    def from_float(cls, layer: nn.Linear) -> Int8Linear:
        quantized = cls(layer.in_features, layer.out_features, layer.bias is not None)
        quantized._load_from(layer)
        return quantized

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight, self.bias)


class Int8Conv2d(_Int8Weight):
    """``nn.Conv2d`` with int8 weights (any kernel, stride, padding, dilation and groups)."""

    def __init__(self, layer: nn.Conv2d) -> None:
        super().__init__(tuple(layer.weight.shape), layer.bias is not None)
        self.in_channels, self.out_channels = layer.in_channels, layer.out_channels
        self.kernel_size, self.stride, self.padding = layer.kernel_size, layer.stride, layer.padding
        self.dilation, self.groups = layer.dilation, layer.groups
        if layer.padding_mode != "zeros":  # the functional conv below pads with zeros only
            raise NotQuantizable("", f"conv padded with {layer.padding_mode!r}")

    @classmethod
    def from_float(cls, layer: nn.Conv2d) -> Int8Conv2d:
        quantized = cls(layer)
        quantized._load_from(layer)
        return quantized

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class NotQuantizable(ValueError):
    """A layer int8 does not apply to."""

    def __init__(self, layer: str, kind: str) -> None:
        super().__init__(f"{layer}: a {kind} cannot be quantized; int8 applies to linear layers, convs and their "
                         "SVD factors")
        self.layer, self.kind = layer, kind


def _weighted_parts(module: nn.Module, name: str) -> list[str]:
    """The linear and conv layers a compressible layer is now made of: itself, or the two of its SVD."""
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        return [name]
    parts = [f"{name}.{child}" for child, sub in module.named_children() if isinstance(sub, (nn.Linear, nn.Conv2d))]
    if not parts or len(parts) != len(list(module.children())):
        raise NotQuantizable(name, type(module).__name__)
    return parts


def quantize_layers(model: nn.Module, names: Iterable[str]) -> nn.Module:
    """Swap each named layer (or each factor of its SVD) for its int8 version, in place.

    Raises:
        NotQuantizable: A named layer is neither a linear layer, a zero-padded conv, nor a pair of them.
    """
    for name in names:
        for part in _weighted_parts(model.get_submodule(name), name):
            layer = model.get_submodule(part)
            try:
                quantized = (Int8Linear.from_float(layer) if isinstance(layer, nn.Linear)
                             else Int8Conv2d.from_float(layer))
            except NotQuantizable as error:
                raise NotQuantizable(name, error.kind) from None
            replace_module(model, part, quantized)
    return model


def int8_layers(state_dict: dict[str, torch.Tensor]) -> list[str]:
    """The layers of a state dict whose weights are int8."""
    return [key.removesuffix(".weight_int8") for key in state_dict if key.endswith(".weight_int8")]


def dequantized_state(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict with each int8 weight as the fp32 weight it stands for: what a float network loads."""
    state = {}
    for key, value in state_dict.items():
        if key.endswith(".weight_int8"):
            prefix = key.removesuffix("_int8")
            scale = state_dict[prefix + "_scale"].reshape(-1, *([1] * (value.dim() - 1)))
            state[prefix] = value.float() * scale
        elif not key.endswith(".weight_scale"):
            state[key] = value
    return state


def rebuilt_with_int8(rebuild: Callable[[dict[str, torch.Tensor]], nn.Module],
                      state_dict: dict[str, torch.Tensor]) -> nn.Module:
    """A network built by ``rebuild`` (which knows float layers only) from a state dict that may hold int8
    layers: built from the dequantized weights, those layers swapped for int8 ones, then the exact int8 state
    loaded."""
    layers = int8_layers(state_dict)
    if not layers:
        return rebuild(state_dict)
    model = quantize_layers(rebuild(dequantized_state(state_dict)), layers)
    model.load_state_dict(state_dict)
    return model
