"""A canonical hash of the controller's state: weights, optimizers, replay buffers, history.

``--resume`` must bring the controller back exactly as it was checkpointed. Pickled
bytes are not a fair comparison (containers and object layouts may differ after a
round trip), so the digest walks the state instead: mappings by sorted key, arrays
and tensors by dtype, shape and bytes, other objects by their attributes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

__all__ = ["state_digest"]


def _feed(value: Any, sink: Any, seen: set[int]) -> None:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        sink.update(f"array:{value.dtype}:{value.shape}:".encode())
        sink.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, (str, bytes, int, float, bool, type(None), np.generic)):
        sink.update(f"{type(value).__name__}:{value!r};".encode())
    elif isinstance(value, Mapping):
        sink.update(b"{")
        for key in sorted(value, key=repr):
            _feed(key, sink, seen)
            _feed(value[key], sink, seen)
        sink.update(b"}")
    elif isinstance(value, (list, tuple)):
        sink.update(b"[")
        for item in value:
            _feed(item, sink, seen)
        sink.update(b"]")
    elif hasattr(value, "__dict__") and id(value) not in seen:
        seen.add(id(value))  # objects that point back at each other are walked once
        sink.update(f"object:{type(value).__name__}".encode())
        _feed(vars(value), sink, seen)
    else:
        sink.update(f"opaque:{type(value).__name__};".encode())


def state_digest(state: Any) -> str:
    """SHA-256 of ``state``'s content, independent of container types and object identity."""
    sink = hashlib.sha256()
    _feed(state, sink, set())
    return sink.hexdigest()
