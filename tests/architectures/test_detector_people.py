"""Detector evaluation: compression shrinks both detectors, people change only what they were sent, costs add up."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hgen_ray.architectures import get_architecture
from hgen_ray.architectures.detector import HumanOutcome, time_people
from hgen_ray.architectures.h_faster_rcnn.people import human_boxes_pass
from hgen_ray.architectures.h_yolo.people import cell_majority, human_cells_pass
from hgen_ray.config import Candidate, ConfigError, ExperimentConfig, HumanChoice, LayerChoice
from hgen_ray.data.detection_splits import DetectionData
from hgen_ray.human import HumanPool
from hgen_ray.human.detection_tasks import BOX_DRAW_MEDIAN_S
from hgen_ray.profile import storage_mb
from hgen_ray.trial import evaluate_candidate

SHRINK = {
    "h_yolo": {"conv2": LayerChoice("l1", 0.5), "conv4": LayerChoice("taylor", 0.5), "head1": LayerChoice("svd", 0.75)},
    "h_faster_rcnn": {"backbone.conv1": LayerChoice("fpgm", 0.5), "backbone.conv2": LayerChoice("taylor", 0.5),
                      "roi_heads.box_head.fc6": LayerChoice("svd", 0.75)},
}

GENEROUS_PEOPLE = {  # people see much of what the weak test detectors find hard
    "h_yolo": HumanChoice("majority", tau=0.05, k=1, tau_high=1.0),
    "h_faster_rcnn": HumanChoice("majority", tau=0.9, k=1),
}


def _labor(outcome: HumanOutcome) -> np.ndarray:
    """Person-seconds per image: every look people took at it."""
    return np.array([sum(outcome.looks.get(i, [])) for i in range(len(outcome.deferred))])


@pytest.fixture(scope="module")
def pool(ray_session, tiny_config: ExperimentConfig):  # type: ignore[no-untyped-def]
    with HumanPool(tiny_config.human_pool, tiny_config.seed) as people:
        yield people


@pytest.mark.parametrize("name", ["h_yolo", "h_faster_rcnn"])
def test_compression_shrinks_each_detector_and_it_still_detects(
        name: str, request: pytest.FixtureRequest, detection_data: DetectionData) -> None:
    base: nn.Module = request.getfixturevalue("trained_yolo" if name == "h_yolo" else "trained_frcnn")
    config: ExperimentConfig = request.getfixturevalue("yolo_config" if name == "h_yolo" else "frcnn_config")
    architecture = get_architecture(name)
    small = architecture.compress(config, base, Candidate(layers=SHRINK[name]), detection_data, config.finetune)
    assert storage_mb(small) < 0.8 * storage_mb(base)
    layers = architecture.compressible_layers(config, base, detection_data)
    for conv in (n for n, kind in layers.items() if kind == "conv" and n in SHRINK[name]):
        # every technique really removes channels, Taylor (scored from the detector's loss) included
        assert small.get_submodule(conv).out_channels == base.get_submodule(conv).out_channels // 2, conv
    detections = architecture.detect(small, detection_data.splits.val.images[:4])  # type: ignore[attr-defined]
    assert len(detections) == 4 and all(d["boxes"].shape[1] == 4 for d in detections)


def test_people_change_only_the_images_with_gated_cells(trained_yolo: nn.Module, detection_data: DetectionData,
                                                        pool: HumanPool) -> None:
    test = detection_data.challenges.sets["gaussian_noise"]
    with torch.no_grad():
        most_sure = torch.sigmoid(trained_yolo(test.images)[:, 0]).flatten(1).amax(1)
    tau = float(most_sure.median())  # about half of the images have a cell at or above it
    candidate = Candidate(human=HumanChoice("majority", tau=tau, k=2, tau_high=1.0))
    outcome = human_cells_pass(trained_yolo, test, "gaussian_noise", 3, candidate, pool, "validation")
    assert 0 < outcome.deferred.sum() < len(test)
    for deferred, final, plain in zip(outcome.deferred, outcome.detections, outcome.dnn_detections):
        if not deferred:
            assert torch.equal(final["boxes"], plain["boxes"]) and torch.equal(final["scores"], plain["scores"])
    assert (outcome.tasks[~outcome.deferred] == 0).all() and (_labor(outcome)[~outcome.deferred] == 0).all()
    assert (outcome.tasks[outcome.deferred] % 2 == 0).all()  # every gated cell checked by both people
    per_cell = _labor(outcome)[outcome.deferred] / outcome.tasks[outcome.deferred]
    assert 0.5 < float(np.median(per_cell)) < 3.0  # "about 1-2 s" per cell checked


def test_people_draw_boxes_only_for_unsure_images(trained_frcnn: nn.Module, detection_data: DetectionData,
                                                  pool: HumanPool) -> None:
    test = detection_data.challenges.sets["fog"]
    candidate = Candidate(human=HumanChoice("sequential", tau=0.6, k=1))
    plain = get_architecture("h_faster_rcnn").detect(trained_frcnn, test.images)  # type: ignore[attr-defined]
    outcome = human_boxes_pass(trained_frcnn, plain, test, "fog", 3, candidate, pool, "validation")
    assert 0 < outcome.deferred.sum()
    best = [float(d["scores"].max()) if len(d["scores"]) else 0.0 for d in outcome.dnn_detections]
    assert outcome.deferred.tolist() == [b < 0.6 for b in best]
    for deferred, final, plain in zip(outcome.deferred, outcome.detections, outcome.dnn_detections):
        if not deferred:
            assert torch.equal(final["boxes"], plain["boxes"])
    drew = outcome.tasks > 0
    assert drew.any() and (_labor(outcome)[~drew] == 0).all()
    per_box = _labor(outcome)[drew] / outcome.tasks[drew]
    assert 0.5 * BOX_DRAW_MEDIAN_S < float(np.median(per_box)) < 2 * BOX_DRAW_MEDIAN_S


@pytest.mark.parametrize("name", ["h_yolo", "h_faster_rcnn"])
def test_end_to_end_evaluate_reports_map_and_human_cost(name: str, request: pytest.FixtureRequest,
                                                        detection_data: DetectionData, pool: HumanPool) -> None:
    config: ExperimentConfig = request.getfixturevalue("yolo_config" if name == "h_yolo" else "frcnn_config")
    request.getfixturevalue("trained_yolo" if name == "h_yolo" else "trained_frcnn")  # cached: not retrained
    alone = evaluate_candidate(config, Candidate(), data=detection_data, pool=pool).metrics
    helped = evaluate_candidate(config, Candidate(human=GENEROUS_PEOPLE[name]), data=detection_data, pool=pool).metrics
    assert alone["labor_s_per_1k"] == 0 and alone["deferral_rate"] == 0
    assert alone["accuracy"] == pytest.approx(alone["dnn_accuracy"])
    assert 0 <= alone["accuracy"] <= 1 and alone["accuracy_clean"] == alone["accuracy/clean"]
    assert helped["labor_s_per_1k"] > 0 and helped["deferral_rate"] > 0
    assert helped["latency_ms"] > alone["latency_ms"]
    assert helped["accuracy"] > alone["accuracy"]  # people add what the weak detector misses
    assert alone["energy_source"] in ("nvml", "rapl", "estimate") and alone["storage_mb"] > 0


def test_an_inverted_yolo_band_is_refused(yolo_config: ExperimentConfig, detection_data: DetectionData) -> None:
    inverted = Candidate(human=HumanChoice("majority", tau=0.6, k=1, tau_high=0.4))
    with pytest.raises(ConfigError, match="candidate.human.tau_high: 0.4 is below tau 0.6"):
        evaluate_candidate(yolo_config, inverted, data=detection_data)


def test_detector_canvases_follow_the_config(yolo_config: ExperimentConfig, detection_data: DetectionData) -> None:
    assert len(detection_data.splits.train) == yolo_config.detection.train_canvases
    # The search's data: every challenge set is built on the validation canvases, none on the test ones.
    assert detection_data.challenges.split == "validation"
    assert all(len(s) == yolo_config.detection.validation_canvases for s in detection_data.challenges.sets.values())
    assert detection_data.splits.val.images.shape[-2:] == (yolo_config.detection.canvas_size,) * 2


def test_every_category_s_images_share_one_queue() -> None:
    # a fog image and a jpeg image arrive together; one person checks both, one after the other
    def outcome(looks: dict[int, list[float]]) -> HumanOutcome:
        deferred = np.array([i in looks for i in range(3)])
        return HumanOutcome([], [], deferred, looks, np.zeros(3))

    outcomes = {"fog": outcome({1: [4.0]}), "jpeg": outcome({2: [6.0]})}
    arrivals = {"fog": np.array([0.0, 1.0, 2.0]), "jpeg": np.array([0.5, 1.5, 1.0])}
    timed = time_people(outcomes, arrivals, people=1, mechanism="majority")
    labor, latency, wait = timed["fog"].labor_s, timed["fog"].latency_s, timed["fog"].wait_s
    np.testing.assert_allclose(labor, [0, 4.0, 0])
    np.testing.assert_allclose(latency, [0, 4.0, 0])
    labor, latency, wait = timed["jpeg"].labor_s, timed["jpeg"].latency_s, timed["jpeg"].wait_s
    np.testing.assert_allclose(wait, [0, 0, 4.0])  # arrived at 1 s, waited for the fog image until 5 s
    np.testing.assert_allclose(latency, [0, 0, 10.0])


@pytest.mark.parametrize(("votes", "objectness", "expected"), [
    ([(True, 3), (False, 0)], 0.7, (True, 3)),  # a verdict tie goes the way the network leans...
    ([(True, 3), (False, 0)], 0.3, (False, 3)),
    ([(True, 3), (True, 5)], 0.3, (True, 5)),  # ...and so does a class tie (the network favours 5)
    ([(True, 3), (True, 3), (False, 5)], 0.1, (True, 3)),  # a majority needs no tie-break
])
def test_people_s_ties_on_a_cell_go_the_way_the_network_leans(votes: list[tuple[bool, int]], objectness: float,
                                                              expected: tuple[bool, int]) -> None:
    classes = [0.0] * 10
    classes[3], classes[5] = 0.2, 0.6
    assert cell_majority(votes, objectness, classes) == expected
