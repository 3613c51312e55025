"""The H-DNNs hgen-ray can generate, by ``model.name``, behind one interface (:class:`Architecture`).

Add one by writing a folder here with an :class:`Architecture` subclass and a
line in :data:`REGISTRY`, as torchvision's ``get_model``/``list_models`` do.
Entries are import paths, so that naming an architecture imports only it.
"""

from __future__ import annotations

import importlib
from functools import cache

from hgen_ray.architectures.base import TAU_GRID, Architecture, CategoryOutcome, Prediction
from hgen_ray.config import ConfigError, ExperimentConfig

__all__ = ["REGISTRY", "TAU_GRID", "Architecture", "CategoryOutcome", "Prediction", "architecture_for",
           "get_architecture", "list_architectures"]

REGISTRY: dict[str, str] = {
    "h_cnn": "hgen_ray.architectures.h_cnn:HCNN",
    "h_yolo": "hgen_ray.architectures.h_yolo:HYOLO",
    "h_faster_rcnn": "hgen_ray.architectures.h_faster_rcnn:HFasterRCNNArchitecture",
    "torchvision": "hgen_ray.architectures.torchvision_zoo:TorchvisionClassifier",
    "custom": "hgen_ray.architectures.custom:CustomClassifier",
}


def list_architectures() -> list[str]:
    return list(REGISTRY)


@cache
def get_architecture(name: str) -> Architecture:
    """The architecture registered as ``name``.

    Raises:
        ConfigError: No architecture has that name.
    """
    if name not in REGISTRY:
        raise ConfigError(f"model.name: {name!r} is not an architecture; allowed: {', '.join(REGISTRY)}")
    module, _, attribute = REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), attribute)()


def architecture_for(config: ExperimentConfig) -> Architecture:
    """The experiment's architecture, after it checked the experiment's model settings."""
    architecture = get_architecture(config.model.name)
    architecture.check_config(config)
    architecture.check_gate(config)
    return architecture
