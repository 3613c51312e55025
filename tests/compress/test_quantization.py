"""int8 weights: real bytes, the error a per-channel scale allows, exact reloads, ONNX that onnxruntime runs."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from torch import nn

from hgen_ray.architectures.classifier import TrainedBase
from hgen_ray.architectures.gate import FittedGate
from hgen_ray.architectures.h_cnn.network import BaseCNN
from hgen_ray.architectures import get_architecture
from hgen_ray.compress import Int8Linear, quantize_layers, rebuilt_with_int8
from hgen_ray.compress.pruning import prune_conv_channels
from hgen_ray.compress.svd import factorize_linear
from hgen_ray.config import Candidate, ConfigError, ExperimentConfig, HumanChoice, LayerChoice
from hgen_ray.config.shrinkage import kept_channels
from hgen_ray.data.splits import Splits
from hgen_ray.hdnn import export_onnx, load_hdnn, save_hdnn
from hgen_ray.profile import storage_mb

ONNX_INT8_TOLERANCE = 1e-4  # both run the same fp32 arithmetic on the same dequantized weights: float rounding only


def _network() -> nn.Module:
    torch.manual_seed(0)
    return BaseCNN((12, 20), 64).eval()


def test_int8_stores_one_byte_per_weight_and_one_scale_per_row() -> None:
    model = _network()
    fp32 = storage_mb(model)
    quantize_layers(model, ["conv2", "fc1"])
    weights = {name: model.get_submodule(name).weight_int8 for name in ("conv2", "fc1")}
    assert all(w.dtype == torch.int8 for w in weights.values())
    saved = sum((4 - 1) * w.numel() - 4 * w.shape[0] for w in weights.values())  # 3 bytes per weight, less scales
    assert round((fp32 - storage_mb(model)) * 1e6) == saved


def test_storage_is_the_bytes_of_the_saved_tensors_and_the_file_adds_only_its_container() -> None:
    model = quantize_layers(_network(), ["conv1", "conv2", "fc1"])
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    reread = torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)
    assert round(storage_mb(model) * 1e6) == sum(t.numel() * t.element_size() for t in reread.values())
    container = buffer.getbuffer().nbytes - storage_mb(model) * 1e6
    assert 0 < container < 1000 * len(reread)  # zip entries and the pickle, not weights


def test_each_dequantized_weight_is_within_half_a_step_of_the_original() -> None:
    layer = nn.Linear(50, 7)
    quantized = Int8Linear.from_float(layer)
    error = (quantized.weight - layer.weight).abs()
    assert (error <= quantized.weight_scale[:, None] / 2 + 1e-7).all()
    assert (quantized.weight_int8.abs().amax(1) == 127).all()  # each row's largest weight is exact at the ends


def test_an_int8_network_reloads_exactly_from_its_state_dict() -> None:
    model = _network()
    model.fc1 = factorize_linear(model.fc1, 9)  # type: ignore[assignment]
    quantize_layers(model, ["conv1", "fc1"])
    rebuilt = rebuilt_with_int8(lambda state: get_architecture("h_cnn").rebuild(ExperimentConfig(), state, (1, 28, 28)),
                                model.state_dict())
    images = torch.rand(5, 1, 28, 28)
    assert isinstance(rebuilt.fc1[0], Int8Linear) and torch.equal(rebuilt.eval()(images), model(images))


def test_a_layer_int8_cannot_take_is_refused_in_one_line(trained_base: TrainedBase, splits: Splits,
                                                        tiny_config: ExperimentConfig) -> None:
    base = trained_base.model
    original = base.conv1
    base.conv1 = nn.Conv2d(original.in_channels, original.out_channels, 3, padding=1, padding_mode="reflect")
    try:
        candidate = Candidate(layers={"conv1": LayerChoice("none", 0.0, bits=8)})
        with pytest.raises(ConfigError, match=r"^candidate.layers.conv1.bits: 8 does not apply to a conv padded "
                                              r"with 'reflect'; allowed: 32$"):
            get_architecture("h_cnn").compress(tiny_config, base, candidate, splits, tiny_config.finetune)
    finally:
        base.conv1 = original


def test_a_quantized_h_dnn_loads_predicts_and_exports_int8_bytes_that_onnxruntime_runs(tmp_path: Path) -> None:
    model = _network()
    model.fc1 = factorize_linear(model.fc1, 16)  # type: ignore[assignment]
    candidate = Candidate(layers={"fc1": LayerChoice("svd", 0.75, bits=8), "conv2": LayerChoice("none", 0.0, bits=8)},
                          human=HumanChoice("sequential", k=1, gate="msp", tau=0.6))
    quantize_layers(model, ["fc1", "conv2"])
    folder = save_hdnn(tmp_path / "int8", model, FittedGate("msp", 1.2), candidate, ExperimentConfig(), (1, 28, 28))
    loaded = load_hdnn(folder)
    images = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    assert torch.equal(loaded.model(images), model(images))
    written = export_onnx(folder)
    initializers = onnx.load(str(written)).graph.initializer
    int8_bytes = sum(len(i.raw_data) for i in initializers if i.data_type == onnx.TensorProto.INT8)
    assert int8_bytes == sum(m.weight_int8.numel() for m in model.modules() if hasattr(m, "weight_int8"))
    assert sum(len(i.raw_data) for i in initializers) <= storage_mb(model) * 1e6  # no fp32 copy of an int8 weight
    session = onnxruntime.InferenceSession(str(written))
    logits, confidence = session.run(None, {"image": images.numpy()})
    np.testing.assert_allclose(logits, model(images).detach().numpy(), atol=ONNX_INT8_TOLERANCE)
    assert np.array_equal(confidence < 0.6, loaded.predict(images)[1].numpy())


def test_nni_keeps_the_channels_the_projection_counts_on_every_third_ratio_of_the_grid() -> None:
    base = _network()
    for ratio in np.round(np.arange(0.01, 0.91, 0.03), 2):
        choices = {"conv1": LayerChoice("l1", float(ratio)), "conv2": LayerChoice("l1", float(ratio))}
        pruned = prune_conv_channels(BaseCNN((12, 20), 64).eval(), choices, torch.rand(2, 1, 28, 28), None)  # type: ignore[arg-type]
        assert (pruned.conv1.out_channels, pruned.conv2.out_channels) == (kept_channels(12, ratio),
                                                                          kept_channels(20, ratio)), ratio
    del base
