"""Profiling: latency, storage and energy of a (compressed) network."""

from hgen_ray.profile.energy import EnergyReading, estimate_energy_mj, measure_energy
from hgen_ray.profile.latency import measure_latency_ms
from hgen_ray.profile.storage import storage_mb

__all__ = ["EnergyReading", "estimate_energy_mj", "measure_energy", "measure_latency_ms", "storage_mb"]
