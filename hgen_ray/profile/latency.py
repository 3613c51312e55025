"""DNN latency: batch 1, one torch thread (a phone-like proxy), median of repeats."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["measure_latency_ms", "single_thread"]

_WARMUP_RUNS = 5  # first calls pay allocator and dispatch set-up


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one intra-op thread, restoring the previous setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def measure_latency_ms(model: nn.Module, sample: torch.Tensor, repeats: int) -> float:
    """Median wall time of one forward pass on a batch-1 ``sample``, in ms."""
    model.eval()
    timings = []
    with single_thread():
        for _ in range(_WARMUP_RUNS):
            model(sample)
        for _ in range(repeats):
            start = time.perf_counter()
            model(sample)
            timings.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(timings)
