"""Evaluate one H-DNN candidate end to end: the measures A, T, E, S, L and people's turnaround.

    hgen-ray evaluate --config configs/quickstart.yaml --out runs/eval [--split test]

One path for every architecture, top to bottom: load the data, get the base
model, compress and fine-tune, run the network, its gate and the people on one
split's 13 challenge sets (clean + 12 challenges), turn the per-category
outcomes into measures, then profile latency, energy and storage. The gate is fitted
after fine-tuning, and a candidate that names a share d of the validation challenges to
defer gets the tau that does it (recorded in its saved candidate and as ``gate_tau``). A search
scores on the ``validation`` split; the ``test`` split is measured only for the
H-DNNs a search chose (:func:`measure_network` on their saved networks) and for
the references. Measure names are DESIGN.md's, used unchanged in results and reports.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import ray
import torch
from torch import nn

from hgen_ray.architectures import Architecture, architecture_for, get_architecture
from hgen_ray.architectures.gate import FittedGate
from hgen_ray.config import Candidate, ConfigError, ExperimentConfig
from hgen_ray.data.splits import SPLIT_NAMES
from hgen_ray.human import HumanPool
from hgen_ray.human.calibration import PeopleCalibration
from hgen_ray.profile import EnergyReading, measure_energy, measure_latency_ms, storage_mb
from hgen_ray.profile.energy import measure_exclusive_gpu_energy
from hgen_ray.trial.measures import accuracy_measures, gate_measures, people_measures

__all__ = ["Evaluation", "evaluate_candidate", "load_split_data", "measure_network", "stream_window_s"]

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    metrics: dict[str, float | str | bool]  # DESIGN.md measure names, on ``metrics["split"]``
    model: nn.Module  # the compressed network
    gate: FittedGate  # its gate, fitted after fine-tuning
    candidate: Candidate  # as evaluated: tau set from the share d when the candidate named one


def stream_window_s(config: ExperimentConfig, samples: int) -> float:
    """How long the stream of ``samples`` queries takes to arrive, on average."""
    return samples / config.human_pool.arrival_rate_per_s


def load_split_data(config: ExperimentConfig, split: str, data: Any | None = None) -> Any:
    """``data`` when it can be measured on ``split``; else the data loaded for it (test files only for ``test``).

    Raises:
        ConfigError: An unknown split.
    """
    if split not in SPLIT_NAMES:
        raise ConfigError(f"split: {split!r} is not one of {', '.join(SPLIT_NAMES)}")
    return get_architecture(config.model.name).data_for(config, split, data)  # its config checked by the caller


def _energy(model: nn.Module, sample: torch.Tensor, config: ExperimentConfig) -> tuple[EnergyReading, bool]:
    """The energy reading, and whether other trials' work on the same GPU may be in it."""
    reading = measure_energy(model, sample, config.profile.energy_source, config.profile.energy_window_ms)
    shares_gpu = reading.source == "nvml" and 0 < config.search.gpus_per_trial < 1
    if shares_gpu and config.profile.exclusive_energy:
        exclusive = measure_exclusive_gpu_energy(model, sample, config.profile.energy_window_ms)
        if exclusive is not None:
            return exclusive, False
    return reading, shares_gpu


def _timed(label: str, started: float) -> float:
    now = time.perf_counter()
    log.info("%s done in %.1f s", label, now - started)
    return now


def _started_pool(config: ExperimentConfig, calibration: PeopleCalibration) -> HumanPool:
    """A pool for one measurement; for a library caller without Ray, a fresh local node (never a stray cluster)."""
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS") or "local", include_dashboard=False,
                 logging_level=logging.WARNING)
    return HumanPool(config.human_pool, config.seed, calibration)


def _with_people(architecture: Architecture, config: ExperimentConfig, model: nn.Module, gate: FittedGate,
                 candidate: Candidate, data: Any, pool: HumanPool) -> dict[str, float | str | bool]:
    started = time.perf_counter()
    outcomes = architecture.run_with_people(config, model, gate, candidate, data, pool)
    _timed(f"network, gate and human pool ({architecture.data_split(data)})", started)
    latency = measure_latency_ms(model, architecture.profile_sample(data), config.profile.latency_repeats)
    window = stream_window_s(config, sum(len(o.deferred) for o in outcomes.values()))
    return {**accuracy_measures(outcomes), **gate_measures(outcomes),
            **people_measures(outcomes, latency, config.human_pool.size, window),
            "gate_score": gate.score, "gate_tau": candidate.human.tau}


def measure_network(config: ExperimentConfig, model: nn.Module, gate: FittedGate, candidate: Candidate, *,
                    split: str, data: Any | None = None, pool: HumanPool | None = None) -> Evaluation:
    """Measure an already compressed network with its gate and people on one split's challenge sets.

    Args:
        config: The experiment (data, pool, profiler).
        model: The compressed network, as a trial saved it.
        gate: Its fitted gate.
        candidate: Its human choice, tau already set (and, for the record, its compression).
        split: ``validation`` (what a search scores) or ``test`` (the report's, read only for chosen H-DNNs).
        data: Already loaded data for that split; loaded when omitted or of another split.
        pool: A running human pool; one is started (and stopped) when omitted.

    Raises:
        ConfigError: The candidate does not fit the architecture or the pool, or an unknown split.
    """
    architecture = architecture_for(config)
    architecture.check_candidate(candidate, config)
    data = load_split_data(config, split, data)
    calibration = architecture.people_calibration(config, data)
    own_pool = pool is None
    pool = pool or _started_pool(config, calibration)
    if pool.calibration != calibration:
        raise ValueError(f"the pool's people are calibrated to {pool.calibration.source!r} "
                         f"({pool.calibration.num_classes} classes), but this data needs {calibration.source!r} "
                         f"({calibration.num_classes} classes): make the pool with architecture.people_calibration")
    try:
        metrics = _with_people(architecture, config, model, gate, candidate, data, pool)
        metrics["people_calibration"] = pool.calibration.source
    finally:
        if own_pool:
            pool.shutdown()
    started = time.perf_counter()
    energy, shared_gpu = _energy(model, architecture.profile_sample(data), config)
    metrics["split"] = split
    metrics["energy_mj"] = energy.energy_mj
    metrics["energy_source"] = energy.source
    metrics["energy_shared_gpu"] = shared_gpu
    metrics["storage_mb"] = storage_mb(model)
    metrics["parameters"] = sum(p.numel() for p in model.parameters())
    _timed("profiling", started)
    return Evaluation(metrics=metrics, model=model, gate=gate, candidate=candidate)


def evaluate_candidate(config: ExperimentConfig, candidate: Candidate, *, data: Any | None = None,
                       pool: HumanPool | None = None, split: str = "validation") -> Evaluation:
    """Compress, fine-tune and measure one candidate on ``split`` (validation unless asked).

    Args:
        config: The experiment (data, base model, fine-tune budget, pool, profiler).
        candidate: Per-layer compression and human participation.
        data: Already loaded data (the architecture's own), to skip reloading inside a search.
        pool: A running human pool; one is started (and stopped) when omitted.
        split: The challenge sets measured on.

    Raises:
        ConfigError: The candidate does not fit the model or the pool.
    """
    architecture = architecture_for(config)
    architecture.check_candidate(candidate, config)
    data = load_split_data(config, split, data)
    architecture.people_calibration(config, data)  # the people's figures are checked before any work
    architecture.check_data(config, data)
    started = time.perf_counter()
    base = architecture.load_base(config, data)
    model = architecture.compress(config, base, candidate, data, config.finetune)
    started = _timed("compression and fine-tuning", started)
    gate = architecture.fit_gate(config, model, data, candidate.human.gate)
    human = candidate.human
    if human.deferral is not None:
        tau = architecture.tau_for_deferral(config, model, gate, data, human.deferral)
        candidate = dataclasses.replace(candidate, human=dataclasses.replace(human, tau=tau))
    _timed(f"gate ({gate.score})", started)
    return measure_network(config, model, gate, candidate, split=split, data=data, pool=pool)
