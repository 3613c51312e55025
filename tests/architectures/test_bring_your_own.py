"""A user's own model and data, end to end: a torchvision model on an RGB ImageFolder, other idx sizes,
the detectors' labour limit, and one clear line for each kind of bad input."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pytest
import torch
import yaml

from hgen_ray.cli import main
from hgen_ray.config import (
    Constraints,
    DataConfig,
    ExperimentConfig,
    FinetuneConfig,
    ModelConfig,
    SearchConfig,
    as_dict,
)
from hgen_ray.search import prepare, search_space
from hgen_ray.trial import evaluate_candidate
from tests.datasets import write_idx_subset, write_image_folder

pytestmark = pytest.mark.usefixtures("ray_session")


@pytest.fixture(scope="module")
def rgb_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_image_folder(tmp_path_factory.mktemp("folder"))  # 40 + 10 per class, 32 x 32 RGB PNGs


def _mobilenet_on(root: Path, tiny_config: ExperimentConfig) -> ExperimentConfig:
    return dataclasses.replace(
        tiny_config,
        data=DataConfig(root=str(root), format="image_folder", validation_size=100, validation_per_category=20,
                        test_per_category=100),
        model=ModelConfig(name="torchvision", arch="mobilenet_v3_small", epochs=2, batch_size=32),
        finetune=FinetuneConfig(epochs=1, subset=300, batch_size=32),
    )


def test_a_torchvision_model_on_an_rgb_image_folder_evaluates_and_searches(
        rgb_folder: Path, tiny_config: ExperimentConfig, tmp_path: Path) -> None:
    config = _mobilenet_on(rgb_folder, tiny_config)
    measured = evaluate_candidate(config, config.candidate).metrics
    assert measured["split"] == "validation" and 0 < measured["accuracy_clean"] <= 1
    assert measured["storage_mb"] > 1.0  # mobilenet_v3_small for 10 classes: about 1.5 M parameters
    search = SearchConfig(trials=4, max_concurrent_trials=2, warmup_trials=2, updates_per_trial=2)
    searched = _write(tmp_path / "search.yaml", dataclasses.replace(config, search=search))
    assert main(["search", "--config", str(searched), "--out", str(tmp_path / "out")]) == 0
    with open(tmp_path / "out" / "trials.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 and all(r["status"] == "TERMINATED" for r in rows), [r.get("error") for r in rows]
    assert any(key.startswith("layers/features.") for key in rows[0])  # the zoo network's own layer names
    assert (tmp_path / "out" / "best" / "model.pt").is_file() and json.loads((tmp_path / "out" / "pareto.json").read_text())
    report = (tmp_path / "out" / "report.md").read_text()
    assert "original" in report and "human_only" in report  # the references, measured on test
    # not Fashion-MNIST, and no human_pool.calibration: every row and the report say the people are assumed
    assert all(r["people_calibration"].startswith("generic default (assumed)") for r in rows)
    assert "simulated people calibrated to: generic default (assumed)" in report


def test_idx_data_of_other_sizes_evaluates(tiny_config: ExperimentConfig, tmp_path: Path) -> None:
    root = write_idx_subset(tmp_path / "idx", train=3000, test=600)
    config = dataclasses.replace(tiny_config, cache_dir=str(tmp_path / "cache"),
                                 data=DataConfig(root=str(root), validation_size=500, validation_per_category=50,
                                                 test_per_category=600),
                                 model=ModelConfig(epochs=1), finetune=FinetuneConfig(epochs=1, subset=1000))
    measured = evaluate_candidate(config, config.candidate, split="test").metrics
    assert measured["split"] == "test" and measured["accuracy_clean"] > 0.5


@pytest.mark.parametrize("name", ["h_yolo", "h_faster_rcnn"])
def test_the_detectors_searches_cap_tau_by_the_labour_limit(name: str, request: pytest.FixtureRequest) -> None:
    config: ExperimentConfig = request.getfixturevalue("yolo_config" if name == "h_yolo" else "frcnn_config")
    request.getfixturevalue("trained_yolo" if name == "h_yolo" else "trained_frcnn")  # cached: not retrained
    prepared = prepare(config)
    top = prepared.architecture.max_tau(config)
    allowed = {}  # per limit and chain length: the taus the space lets through, as (lowest, highest)
    for limit in (50.0, 500.0):
        limited = dataclasses.replace(prepared.config, constraints=Constraints(labor_s_per_1k_max=limit))
        space = search_space(dataclasses.replace(prepared, config=limited))
        assert space.tau_caps or space.tau_floors, name  # the limit reaches the space, as for the H-CNN
        allowed[limit] = {k: (space.tau_floors.get(("msp", k), 0.0), space.tau_caps.get(("msp", k), top))
                          for k in (1, 2, 3)}
    for k in (1, 2, 3):  # a tighter limit never lets more through
        (low, high), (wider_low, wider_high) = allowed[50.0][k], allowed[500.0][k]
        assert low >= wider_low and high <= wider_high, (name, k)
    assert any(low > 0 or high < top for low, high in allowed[50.0].values()), name  # 50 person-s per 1000 binds
    # H-YOLO's people check the cells of a band that narrows as tau grows: its limit is a floor on tau
    assert bool(space.tau_floors) == (name == "h_yolo")


def _write(path: Path, config: ExperimentConfig) -> Path:
    path.write_text(yaml.safe_dump(as_dict(config)))
    return path


def _bad_model(tiny_config: ExperimentConfig, tmp_path: Path, **model: str) -> tuple[int, Path]:
    config = dataclasses.replace(tiny_config, model=dataclasses.replace(tiny_config.model, **model))
    out = tmp_path / "out"
    return main(["evaluate", "--config", str(_write(tmp_path / "c.yaml", config)), "--out", str(out)]), out


@pytest.mark.parametrize(("model", "message"), [
    ({"name": "resnet"}, "model.name: 'resnet' is not an architecture; allowed: h_cnn, h_yolo, h_faster_rcnn"),
    ({"name": "torchvision", "arch": "resnet1000"}, "model.arch: 'resnet1000' is not a torchvision classification"),
    ({"name": "custom", "factory": "no_such_package.nets:build"}, "model.factory: 'no_such_package.nets:build' does "
                                                                  "not import"),
    ({"name": "custom", "factory": "collections:OrderedDict"}, "model.factory: 'collections:OrderedDict' returned "
                                                               "OrderedDict, not an nn.Module"),
    ({"name": "custom", "factory": "no colon"}, "model.factory: 'no colon' is not an import path"),
])
def test_a_bad_model_setting_is_one_line_and_exit_2_and_nothing_is_written(
        model: dict[str, str], message: str, tiny_config: ExperimentConfig, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _bad_model(tiny_config, tmp_path, **model)
    error = capsys.readouterr().err.strip()
    assert code == 2 and message in error and len(error.splitlines()) == 1, error
    assert not out.exists()


def test_weights_of_another_shape_are_one_line_and_exit_2(rgb_folder: Path, tiny_config: ExperimentConfig,
                                                          tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torchvision

    weights = tmp_path / "resnet.pt"
    torch.save(torchvision.models.get_model("mobilenet_v3_small", weights=None, num_classes=1000).state_dict(), weights)
    config = _mobilenet_on(rgb_folder, dataclasses.replace(tiny_config, cache_dir=str(tmp_path / "cache")))
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, weights=str(weights)))
    out = tmp_path / "out"
    code = main(["evaluate", "--config", str(_write(tmp_path / "c.yaml", config)), "--out", str(out)])
    error = capsys.readouterr().err.strip()
    assert code == 2 and len(error.splitlines()) == 1, error
    assert "model.weights: " in error and "classifier.3.weight has shape [1000, 1024], the network needs [10, 1024]" in error
    assert not out.exists()
