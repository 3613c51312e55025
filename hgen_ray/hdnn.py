"""A saved H-DNN: the compressed network, its calibrated gate and its human choice.

A saved H-DNN is a folder:

- ``model.pt``: the compressed weights and the gate temperature. It holds
  only tensors and numbers and is loaded with ``torch.load(weights_only=True)``,
  so opening it cannot run code.
- ``candidate.yaml``: the per-layer compression and the human choice.
- ``config.yaml``: the experiment it came from.

``load_hdnn`` rebuilds it for inference (the architecture is read from
``config.yaml``); ``HDNN.predict`` says, per sample, the network's answer and
whether the gate sends it to people. For H-YOLO the answer is its detections
and the gate is the ambiguous objectness band; for H-Faster-RCNN, its
detections and "best score below tau".
"""

from __future__ import annotations

import json
import warnings
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
    read_yaml_mapping,
    without_legacy_pool_keys,
)
from hgen_ray.models.detectors import detect, rebuild_detector
from hgen_ray.models.gate import defer_mask
from hgen_ray.models.h_cnn import IMAGE_SIDE, rebuild_h_cnn
from hgen_ray.models.h_faster_rcnn import HFasterRCNN, unsure_images
from hgen_ray.models.h_yolo import decode_cells, gated_cells

__all__ = ["HDNN", "HDNNError", "export_onnx", "load_hdnn", "save_hdnn"]

MODEL_FILE = "model.pt"
CANDIDATE_FILE = "candidate.yaml"
CONFIG_FILE = "config.yaml"
ONNX_FILE = "model.onnx"
GATE_FILE = "gate.json"
ONNX_OPSET = 18
FRCNN_ONNX_OPSET = 17  # the TorchScript-based exporter's newest well-supported opset


class HDNNError(ValueError):
    """A saved H-DNN folder is missing, incomplete or not an H-DNN."""


@dataclass
class HDNN:
    model: nn.Module
    temperature: float
    candidate: Candidate
    architecture: str = "h_cnn"  # model.name of the experiment it came from
    input_side: int = IMAGE_SIDE  # pixels: 28 for the H-CNN, the canvas side for the detectors

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> tuple[torch.Tensor | list[dict[str, torch.Tensor]], torch.Tensor]:
        """The network's answer (classes, or detections per image) and the mask of images that go to people."""
        human = self.candidate.human
        if isinstance(self.model, HFasterRCNN):
            detections = detect(self.model, images)
            return detections, unsure_images(detections, human.tau)
        output = self.model.eval()(images)
        if self.architecture == "h_cnn":
            return output.argmax(1), defer_mask(output, self.temperature, human.tau)
        gated = gated_cells(output, human.tau, human.tau_high)
        return decode_cells(output, images.shape[-1]), gated.flatten(1).any(1)


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
    config = _saved_config(folder)
    try:
        payload = torch.load(folder / MODEL_FILE, map_location="cpu", weights_only=True)
        if config.model.name == "h_cnn":
            model = rebuild_h_cnn(payload["state_dict"])
        else:
            model = rebuild_detector(config.model.name, payload["state_dict"], config.detection.canvas_size)
        temperature = float(payload["temperature"])
    except Exception as error:  # unpickling refused, wrong keys or shapes: all mean "not ours"
        raise HDNNError(f"{folder / MODEL_FILE}: not a loadable H-DNN checkpoint ({type(error).__name__})") from None
    candidate = build_dataclass(Candidate, read_yaml_mapping(folder / CANDIDATE_FILE), "candidate")
    side = IMAGE_SIDE if config.model.name == "h_cnn" else config.detection.canvas_size
    return HDNN(model=model, temperature=temperature, candidate=candidate, architecture=config.model.name,
                input_side=side)


def _saved_config(folder: Path) -> ExperimentConfig:
    """The experiment an H-DNN came from; without config.yaml, an H-CNN is assumed."""
    if not (folder / CONFIG_FILE).is_file():
        return ExperimentConfig()
    try:
        return build_dataclass(ExperimentConfig, without_legacy_pool_keys(read_yaml_mapping(folder / CONFIG_FILE)))
    except ConfigError as error:
        raise HDNNError(f"{folder / CONFIG_FILE}: not an hgen-ray experiment ({error})") from None


_GATE_RULES = {
    "h_cnn": "defer when max(softmax(logits / temperature)) < tau, or always when tau >= 1",
    "h_yolo": "a cell goes to people when tau > 0 and tau <= sigmoid(cells[:, 0]) <= tau_high",
    "h_faster_rcnn": "the image goes to people when its best score < tau; their boxes join the RPN's proposals",
}
_OUTPUT_NAMES = {"h_cnn": ["logits"], "h_yolo": ["cells"], "h_faster_rcnn": ["boxes", "labels", "scores"]}


def _export_model(hdnn: HDNN, target: Path) -> None:
    names, side = _OUTPUT_NAMES[hdnn.architecture], hdnn.input_side
    if isinstance(hdnn.model, HFasterRCNN):
        # torch.export cannot follow the RPN's data-dependent shapes; the TorchScript-based
        # exporter, which torchvision supports for its detectors, can (one image per call).
        with warnings.catch_warnings():  # the tracer's notes on torchvision's shape arithmetic, expected here
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", UserWarning)
            torch.onnx.export(hdnn.model, ([torch.rand(1, side, side)],), target / ONNX_FILE, input_names=["image"],
                              output_names=names, opset_version=FRCNN_ONNX_OPSET, dynamo=False)
        return
    torch.onnx.export(hdnn.model, (torch.rand(2, 1, side, side),), target / ONNX_FILE, input_names=["image"],
                      output_names=names, dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
                      opset_version=ONNX_OPSET, external_data=False)


def export_onnx(path: str | Path, out: str | Path | None = None) -> Path:
    """Write ``model.onnx`` (the network) and ``gate.json`` (when people step in).

    Args:
        path: A saved H-DNN folder.
        out: Where to write; defaults to ``path``.
    """
    hdnn = load_hdnn(path)
    target = Path(out) if out else Path(path)
    target.mkdir(parents=True, exist_ok=True)
    _export_model(hdnn, target)
    human = hdnn.candidate.human
    gate = {"architecture": hdnn.architecture, "tau": human.tau, "k": human.k, "mechanism": human.mechanism,
            "temperature": hdnn.temperature, "rule": _GATE_RULES[hdnn.architecture]}
    if hdnn.architecture == "h_yolo":
        gate["tau_high"] = human.tau_high
    (target / GATE_FILE).write_text(json.dumps(gate, indent=2) + "\n")
    return target / ONNX_FILE
