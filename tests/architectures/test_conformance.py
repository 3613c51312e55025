"""One set of checks over every registered architecture, as torchvision's model tests do.

Each architecture, on a tiny set of its data: compress (the network really shrinks
and still runs), evaluate with people (every measure present, on the split asked),
save, load and predict (the same answers), and export to ONNX (onnxruntime agrees).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from torch import nn

from hgen_ray.architectures import REGISTRY, Architecture, get_architecture
from hgen_ray.architectures.gate import FittedGate
from hgen_ray.config import (
    Candidate,
    DataConfig,
    ExperimentConfig,
    FinetuneConfig,
    HumanChoice,
    LayerChoice,
    ModelConfig,
)
from hgen_ray.hdnn import export_onnx, load_hdnn, save_hdnn
from hgen_ray.human import HumanPool
from hgen_ray.profile import storage_mb
from hgen_ray.human.calibration import FASHION_MNIST_CALIBRATION
from hgen_ray.trial import evaluate_candidate, measure_network
from tests.datasets import write_image_folder

pytestmark = pytest.mark.usefixtures("ray_session")

MEASURES = {"accuracy", "accuracy_clean", "dnn_accuracy", "dnn_latency_ms", "latency_ms", "energy_mj", "storage_mb",
            "labor_s_per_1k", "deferral_rate", "human_turnaround_s_p95", "pool_utilisation", "split"}
ONNX_TOLERANCE = 1e-3  # float32 rounding between two runtimes; a wrong graph is off by far more


def small_net(num_classes: int, in_channels: int) -> nn.Module:
    """A user's own network, as ``model.factory`` names it: ``test_conformance:small_net``."""
    return nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
                         nn.Flatten(), nn.Linear(256, 32), nn.ReLU(), nn.Linear(32, num_classes))


@pytest.fixture(scope="session")
def rgb_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_image_folder(tmp_path_factory.mktemp("rgb-folder"))  # 40 + 10 per class, 32 x 32 RGB PNGs


def _on_folder(tiny_config: ExperimentConfig, root: Path, model: ModelConfig) -> ExperimentConfig:
    data = DataConfig(root=str(root), format="image_folder", validation_size=100, validation_per_category=20,
                      test_per_category=100)
    return dataclasses.replace(tiny_config, data=data, model=model,
                               finetune=FinetuneConfig(epochs=1, subset=300, batch_size=32))


@pytest.fixture(scope="session")
def cases(tiny_config: ExperimentConfig, yolo_config: ExperimentConfig, frcnn_config: ExperimentConfig,
          rgb_folder: Path) -> dict[str, ExperimentConfig]:
    """An experiment per registered architecture; the classifiers beyond H-CNN on 32 x 32 RGB folders."""
    return {
        "h_cnn": tiny_config,
        "h_yolo": yolo_config,
        "h_faster_rcnn": frcnn_config,
        "torchvision": _on_folder(tiny_config, rgb_folder,
                                  ModelConfig(name="torchvision", arch="mobilenet_v3_small", epochs=2, batch_size=32)),
        "custom": _on_folder(tiny_config, rgb_folder,
                             ModelConfig(name="custom", factory="test_conformance:small_net", epochs=2, batch_size=32)),
    }


def _prunable(layers: dict[str, str]) -> Candidate:
    """Half of the first conv's channels and half of the first fc's rank, both in int8, a person for unsure
    samples (the detectors' RPN and RoI predictor are not compressible layers: they stay fp32)."""
    first = {kind: next(name for name, k in layers.items() if k == kind) for kind in ("conv", "fc")}
    return Candidate(layers={first["conv"]: LayerChoice("l1", 0.5, bits=8), first["fc"]: LayerChoice("svd", 0.5, bits=8)},
                     human=HumanChoice("sequential", tau=0.5, k=1, tau_high=1.0))


def test_every_architecture_is_tested_here(cases: dict[str, ExperimentConfig]) -> None:
    assert set(cases) == set(REGISTRY)


@pytest.fixture(scope="module", params=list(REGISTRY))
def prepared(request: pytest.FixtureRequest, cases: dict[str, ExperimentConfig]):  # type: ignore[no-untyped-def]
    config = cases[request.param]
    architecture = get_architecture(request.param)
    data = architecture.load_data(config, "validation")
    return request.param, config, architecture, data, architecture.load_base(config, data)


def test_compression_shrinks_the_network_and_it_still_runs(prepared) -> None:  # type: ignore[no-untyped-def]
    name, config, architecture, data, base = prepared
    layers = architecture.compressible_layers(config, base, data)
    assert {"conv", "fc"} <= set(layers.values()), name
    candidate = _prunable(layers)
    small = architecture.compress(config, base, candidate, data, config.finetune)
    assert storage_mb(small) < storage_mb(base), name
    conv = next(n for n in candidate.layers if layers[n] == "conv")
    assert small.get_submodule(conv).out_channels == base.get_submodule(conv).out_channels // 2, name
    fc = next(n for n in candidate.layers if layers[n] == "fc")
    stored = small.state_dict()
    assert stored[f"{conv}.weight_int8"].dtype == stored[f"{fc}.0.weight_int8"].dtype == torch.int8, name
    sample = architecture.input_sample(config, data)
    assert architecture.predict(small, FittedGate(), candidate.human, sample.expand(2, *sample.shape[1:])).to_people.shape == (2,)


def test_evaluate_gives_every_measure_with_people_on_the_split(prepared) -> None:  # type: ignore[no-untyped-def]
    name, config, architecture, data, base = prepared
    with HumanPool(config.human_pool, config.seed, architecture.people_calibration(config, data)) as pool:
        measured = evaluate_candidate(config, _prunable(architecture.compressible_layers(config, base, data)), data=data,
                                      pool=pool).metrics
    assert MEASURES <= set(measured), name
    assert measured["split"] == "validation" and 0 <= measured["accuracy"] <= 1
    assert measured["deferral_rate"] > 0 and measured["labor_s_per_1k"] > 0, name  # tau 0.5 sends some to people


def test_a_saved_h_dnn_loads_predicts_the_same_and_exports_to_onnx(prepared, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    name, config, architecture, data, base = prepared
    candidate = _prunable(architecture.compressible_layers(config, base, data))
    no_training = dataclasses.replace(config.finetune, epochs=0)
    small = architecture.compress(config, base, candidate, data, no_training)
    sample = architecture.input_sample(config, data)
    save_hdnn(tmp_path, small, FittedGate("msp", 1.3), candidate, config, tuple(sample.shape[1:]))
    loaded = load_hdnn(tmp_path)
    batch = architecture.profile_sample(data).expand(3, *sample.shape[1:]).clone()  # a real clean input
    expected, reloaded = architecture.predict(small, FittedGate("msp", 1.3), candidate.human, batch), loaded.predict(batch)
    assert torch.equal(expected.to_people, reloaded[1]), name
    _assert_same_answers(expected.answers, reloaded[0])
    written = export_onnx(tmp_path)
    session = onnxruntime.InferenceSession(str(written))
    image = batch[:1] if architecture.output_names != ("boxes", "labels", "scores") else batch[0]
    onnx_out = session.run(None, {session.get_inputs()[0].name: image.numpy()})[0]
    with torch.no_grad():
        torch_out = small.eval()(batch[:1]) if image.dim() == 4 else small.detect(batch[:1])[0]["boxes"]  # type: ignore[operator]
    assert torch_out.numel() > 0, name  # something to compare: logits, cells, or at least one box
    np.testing.assert_allclose(onnx_out, torch_out.numpy(), atol=ONNX_TOLERANCE)


def test_show_data_draws_the_challenges_on_this_data(prepared, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    name, config, architecture, data, base = prepared
    drawn = architecture.draw_preview(config, data, tmp_path / "grid.png")
    assert drawn.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and drawn.stat().st_size > 2000, name


def test_a_pool_calibrated_to_other_data_is_refused(prepared) -> None:  # type: ignore[no-untyped-def]
    name, config, architecture, data, base = prepared
    if architecture.people_calibration(config, data).source == FASHION_MNIST_CALIBRATION.source:
        pytest.skip("Fashion-MNIST data: the default pool is the right one")
    with HumanPool(config.human_pool, config.seed) as fashion_people, pytest.raises(ValueError, match="calibrated"):
        measure_network(config, base, FittedGate(), Candidate(), split="validation", data=data, pool=fashion_people)


def _assert_same_answers(expected: torch.Tensor | list[dict[str, torch.Tensor]],
                         got: torch.Tensor | list[dict[str, torch.Tensor]]) -> None:
    if isinstance(expected, torch.Tensor):
        assert torch.equal(expected, got)  # type: ignore[arg-type]
        return
    for mine, theirs in zip(expected, got):  # type: ignore[arg-type]
        assert all(torch.equal(mine[key], theirs[key]) for key in ("boxes", "labels", "scores"))


def test_the_labour_curves_start_at_nothing_and_move_the_way_the_gate_does(prepared) -> None:  # type: ignore[no-untyped-def]
    name, config, architecture, data, base = prepared
    curves = architecture.labour_curves(config, base, data, architecture.searched_scores(config))
    assert set(curves) == set(architecture.gate_scores), name
    for score, curve in curves.items():
        assert curve[0] == 0 and curve.max() > 0, (name, score)  # level 0 sends nobody; some level sends some
        inside = curve[1 : int(round(architecture.max_tau(config) * 100)) + 1]
        if name == "h_yolo" and score == "msp":  # the band [tau, tau_high] narrows as tau grows: fewer cells
            assert inside[0] > 0 and (np.diff(inside) <= 1e-12).all(), name
        else:  # more samples fall below a higher threshold (or a larger share d)
            assert (np.diff(curve) >= -1e-12).all(), (name, score)


def test_an_unknown_architecture_is_refused_naming_the_allowed_ones() -> None:
    with pytest.raises(Exception, match="model.name: 'resnet' is not an architecture; allowed: h_cnn, h_yolo"):
        get_architecture("resnet")


def test_every_architecture_is_an_architecture() -> None:
    assert all(isinstance(get_architecture(name), Architecture) for name in REGISTRY)
