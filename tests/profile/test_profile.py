from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from hgen_ray.profile import estimate_energy_mj, measure_energy, measure_latency_ms, storage_mb
from hgen_ray.profile.energy import PJ_PER_DRAM_BYTE, PJ_PER_MAC, PJ_PER_SRAM_BYTE, count_macs_and_bytes


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))


def test_macs_and_bytes_are_counted_exactly() -> None:
    macs, weight_bytes, activation_bytes = count_macs_and_bytes(_tiny(), torch.rand(1, 1, 4, 4))
    assert macs == 2 * 16 * 9 + 32 * 3  # conv: outputs x kernel taps; fc: in x out
    assert weight_bytes == 4 * (2 * 9 + 2 + 32 * 3 + 3)
    assert activation_bytes == 4 * ((16 + 32) + (32 + 3))


def test_estimate_is_macs_and_bytes_times_their_costs() -> None:
    model, sample = _tiny(), torch.rand(1, 1, 4, 4)
    macs, weights, activations = count_macs_and_bytes(model, sample)
    expected = (macs * PJ_PER_MAC + weights * PJ_PER_DRAM_BYTE + activations * PJ_PER_SRAM_BYTE) / 1e9
    assert estimate_energy_mj(model, sample) == pytest.approx(expected)


def test_smaller_network_costs_less_energy_and_storage() -> None:
    big = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.Flatten(), nn.Linear(32 * 64, 10))
    small = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 64, 10))
    sample = torch.rand(1, 1, 8, 8)
    assert estimate_energy_mj(small, sample) < estimate_energy_mj(big, sample) / 3
    assert storage_mb(small) < storage_mb(big) / 3


def test_storage_is_the_state_dict_tensors_bytes_in_decimal_megabytes() -> None:
    model = _tiny()
    expected = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    assert storage_mb(model) == expected / 1e6
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    assert expected < len(buffer.getvalue()) < expected + 1000 * len(model.state_dict())  # the file adds its container


def test_latency_is_a_positive_median_and_restores_thread_count() -> None:
    threads = torch.get_num_threads()
    latency = measure_latency_ms(_tiny(), torch.rand(1, 1, 4, 4), repeats=20)
    assert 0 < latency < 50
    assert torch.get_num_threads() == threads


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback path")
def test_without_a_gpu_nvml_degrades_to_the_next_meter() -> None:
    reading = measure_energy(_tiny(), torch.rand(1, 1, 4, 4), source="nvml")
    assert reading.source == "estimate"
    assert reading.energy_mj == pytest.approx(estimate_energy_mj(_tiny(), torch.rand(1, 1, 4, 4)))


def test_pynvml_without_a_driver_raises_the_documented_error() -> None:
    pynvml = pytest.importorskip("pynvml")
    if torch.cuda.is_available():
        pytest.skip("a driver is present")
    with pytest.raises(pynvml.NVMLError):
        pynvml.nvmlInit()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")
def test_nvml_meters_real_gpu_energy() -> None:
    reading = measure_energy(_tiny(), torch.rand(1, 1, 4, 4), source="nvml", window_ms=200)
    assert reading.source == "nvml" and reading.energy_mj > 0


def test_int8_weights_are_one_byte_each_in_the_energy_estimate_and_their_macs_stay() -> None:
    from hgen_ray.compress import quantize_layers

    model, sample = _tiny(), torch.rand(1, 1, 4, 4)
    macs, weight_bytes, _ = count_macs_and_bytes(model, sample)
    quantize_layers(model, ["0"])  # the conv: 2 x 1 x 3 x 3 weights, 2 scales
    int8_macs, int8_weight_bytes, _ = count_macs_and_bytes(model, sample)
    assert int8_macs == macs  # dequantized before the arithmetic: the same fp32 MACs
    assert weight_bytes - int8_weight_bytes == 18 * (4 - 1) - 2 * 4
