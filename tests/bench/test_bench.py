"""`hgen-ray bench` end to end on the tiniest setting, and its bad input."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from hgen_ray.cli import main
from hgen_ray.config import ExperimentConfig, SearchConfig, as_dict


def _write(path: Path, document: dict) -> Path:
    path.write_text(yaml.safe_dump(document))
    return path


def test_bench_runs_each_strategy_with_the_same_budget_and_reports(
        tmp_path: Path, tiny_config: ExperimentConfig, trained_base, ray_session) -> None:  # type: ignore[no-untyped-def]
    experiment = dataclasses.replace(tiny_config, data=dataclasses.replace(tiny_config.data, test_per_category=60),
                                     finetune=dataclasses.replace(tiny_config.finetune, subset=500),
                                     search=SearchConfig(trials=5))
    _write(tmp_path / "tiny.yaml", as_dict(experiment))
    bench = _write(tmp_path / "bench.yaml", {"experiments": {"h_cnn": "tiny.yaml"}, "strategies": ["random", "original"],
                                             "trials": 2, "warmup_trials": 0})
    out = tmp_path / "out"
    assert main(["bench", "--config", str(bench), "--out", str(out), "--seeds", "2"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert [(r["label"], r["seed"]) for r in results] == [("h_cnn", 0), ("h_cnn", 1)]
    assert all(len(r["rows"]["random"]) == 2 for r in results)  # the bench's budget, not the experiment's 5
    assert all(len(r["rows"]["original"]) == 1 for r in results)
    # Each seed trains its own base and draws its own splits: the originals differ.
    assert results[0]["rows"]["original"][0]["accuracy"] != results[1]["rows"]["original"][0]["accuracy"]
    for seed in (0, 1):
        search = out / "h_cnn" / f"seed-{seed}" / "random"
        assert yaml.safe_load((search / "search.yaml").read_text())["seed"] == seed
        trials = (search / "trials.csv").read_text()
        assert "test/accuracy" in trials.splitlines()[0]  # the chosen row carries its test measures
    assert (out / "h_cnn-reward.png").is_file()
    report = (out / "bench.md").read_text()
    assert "| random |" in report and "| original |" in report and "### Test accuracy per category" in report
    assert "Trial budget per search strategy: 2. Seeds: 0, 1 (2)." in report and "git commit:" in report
    assert "- none judged: hgen did not run" in report
    assert main(["bench", "--config", str(bench), "--out", str(out)]) == 2  # never over a finished bench


@pytest.mark.parametrize(("document", "message"), [
    ({"experiments": {"h_cnn": "missing.yaml"}}, "bench.experiments.h_cnn: no experiment file at"),
    ({"strategies": ["hgen", "grid"]}, "bench.strategies: 'grid' is not one of hgen"),
    ({"trials": 0}, "bench.trials: 0 is out of range"),
    ({"experiments": {}}, "bench.experiments: expected at least one label"),
    ({"trials_per_experiment": {"h_yolo": 4}}, "bench.trials_per_experiment.h_yolo: no such experiment"),
    ({"experiments": {"../../escape": "x.yaml"}}, "bench.experiments.../../escape: a label names a folder"),
    ({"experiments": {"..": "x.yaml"}}, "bench.experiments...: a label names a folder"),
    ({"seeds": 0}, "bench.seeds: 0 is out of range"),
])
def test_bad_bench_files_get_one_line_and_exit_2(tmp_path: Path, document: dict, message: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    bench = _write(tmp_path / "bench.yaml", document)
    assert main(["bench", "--config", str(bench), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and message in error[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("seeds", ["0", "-3"])
def test_seeds_below_one_get_one_line_and_exit_2(tmp_path: Path, tiny_config: ExperimentConfig, seeds: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path / "tiny.yaml", as_dict(tiny_config))
    bench = _write(tmp_path / "bench.yaml", {"experiments": {"h_cnn": "tiny.yaml"}})
    assert main(["bench", "--config", str(bench), "--out", str(tmp_path / "out"), "--seeds", seeds]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error == [f"hgen-ray: error: --seeds: {seeds} is out of range; allowed: an integer from 1 to 1000"]
    assert not (tmp_path / "out").exists()
