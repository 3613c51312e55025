"""A user's own starting weights: a state dict file, checked against the network it is meant for."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from hgen_ray.config import ConfigError

__all__ = ["file_digest", "load_user_weights"]


def file_digest(path: str) -> str:
    """A file's sha256, or "" when it is missing (then loading it will say so)."""
    file = Path(path)
    return hashlib.sha256(file.read_bytes()).hexdigest() if file.is_file() else ""


def load_user_weights(model: nn.Module, path: str) -> None:
    """Load ``path`` (a state dict, read with ``weights_only=True``) into ``model``.

    Raises:
        ConfigError: The file is missing, not a state dict, or its names or shapes do not match.
    """
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"model.weights: {path} not found; allowed: a state dict file saved with torch.save")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # pickled code, a corrupt file: both refused the same way
        raise ConfigError(f"model.weights: {path} is not a loadable state dict ({type(error).__name__})") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise ConfigError(f"model.weights: {path} holds no state dict")
    expected = model.state_dict()
    for name, tensor in expected.items():
        saved = state.get(name)
        if saved is None:
            raise ConfigError(f"model.weights: {path} has no tensor {name!r}; allowed: this network's own state dict")
        if tuple(saved.shape) != tuple(tensor.shape):
            raise ConfigError(f"model.weights: {path}: {name} has shape {list(saved.shape)}, the network "
                              f"needs {list(tensor.shape)}")
    extra = [name for name in state if name not in expected]
    if extra:
        raise ConfigError(f"model.weights: {path} has tensors this network lacks, e.g. {extra[0]!r}")
    model.load_state_dict(state)
