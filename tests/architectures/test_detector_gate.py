"""The detectors' shift gate: a Mahalanobis score on pooled backbone features, deferring a share d of images."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from torch import nn

from hgen_ray.architectures import get_architecture
from hgen_ray.architectures.detector import Detector
from hgen_ray.architectures.h_yolo.network import GRID_STRIDE
from hgen_ray.config import CHALLENGE_CATEGORIES, Candidate, ConfigError, ExperimentConfig, HumanChoice
from hgen_ray.data.detection_splits import DetectionData
from hgen_ray.hdnn import export_onnx, load_hdnn, save_hdnn
from hgen_ray.human import HumanPool
from hgen_ray.trial import evaluate_candidate

DETECTORS = ["h_yolo", "h_faster_rcnn"]


def _setting(name: str, request: pytest.FixtureRequest) -> tuple[Detector, ExperimentConfig, nn.Module]:
    config = request.getfixturevalue("yolo_config" if name == "h_yolo" else "frcnn_config")
    base = request.getfixturevalue("trained_yolo" if name == "h_yolo" else "trained_frcnn")
    return get_architecture(name), config, base  # type: ignore[return-value]


@pytest.fixture(scope="module")
def pool(ray_session, tiny_config: ExperimentConfig):  # type: ignore[no-untyped-def]
    with HumanPool(tiny_config.human_pool, tiny_config.seed) as people:
        yield people


@pytest.mark.parametrize("name", DETECTORS)
def test_the_shift_score_ranks_noisy_canvases_below_clean_ones(name: str, request: pytest.FixtureRequest,
                                                              detection_data: DetectionData) -> None:
    architecture, config, base = _setting(name, request)
    gate = architecture.fit_gate(config, base, detection_data, "mahalanobis")
    clean = architecture.image_confidence(base, gate, detection_data.splits.val.images)
    noisy = architecture.image_confidence(base, gate, detection_data.challenges.sets["gaussian_noise"].images)
    static = architecture.image_confidence(base, gate, torch.rand(20, *detection_data.splits.val.images.shape[1:],
                                                                  generator=torch.Generator().manual_seed(0)))
    assert float(noisy.median()) < float(clean.median())
    assert float(static.max()) < float(clean.quantile(0.05))  # pure noise looks like no clean canvas


@pytest.mark.parametrize("name", DETECTORS)
def test_deferral_by_rate_defers_d_of_the_validation_images_and_people_help_on_all_of_them(
        name: str, request: pytest.FixtureRequest, detection_data: DetectionData, pool: HumanPool) -> None:
    architecture, config, _ = _setting(name, request)
    candidate = Candidate(human=HumanChoice("sequential", k=2, gate="mahalanobis", deferral=0.2))
    evaluation = evaluate_candidate(config, candidate, data=detection_data, pool=pool)
    measured = evaluation.metrics
    assert measured["deferral_rate"] == pytest.approx(0.2, abs=0.01)  # over the 12 validation challenges
    assert measured["gate_tau"] == evaluation.candidate.human.tau < 0  # minus a squared distance
    assert measured["accuracy"] > measured["dnn_accuracy"]  # people on a fifth of the images help
    if name == "h_yolo":  # every cell of a sent image, checked by both people
        per_image = (config.detection.canvas_size // GRID_STRIDE) ** 2 * 2
        assert measured["labor_s_per_1k"] > 0.2 * per_image * 0.5 * 1000


@pytest.mark.parametrize("name", DETECTORS)
def test_the_shift_score_s_labour_curve_is_the_least_confident_images_whole_cost(
        name: str, request: pytest.FixtureRequest, detection_data: DetectionData) -> None:
    architecture, config, base = _setting(name, request)
    curve = architecture.labour_curves(config, base, detection_data, ("mahalanobis",))["mahalanobis"]
    whole = np.concatenate([architecture.whole_image_seconds(detection_data.challenges.sets[c])
                            for c in CHALLENGE_CATEGORIES])
    assert curve[0] == 0 and curve[-1] == pytest.approx(whole.mean())
    assert (np.diff(curve) >= 0).all()


@pytest.mark.parametrize("name", DETECTORS)
def test_the_exported_shift_gate_defers_exactly_what_torch_defers(name: str, request: pytest.FixtureRequest,
                                                                   detection_data: DetectionData,
                                                                   tmp_path: Path) -> None:
    architecture, config, base = _setting(name, request)
    gate = architecture.fit_gate(config, base, detection_data, "mahalanobis")
    deferral = 0.3
    tau = architecture.tau_for_deferral(config, base, gate, detection_data, deferral)
    candidate = Candidate(human=HumanChoice("sequential", tau=tau, k=1, gate="mahalanobis", deferral=deferral))
    save_hdnn(tmp_path, base, gate, candidate, config, architecture.input_shape(config))
    written = export_onnx(tmp_path)
    session = onnxruntime.InferenceSession(str(written))
    assert [o.name for o in session.get_outputs()][-1] == "gate_confidence"
    images = torch.cat([detection_data.challenges.sets[c].images[:4] for c in CHALLENGE_CATEGORIES])
    expected = load_hdnn(tmp_path).predict(images)[1]
    one_at_a_time = name == "h_faster_rcnn"  # its export takes one image per call
    if one_at_a_time:
        scores = [session.run(None, {"image": image.numpy()})[-1] for image in images]
    else:
        scores = [session.run(None, {"image": images.numpy()})[-1]]
    onnx_confidence = torch.from_numpy(np.concatenate(scores))
    assert 0 < int(expected.sum()) < len(images)
    assert torch.equal(onnx_confidence < tau, expected)


def test_a_share_for_the_detectors_raw_msp_gate_is_refused(yolo_config: ExperimentConfig) -> None:
    candidate = Candidate(human=HumanChoice("sequential", k=1, gate="msp", deferral=0.1))
    with pytest.raises(ConfigError, match="candidate.human.deferral: h_yolo's msp gate takes a raw threshold"):
        get_architecture("h_yolo").check_candidate(candidate, yolo_config)
    shift = dataclasses.replace(candidate, human=dataclasses.replace(candidate.human, gate="mahalanobis"))
    get_architecture("h_yolo").check_candidate(shift, yolo_config)  # the shift score takes a share
