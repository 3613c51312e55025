"""The search end to end: Tune trials, outputs, failures, resume after SIGKILL, bad input."""

from __future__ import annotations

import csv
import dataclasses
import errno
import json
import math
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from ray import tune

from hgen_ray.cli import main
from hgen_ray.config import Constraints, ExperimentConfig, GateConfig, SearchConfig, as_dict
from hgen_ray.hdnn import load_hdnn
from hgen_ray.metric import PARETO_OBJECTIVES, failed_reward, pareto_front
from hgen_ray.search import prepare, search_space
from hgen_ray.search.setup import labour_within_pool
from hgen_ray.search.tune_location import tune_location
from hgen_ray.search.tune_state import WHOLE_COPY_DIR

REPO = Path(__file__).resolve().parents[2]
TRIALS = 16


def search_config(tiny_config: ExperimentConfig, **search: Any) -> ExperimentConfig:
    settings = {"trials": TRIALS, "max_concurrent_trials": 2, "warmup_trials": 4, "updates_per_trial": 2,
                "references": True, **search}
    return dataclasses.replace(
        tiny_config,
        data=dataclasses.replace(tiny_config.data, test_per_category=60),
        finetune=dataclasses.replace(tiny_config.finetune, subset=800),
        constraints=Constraints(accuracy_min=0.3, storage_mb_max=0.8, labor_s_per_1k_max=900.0),
        search=SearchConfig(**settings),
    )


def write_config(path: Path, config: ExperimentConfig) -> Path:
    path.write_text(yaml.safe_dump(as_dict(config)))
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, tiny_config: ExperimentConfig, trained_base,
             ray_session) -> Path:  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("search")
    config = write_config(folder / "config.yaml", search_config(tiny_config))
    assert main(["search", "--config", str(config), "--out", str(folder / "out")]) == 0
    return folder / "out"


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "trials.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_readme_s_experiment_analysis_example_reads_the_search(finished: Path) -> None:
    analysis = tune.ExperimentAnalysis(str(Path(os.path.relpath(finished / "tune")).resolve()))  # as README writes it
    assert len(analysis.trials) == TRIALS


def test_search_runs_every_planned_trial_and_writes_all_outputs(finished: Path) -> None:
    rows = _rows(finished)
    assert len(rows) == TRIALS and all(r["status"] == "TERMINATED" for r in rows)
    assert [int(r["trial"]) for r in rows] == list(range(1, TRIALS + 1))
    for name in ("pareto.json", "report.md", "tradeoffs.png", "reward.png", "search.yaml", "best/model.pt"):
        assert (finished / name).is_file(), name
    assert {"layers/conv1/technique", "human/tau", "accuracy", "labor_s_per_1k", "reward", "feasible",
            "pool_utilisation", "human_wait_s_p95", "infeasible_reason"} <= set(rows[0])
    for row in rows:  # a row is infeasible exactly when it says why, and an overloaded pool is named
        assert (row["feasible"] == "False") == bool(row["infeasible_reason"]), row
        assert (float(row["pool_utilisation"]) >= 1) == ("people overloaded" in row["infeasible_reason"]), row
    report = (finished / "report.md").read_text()
    assert "original" in report and "human_only" in report and "tradeoffs.png" in report


@pytest.mark.parametrize(("labour_limit", "expected"), [(700.0, 1000 * 8 / 24), (100.0, 100.0), (math.inf, 1000 * 8 / 24)])
def test_every_strategy_s_labour_cap_is_what_the_pool_can_do_when_that_is_less(
        tiny_config: ExperimentConfig, labour_limit: float, expected: float) -> None:
    pool = dataclasses.replace(tiny_config.human_pool, size=8, arrival_rate_per_s=24.0)
    config = dataclasses.replace(tiny_config, human_pool=pool,
                                 constraints=Constraints(labor_s_per_1k_max=labour_limit, storage_mb_max=0.5))
    capped = labour_within_pool(config)
    assert capped.labor_s_per_1k_max == pytest.approx(expected)
    assert capped.storage_mb_max == 0.5  # nothing else changes


def test_with_no_labour_limit_the_pool_still_caps_tau_for_every_strategy(tiny_config: ExperimentConfig, splits,
                                                                        trained_base) -> None:  # type: ignore[no-untyped-def]
    pool = dataclasses.replace(tiny_config.human_pool, size=8, arrival_rate_per_s=24.0)
    config = dataclasses.replace(tiny_config, human_pool=pool, constraints=Constraints())
    prepared = prepare(config)
    for algorithm in ("hgen", "random", "optuna"):
        searched = dataclasses.replace(prepared.config, search=SearchConfig(algorithm=algorithm))
        space = search_space(dataclasses.replace(prepared, config=searched))
        assert space.tau_caps and all(cap < space.max_tau for cap in space.tau_caps.values()), algorithm
        assert space.tau_caps == search_space(prepared).tau_caps


def test_tune_tools_read_the_experiment_dir(finished: Path) -> None:
    analysis = tune.ExperimentAnalysis(str(finished / "tune"))
    assert len(analysis.trials) == TRIALS
    assert list((finished / "tune").glob("searcher-state-*.pkl"))  # Tune saved the controller itself


def test_pareto_front_is_non_dominated_and_best_is_the_top_feasible(finished: Path) -> None:
    rows = [r for r in _rows(finished) if r["status"] == "TERMINATED"]
    front = json.loads((finished / "pareto.json").read_text())
    assert front
    for kept in front:
        for other in rows:
            better = [float(other[m]) >= kept[m] if mode == "max" else float(other[m]) <= kept[m]
                      for m, mode in PARETO_OBJECTIVES.items()]
            strictly = [float(other[m]) != kept[m] for m in PARETO_OBJECTIVES]
            assert not (all(better) and any(strictly)), "a Pareto row is dominated"
    feasible = [r for r in rows if r["feasible"] == "True"]
    best = max(feasible or rows, key=lambda r: float(r["reward"]))
    saved = yaml.safe_load((finished / "best" / "candidate.yaml").read_text())
    assert saved["human"]["tau"] == pytest.approx(float(best["human/tau"]))


def test_best_hdnn_reloads_with_its_gate(finished: Path, splits) -> None:  # type: ignore[no-untyped-def]
    hdnn = load_hdnn(finished / "best")
    labels, deferred = hdnn.predict(splits.test_images[:200])
    assert labels.shape == (200,) and deferred.dtype == torch.bool
    assert (labels == splits.test_labels[:200]).float().mean() > 0.5
    if not hdnn.candidate.human.asks_people:
        assert not deferred.any()


def test_onnx_export_matches_torch(finished: Path, tmp_path: Path, splits) -> None:  # type: ignore[no-untyped-def]
    import onnxruntime

    assert main(["export", str(finished / "best"), "--format", "onnx", "--out", str(tmp_path)]) == 0
    gate = json.loads((tmp_path / "gate.json").read_text())
    assert {"score", "tau", "deferral", "k", "mechanism", "combine", "temperature"} <= set(gate)
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"))
    images = splits.test_images[:32]
    onnx_logits = session.run(None, {"image": images.numpy()})[0]
    torch_logits = load_hdnn(finished / "best").model(images).detach().numpy()
    assert np.abs(onnx_logits - torch_logits).max() < 1e-4


def crashing_trial(config: dict[str, Any], context: Any) -> None:
    """A trial whose candidate fails for real inside the Tune worker: it raises, or its process exits."""
    if config["layers"]["conv1"]["ratio"] > 0.45:
        if context.fault == "exit":
            os._exit(3)  # the worker process is gone, as after a segfault or the OOM killer
        raise RuntimeError("injected fault: speedup failed for this candidate")
    from hgen_ray.trial import run_trial

    run_trial(config, context.trial)


@dataclasses.dataclass
class FaultyContext:
    trial: Any
    fault: str


@pytest.mark.usefixtures("ray_session")
@pytest.mark.parametrize("fault", ["raise", "exit"])
def test_a_failing_candidate_is_recorded_scored_infeasible_and_the_search_goes_on(
    tmp_path: Path, tiny_config: ExperimentConfig, trained_base, fault: str
) -> None:  # type: ignore[no-untyped-def]
    from hgen_ray.human import HumanPool
    from hgen_ray.report import trial_rows, write_csv_atomic
    from hgen_ray.trial import ContextHandle, TrialContext

    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import test modules
    from hgen_ray.search.callbacks import Progress
    from hgen_ray.search.run import new_tuner

    prepared = prepare(search_config(tiny_config, trials=6, algorithm="random"))
    config = prepared.config
    with HumanPool(config.human_pool, config.seed) as pool:
        context = FaultyContext(ContextHandle(TrialContext(experiment=config, data=prepared.data, pool=pool,
                                                           input_shape=tuple(prepared.sample.shape[1:]))), fault)
        trainable = tune.with_resources(tune.with_parameters(crashing_trial, context=context), {"cpu": 1})
        results = new_tuner(prepared, trainable, tmp_path, Progress(6)).fit()
    rows = trial_rows(results, failed_reward(config.reward))
    write_csv_atomic(tmp_path / "trials.csv", rows)
    failed = [r for r in _rows(tmp_path) if r["status"] == "ERROR"]
    assert len(rows) == 6 and failed and len(failed) < 6  # the search reached its planned count
    reason = "injected fault" if fault == "raise" else "died"  # Ray: "The actor died unexpectedly ..."
    assert all(reason in r["error"] and float(r["reward"]) == failed_reward(config.reward) for r in failed)
    assert all(r["feasible"] == "False" for r in failed)


def _finished_trials(tune_dir: Path) -> int:
    return sum(1 for f in tune_dir.glob("run_trial_*/result.json") if f.read_text().strip())


def test_resume_after_sigkill_finishes_the_plan_without_rerunning(tmp_path: Path,
                                                                  tiny_config: ExperimentConfig) -> None:
    planned = 12  # ~1.5 s each: the kill after 3 lands mid-search with room to spare
    config = write_config(tmp_path / "config.yaml",
                          search_config(tiny_config, trials=planned, max_concurrent_trials=1, references=False))
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    command = [sys.executable, "-m", "hgen_ray.cli", "search"]
    driver = subprocess.Popen([*command, "--config", str(config), "--out", str(out)], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 400
    while _finished_trials(out / "tune") < 3 and time.time() < deadline and driver.poll() is None:
        time.sleep(0.5)
    time.sleep(2)  # let Tune checkpoint the experiment after the last result
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    terminated = _terminated_in_saved_state(out / "tune")
    before = {f.parent.name: f.read_text() for f in (out / "tune").glob("run_trial_*/result.json")
              if f.read_text().strip() and any(t in f.parent.name for t in terminated)}
    assert 3 <= len(before) < planned, "the kill must land mid-search"
    assert len(_rows(out)) >= 3  # trials.csv is kept as trials finish, so the dead driver's table is there
    with open(max((out / "tune").glob("searcher-state-*.pkl")), "rb") as handle:  # what Tune restores from
        checkpointed = _controller_digest(pickle.load(handle))

    resumed = subprocess.run([*command, "--resume", str(out)], cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"(state {checkpointed})" in resumed.stderr  # weights, optimizers and replay buffers came back exactly
    rows = _rows(out)
    assert len(rows) == planned and len({r["trial_id"] for r in rows}) == planned
    # A trial whose result landed after Tune's last save is not finished in Tune's eyes, and is rerun;
    # every trial the saved state had finished must not be.
    for name, text in before.items():
        assert (out / "tune" / name / "result.json").read_text() == text
    results = [f for f in (out / "tune").glob("run_trial_*/result.json")]
    assert all(len(f.read_text().strip().splitlines()) == 1 for f in results)
    state_file = max((out / "tune").glob("searcher-state-*.pkl"))  # newest session by name, as Tune restores
    with open(state_file, "rb") as handle:
        saved = pickle.load(handle)
    state = saved if "rewards" in saved else saved.get("_searcher", saved)
    assert len(_rewards_in(state)) == planned  # learning went on from where it stopped, not from zero


@pytest.mark.parametrize("stop, shared_storage", [(signal.SIGINT, False), (signal.SIGTERM, True)])
def test_ctrl_c_mid_search_says_how_to_resume_keeps_only_finished_rows_and_resume_finishes(
        tmp_path: Path, tiny_config: ExperimentConfig, stop: signal.Signals, shared_storage: bool) -> None:
    """SIGINT and SIGTERM alike; the SIGTERM run keeps Tune's state in search.storage_path, and resumes from it."""
    planned = 12
    storage = str(tmp_path / "shared") if shared_storage else None
    config = write_config(tmp_path / "config.yaml", search_config(tiny_config, trials=planned, references=True,
                                                                  storage_path=storage))
    out = tmp_path / "out"
    tune_dir = Path(tune_location(out.resolve(), storage))
    assert (tune_dir.parent == tmp_path / "shared") == shared_storage
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    command = [sys.executable, "-m", "hgen_ray.cli", "search"]
    driver = subprocess.Popen([*command, "--config", str(config), "--out", str(out)], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 400
    while _finished_trials(tune_dir) < 3 and time.time() < deadline and driver.poll() is None:
        time.sleep(0.5)
    driver.send_signal(stop)  # to the driver alone, as `kill` or a job scheduler would send it
    _, stderr = driver.communicate(timeout=300)
    lines = [line for line in stderr.splitlines() if line.strip()]
    rows = _rows(out)
    assert driver.returncode == 130, stderr[-3000:]
    assert lines[-1] == (f"hgen-ray: interrupted after {len(rows)} of {planned} trials; resume with: "
                         f"hgen-ray search --resume {out.resolve()}")
    assert "Traceback" not in stderr and 3 <= len(rows) < planned
    assert all(r["reward"] != "" and (r["status"] == "ERROR" or r["accuracy"] != "") for r in rows)  # no bogus rows
    assert not (out / "report.md").exists() and not any(k.startswith("test/") for k in rows[0])  # no test figures

    resumed = subprocess.run([*command, "--resume", str(out)], cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert len(_rows(out)) == planned and (out / "report.md").is_file()
    assert _finished_trials(tune_dir) >= planned and (out / "tune").exists() != shared_storage


def _terminated_in_saved_state(tune_dir: Path) -> set[str]:
    """The ids of the trials Tune's newest saved state records as finished."""
    state = json.loads(max(tune_dir.glob("experiment_state-*.json")).read_text())
    trials = [json.loads(entry[0]) for entry in state["trial_data"]]
    return {t["trial_id"] for t in trials if t["status"] == "TERMINATED"}


def _controller_digest(saved: Any) -> str | None:
    """The digest of the controller state inside Tune's saved search state (plain or wrapped)."""
    from hgen_ray.controller import HGenSearcher
    from hgen_ray.controller.state_digest import state_digest

    if isinstance(saved, HGenSearcher):
        return saved.state_digest()
    if isinstance(saved, dict) and {"discrete", "continuous", "rewards"} <= set(saved):
        return state_digest(saved)
    if isinstance(saved, dict):
        children = list(saved.values())
    else:
        children = list(vars(saved).values()) if hasattr(saved, "__dict__") else []
    return next((d for d in map(_controller_digest, children) if d), None)


def _rewards_in(state: Any) -> list[float]:
    """Find the controller's reward history inside Tune's saved search state."""
    if isinstance(state, dict):
        if "rewards" in state:
            return state["rewards"]
        for value in state.values():
            found = _rewards_in(value)
            if found:
                return found
    if hasattr(state, "__dict__"):
        return _rewards_in(vars(state))
    return []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"search": {"algorithm": "bayes"}}, "search.algorithm: 'bayes' is not one of hgen, random"),
        ({"constraints": {"storage_mb_max": 0.001}}, "constraints.storage_mb_max: 0.001 MB is below the smallest"),
    ],
)
def test_bad_search_input_exits_2_with_one_line(tmp_path: Path, tiny_config: ExperimentConfig,
                                                overrides: dict, message: str) -> None:
    document = as_dict(tiny_config)
    for section, values in overrides.items():
        document[section].update(values)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(document))
    result = subprocess.run([sys.executable, "-m", "hgen_ray.cli", "search", "--config", str(config), "--out",
                             str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("hgen-ray: error")]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "trials.csv").exists()


def test_resume_of_a_dir_without_a_search_and_an_existing_search_are_refused(tmp_path: Path,
                                                                             finished: Path) -> None:
    before = (finished / "trials.csv").read_bytes()
    assert main(["search", "--resume", str(tmp_path)]) == 2
    config = finished / "search.yaml"
    assert main(["search", "--config", str(config), "--out", str(finished)]) == 2
    assert (finished / "trials.csv").read_bytes() == before  # nothing overwritten


def test_a_search_made_before_validation_scoring_is_not_resumed(tmp_path: Path, finished: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    old = tmp_path / "old"
    shutil.copytree(finished, old, ignore=shutil.ignore_patterns("search-format.json"))
    before = (old / "trials.csv").read_bytes()
    assert main(["search", "--resume", str(old)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "made before hgen-ray scored on validation" in error[0]
    assert (old / "trials.csv").read_bytes() == before


def test_unwritable_output_dir_is_refused(tmp_path: Path, tiny_config: ExperimentConfig) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    config = write_config(tmp_path / "config.yaml", tiny_config)
    assert main(["search", "--config", str(config), "--out", str(blocker / "out")]) == 2
    assert blocker.read_text() == "not a folder"


def test_a_damaged_tune_state_is_refused_without_a_whole_copy_and_resumed_from_one(
        tmp_path: Path, tiny_config: ExperimentConfig, trained_base, ray_session,  # type: ignore[no-untyped-def]
        capsys: pytest.CaptureFixture[str]) -> None:
    planned = 4
    config = write_config(tmp_path / "config.yaml", search_config(tiny_config, trials=planned, references=False))
    out = tmp_path / "out"  # resumed in place: Tune restores the callbacks, which write where the search was made
    assert main(["search", "--config", str(config), "--out", str(out)]) == 0
    finished_ids = {r["trial_id"] for r in _rows(out)}
    state = max((out / "tune").glob("experiment_state-*.json"))
    whole = out / "tune" / WHOLE_COPY_DIR
    assert (whole / state.name).is_file()  # copied aside as the search ran
    shutil.move(whole, tmp_path / "whole")
    state.write_bytes(state.read_bytes()[:4000])  # cut short, as by a disk that filled mid-write
    before = (out / "trials.csv").read_bytes()
    capsys.readouterr()
    assert main(["search", "--resume", str(out)]) == 2  # Tune itself would silently start a new search
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and f"Tune's state {state.name} is damaged" in error[0] and "no whole copy" in error[0]
    assert (out / "trials.csv").read_bytes() == before

    shutil.move(tmp_path / "whole", whole)
    assert main(["search", "--resume", str(out)]) == 0
    assert (out / "tune" / f"{state.name}.damaged").is_file()
    rows = _rows(out)
    assert len(rows) == planned and len({r["trial_id"] for r in rows}) == planned
    # The copy is from before the last trial(s) finished: those rows are kept aside and new trials ran instead.
    unrecorded = out / "trials-unrecorded.csv"
    aside = {r["trial_id"] for r in csv.DictReader(unrecorded.open())} if unrecorded.exists() else set()
    after_ids = {r["trial_id"] for r in rows}
    assert finished_ids == (after_ids & finished_ids) | aside and len(after_ids - finished_ids) == len(aside)


def _fill(disk: Path) -> None:
    """Write zeros until the filesystem is full."""
    with open(disk / "filler", "wb") as handle:
        try:
            while True:
                handle.write(bytes(1 << 20))
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as error:
            assert error.errno == errno.ENOSPC


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 128 MB tmpfs: a real filesystem that a test can fill (the search state alone takes ~45 MB)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128m", "tmpfs", str(disk)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"this machine does not allow mounting a tmpfs: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_disk_that_fills_mid_search_stops_it_in_one_line_and_resume_finishes_it(
        tmp_path: Path, small_disk: Path, tiny_config: ExperimentConfig) -> None:
    planned = 8
    # msp only: with every gate score searched (the rejector fitted in some trials) the resume hung in 2 of 3
    # runs on the 2-core machine, Tune idle and no trial started; the cause is not found yet (issue 17's faults)
    searched = search_config(tiny_config, trials=planned, max_concurrent_trials=1, references=False)
    config = write_config(tmp_path / "config.yaml",
                          dataclasses.replace(searched, gate=GateConfig(scores=("msp",))))
    out = small_disk / "out"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    command = [sys.executable, "-m", "hgen_ray.cli", "search"]
    log = tmp_path / "driver.log"  # on the roomy disk: the driver's messages must survive the full one
    with open(log, "w") as stderr_file:
        driver = subprocess.Popen([*command, "--config", str(config), "--out", str(out)], cwd=REPO, env=env,
                                  stdout=subprocess.DEVNULL, stderr=stderr_file)
    deadline = time.time() + 400
    while not ((out / "trials.csv").exists() and len(_rows(out)) >= 2) and time.time() < deadline:
        assert driver.poll() is None, log.read_text()[-3000:]
        time.sleep(0.2)
    written = {r["trial_id"]: r for r in _rows(out)}
    _fill(small_disk)
    driver.wait(timeout=300)
    stderr = log.read_text()
    assert driver.returncode == 1, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("hgen-ray: error")]
    assert len(errors) == 1 and f"cannot write {out}" in errors[0] and "No space left on device" in errors[0]
    kept = {r["trial_id"]: r for r in _rows(out)}  # still whole and readable
    assert len(kept) < planned and all(kept[trial] == row for trial, row in written.items())
    assert yaml.safe_load((out / "search.yaml").read_text())["search"]["trials"] == planned

    (small_disk / "filler").unlink()
    resumed = subprocess.run([*command, "--resume", str(out)], cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rows = _rows(out)
    assert len(rows) == planned and len({r["trial_id"] for r in rows}) == planned
    # A trial that finished in the moment before the disk filled can be missing from Tune's own state
    # (its save needed the disk); resume then runs a new trial in its place and keeps the old row aside.
    final = {r["trial_id"] for r in rows}
    unrecorded = out / "trials-unrecorded.csv"
    aside = {r["trial_id"]: r for r in csv.DictReader(unrecorded.open())} if unrecorded.exists() else {}
    assert not final & set(aside)
    assert all(trial in final or aside[trial] == row for trial, row in written.items())


def test_a_detector_search_runs_its_trials_and_keeps_a_loadable_best(
        tmp_path: Path, yolo_config: ExperimentConfig,
        trained_yolo, ray_session) -> None:  # type: ignore[no-untyped-def]
    config = dataclasses.replace(
        yolo_config, constraints=Constraints(),
        search=SearchConfig(trials=3, warmup_trials=2, updates_per_trial=1, references=False))
    out = tmp_path / "out"
    assert main(["search", "--config", str(write_config(tmp_path / "yolo.yaml", config)), "--out", str(out)]) == 0
    rows = _rows(out)
    assert len(rows) == 3 and all(r["status"] == "TERMINATED" for r in rows)
    assert {"layers/conv4/technique", "layers/head1/ratio", "human/tau_high"} <= set(rows[0])
    assert all(float(r["human/tau"]) <= float(r["human/tau_high"]) for r in rows)  # the band is never inverted
    best = load_hdnn(out / "best")
    assert best.architecture == "h_yolo"


def test_the_test_split_is_read_only_after_the_search_has_chosen(tmp_path: Path, tiny_config: ExperimentConfig,
                                                                  trained_base, ray_session,  # type: ignore[no-untyped-def]
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """With the test files absent, every trial still runs; only the final test measurement fails."""
    train_only = tmp_path / "train-only"
    train_only.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (train_only / name).symlink_to(Path(tiny_config.data.root).resolve() / name)
    config = search_config(tiny_config, trials=3, warmup_trials=3, references=False)
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, root=str(train_only)))
    assert main(["search", "--config", str(write_config(tmp_path / "c.yaml", config)),
                 "--out", str(tmp_path / "out")]) == 2
    assert "t10k" in capsys.readouterr().err  # the final evaluation is the first to want the test images
    rows = _rows(tmp_path / "out")
    assert len(rows) == 3 and all(r["status"] == "TERMINATED" and r["split"] == "validation" for r in rows)
    assert not any(k.startswith("test/") for k in rows[0])


def test_only_the_chosen_rows_carry_test_columns(finished: Path) -> None:
    rows = [r for r in _rows(finished) if r["status"] == "TERMINATED"]
    front_ids = {r["trial_id"] for r in json.loads((finished / "pareto.json").read_text())}
    best = max([r for r in rows if r["feasible"] == "True"] or rows, key=lambda r: float(r["reward"]))
    with_test = {r["trial_id"] for r in rows if r.get("test/accuracy")}
    assert with_test == front_ids | {best["trial_id"]}  # a trial the search did not choose has no test figure
    # The front is the validation one, recomputed here from trials.csv's measures (with six objectives and
    # int8 in the space, a 16-trial search may well have every trial on it).
    measured = [{"trial_id": r["trial_id"], **{m: float(r[m]) for m in PARETO_OBJECTIVES}} for r in rows]
    assert front_ids == {r["trial_id"] for r in pareto_front(measured)}
    assert "**test** split" in (finished / "report.md").read_text()
