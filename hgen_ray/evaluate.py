"""Evaluate one H-DNN candidate end to end: the measures A, T, E, S, L and people's turnaround.

    hgen-ray evaluate --config configs/quickstart.yaml --out runs/eval [--split test]

Reads top to bottom: load data, get the base model, compress and fine-tune,
run the network on one split's 13 challenge sets (clean + 12 challenges), send
the samples the gate defers to the human pool, then profile latency, energy and
storage. A search scores on the ``validation`` split; the ``test`` split is
measured only for the H-DNNs a search chose (:func:`measure_network` on their
saved networks) and for the references. Measure names are DESIGN.md's, used
unchanged in results and reports. The detectors' accuracy side lives in
:mod:`hgen_ray.evaluate_detection`; the human cost and the profiling are shared here.
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
from hgen_ray.compress.pipeline import compress_detector
from hgen_ray.config import CHALLENGE_CATEGORIES, DETECTOR_NAMES, Candidate, ConfigError, ExperimentConfig
from hgen_ray.data.splits import EVALUATED_CATEGORIES, SPLIT_NAMES, ChallengeSet, Splits, build_challenge_set, load_splits
from hgen_ray.evaluate_detection import DetectionData, evaluate_detector, load_detection_data, time_people
from hgen_ray.human import DeferredSample, HumanPool, PeopleView, PoolResult, people_view, pool_utilisation, \
    stream_arrivals, train_ensemble
from hgen_ray.models import COMPRESSIBLE_LAYERS, defer_mask, fit_temperature, load_or_train_base, predict_logits
from hgen_ray.models.detectors import DETECTOR_LAYERS, load_or_train_detector
from hgen_ray.profile import EnergyReading, measure_energy, measure_latency_ms, storage_mb
from hgen_ray.profile.energy import measure_exclusive_gpu_energy

__all__ = ["Evaluation", "PeopleCosts", "deferred_sample", "evaluate_candidate", "human_cost_measures", "human_side_measures",
           "load_split_data", "measure_network", "query_stream", "stream_window_s"]

log = logging.getLogger(__name__)
MS_PER_S = 1000.0
SAMPLES_PER_LABOR_UNIT = 1000  # labour is reported per 1000 samples
TURNAROUND_PERCENTILE = 95  # human_turnaround_s_p95 and human_wait_s_p95: over deferred samples
DETECTOR_TEMPERATURE = 1.0  # detectors gate on raw objectness or score: no temperature is fitted

Data = Splits | DetectionData


@dataclass
class Evaluation:
    metrics: dict[str, float | str | bool]  # DESIGN.md measure names, on ``metrics["split"]``
    model: nn.Module  # the compressed network
    temperature: float  # its gate calibration (1.0 for the detectors)


@dataclass
class PeopleCosts:
    """Per category, per sample of one challenge set: what people spent (0 where not deferred)."""

    deferred: dict[str, np.ndarray]  # boolean mask
    labor_s: dict[str, np.ndarray]  # person-seconds
    latency_s: dict[str, np.ndarray]  # arrival to final answer
    wait_s: dict[str, np.ndarray]  # of that, waiting for a free person


@dataclass
class _Predictions:
    dnn: dict[str, np.ndarray]  # the network's class per sample, per category
    final: dict[str, np.ndarray]  # after human answers replace deferred ones
    costs: PeopleCosts


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


def query_stream(config: ExperimentConfig, split: str, counts: dict[str, int]) -> dict[str, np.ndarray]:
    """When the app sees each sample of one split's challenge sets: one mixed stream, the same for every candidate."""
    return stream_arrivals(counts, config.human_pool.arrival_rate_per_s, [config.seed, SPLIT_NAMES.index(split)])


def deferred_sample(challenge: ChallengeSet, category: str, index: int, arrival_s: float, people: PeopleView,
                     probabilities: torch.Tensor) -> DeferredSample:
    """Sample ``index`` of ``category`` as the pool sees it: its image key, arrival, difficulty and the network's view."""
    key = (SPLIT_NAMES.index(challenge.split), EVALUATED_CATEGORIES.index(category), index)
    return DeferredSample(key, arrival_s, int(challenge.labels[index]), float(people.person_accuracy[category][index]),
                          float(people.answer_median_s[category][index]), tuple(probabilities[index].tolist()))


def _run_gate_and_humans(model: nn.Module, temperature: float, challenge: ChallengeSet, candidate: Candidate,
                         pool: HumanPool, people: PeopleView, arrivals: dict[str, np.ndarray]) -> _Predictions:
    dnn, deferred, requests, where = {}, {}, [], []
    for category in EVALUATED_CATEGORIES:
        logits = predict_logits(model, challenge.images[category])
        dnn[category] = logits.argmax(1).numpy()
        deferred[category] = defer_mask(logits, temperature, candidate.human.tau).numpy()
        probabilities = torch.softmax(logits / temperature, dim=1)
        for index in np.flatnonzero(deferred[category]).tolist():
            requests.append(deferred_sample(challenge, category, index, float(arrivals[category][index]), people,
                                             probabilities))
            where.append((category, index))
    answered = pool.serve(requests, candidate.human.mechanism, candidate.human.k) if requests else None
    return _merge_answers(dnn, deferred, where, answered)


def _merge_answers(dnn: dict[str, np.ndarray], deferred: dict[str, np.ndarray], where: list[tuple[str, int]],
                   answered: PoolResult | None) -> _Predictions:
    final = {c: p.copy() for c, p in dnn.items()}
    def nothing_yet() -> dict[str, np.ndarray]:
        return {c: np.zeros(len(p)) for c, p in dnn.items()}

    costs = PeopleCosts(deferred, nothing_yet(), nothing_yet(), nothing_yet())
    for row, (category, index) in enumerate(where):
        assert answered is not None
        final[category][index] = answered.labels[row]
        costs.labor_s[category][index] = answered.labor_s[row]
        costs.latency_s[category][index] = answered.latency_s[row]
        costs.wait_s[category][index] = answered.wait_s[row]
    return _Predictions(dnn, final, costs)


def human_side_measures(predictions: _Predictions, labels: np.ndarray, dnn_latency_ms: float,
                        pool_size: int, window_s: float) -> dict[str, float]:
    """Accuracy, end-to-end latency, labour and deferral; means over the 12 challenges."""
    metrics: dict[str, float] = {}
    for category in EVALUATED_CATEGORIES:
        metrics[f"accuracy/{category}"] = float(np.mean(predictions.final[category] == labels))
        metrics[f"dnn_accuracy/{category}"] = float(np.mean(predictions.dnn[category] == labels))
        metrics[f"deferral_rate/{category}"] = float(np.mean(predictions.costs.deferred[category]))
    challenges = list(CHALLENGE_CATEGORIES)
    metrics["accuracy"] = float(np.mean([metrics[f"accuracy/{c}"] for c in challenges]))
    metrics["accuracy_clean"] = metrics["accuracy/clean"]
    metrics["dnn_accuracy"] = float(np.mean([metrics[f"dnn_accuracy/{c}"] for c in challenges]))
    metrics.update(human_cost_measures(predictions.costs, dnn_latency_ms, pool_size, window_s))
    return metrics


def _deferred_percentile(values: np.ndarray, deferred: np.ndarray) -> float:
    return float(np.percentile(values[deferred], TURNAROUND_PERCENTILE)) if deferred.any() else 0.0


def human_cost_measures(costs: PeopleCosts, dnn_latency_ms: float, pool_size: int,
                        window_s: float) -> dict[str, float]:
    """People's cost: labour per 1000 samples, deferral, p95 turnaround and wait, end-to-end mean latency, rho.

    Labour, deferral and the latencies are over the 12 challenges. ``pool_utilisation`` is over everything
    the pool served (clean samples too) in the ``window_s`` the stream took to arrive.
    ``dnn_latency_ms`` (the network alone) is what the latency demand and the reward use; people's time is
    judged by ``human_turnaround_s_p95`` against a demand of its own. ``latency_ms``, the end-to-end mean
    with people's seconds in it, is reported only.
    """
    challenges = list(CHALLENGE_CATEGORIES)
    human_s = np.concatenate([costs.latency_s[c] for c in challenges])
    was_deferred = np.concatenate([costs.deferred[c] for c in challenges]).astype(bool)
    labor = np.concatenate([costs.labor_s[c] for c in challenges])
    busy_s = float(sum(costs.labor_s[c].sum() for c in costs.labor_s))
    return {
        "dnn_latency_ms": dnn_latency_ms,
        "latency_ms": dnn_latency_ms + float(human_s.mean() * MS_PER_S),
        "human_turnaround_s_p95": _deferred_percentile(human_s, was_deferred),
        "human_wait_s_p95": _deferred_percentile(np.concatenate([costs.wait_s[c] for c in challenges]), was_deferred),
        "pool_utilisation": pool_utilisation(busy_s, pool_size, window_s),
        "labor_s_per_1k": float(labor.mean() * SAMPLES_PER_LABOR_UNIT),
        "deferral_rate": float(np.mean([costs.deferred[c].mean() for c in challenges])),
    }


def stream_window_s(config: ExperimentConfig, samples: int) -> float:
    """How long the stream of ``samples`` queries takes to arrive, on average."""
    return samples / config.human_pool.arrival_rate_per_s


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


def load_split_data(config: ExperimentConfig, split: str, data: Data | None = None) -> Data:
    """``data`` when it can be measured on ``split``; else the data loaded for it (test files only for ``test``)."""
    if split not in SPLIT_NAMES:
        raise ConfigError(f"split: {split!r} is not one of {', '.join(SPLIT_NAMES)}")
    if config.model.name in DETECTOR_NAMES:
        if isinstance(data, DetectionData) and data.challenges.split == split:
            return data
        return load_detection_data(config, split)
    if isinstance(data, Splits) and (split == "validation" or data.test_images is not None):
        return data
    return load_splits(config.data, config.seed, with_test=split == "test")


def _compressed(config: ExperimentConfig, candidate: Candidate, data: Data) -> tuple[nn.Module, float]:
    """The base compressed and fine-tuned for ``candidate``, with its gate temperature (fitted on clean validation)."""
    if isinstance(data, DetectionData):
        base = load_or_train_detector(config, data.splits.train, data.splits.val).model
        layers = DETECTOR_LAYERS[config.model.name]
        return compress_detector(base, candidate, layers, data.splits.train, config.finetune,
                                 config.seed), DETECTOR_TEMPERATURE
    base = load_or_train_base(config, data).model
    model = compress_candidate(base, candidate, COMPRESSIBLE_LAYERS, data, config.finetune, config.seed)
    return model, fit_temperature(predict_logits(model, data.val_images), data.val_labels)


def _classifier_side(config: ExperimentConfig, model: nn.Module, temperature: float, candidate: Candidate,
                     splits: Splits, pool: HumanPool, split: str) -> tuple[dict[str, float | str | bool], torch.Tensor]:
    started = time.perf_counter()
    challenge = build_challenge_set(splits, config.data, config.seed, split)
    people = people_view(challenge.images, challenge.labels, challenge.severity,
                         train_ensemble(splits.train_images, splits.train_labels, config.seed),
                         config.human_pool.clean_majority_of_3_accuracy)
    per_category = len(challenge.labels)
    predictions = _run_gate_and_humans(model, temperature, challenge, candidate, pool, people,
                                       query_stream(config, split, {c: per_category for c in EVALUATED_CATEGORIES}))
    _timed(f"gate and human pool ({split})", started)
    sample = splits.val_images[:1]
    latency = measure_latency_ms(model, sample, config.profile.latency_repeats)
    window = stream_window_s(config, per_category * len(EVALUATED_CATEGORIES))
    return dict(human_side_measures(predictions, challenge.labels.numpy(), latency, config.human_pool.size,
                                    window)), sample


def _detector_side(config: ExperimentConfig, model: nn.Module, candidate: Candidate, data: DetectionData,
                   pool: HumanPool) -> tuple[dict[str, float | str | bool], torch.Tensor]:
    started = time.perf_counter()
    metrics, outcomes = evaluate_detector(config, model, candidate, pool, data)
    counts = {c: len(o.deferred) for c, o in outcomes.items()}
    timed = time_people(outcomes, query_stream(config, data.challenges.split, counts), config.human_pool.size,
                        candidate.human.mechanism)
    costs = PeopleCosts({c: o.deferred for c, o in outcomes.items()}, {c: t.labor_s for c, t in timed.items()},
                        {c: t.latency_s for c, t in timed.items()}, {c: t.wait_s for c, t in timed.items()})
    _timed(f"detector and human pool ({data.challenges.split})", started)
    sample = data.splits.val.images[:1]
    latency = measure_latency_ms(model, sample, config.profile.latency_repeats)
    window = stream_window_s(config, sum(counts.values()))
    metrics.update(human_cost_measures(costs, latency, config.human_pool.size, window))
    return dict(metrics), sample


def _check_candidate(candidate: Candidate, config: ExperimentConfig) -> None:
    _check_chain_fits_pool(candidate, config)
    _check_yolo_band(candidate, config)


def measure_network(config: ExperimentConfig, model: nn.Module, temperature: float, candidate: Candidate, *,
                    split: str, data: Data | None = None, pool: HumanPool | None = None) -> Evaluation:
    """Measure an already compressed network with its gate and people on one split's challenge sets.

    Args:
        config: The experiment (data, pool, profiler).
        model: The compressed network, as a trial saved it.
        temperature: Its gate temperature.
        candidate: Its human choice (and, for the record, its compression).
        split: ``validation`` (what a search scores) or ``test`` (the report's, read only for chosen H-DNNs).
        data: Already loaded data for that split; loaded when omitted or of another split.
        pool: A running human pool; one is started (and stopped) when omitted.

    Raises:
        ConfigError: The candidate does not fit the pool, or an unknown split.
    """
    _check_candidate(candidate, config)
    data = load_split_data(config, split, data)
    own_pool = pool is None
    pool = pool or _started_pool(config)
    try:
        if isinstance(data, DetectionData):
            metrics, sample = _detector_side(config, model, candidate, data, pool)
        else:
            metrics, sample = _classifier_side(config, model, temperature, candidate, data, pool, split)
    finally:
        if own_pool:
            pool.shutdown()
    started = time.perf_counter()
    energy, shared_gpu = _energy(model, sample, config)
    metrics["split"] = split
    metrics["energy_mj"] = energy.energy_mj
    metrics["energy_source"] = energy.source
    metrics["energy_shared_gpu"] = shared_gpu
    metrics["storage_mb"] = storage_mb(model)
    metrics["parameters"] = sum(p.numel() for p in model.parameters())
    _timed("profiling", started)
    return Evaluation(metrics=metrics, model=model, temperature=temperature)


def evaluate_candidate(config: ExperimentConfig, candidate: Candidate, *, data: Data | None = None,
                       pool: HumanPool | None = None, split: str = "validation") -> Evaluation:
    """Compress, fine-tune and measure one candidate on ``split`` (validation unless asked).

    Args:
        config: The experiment (data, base model, fine-tune budget, pool, profiler).
        candidate: Per-layer compression and human participation.
        data: Already loaded data (``Splits`` for h_cnn, ``DetectionData`` for the detectors),
            to skip reloading inside a search.
        pool: A running human pool; one is started (and stopped) when omitted.
        split: The challenge sets measured on.

    Raises:
        ConfigError: The candidate does not fit the model or the pool.
    """
    _check_candidate(candidate, config)
    data = load_split_data(config, split, data)
    started = time.perf_counter()
    model, temperature = _compressed(config, candidate, data)
    _timed("compression and fine-tuning", started)
    return measure_network(config, model, temperature, candidate, split=split, data=data, pool=pool)
