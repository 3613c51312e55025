"""The gate's four scores, deferral by rate, and the gate as exported to ONNX."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from torch import nn

from hgen_ray.architectures import get_architecture
from hgen_ray.architectures.classifier import TrainedBase
from hgen_ray.architectures.gate import (
    FittedGate,
    defer_mask,
    fit_mahalanobis,
    fit_temperature,
    gate_confidence,
    tau_for_rate,
)
from hgen_ray.architectures.rejector import rejector_training_set, train_rejector
from hgen_ray.config import CHALLENGE_CATEGORIES, GATE_SCORES, Candidate, ConfigError, ExperimentConfig, HumanChoice
from hgen_ray.data.splits import EVALUATED_CATEGORIES, Splits, build_challenge_set
from hgen_ray.hdnn import export_onnx, load_hdnn, save_hdnn


def test_fit_temperature_recovers_the_temperature_that_generated_labels() -> None:
    generator = torch.Generator().manual_seed(0)
    true_logits = torch.randn(20000, 10, generator=generator) * 3
    labels = torch.multinomial(torch.softmax(true_logits, 1), 1, generator=generator).squeeze(1)
    overconfident = true_logits * 2.5  # a model that is 2.5x too sure
    assert fit_temperature(overconfident, labels) == pytest.approx(2.5, rel=0.05)


def _features_are_the_input() -> nn.Module:
    """A network whose head is its only layer: its penultimate features are the 2-d input itself."""
    network = nn.Sequential(nn.Flatten(), nn.Linear(2, 2))
    with torch.no_grad():
        network[1].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        network[1].bias.zero_()
    return network.eval()


def test_msp_ranks_a_peaked_softmax_above_a_flat_one_and_defers_below_tau() -> None:
    network = _features_are_the_input()
    images = torch.tensor([[3.0, 0.0], [0.4, 0.0], [0.0, 0.0]])
    confidence = gate_confidence(network, FittedGate("msp", 1.0), images)[1]
    assert confidence.tolist() == pytest.approx([0.9526, 0.5987, 0.5], abs=1e-4)
    assert defer_mask(confidence, "msp", 0.7).tolist() == [False, True, True]
    assert defer_mask(confidence, "msp", 0.0).tolist() == [False, False, False]
    assert defer_mask(confidence, "msp", 1.0).tolist() == [True, True, True]  # tau 1 sends all, even a rounded 1.0


def test_energy_trusts_large_logits_where_msp_sees_no_difference() -> None:
    network = _features_are_the_input()
    images = torch.tensor([[2.0, 0.0], [12.0, 10.0]])  # the same softmax, ten times the evidence
    msp = gate_confidence(network, FittedGate("msp", 1.0), images)[1]
    energy = gate_confidence(network, FittedGate("energy", 1.0), images)[1]
    assert msp[0] == pytest.approx(float(msp[1]), abs=1e-6)
    assert energy.tolist() == pytest.approx([2.1269, 12.1269], abs=1e-4)  # logsumexp


def test_mahalanobis_distrusts_a_far_sample_however_sure_its_softmax_is() -> None:
    network = _features_are_the_input()
    generator = torch.Generator().manual_seed(0)
    train = torch.cat([torch.randn(200, 2, generator=generator) * 0.5,
                       torch.randn(200, 2, generator=generator) * 0.5 + torch.tensor([5.0, 5.0])])
    labels = torch.cat([torch.zeros(200, dtype=torch.long), torch.ones(200, dtype=torch.long)])
    gate = FittedGate("mahalanobis", 1.0, fit_mahalanobis(train, labels, 2))
    assert gate.tensors["means"][1].tolist() == pytest.approx([5.0, 5.0], abs=0.1)
    images = torch.tensor([[0.1, 0.0], [5.0, 5.2], [60.0, -40.0]])  # near class 0, near class 1, far from both
    confidence = gate_confidence(network, gate, images)[1]
    msp = gate_confidence(network, FittedGate("msp", 1.0), images)[1]
    assert float(msp[2]) > float(msp[0])  # softmax is surest of the far one...
    assert float(confidence[2]) < min(float(confidence[0]), float(confidence[1])) - 100  # ...Mahalanobis least


def test_the_rejector_learns_to_distrust_where_deferring_paid() -> None:
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(2000, 4, generator=generator)
    probabilities = torch.full((2000, 3), 1 / 3)
    target = (features[:, 0] > 0.5).float() * 0.9  # deferring paid where the first feature is high
    gate = FittedGate("rejector", 1.0, train_rejector(features, probabilities, target, seed=0))
    network = nn.Sequential(nn.Flatten(), nn.Linear(4, 3)).eval()
    with torch.no_grad():  # an identity body: the head's input is the image's four values
        images = torch.tensor([[-1.0, 0.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0]])
        confidence = gate_confidence(network, gate, images)[1]
    assert float(confidence[0]) > 0.9 and float(confidence[1]) < 0.3


def test_tau_for_rate_defers_the_share_asked_of_the_images_it_was_set_on() -> None:
    confidence = torch.rand(1000, generator=torch.Generator().manual_seed(1))
    for share in (0.01, 0.1, 0.37):
        assert float((confidence < tau_for_rate(confidence, share)).float().mean()) == pytest.approx(share, abs=1e-3)
    assert not (confidence < tau_for_rate(confidence, 0.0)).any()
    assert (confidence < tau_for_rate(confidence, 1.0)).all()


@pytest.fixture(scope="module")
def fitted_gates(tiny_config: ExperimentConfig, splits: Splits, trained_base: TrainedBase) -> dict[str, FittedGate]:
    architecture = get_architecture("h_cnn")
    return {score: architecture.fit_gate(tiny_config, trained_base.model, splits, score) for score in GATE_SCORES}


@pytest.mark.parametrize("share", [0.05, 0.1, 0.3])
def test_deferral_by_rate_reproduces_d_on_validation_through_the_deployed_rule(
        fitted_gates: dict[str, FittedGate], tiny_config: ExperimentConfig, splits: Splits,
        trained_base: TrainedBase, share: float) -> None:
    architecture = get_architecture("h_cnn")
    challenge = build_challenge_set(splits, tiny_config.data, tiny_config.seed, "validation")
    stream = torch.cat([challenge.images[c] for c in CHALLENGE_CATEGORIES])
    for score, gate in fitted_gates.items():
        tau = architecture.tau_for_deferral(tiny_config, trained_base.model, gate, splits, share)
        deployed = architecture.predict(trained_base.model, gate, HumanChoice(tau=tau, gate=score), stream)
        assert float(deployed.to_people.float().mean()) == pytest.approx(share, abs=0.01), score


def test_shift_aware_scores_defer_noisy_images_before_clean_ones(
        fitted_gates: dict[str, FittedGate], tiny_config: ExperimentConfig, splits: Splits,
        trained_base: TrainedBase) -> None:
    challenge = build_challenge_set(splits, tiny_config.data, tiny_config.seed, "validation")
    for score in ("mahalanobis", "rejector"):
        gate = fitted_gates[score]
        tau = get_architecture("h_cnn").tau_for_deferral(tiny_config, trained_base.model, gate, splits, 0.1)
        share = {c: float((gate_confidence(trained_base.model, gate, challenge.images[c])[1] < tau).float().mean())
                 for c in ("clean", "gaussian_noise")}
        assert share["gaussian_noise"] > 2 * share["clean"], (score, share)


def test_onnx_reproduces_torchs_deferral_decisions_for_every_score_on_every_category(
        fitted_gates: dict[str, FittedGate], tiny_config: ExperimentConfig, splits: Splits,
        trained_base: TrainedBase, tmp_path: Path) -> None:
    architecture = get_architecture("h_cnn")
    challenge = build_challenge_set(splits, tiny_config.data, tiny_config.seed, "test")
    images = torch.cat([challenge.images[c][:40] for c in EVALUATED_CATEGORIES])
    for score, gate in fitted_gates.items():
        path = tmp_path / f"{score}.onnx"
        architecture.export(trained_base.model, gate, images[:1], path)
        session = onnxruntime.InferenceSession(str(path))
        logits, onnx_confidence = session.run(None, {"image": images.numpy()})
        torch_logits, torch_confidence = gate_confidence(trained_base.model, gate, images)
        tau = architecture.tau_for_deferral(tiny_config, trained_base.model, gate, splits, 0.2)  # on validation
        assert np.array_equal(onnx_confidence < tau, (torch_confidence < tau).numpy()), score
        assert np.array_equal(logits.argmax(1), torch_logits.argmax(1).numpy()), score


def test_the_rejector_learns_only_from_held_out_families(monkeypatch: pytest.MonkeyPatch,
                                                         tiny_config: ExperimentConfig, splits: Splits,
                                                         trained_base: TrainedBase) -> None:
    import hgen_ray.architectures.rejector as rejector_module
    import hgen_ray.data.challenges as challenges
    import hgen_ray.data.splits as splits_module

    reached: list[str] = []
    corrupt = rejector_module.apply_held_out

    def recorded(images: torch.Tensor, family: str, severity: int, seed: int) -> torch.Tensor:
        reached.append(family)
        return corrupt(images, family, severity, seed)

    def refused(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a test category's corruption reached the rejector")

    monkeypatch.setattr(rejector_module, "apply_held_out", recorded)
    monkeypatch.setattr(challenges, "apply_challenge", refused)
    monkeypatch.setattr(splits_module, "apply_challenge", refused)
    get_architecture("h_cnn").fit_gate(tiny_config, trained_base.model, splits, "rejector")
    assert set(reached) == {"speckle_noise", "gaussian_blur", "spatter", "elastic_transform"}  # saturate: grey
    assert not set(reached) & set(CHALLENGE_CATEGORIES)
    with pytest.raises(ConfigError, match="gaussian_noise is a test category"):
        rejector_training_set(splits.val_images, splits.val_labels, ("gaussian_noise",), 0)


@pytest.mark.parametrize("score", ["mahalanobis", "rejector"])
def test_a_saved_h_dnn_keeps_its_fitted_gate_and_exports_it(fitted_gates: dict[str, FittedGate],
                                                            tiny_config: ExperimentConfig, splits: Splits,
                                                            trained_base: TrainedBase, tmp_path: Path,
                                                            score: str) -> None:
    gate = fitted_gates[score]
    images = splits.val_images[:300]
    tau = tau_for_rate(gate_confidence(trained_base.model, gate, images)[1], 0.15)
    candidate = Candidate(human=HumanChoice("sequential", tau=tau, k=1, gate=score, deferral=0.15))
    save_hdnn(tmp_path, trained_base.model, gate, candidate, tiny_config, (1, 28, 28))
    loaded = load_hdnn(tmp_path)
    _, deferred = loaded.predict(images)
    assert loaded.gate.score == score and float(deferred.float().mean()) > 0.05
    assert torch.equal(deferred, gate_confidence(trained_base.model, gate, images)[1] < tau)
    export_onnx(tmp_path)
    written = json.loads((tmp_path / "gate.json").read_text())
    assert written["score"] == score and written["deferral"] == 0.15 and written["tau"] == pytest.approx(tau)
