"""The command line: outputs on success, one line and exit 2 on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hgen_ray.cli import main
from hgen_ray.config import ExperimentConfig, as_dict

REPO = Path(__file__).resolve().parents[1]


def _write_config(tmp_path: Path, config: ExperimentConfig, **overrides: object) -> Path:
    document = as_dict(config)
    document.update(overrides)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hgen_ray.cli", *args], capture_output=True, text=True,
                          timeout=600, cwd=REPO)


@pytest.mark.usefixtures("ray_session", "trained_base")
def test_evaluate_writes_metrics_json_and_prints_the_table(tmp_path: Path, tiny_config: ExperimentConfig,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    config = _write_config(tmp_path, tiny_config)
    candidate = tmp_path / "cand.yaml"
    candidate.write_text("layers:\n  conv2: {technique: l2, ratio: 0.5}\nhuman: {mechanism: majority, tau: 0.5, k: 3}\n")
    assert main(["evaluate", "--config", str(config), "--candidate", str(candidate), "--out", str(tmp_path / "out")]) == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert 0 < metrics["accuracy"] < 1 and metrics["labor_s_per_1k"] > 0
    assert yaml.safe_load((tmp_path / "out" / "candidate.yaml").read_text())["human"]["k"] == 3
    printed = capsys.readouterr().out
    assert "A  accuracy" in printed and "L  labor_s_per_1k" in printed and "low_contrast" in printed


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("data:\n  severity: 9\n", "data.severity: 9 is out of range [1, 5]"),
        ("human_pool: {size: -1}\n", "human_pool.size: -1 is out of range"),
        ("- not\n- a mapping\n", "expected a YAML mapping"),
        ("candidate:\n  layers:\n    conv7: {technique: l1, ratio: 0.5}\n", "candidate.layers.conv7: no such"),
        ("constraints: {human_turnaround_s_max: -1}\n", "constraints.human_turnaround_s_max: -1.0 is out of range"),
        ("data: {validation_size: 500, validation_per_category: 600}\n",
         "data.validation_per_category: 600 exceeds the validation split"),
        ("human_pool: {arrival_rate_per_s: 0}\n", "human_pool.arrival_rate_per_s: 0.0 must be above 0"),
        ("human_pool: {arrival_rate_per_s: -2}\n", "human_pool.arrival_rate_per_s: -2.0 is out of range"),
        ("human_pool: {size: 0}\n", "human_pool.size: 0 people, but search.algorithm hgen lets candidates defer"),
        ("human_pool: {calibration: {clean_majority_of_3_accuracy: 0.05}}\n",
         "human_pool.calibration.clean_majority_of_3_accuracy: 0.05 is not above chance (0.1 for 10 classes)"),
        ("human_pool: {calibration: {clean_majority_of_3_accuracy: 1.2}}\n",
         "human_pool.calibration.clean_majority_of_3_accuracy: 1.2 is out of range [0.0, 1.0]"),
        ("human_pool: {clean_majority_of_3_accuracy: 0.8}\n", "human_pool.clean_majority_of_3_accuracy: unknown key"),
        ("human_pool: {arrival_interval_s: 0.5}\n", "human_pool.arrival_interval_s: unknown key"),
        ("gate: {scores: [msp, odin]}\n", "gate.scores: 'odin' is not one of msp, energy, mahalanobis, rejector"),
        ("gate: {max_deferral: 1.2}\n", "gate.max_deferral: 1.2 is out of range [0.0, 1.0]"),
        ("candidate: {human: {deferral: -0.1}}\n", "candidate.human.deferral: -0.1 is out of range [0.0, 1.0]"),
        ("model: {name: h_yolo}\ngate: {combine: bayes}\n",
         "gate.combine: bayes combines people with the network's class probabilities, which h_yolo does not give"),
        ("model: {name: h_yolo}\ngate: {scores: [energy]}\n",
         "gate.scores: 'energy' is not a gate score of h_yolo; allowed: msp, mahalanobis"),
        ("", "the config is empty; allowed: a mapping of experiment keys"),
        ("candidate: {layers: {fc1: {technique: svd, ratio: 0.5, bits: 4}}}\n",
         "candidate.layers.fc1.bits: 4 is not one of 32, 8"),
        ("model: {name: h_yolo}\nfinetune: {distill: true}\n",
         "finetune.distill: h_yolo has no distillation loss (its outputs are boxes, not one class distribution); "
         "allowed: false"),
        ("search: {epsilon_floor: -0.1}\n", "search.epsilon_floor: -0.1 is out of range [0.0, 1.0]"),
        ("gate: {rejector_families: []}\n", "gate.rejector_families: expected a non-empty list of names from speckle_noise"),
        ("gate: {rejector_families: [fog]}\n", "gate.rejector_families: 'fog' is not one of speckle_noise"),
        ("gate: {rejector_families: [saturate]}\n",
         "gate.rejector_families: saturate leaves no corruption family that changes 1-channel images"),
    ],
)
def test_bad_config_gives_one_line_exit_2_and_writes_nothing(tmp_path: Path, content: str, message: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(content)
    result = _cli("evaluate", "--config", str(config), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("layers:\n  conv1: {technique: l1, ratio: 0.95}\n",
         "candidate.layers.conv1.ratio: 0.95 is out of range [0.0, 0.9]"),
        ("human: {mechanism: majority, deferral: 1.5, k: 2}\n",
         "candidate.human.deferral: 1.5 is out of range [0.0, 1.0]"),
        ("human: {mechanism: majority, gate: softmax, k: 2}\n",
         "candidate.human.gate: 'softmax' is not one of msp, energy, mahalanobis, rejector"),
        ("layers:\n  conv7: {technique: l1, ratio: 0.5}\n",
         "candidate.layers.conv7: no such compressible layer"),
    ],
)
def test_a_bad_candidate_file_gives_one_line_exit_2_and_writes_nothing(
        tmp_path: Path, tiny_config: ExperimentConfig, content: str, message: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(content)
    out = tmp_path / "out"
    assert main(["evaluate", "--config", str(_write_config(tmp_path, tiny_config)), "--candidate", str(candidate),
                 "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and message in error[0], error
    assert not out.exists()


def test_missing_dataset_says_how_to_get_it(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"data: {{root: {tmp_path / 'nowhere'}}}\ncache_dir: {tmp_path / 'cache'}\n")
    result = _cli("evaluate", "--config", str(config), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "make data" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_show_data_draws_the_grid(tmp_path: Path, tiny_config: ExperimentConfig) -> None:
    out = tmp_path / "grid.png"
    assert main(["show-data", "--config", str(_write_config(tmp_path, tiny_config)), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_show_data_draws_detection_canvases(tmp_path: Path, yolo_config: ExperimentConfig) -> None:
    out = tmp_path / "canvases.png"
    assert main(["show-data", "--config", str(_write_config(tmp_path, yolo_config)), "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000


def test_a_cache_dir_that_climbs_out_of_the_working_dir_is_refused(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("cache_dir: ../../../../tmp/elsewhere\n")
    assert main(["evaluate", "--config", str(config), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "cache_dir: '../../../../tmp/elsewhere' leads outside the working directory" in error[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [(["--resume", "runs/x", "--storage-path", "/mnt/shared"],
      "--storage-path: a resume keeps the storage its search began with"),
     (["--out", "OUT", "--storage-path", "relative/folder"], "search.storage_path: 'relative/folder' is relative")],
)
def test_a_bad_storage_path_gives_one_line_exit_2_before_any_work(
        tmp_path: Path, tiny_config: ExperimentConfig, arguments: list[str], message: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    arguments = [str(out) if a == "OUT" else a for a in arguments]
    assert main(["search", "--config", str(_write_config(tmp_path, tiny_config)), *arguments]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and message in error[0], error
    assert not (out / "search.yaml").exists()
