"""Storage: the serialized size of the compressed weights."""

from __future__ import annotations

import io

import torch
from torch import nn

__all__ = ["BYTES_PER_MB", "storage_mb"]

BYTES_PER_MB = 1_000_000  # decimal megabytes, as app stores report sizes


def storage_mb(model: nn.Module) -> float:
    """Bytes of ``torch.save(model.state_dict())``, in MB."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes / BYTES_PER_MB
