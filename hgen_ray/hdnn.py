"""A saved H-DNN: the compressed network, its calibrated gate and its human choice.

A saved H-DNN is a folder:

- ``model.pt``: the compressed weights, the fitted gate (its score, temperature and tensors)
  and one input's shape. It holds
  only tensors and numbers and is loaded with ``torch.load(weights_only=True)``,
  so opening it cannot run code.
- ``candidate.yaml``: the per-layer compression and the human choice.
- ``config.yaml``: the experiment it came from.

``load_hdnn`` rebuilds it for inference (the architecture is read from
``config.yaml``, and the network's shape from the saved tensors);
``HDNN.predict`` says, per sample, the network's answer and whether the gate
sends it to people, by the architecture's own rule (:mod:`hgen_ray.architectures`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from torch import nn

from hgen_ray.config import (
    Candidate,
    ConfigError,
    ExperimentConfig,
    as_dict,
    build_dataclass,
    json_text,
    read_yaml_mapping,
    without_legacy_pool_keys,
)
from hgen_ray.architectures import Architecture, Prediction, get_architecture
from hgen_ray.architectures.base import FASHION_MNIST_INPUT_SHAPE
from hgen_ray.architectures.gate import FittedGate
from hgen_ray.compress import rebuilt_with_int8
from hgen_ray.output_lock import holding

__all__ = ["HDNN", "HDNNError", "export_onnx", "load_hdnn", "save_hdnn", "saved_config"]

MODEL_FILE = "model.pt"
CANDIDATE_FILE = "candidate.yaml"
CONFIG_FILE = "config.yaml"
ONNX_FILE = "model.onnx"
GATE_FILE = "gate.json"


class HDNNError(ValueError):
    """A saved H-DNN folder is missing, incomplete or not an H-DNN."""


@dataclass
class HDNN:
    model: nn.Module
    gate: FittedGate
    candidate: Candidate
    architecture: str = "h_cnn"  # model.name of the experiment it came from
    input_shape: tuple[int, ...] = FASHION_MNIST_INPUT_SHAPE  # one sample's: channels, height, width

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> tuple[torch.Tensor | list[dict[str, torch.Tensor]], torch.Tensor]:
        """The network's answer (classes, or detections per image) and the mask of images that go to people."""
        prediction: Prediction = get_architecture(self.architecture).predict(self.model, self.gate,
                                                                            self.candidate.human, images)
        return prediction.answers, prediction.to_people


def save_hdnn(folder: Path, model: nn.Module, gate: FittedGate, candidate: Candidate,
              config: ExperimentConfig, input_shape: tuple[int, ...]) -> Path:
    """Write the three files of a saved H-DNN into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(), "temperature": float(gate.temperature), "gate": gate.state(),
                "input_shape": [int(side) for side in input_shape]}, folder / MODEL_FILE)
    (folder / CANDIDATE_FILE).write_text(yaml.safe_dump(as_dict(candidate), sort_keys=False))
    (folder / CONFIG_FILE).write_text(yaml.safe_dump(as_dict(config), sort_keys=False))
    return folder


def _input_shape(payload: dict, architecture: Architecture, config: ExperimentConfig) -> tuple[int, ...]:
    if "input_shape" in payload:
        return tuple(int(side) for side in payload["input_shape"])
    return architecture.input_shape_before_it_was_saved(config)


def load_hdnn(path: str | Path) -> HDNN:
    """Rebuild a saved H-DNN for inference.

    Raises:
        HDNNError: The folder is not a complete H-DNN, or its weights are foreign or corrupt.
    """
    folder = Path(path)
    missing = [f for f in (MODEL_FILE, CANDIDATE_FILE) if not (folder / f).is_file()]
    if missing:
        raise HDNNError(f"{folder}: not a saved H-DNN (missing {', '.join(missing)})")
    config = saved_config(folder)
    try:
        architecture = get_architecture(config.model.name)
        payload = torch.load(folder / MODEL_FILE, map_location="cpu", weights_only=True)
        input_shape = _input_shape(payload, architecture, config)
        model = rebuilt_with_int8(lambda state: architecture.rebuild(config, state, input_shape), payload["state_dict"])
        # an H-DNN saved before gates had scores holds only msp's temperature
        gate = FittedGate.from_state(payload["gate"]) if "gate" in payload else \
            FittedGate("msp", float(payload["temperature"]))
    except Exception as error:  # unpickling refused, wrong keys or shapes: all mean "not ours"
        raise HDNNError(f"{folder / MODEL_FILE}: not a loadable H-DNN checkpoint ({type(error).__name__})") from None
    candidate = build_dataclass(Candidate, read_yaml_mapping(folder / CANDIDATE_FILE), "candidate")
    return HDNN(model=model, gate=gate, candidate=candidate, architecture=config.model.name,
                input_shape=input_shape)


def saved_config(folder: Path) -> ExperimentConfig:
    """The experiment an H-DNN came from; without config.yaml, an H-CNN is assumed."""
    if not (folder / CONFIG_FILE).is_file():
        return ExperimentConfig()
    try:
        return build_dataclass(ExperimentConfig, without_legacy_pool_keys(read_yaml_mapping(folder / CONFIG_FILE)))
    except ConfigError as error:
        raise HDNNError(f"{folder / CONFIG_FILE}: not an hgen-ray experiment ({error})") from None


def export_onnx(path: str | Path, out: str | Path | None = None) -> Path:
    """Write ``model.onnx`` (the network, and its gate score where the gate is a module) and ``gate.json``
    (when people step in: the score, tau, the share d it was set from, the chain and the combination rule).

    Args:
        path: A saved H-DNN folder.
        out: Where to write; defaults to ``path``.

    Raises:
        ConfigError: Another run writes into the target folder.
    """
    hdnn = load_hdnn(path)
    architecture = get_architecture(hdnn.architecture)
    target = Path(out) if out else Path(path)
    target.mkdir(parents=True, exist_ok=True)
    with holding(target, "export"):
        return _write_export(hdnn, architecture, target)


def _write_export(hdnn: HDNN, architecture: Architecture, target: Path) -> Path:
    architecture.export(hdnn.model, hdnn.gate, torch.rand(1, *hdnn.input_shape), target / ONNX_FILE)
    human = hdnn.candidate.human
    gate = {"architecture": hdnn.architecture, "score": hdnn.gate.score, "tau": human.tau, "deferral": human.deferral,
            "k": human.k, "mechanism": human.mechanism, "combine": human.combine, "temperature": hdnn.gate.temperature,
            "rule": architecture.gate_rule, "outputs": list(architecture.onnx_outputs(hdnn.gate)),
            **architecture.gate_settings(human)}
    (target / GATE_FILE).write_text(json_text(gate, indent=2))  # tau -inf (defers nothing) is written as null
    return target / ONNX_FILE
