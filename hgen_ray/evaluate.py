"""Evaluate one H-DNN candidate end to end: the five measures A, T, E, S, L.

    hgen-ray evaluate --config configs/quickstart.yaml --out runs/eval

Reads top to bottom: load data, get the base model, compress and fine-tune,
run the network on the 13 test sets (clean + 12 challenges), send the samples
the gate defers to the human pool, then profile latency, energy and storage.
Measure names are DESIGN.md's, used unchanged in results and reports.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import numpy as np
import ray
import torch
from torch import nn

from hgen_ray.compress import compress_candidate
from hgen_ray.config import CHALLENGE_CATEGORIES, Candidate, ConfigError, ExperimentConfig
from hgen_ray.data.splits import EVALUATED_CATEGORIES, ChallengeSet, Splits, build_challenge_set, load_splits
from hgen_ray.human import DeferredSample, HumanPool, PoolResult
from hgen_ray.models import COMPRESSIBLE_LAYERS, defer_mask, fit_temperature, load_or_train_base, predict_logits
from hgen_ray.profile import EnergyReading, measure_energy, measure_latency_ms, storage_mb
from hgen_ray.profile.energy import measure_exclusive_gpu_energy

__all__ = ["Evaluation", "evaluate_candidate", "human_side_measures"]

log = logging.getLogger(__name__)
MS_PER_S = 1000.0
SAMPLES_PER_LABOR_UNIT = 1000  # labour is reported per 1000 samples


@dataclass
class Evaluation:
    metrics: dict[str, float | str | bool]  # DESIGN.md measure names
    model: nn.Module  # the compressed network
    temperature: float  # its gate calibration


@dataclass
class _Predictions:
    dnn: dict[str, np.ndarray]  # the network's class per sample, per category
    final: dict[str, np.ndarray]  # after human answers replace deferred ones
    deferred: dict[str, np.ndarray]  # boolean mask per category
    labor_s: dict[str, np.ndarray]  # person-seconds per sample (0 if not deferred)
    human_latency_s: dict[str, np.ndarray]  # arrival to answer (0 if not deferred)


def _check_chain_fits_pool(candidate: Candidate, config: ExperimentConfig) -> None:
    if candidate.human.tau > 0 and candidate.human.k > config.human_pool.size:
        raise ConfigError(
            f"candidate.human.k: {candidate.human.k} people per chain exceeds human_pool.size "
            f"{config.human_pool.size}; allowed: 1 to {min(3, config.human_pool.size)}"
        )


def _run_gate_and_humans(model: nn.Module, temperature: float, challenge: ChallengeSet, candidate: Candidate,
                         pool: HumanPool) -> _Predictions:
    labels = challenge.labels.numpy()
    dnn, deferred, requests, where = {}, {}, [], []
    for category in EVALUATED_CATEGORIES:
        logits = predict_logits(model, challenge.images[category])
        dnn[category] = logits.argmax(1).numpy()
        deferred[category] = defer_mask(logits, temperature, candidate.human.tau).numpy()
        for index in np.flatnonzero(deferred[category]):
            requests.append(DeferredSample(category, int(index), int(labels[index]), challenge.severity))
            where.append((category, int(index)))
    answered = pool.serve(requests, candidate.human.mechanism, candidate.human.k) if requests else None
    return _merge_answers(dnn, deferred, where, answered)


def _merge_answers(dnn: dict[str, np.ndarray], deferred: dict[str, np.ndarray], where: list[tuple[str, int]],
                   answered: PoolResult | None) -> _Predictions:
    final = {c: p.copy() for c, p in dnn.items()}
    labor = {c: np.zeros(len(p)) for c, p in dnn.items()}
    latency = {c: np.zeros(len(p)) for c, p in dnn.items()}
    for row, (category, index) in enumerate(where):
        assert answered is not None
        final[category][index] = answered.labels[row]
        labor[category][index] = answered.labor_s[row]
        latency[category][index] = answered.latency_s[row]
    return _Predictions(dnn, final, deferred, labor, latency)


def human_side_measures(predictions: _Predictions, labels: np.ndarray, dnn_latency_ms: float) -> dict[str, float]:
    """Accuracy, end-to-end latency, labour and deferral; means over the 12 challenges."""
    metrics: dict[str, float] = {}
    for category in EVALUATED_CATEGORIES:
        metrics[f"accuracy/{category}"] = float(np.mean(predictions.final[category] == labels))
        metrics[f"dnn_accuracy/{category}"] = float(np.mean(predictions.dnn[category] == labels))
        metrics[f"deferral_rate/{category}"] = float(np.mean(predictions.deferred[category]))
    challenges = list(CHALLENGE_CATEGORIES)
    metrics["accuracy"] = float(np.mean([metrics[f"accuracy/{c}"] for c in challenges]))
    metrics["accuracy_clean"] = metrics["accuracy/clean"]
    metrics["dnn_accuracy"] = float(np.mean([metrics[f"dnn_accuracy/{c}"] for c in challenges]))
    human_ms = np.concatenate([predictions.human_latency_s[c] for c in challenges]) * MS_PER_S
    labor = np.concatenate([predictions.labor_s[c] for c in challenges])
    metrics["dnn_latency_ms"] = dnn_latency_ms
    metrics["latency_ms"] = dnn_latency_ms + float(human_ms.mean())
    metrics["labor_s_per_1k"] = float(labor.mean() * SAMPLES_PER_LABOR_UNIT)
    metrics["deferral_rate"] = float(np.mean([predictions.deferred[c].mean() for c in challenges]))
    return metrics


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


def evaluate_candidate(config: ExperimentConfig, candidate: Candidate, *, splits: Splits | None = None,
                       pool: HumanPool | None = None) -> Evaluation:
    """Compress, fine-tune and measure one candidate.

    Args:
        config: The experiment (data, base model, fine-tune budget, pool, profiler).
        candidate: Per-layer compression and human participation.
        splits: Already loaded data, to skip reloading inside a search.
        pool: A running human pool; one is started (and stopped) when omitted.

    Raises:
        ConfigError: The candidate does not fit the model or the pool.
    """
    _check_chain_fits_pool(candidate, config)
    started = time.perf_counter()
    splits = splits or load_splits(config.data, config.seed)
    base = load_or_train_base(config, splits)
    started = _timed("data and base model", started)
    model = compress_candidate(base.model, candidate, COMPRESSIBLE_LAYERS, splits, config.finetune, config.seed)
    temperature = fit_temperature(predict_logits(model, splits.val_images), splits.val_labels)
    started = _timed("compression and fine-tuning", started)
    challenge = build_challenge_set(splits, config.data.severity, config.seed)
    own_pool = pool is None
    if own_pool:
        if not ray.is_initialized():
            ray.init(address=os.environ.get("RAY_ADDRESS") or "local", include_dashboard=False,
                     logging_level=logging.WARNING)
        pool = HumanPool(config.human_pool, config.seed)
    assert pool is not None
    try:
        predictions = _run_gate_and_humans(model, temperature, challenge, candidate, pool)
    finally:
        if own_pool:
            pool.shutdown()
    started = _timed("gate and human pool", started)
    sample = splits.test_images[:1]
    metrics: dict[str, float | str | bool] = dict(
        human_side_measures(predictions, challenge.labels.numpy(),
                            measure_latency_ms(model, sample, config.profile.latency_repeats))
    )
    energy, shared_gpu = _energy(model, sample, config)
    metrics["energy_mj"] = energy.energy_mj
    metrics["energy_source"] = energy.source
    metrics["energy_shared_gpu"] = shared_gpu
    metrics["storage_mb"] = storage_mb(model)
    metrics["parameters"] = sum(p.numel() for p in model.parameters())
    _timed("profiling", started)
    return Evaluation(metrics=metrics, model=model, temperature=temperature)

