"""A saved H-DNN: the compressed network, its calibrated gate and its human choice.

A saved H-DNN is a folder:

- ``model.pt``: the compressed weights and the gate temperature. It holds
  only tensors and numbers and is loaded with ``torch.load(weights_only=True)``,
  so opening it cannot run code.
- ``candidate.yaml``: the per-layer compression and the human choice.
- ``config.yaml``: the experiment it came from.

``load_hdnn`` rebuilds it for inference; ``HDNN.predict`` says, per sample,
the network's class and whether the gate sends it to people.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from torch import nn

from hgen_ray.config import Candidate, ExperimentConfig, as_dict, build_dataclass, read_yaml_mapping
from hgen_ray.models.gate import defer_mask
from hgen_ray.models.h_cnn import rebuild_h_cnn

__all__ = ["HDNN", "HDNNError", "export_onnx", "load_hdnn", "save_hdnn"]

MODEL_FILE = "model.pt"
CANDIDATE_FILE = "candidate.yaml"
CONFIG_FILE = "config.yaml"
ONNX_FILE = "model.onnx"
GATE_FILE = "gate.json"
ONNX_OPSET = 18


class HDNNError(ValueError):
    """A saved H-DNN folder is missing, incomplete or not an H-DNN."""


@dataclass
class HDNN:
    model: nn.Module
    temperature: float
    candidate: Candidate

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Classes from the network and the mask of samples that go to people."""
        logits = self.model.eval()(images)
        deferred = defer_mask(logits, self.temperature, self.candidate.human.tau)
        return logits.argmax(1), deferred


def save_hdnn(folder: Path, model: nn.Module, temperature: float, candidate: Candidate,
              config: ExperimentConfig) -> Path:
    """Write the three files of a saved H-DNN into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(), "temperature": float(temperature)}, folder / MODEL_FILE)
    (folder / CANDIDATE_FILE).write_text(yaml.safe_dump(as_dict(candidate), sort_keys=False))
    (folder / CONFIG_FILE).write_text(yaml.safe_dump(as_dict(config), sort_keys=False))
    return folder


def load_hdnn(path: str | Path) -> HDNN:
    """Rebuild a saved H-DNN for inference.

    Raises:
        HDNNError: The folder is not a complete H-DNN, or its weights are foreign or corrupt.
    """
    folder = Path(path)
    missing = [f for f in (MODEL_FILE, CANDIDATE_FILE) if not (folder / f).is_file()]
    if missing:
        raise HDNNError(f"{folder}: not a saved H-DNN (missing {', '.join(missing)})")
    try:
        payload = torch.load(folder / MODEL_FILE, map_location="cpu", weights_only=True)
        model = rebuild_h_cnn(payload["state_dict"])
        temperature = float(payload["temperature"])
    except Exception as error:  # unpickling refused, wrong keys or shapes: all mean "not ours"
        raise HDNNError(f"{folder / MODEL_FILE}: not a loadable H-DNN checkpoint ({type(error).__name__})") from None
    candidate = build_dataclass(Candidate, read_yaml_mapping(folder / CANDIDATE_FILE), "candidate")
    return HDNN(model=model, temperature=temperature, candidate=candidate)


def export_onnx(path: str | Path, out: str | Path | None = None) -> Path:
    """Write ``model.onnx`` (logits) and ``gate.json`` (tau, k, mechanism, temperature).

    Args:
        path: A saved H-DNN folder.
        out: Where to write; defaults to ``path``.
    """
    hdnn = load_hdnn(path)
    target = Path(out) if out else Path(path)
    target.mkdir(parents=True, exist_ok=True)
    sample = torch.rand(2, 1, 28, 28)
    torch.onnx.export(hdnn.model, (sample,), target / ONNX_FILE, input_names=["image"], output_names=["logits"],
                      dynamic_shapes={"x": {0: torch.export.Dim("batch")}}, opset_version=ONNX_OPSET,
                      external_data=False)
    human = hdnn.candidate.human
    gate = {"tau": human.tau, "k": human.k, "mechanism": human.mechanism, "temperature": hdnn.temperature,
            "rule": "defer when max(softmax(logits / temperature)) < tau, or always when tau >= 1"}
    (target / GATE_FILE).write_text(json.dumps(gate, indent=2) + "\n")
    return target / ONNX_FILE
