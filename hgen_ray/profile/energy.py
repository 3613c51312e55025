"""Energy per inference, from the best meter this process can read.

In order of preference (``profile.energy_source: auto``):

1. ``nvml``: NVIDIA's total-energy counter (mJ, Volta and newer) read around a
   window of repeated inference of at least ``energy_window_ms``, with a CUDA
   sync on both sides; the counter only updates every 10-100 ms. GPUs without
   the counter fall back to sampled power times time.
2. ``rapl``: Intel RAPL's package energy counter from ``/sys/class/powercap``.
   It meters the whole CPU package, so other load on the machine adds to it.
3. ``estimate``: MACs times energy per MAC plus bytes moved times energy per
   byte (an int8 weight is one byte read; its MAC stays fp32, since int8 layers
   dequantize before the arithmetic), with the 45 nm figures of Horowitz, "Computing's energy problem (and
   what we can do about it)", ISSCC 2014. A phone SoC is a few nodes newer, so
   read it as a consistent relative cost, not an absolute prediction.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import ray
import torch
from torch import nn

from hgen_ray.profile.flops import macs_by_module

__all__ = [
    "PJ_PER_DRAM_BYTE",
    "PJ_PER_MAC",
    "PJ_PER_SRAM_BYTE",
    "EnergyReading",
    "count_macs_and_bytes",
    "estimate_energy_mj",
    "measure_energy",
    "measure_exclusive_gpu_energy",
]

log = logging.getLogger(__name__)

PJ_PER_MAC = 4.6  # Horowitz 2014: 32-bit float multiply 3.7 pJ + add 0.9 pJ
PJ_PER_DRAM_BYTE = 160.0  # Horowitz 2014: 640 pJ per 32-bit DRAM read; weights come from DRAM
PJ_PER_SRAM_BYTE = 1.25  # Horowitz 2014: 5 pJ per 32-bit read of an 8 KB SRAM; activations stay on chip
PJ_PER_MJ = 1e9
RAPL_PACKAGE = Path("/sys/class/powercap/intel-rapl:0")
_POWER_SAMPLE_S = 0.01  # power sampling period for GPUs without the energy counter
EXCLUSIVE_WAIT_S = 120.0  # how long a trial waits for a whole GPU before keeping its shared reading


@dataclass(frozen=True)
class EnergyReading:
    energy_mj: float  # per inference
    source: str  # nvml | rapl | estimate


@torch.no_grad()
def count_macs_and_bytes(model: nn.Module, sample: torch.Tensor) -> tuple[int, int, int]:
    """Multiply-accumulates (torch's FLOP counter), weight bytes and activation bytes of one forward pass of the
    network's conv and linear layers."""
    weight_bytes = activation_bytes = 0
    weighted = {name: m for name, m in model.named_modules()
                if isinstance(m, (nn.Conv2d, nn.Linear)) or hasattr(m, "weight_int8")}

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal weight_bytes, activation_bytes
        stored = [*module.parameters(recurse=False), *module.buffers(recurse=False)]  # int8 weights are buffers
        weight_bytes += sum(t.numel() * t.element_size() for t in stored)
        activation_bytes += (inputs[0].numel() + output.numel()) * output.element_size() // output.shape[0]

    handles = [m.register_forward_hook(hook) for m in weighted.values()]
    try:
        per_module = macs_by_module(model, sample)
    finally:
        for handle in handles:
            handle.remove()
    return sum(per_module.get(name, 0) for name in weighted), weight_bytes, activation_bytes


def estimate_energy_mj(model: nn.Module, sample: torch.Tensor) -> float:
    """Estimated energy of one batch-1 inference, in mJ."""
    macs, weight_bytes, activation_bytes = count_macs_and_bytes(model, sample)
    picojoules = macs * PJ_PER_MAC + weight_bytes * PJ_PER_DRAM_BYTE + activation_bytes * PJ_PER_SRAM_BYTE
    return picojoules / PJ_PER_MJ


def _run_window(model: nn.Module, sample: torch.Tensor, window_ms: float, sync: bool) -> int:
    """Repeat inference until ``window_ms`` has passed; returns the run count."""
    runs, start = 0, time.perf_counter()
    while (time.perf_counter() - start) * 1000.0 < window_ms or runs == 0:
        model(sample)
        runs += 1
    if sync:
        torch.cuda.synchronize()
    return runs


def _read_rapl_uj() -> int:
    return int((RAPL_PACKAGE / "energy_uj").read_text())


@torch.no_grad()
def rapl_energy_mj(model: nn.Module, sample: torch.Tensor, window_ms: float) -> float:
    """Package energy per inference from RAPL, handling counter wrap-around."""
    wrap = int((RAPL_PACKAGE / "max_energy_range_uj").read_text())
    before = _read_rapl_uj()
    runs = _run_window(model, sample, window_ms, sync=False)
    used = (_read_rapl_uj() - before) % wrap
    return used / 1000.0 / runs


def _nvml_handle(pynvml: object, device: torch.device) -> object:
    # NVML numbers physical GPUs; torch numbers the visible ones. Match by UUID.
    uuid = str(torch.cuda.get_device_properties(device).uuid)
    for index in range(pynvml.nvmlDeviceGetCount()):  # type: ignore[attr-defined]
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)  # type: ignore[attr-defined]
        if uuid in str(pynvml.nvmlDeviceGetUUID(handle)):  # type: ignore[attr-defined]
            return handle
    return pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)  # type: ignore[attr-defined]


@torch.no_grad()
def nvml_energy_mj(model: nn.Module, sample: torch.Tensor, window_ms: float) -> float:
    """GPU energy per inference from NVML; the model and sample must be on CUDA."""
    import pynvml

    pynvml.nvmlInit()
    try:
        handle = _nvml_handle(pynvml, sample.device)
        _run_window(model, sample, 10.0, sync=True)  # warm up kernels before metering
        try:
            before = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            runs = _run_window(model, sample, window_ms, sync=True)
            return (pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) - before) / runs
        except pynvml.NVMLError_NotSupported:
            return _sampled_power_mj(pynvml, handle, model, sample, window_ms)
    finally:
        pynvml.nvmlShutdown()


def _sampled_power_mj(pynvml: object, handle: object, model: nn.Module, sample: torch.Tensor,
                      window_ms: float) -> float:
    """Pre-Volta fallback: mean sampled power (mW) times elapsed time (s), per inference."""
    inferences, samples, milliwatts, start = 0, 0, 0.0, time.perf_counter()
    while (time.perf_counter() - start) * 1000.0 < window_ms or samples == 0:
        inferences += _run_window(model, sample, _POWER_SAMPLE_S * 1000.0, sync=True)
        milliwatts += pynvml.nvmlDeviceGetPowerUsage(handle)  # type: ignore[attr-defined]
        samples += 1
    elapsed_s = time.perf_counter() - start
    return milliwatts / samples * elapsed_s / inferences


def _meter(source: str, model: nn.Module, sample: torch.Tensor, window_ms: float) -> float:
    if source == "nvml":
        device = torch.device("cuda")
        return nvml_energy_mj(copy.deepcopy(model).to(device).eval(), sample.to(device), window_ms)
    if source == "rapl":
        return rapl_energy_mj(model.eval(), sample, window_ms)
    return estimate_energy_mj(model, sample)


def _available_sources() -> list[str]:
    sources = []
    if torch.cuda.is_available():
        sources.append("nvml")
    if (RAPL_PACKAGE / "energy_uj").is_file():
        sources.append("rapl")
    return [*sources, "estimate"]


@ray.remote(num_gpus=1)
def _energy_on_a_whole_gpu(model: nn.Module, sample: torch.Tensor, window_ms: float) -> float:
    return nvml_energy_mj(copy.deepcopy(model).to("cuda").eval(), sample.to("cuda"), window_ms)


def measure_exclusive_gpu_energy(model: nn.Module, sample: torch.Tensor, window_ms: float,
                                 wait_s: float = EXCLUSIVE_WAIT_S) -> EnergyReading | None:
    """NVML energy metered by a Ray task that holds a whole GPU, so no other trial's work mixes in.

    Returns ``None`` when no whole GPU frees up within ``wait_s`` (all of them shared by
    running trials); the caller then keeps the shared reading.
    """
    reference = _energy_on_a_whole_gpu.remote(model, sample, window_ms)
    try:
        return EnergyReading(float(ray.get(reference, timeout=wait_s)), "nvml")
    except ray.exceptions.GetTimeoutError:
        ray.cancel(reference, force=True)
        log.warning("no whole GPU was free within %.0f s; keeping the shared-GPU energy reading", wait_s)
        return None


def measure_energy(model: nn.Module, sample: torch.Tensor, source: str = "auto",
                   window_ms: float = 100.0) -> EnergyReading:
    """Energy of one batch-1 inference; degrades to the next meter on failure.

    Args:
        model: The network, on CPU.
        sample: A batch-1 input on CPU.
        source: ``auto`` (best available), ``nvml``, ``rapl`` or ``estimate``.
        window_ms: Shortest metered window for the hardware counters.
    """
    candidates = _available_sources() if source == "auto" else [source, "estimate"]
    for name in candidates:
        try:
            return EnergyReading(_meter(name, model, sample, window_ms), name)
        except Exception as error:  # a meter that cannot be read (no driver, no permission) is skipped
            if name == "estimate":
                raise
            log.warning("energy meter %s unavailable (%s); trying the next one", name, error)
    raise AssertionError("unreachable: the estimate never fails silently")
