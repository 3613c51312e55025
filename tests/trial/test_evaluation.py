"""End to end: one candidate, compressed, fine-tuned, gated, answered by people, measured."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from hgen_ray.config import CHALLENGE_CATEGORIES, Candidate, ConfigError, ExperimentConfig, HumanChoice, LayerChoice
from hgen_ray.data.splits import Splits, build_challenge_set
from hgen_ray.architectures import CategoryOutcome
from hgen_ray.architectures.classifier import TrainedBase, deferred_sample
from hgen_ray.architectures.stream import query_stream
from hgen_ray.architectures.training import predict_logits
from hgen_ray.architectures import get_architecture
from hgen_ray.human import HumanPool, human_accuracy, people_view, train_ensemble
from hgen_ray.metric import infeasible_reason, score
from hgen_ray.trial import Evaluation, evaluate_candidate, measure_network
from hgen_ray.trial.measures import people_measures

pytestmark = pytest.mark.usefixtures("ray_session")

MEASURES = {"accuracy", "accuracy_clean", "latency_ms", "dnn_latency_ms", "energy_mj", "energy_source",
            "energy_shared_gpu", "storage_mb", "labor_s_per_1k", "deferral_rate", "human_turnaround_s_p95",
            "human_wait_s_p95", "pool_utilisation", "split"}
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
    # 4 samples per challenge; only fog defers, 2 samples, answered after 10 s and 30 s (of which 0 s and 8 s
    # waiting) for 20 and 60 person-s; the clean samples cost people 40 person-s more, outside the 12 challenges.
    def outcome(deferred: list[int], labor: list[float], latency: list[float], wait: list[float]) -> CategoryOutcome:
        return CategoryOutcome(0.0, 0.0, np.array(deferred, dtype=bool), np.array(labor), np.array(latency),
                               np.array(wait))

    nothing = [0.0] * 4
    outcomes = {c: outcome([0] * 4, nothing, nothing, nothing) for c in ("clean", *CHALLENGE_CATEGORIES)}
    busy = {**outcomes, "fog": outcome([1, 0, 1, 0], [20.0, 0, 60.0, 0], [10.0, 0, 30.0, 0], [0.0, 0, 8.0, 0]),
            "clean": outcome([0, 0, 0, 1], [0, 0, 0, 40.0], [0, 0, 0, 40.0], nothing)}
    measured = people_measures(busy, dnn_latency_ms=2.0, pool_size=4, window_s=10.0)
    assert measured["human_turnaround_s_p95"] == pytest.approx(29.0)  # over the 2 deferred only: 10 + 0.95 * 20
    assert measured["human_wait_s_p95"] == pytest.approx(7.6)  # 0 + 0.95 * 8
    assert measured["pool_utilisation"] == pytest.approx(120 / (4 * 10.0))  # every person-second the pool spent
    assert measured["labor_s_per_1k"] == pytest.approx(80 / 48 * 1000)
    assert measured["deferral_rate"] == pytest.approx(0.5 / 12)  # the mean of the per-category rates
    assert measured["dnn_latency_ms"] == 2.0 and measured["latency_ms"] == pytest.approx(2.0 + 40 / 48 * 1000)
    nobody = people_measures(outcomes, 2.0, pool_size=4, window_s=10.0)
    assert nobody["human_turnaround_s_p95"] == 0.0 and nobody["latency_ms"] == 2.0
    assert nobody["pool_utilisation"] == 0.0


@pytest.mark.parametrize("rate_per_s, overloaded", [(1000.0, True), (0.05, False)])
def test_a_pool_that_cannot_keep_up_makes_the_candidate_infeasible_with_the_reason(
    tiny_config: ExperimentConfig, splits: Splits, with_humans: Evaluation, rate_per_s: float, overloaded: bool
) -> None:
    pool = dataclasses.replace(tiny_config.human_pool, arrival_rate_per_s=rate_per_s)
    config = dataclasses.replace(tiny_config, human_pool=pool)
    candidate = Candidate(layers=LAYERS, human=HumanChoice("sequential", tau=0.6, k=2))
    metrics = measure_network(config, with_humans.model, with_humans.gate, candidate, split="validation",
                              data=splits).metrics
    reason = infeasible_reason(metrics, config.constraints)
    assert (metrics["pool_utilisation"] >= 1) == overloaded
    assert score(metrics, config.constraints, config.reward).feasible != overloaded
    assert reason == (f"people overloaded (rho={metrics['pool_utilisation']:.2f})" if overloaded else "")
    # same answers, other queue: how many people a sample needs does not depend on how busy they are
    assert metrics["labor_s_per_1k"] == pytest.approx(with_humans.metrics["labor_s_per_1k"])


def test_a_chain_of_two_with_the_network_breaking_ties_beats_one_person(
    tiny_config: ExperimentConfig, splits: Splits, trained_base: TrainedBase
) -> None:
    challenge = build_challenge_set(splits, tiny_config.data, tiny_config.seed, "validation")
    people = people_view(challenge.images, challenge.labels, challenge.severity,
                         train_ensemble(splits.train_images, splits.train_labels, tiny_config.seed))
    arrivals = query_stream(tiny_config, "validation", {c: len(challenge.labels) for c in challenge.images})
    samples, no_opinion = [], []
    for category in CHALLENGE_CATEGORIES:  # the fixed set: every sample the base model is unsure of
        probabilities = torch.softmax(predict_logits(trained_base.model, challenge.images[category])
                                      / trained_base.temperature, dim=1)
        for index in torch.nonzero(probabilities.amax(1) < 0.6).flatten().tolist():
            sample = deferred_sample(challenge, category, index, float(arrivals[category][index]), people,
                                      probabilities, human_accuracy(category, challenge.severity))
            samples.append(sample)
            no_opinion.append(dataclasses.replace(sample, network_probabilities=tuple([0.1] * 10)))
    truth = np.array([s.true_label for s in samples])
    with HumanPool(tiny_config.human_pool, tiny_config.seed) as pool:
        one = (pool.serve(samples, "sequential", 1).labels == truth).mean()
        two = (pool.serve(samples, "sequential", 2).labels == truth).mean()
        two_first_vote = (pool.serve(no_opinion, "sequential", 2).labels == truth).mean()
    message = f"{len(samples)} samples: k=1 {one:.3f}, k=2 {two:.3f}, k=2 with ties to the first vote {two_first_vote:.3f}"
    assert len(samples) > 500, message
    assert two > one + 0.02, message
    assert two_first_vote == one, message  # what k=2 bought before: nothing


@pytest.fixture(scope="module")
def by_rate(tiny_config: ExperimentConfig, splits: Splits, trained_base: TrainedBase) -> Evaluation:
    human = HumanChoice("sequential", k=1, gate="energy", deferral=0.2, combine="replace")
    return evaluate_candidate(tiny_config, Candidate(layers=LAYERS, human=human), data=splits)


def test_a_candidate_naming_a_share_gets_the_tau_that_defers_it_on_the_validation_challenges(
        by_rate: Evaluation, tiny_config: ExperimentConfig, splits: Splits) -> None:
    human = by_rate.candidate.human
    assert human.deferral == 0.2 and human.gate == "energy" and by_rate.metrics["gate_tau"] == human.tau
    assert human.tau == get_architecture("h_cnn").tau_for_deferral(tiny_config, by_rate.model, by_rate.gate, splits,
                                                                    0.2)
    assert by_rate.metrics["deferral_rate"] == pytest.approx(0.2, abs=0.005)  # the validation challenges: d


def test_bayes_reaches_the_pool_the_gate_and_the_network_stay_as_they_were(
        tiny_config: ExperimentConfig, splits: Splits, by_rate: Evaluation) -> None:
    measured = {}
    for rule in ("replace", "bayes"):
        candidate = dataclasses.replace(by_rate.candidate,
                                        human=dataclasses.replace(by_rate.candidate.human, combine=rule))
        measured[rule] = measure_network(tiny_config, by_rate.model, by_rate.gate, candidate, split="validation",
                                         data=splits).metrics
    assert measured["bayes"]["dnn_accuracy"] == measured["replace"]["dnn_accuracy"]
    assert measured["bayes"]["deferral_rate"] == measured["replace"]["deferral_rate"]
    assert measured["bayes"]["accuracy"] > measured["replace"]["accuracy"]  # one person joined with the network
