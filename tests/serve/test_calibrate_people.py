"""calibrate-people: from answers.csv to a block a search config takes, and one line for a wrong file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from hgen_ray.cli import main
from hgen_ray.config import ExperimentConfig, build_dataclass
from hgen_ray.human.calibration import resolve_calibration
from hgen_ray.serve.answers_log import append_answer

FASHION_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot")


def _served(folder: Path) -> None:
    (folder / "served.json").write_text(json.dumps({"dataset": "fashion-mnist", "classes": list(FASHION_NAMES)}))


def _answers(path: Path, per_category: int = 300) -> None:
    _served(path.parent)
    rng = np.random.default_rng(0)
    for category, severity, accuracy in (("clean", 0, 0.85), ("fog", 5, 0.5)):
        for n in range(per_category):
            right = rng.random() < accuracy
            append_answer(path, {"request_id": f"calibration-{category}-{n}", "person": f"person-{n % 2 + 1}",
                                 "label": 1 if right else 2, "seconds": round(rng.lognormal(math.log(2.0), 0.4), 3),
                                 "shown_at": 1.0, "answered_at": 3.0, "category": category, "severity": severity,
                                 "true_label": 1})
    append_answer(path, {"request_id": "f00", "person": "person-1", "label": 3, "seconds": 1.0, "shown_at": 1.0,
                         "answered_at": 2.0})  # a real request: no category, not fitted


def test_the_written_block_is_a_human_pool_a_search_config_takes(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    answers, out = tmp_path / "answers.csv", tmp_path / "people.yaml"
    _answers(answers)
    assert main(["calibrate-people", str(answers), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "clean" in printed and "fog" in printed and "[" in printed  # the per-category table with intervals
    document = yaml.safe_load(out.read_text())
    config = build_dataclass(ExperimentConfig, document)  # what a search config including it would parse
    block = config.human_pool.calibration
    assert block.answer_median_s is not None and 1.0 < block.answer_median_s < 2.2
    assert block.retention_at_severity_5 is not None and block.retention_at_severity_5["fog"] < 0.8
    assert "600 known answers in answers.csv" in block.source
    people = resolve_calibration(block, "fashion-mnist", FASHION_NAMES)
    assert people.answer_sigma == block.answer_sigma
    assert out.read_text().startswith("# fitted by hgen-ray calibrate-people")


@pytest.mark.parametrize("content, names", [
    ("a,b\n1,2\n", "not an answers.csv"),
    ("request_id,person,label,seconds,shown_at,answered_at,category,severity,true_label\n"
     "x,person-1,1,2.0,1,3,,,\n", "no category has 2 or more answers"),
    ("request_id,person,label,seconds,shown_at,answered_at,category,severity,true_label\n"
     "x,person-1,one,2.0,1,3,fog,2,1\n", "must be numbers"),
])
def test_a_file_that_cannot_be_fitted_gets_one_line_and_exit_2(tmp_path: Path, content: str, names: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    answers, out = tmp_path / "answers.csv", tmp_path / "people.yaml"
    answers.write_text(content)
    _served(tmp_path)
    out.write_text("kept\n")
    assert main(["calibrate-people", str(answers), "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert names in error and "\n" not in error
    assert out.read_text() == "kept\n"  # nothing written over


def test_answers_without_the_serve_folder_s_served_json_are_refused(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    answers = tmp_path / "answers.csv"
    _answers(answers)
    (tmp_path / "served.json").unlink()
    assert main(["calibrate-people", str(answers), "--out", str(tmp_path / "people.yaml")]) == 2
    assert "served.json: missing" in capsys.readouterr().err
    assert not (tmp_path / "people.yaml").exists()
