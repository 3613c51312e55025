"""End to end: one candidate, compressed, fine-tuned, gated, answered by people, measured."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hgen_ray.config import CHALLENGE_CATEGORIES, Candidate, ConfigError, ExperimentConfig, HumanChoice, LayerChoice
from hgen_ray.data.splits import Splits
from hgen_ray.evaluate import Evaluation, evaluate_candidate, human_cost_measures
from hgen_ray.models import TrainedBase

pytestmark = pytest.mark.usefixtures("ray_session")

MEASURES = {"accuracy", "accuracy_clean", "latency_ms", "dnn_latency_ms", "energy_mj", "energy_source",
            "energy_shared_gpu", "storage_mb", "labor_s_per_1k", "deferral_rate", "human_turnaround_s_p95", "split"}
LAYERS = {"conv1": LayerChoice("l1", 0.25), "conv2": LayerChoice("fpgm", 0.5), "fc1": LayerChoice("svd", 0.75)}


@pytest.fixture(scope="module")
def with_humans(tiny_config: ExperimentConfig, splits: Splits, trained_base: TrainedBase) -> Evaluation:
    candidate = Candidate(layers=LAYERS, human=HumanChoice("sequential", tau=0.6, k=2))
    return evaluate_candidate(tiny_config, candidate, data=splits)


@pytest.fixture(scope="module")
def without_humans(tiny_config: ExperimentConfig, splits: Splits, trained_base: TrainedBase) -> Evaluation:
    return evaluate_candidate(tiny_config, Candidate(layers=LAYERS), data=splits)


def test_metrics_use_exactly_the_design_names(with_humans: Evaluation) -> None:
    names = set(with_humans.metrics)
    assert MEASURES <= names
    for category in ("clean", *CHALLENGE_CATEGORIES):
        assert {f"accuracy/{category}", f"dnn_accuracy/{category}", f"deferral_rate/{category}"} <= names
    assert with_humans.metrics["energy_source"] in {"nvml", "rapl", "estimate"}


def test_accuracy_is_the_mean_of_the_twelve_categories(with_humans: Evaluation) -> None:
    m = with_humans.metrics
    assert m["accuracy"] == pytest.approx(sum(m[f"accuracy/{c}"] for c in CHALLENGE_CATEGORIES) / 12)
    assert m["accuracy_clean"] == m["accuracy/clean"]


def test_without_humans_nothing_is_deferred_and_latency_is_the_network_alone(without_humans: Evaluation) -> None:
    m = without_humans.metrics
    assert m["deferral_rate"] == 0 and m["labor_s_per_1k"] == 0
    assert m["latency_ms"] == m["dnn_latency_ms"]
    assert all(m[f"accuracy/{c}"] == m[f"dnn_accuracy/{c}"] for c in CHALLENGE_CATEGORIES)


def test_people_lift_accuracy_on_hard_inputs_at_a_labour_and_latency_cost(
    with_humans: Evaluation, without_humans: Evaluation
) -> None:
    h, d = with_humans.metrics, without_humans.metrics
    assert 0 < h["deferral_rate"] < 1
    assert h["accuracy"] > d["accuracy"] + 0.03
    assert h["labor_s_per_1k"] > 1000 * h["deferral_rate"] * 2  # >= 2 people x >= 1 s per deferred sample
    assert h["latency_ms"] > h["dnn_latency_ms"] + 1000 * h["deferral_rate"]
    assert h["storage_mb"] == pytest.approx(d["storage_mb"])  # same network both times


def test_compression_shrinks_storage_and_energy(with_humans: Evaluation, tiny_config: ExperimentConfig,
                                                splits: Splits) -> None:
    original = evaluate_candidate(tiny_config, Candidate(), data=splits).metrics
    assert with_humans.metrics["storage_mb"] < original["storage_mb"] / 4
    assert with_humans.metrics["energy_mj"] < original["energy_mj"]


def test_chain_longer_than_pool_is_a_config_error(tiny_config: ExperimentConfig, splits: Splits) -> None:
    small_pool = dataclasses.replace(tiny_config, human_pool=dataclasses.replace(tiny_config.human_pool, size=2))
    with pytest.raises(ConfigError, match="candidate.human.k: 3 people per chain exceeds human_pool.size 2"):
        evaluate_candidate(small_pool, Candidate(human=HumanChoice("majority", 0.5, 3)), data=splits)


def test_people_s_cost_measures_against_a_hand_computed_case() -> None:
    # 4 samples per challenge; only fog defers, 2 samples, answered after 10 s and 30 s for 20 and 60 person-s.
    zeros = {c: np.zeros(4) for c in CHALLENGE_CATEGORIES}
    deferred = {**zeros, "fog": np.array([1, 0, 1, 0])}
    labor = {**zeros, "fog": np.array([20.0, 0, 60.0, 0])}
    latency = {**zeros, "fog": np.array([10.0, 0, 30.0, 0])}
    measured = human_cost_measures(deferred, labor, latency, dnn_latency_ms=2.0)
    assert measured["human_turnaround_s_p95"] == pytest.approx(29.0)  # over the 2 deferred only: 10 + 0.95 * 20
    assert measured["labor_s_per_1k"] == pytest.approx(80 / 48 * 1000)
    assert measured["deferral_rate"] == pytest.approx(0.5 / 12)  # the mean of the per-category rates
    assert measured["dnn_latency_ms"] == 2.0 and measured["latency_ms"] == pytest.approx(2.0 + 40 / 48 * 1000)
    nobody = human_cost_measures(zeros, zeros, zeros, dnn_latency_ms=2.0)
    assert nobody["human_turnaround_s_p95"] == 0.0 and nobody["latency_ms"] == 2.0
