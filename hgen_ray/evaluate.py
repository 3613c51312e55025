"""Evaluate one H-DNN candidate end to end: the five measures A, T, E, S, L.

    hgen-ray evaluate --config configs/quickstart.yaml --out runs/eval

Reads top to bottom: load data, get the base model, compress and fine-tune,
run the network on the 13 test sets (clean + 12 challenges), send the samples
the gate defers to the human pool, then profile latency, energy and storage.
Measure names are DESIGN.md's, used unchanged in results and reports. The
detectors' accuracy side lives in :mod:`hgen_ray.evaluate_detection`; the
human cost and the profiling are shared here.
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
from hgen_ray.config import CHALLENGE_CATEGORIES, DETECTOR_NAMES, Candidate, ConfigError, ExperimentConfig
from hgen_ray.data.splits import EVALUATED_CATEGORIES, ChallengeSet, Splits, build_challenge_set, load_splits
from hgen_ray.evaluate_detection import DetectionData, evaluate_detector, load_detection_data
from hgen_ray.human import DeferredSample, HumanPool, PoolResult
from hgen_ray.models import COMPRESSIBLE_LAYERS, defer_mask, fit_temperature, load_or_train_base, predict_logits
from hgen_ray.profile import EnergyReading, measure_energy, measure_latency_ms, storage_mb
from hgen_ray.profile.energy import measure_exclusive_gpu_energy

__all__ = ["Evaluation", "evaluate_candidate", "human_cost_measures", "human_side_measures"]

log = logging.getLogger(__name__)
MS_PER_S = 1000.0
SAMPLES_PER_LABOR_UNIT = 1000  # labour is reported per 1000 samples
DETECTOR_TEMPERATURE = 1.0  # detectors gate on raw objectness or score: no temperature is fitted


@dataclass
class Evaluation:
    metrics: dict[str, float | str | bool]  # DESIGN.md measure names
    model: nn.Module  # the compressed network
    temperature: float  # its gate calibration (1.0 for the detectors)


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


def _check_yolo_band(candidate: Candidate, config: ExperimentConfig) -> None:
    human = candidate.human
    if config.model.name == "h_yolo" and human.tau > 0 and human.tau_high < human.tau:
        raise ConfigError(f"candidate.human.tau_high: {human.tau_high} is below tau {human.tau}; "
                          f"allowed for h_yolo: tau_high >= tau")


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
    metrics.update(human_cost_measures(predictions.deferred, predictions.labor_s, predictions.human_latency_s,
                                       dnn_latency_ms))
    return metrics


def human_cost_measures(deferred: dict[str, np.ndarray], labor_s: dict[str, np.ndarray],
                        human_latency_s: dict[str, np.ndarray], dnn_latency_ms: float) -> dict[str, float]:
    """End-to-end latency, labour per 1000 samples and deferral rate, over the 12 challenges."""
    challenges = list(CHALLENGE_CATEGORIES)
    human_ms = np.concatenate([human_latency_s[c] for c in challenges]) * MS_PER_S
    labor = np.concatenate([labor_s[c] for c in challenges])
    return {
        "dnn_latency_ms": dnn_latency_ms,
        "latency_ms": dnn_latency_ms + float(human_ms.mean()),
        "labor_s_per_1k": float(labor.mean() * SAMPLES_PER_LABOR_UNIT),
        "deferral_rate": float(np.mean([deferred[c].mean() for c in challenges])),
    }


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


def _started_pool(config: ExperimentConfig) -> HumanPool:
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS") or "local", include_dashboard=False,
                 logging_level=logging.WARNING)
    return HumanPool(config.human_pool, config.seed)


def _classifier_side(config: ExperimentConfig, candidate: Candidate, splits: Splits, pool: HumanPool
                     ) -> tuple[dict[str, float | str | bool], nn.Module, float, torch.Tensor]:
    started = time.perf_counter()
    base = load_or_train_base(config, splits)
    started = _timed("data and base model", started)
    model = compress_candidate(base.model, candidate, COMPRESSIBLE_LAYERS, splits, config.finetune, config.seed)
    temperature = fit_temperature(predict_logits(model, splits.val_images), splits.val_labels)
    started = _timed("compression and fine-tuning", started)
    challenge = build_challenge_set(splits, config.data.severity, config.seed)
    predictions = _run_gate_and_humans(model, temperature, challenge, candidate, pool)
    _timed("gate and human pool", started)
    sample = splits.test_images[:1]
    latency = measure_latency_ms(model, sample, config.profile.latency_repeats)
    return dict(human_side_measures(predictions, challenge.labels.numpy(), latency)), model, temperature, sample


def _detector_side(config: ExperimentConfig, candidate: Candidate, data: DetectionData | None, pool: HumanPool
                   ) -> tuple[dict[str, float | str | bool], nn.Module, float, torch.Tensor]:
    started = time.perf_counter()
    data = data or load_detection_data(config)
    metrics, model, outcomes = evaluate_detector(config, candidate, pool, data)
    _timed("detector, compression and human pool", started)
    sample = data.splits.test.images[:1]
    latency = measure_latency_ms(model, sample, config.profile.latency_repeats)
    metrics.update(human_cost_measures({c: o.deferred for c, o in outcomes.items()},
                                       {c: o.labor_s for c, o in outcomes.items()},
                                       {c: o.latency_s for c, o in outcomes.items()}, latency))
    return dict(metrics), model, DETECTOR_TEMPERATURE, sample


def evaluate_candidate(config: ExperimentConfig, candidate: Candidate, *, data: Splits | DetectionData | None = None,
                       pool: HumanPool | None = None) -> Evaluation:
    """Compress, fine-tune and measure one candidate.

    Args:
        config: The experiment (data, base model, fine-tune budget, pool, profiler).
        candidate: Per-layer compression and human participation.
        data: Already loaded data (``Splits`` for h_cnn, ``DetectionData`` for the detectors),
            to skip reloading inside a search.
        pool: A running human pool; one is started (and stopped) when omitted.

    Raises:
        ConfigError: The candidate does not fit the model or the pool.
    """
    _check_chain_fits_pool(candidate, config)
    _check_yolo_band(candidate, config)
    detector = config.model.name in DETECTOR_NAMES
    if not detector:
        data = data if isinstance(data, Splits) else load_splits(config.data, config.seed)
    own_pool = pool is None
    pool = pool or _started_pool(config)
    try:
        if detector:
            side = _detector_side(config, candidate, data if isinstance(data, DetectionData) else None, pool)
        else:
            assert isinstance(data, Splits)
            side = _classifier_side(config, candidate, data, pool)
    finally:
        if own_pool:
            pool.shutdown()
    metrics, model, temperature, sample = side
    started = time.perf_counter()
    energy, shared_gpu = _energy(model, sample, config)
    metrics["energy_mj"] = energy.energy_mj
    metrics["energy_source"] = energy.source
    metrics["energy_shared_gpu"] = shared_gpu
    metrics["storage_mb"] = storage_mb(model)
    metrics["parameters"] = sum(p.numel() for p in model.parameters())
    _timed("profiling", started)
    return Evaluation(metrics=metrics, model=model, temperature=temperature)
