"""The system's own figures for the benchmark: framework overhead, throughput and scaling, provenance.

- Overhead: N trials through ``run_search`` (Tune, the H-Gen searcher, checkpoints,
  result files) against the very same N candidates evaluated in a plain loop, one
  at a time and with the same torch threads, so the ratio is the framework's cost.
  The search's clock stops at its last trial's report: what ``run_search`` does
  after it (the chosen H-DNN measured on test) the loop never does, and it is timed
  apart. Tune's own timestamps split the search's clock into the time before the
  first trial, inside trials and between them, so the framework's extra seconds
  can be read apart from the trials' run-to-run noise. The controller's own share
  is timed apart too: a fresh searcher replays the search's results in order, and
  only its ``suggest`` and ``on_trial_complete`` (acting, imagining, updates) are
  on that clock.
- Throughput: a real multi-node Ray cluster on this machine (``clusters/local``),
  with a head that holds no CPUs, so every trial runs on a worker node; trials per
  minute come from Tune's own start and end times of the trials.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from hgen_ray.config import ConfigError, ExperimentConfig, as_dict
from hgen_ray.config import config_to_candidate
from hgen_ray.human import HumanPool
from hgen_ray.search import prepare, run_search
from hgen_ray.search.setup import searcher
from hgen_ray.search.tune_location import tune_location
from hgen_ray.trial import evaluate_candidate

__all__ = ["OverheadFigures", "git_commit", "machine_description", "measure_overhead", "measure_throughput"]

REPO = Path(__file__).resolve().parents[1]
LOCAL_CLUSTER = REPO / "clusters" / "local"
# Ports away from Ray's defaults and from clusters/local's defaults, so a user's cluster is never touched.
BENCH_GCS_PORT, BENCH_DASHBOARD_PORT, BENCH_PORT_BASE = 36379, 38265, 41000
CLUSTER_START_TIMEOUT_S = 180
SEARCH_TIMEOUT_S = 3600


@dataclass(frozen=True)
class OverheadFigures:
    trials: int
    tune_s: float  # from the search's start to its last trial's report: the work the plain loop also does
    loop_s: float
    controller_s: float  # the searcher's suggest and on_trial_complete, over all trials
    after_trials_s: float  # the rest of run_search: the chosen H-DNN measured on test, Tune's teardown
    before_first_trial_s: float  # setup, the pool's start, the trial process's start and imports
    inside_trials_s: float  # the trials' own time, as Tune clocks it
    loop_setup_s: float  # the loop's data and base model; its people start in the background, into its first candidate

    @property
    def between_trials_s(self) -> float:
        """The controller's learning and suggestions and Tune's bookkeeping (trials run one at a time)."""
        return self.tune_s - self.before_first_trial_s - self.inside_trials_s

    @property
    def ratio(self) -> float:
        return self.tune_s / self.loop_s


def measure_overhead(config: ExperimentConfig, trials: int, threads: int = 2) -> OverheadFigures:
    """Time N trials through the search, then the same N candidates in a plain loop (Ray must be up).

    Both clocks include loading the data and the cached base model and starting the human pool; neither
    includes a test-split measurement (the search's is timed apart, as ``after_trials_s``).
    """
    search = dataclasses.replace(config.search, trials=trials, max_concurrent_trials=1, cpus_per_trial=threads,
                                 references=False, test_evaluation="best")
    config = dataclasses.replace(config, search=search)
    prepare(config)  # trains the base model, if it is not cached yet, outside both clocks
    with tempfile.TemporaryDirectory() as folder:
        search_started = time.time()  # wall clock: Tune stamps each result with it, in whole seconds
        run = run_search(config, Path(folder) / "out")
        finished = time.time()
        candidates = [config_to_candidate(result.config) for result in run.results]
        metrics = [result.metrics for result in run.results]
    # The search's clock stops at its last trial's report: what comes after (the chosen H-DNN measured on the
    # test split) is work the plain loop never does, so counting it would charge the framework for a report.
    last_report = max(float(m["timestamp"]) for m in metrics)
    first_start = min(float(m["timestamp"]) - float(m["time_total_s"]) for m in metrics)
    inside_trials = sum(float(m["time_total_s"]) for m in metrics)
    torch.set_num_threads(threads)
    started = time.perf_counter()
    prepared = prepare(config)
    with HumanPool(prepared.config.human_pool, prepared.config.seed,
                   prepared.architecture.people_calibration(prepared.config, prepared.data)) as pool:
        loop_setup_s = time.perf_counter() - started
        for candidate in candidates:
            evaluate_candidate(prepared.config, candidate, data=prepared.data, pool=pool)
    loop_s = time.perf_counter() - started
    return OverheadFigures(trials, last_report - search_started, loop_s, controller_seconds(searcher(prepared), metrics),
                           finished - last_report, before_first_trial_s=first_start - search_started,
                           inside_trials_s=inside_trials, loop_setup_s=loop_setup_s)


def controller_seconds(controller: Any, results: list[dict[str, Any]]) -> float:
    """Seconds a fresh searcher spends suggesting and learning while it is fed ``results`` one by one."""
    started = time.perf_counter()
    for index, result in enumerate(results):
        controller.suggest(f"replay{index}")
        controller.on_trial_complete(f"replay{index}", result)
    return time.perf_counter() - started


def _cluster_env(state: Path) -> dict[str, str]:
    env = {**os.environ, "HGEN_CLUSTER_DIR": str(state), "HGEN_GCS_PORT": str(BENCH_GCS_PORT),
           "HGEN_DASHBOARD_PORT": str(BENCH_DASHBOARD_PORT), "HGEN_PORT_BASE": str(BENCH_PORT_BASE),
           "HGEN_HEAD_CPUS": "0", "HGEN_WORKER_CPUS": "1", "RAY_AUTH_MODE": "token"}
    env.pop("RAY_ADDRESS", None)
    return env


def _trials_per_minute(tune_dir: Path) -> float:
    """From Tune's result files: trials over the span from the first trial's start to the last one's end."""
    starts, ends = [], []
    for result in tune_dir.glob("*/result.json"):
        lines = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        if lines:
            starts.append(lines[-1]["timestamp"] - lines[-1]["time_total_s"])
            ends.append(lines[-1]["timestamp"])
    if not ends:
        raise RuntimeError(f"no finished trial under {tune_dir}")
    return 60.0 * len(ends) / (max(ends) - min(starts))


def measure_throughput(config: ExperimentConfig, trials: int, workers: int, out: Path) -> float:
    """Trials per minute of a search on a local cluster with ``workers`` 1-CPU worker nodes.

    Raises:
        ConfigError: This is not an hgen-ray checkout (no clusters/local scripts).
    """
    if not (LOCAL_CLUSTER / "start.sh").is_file():
        raise ConfigError(f"bench.scaling_trials: needs {LOCAL_CLUSTER}/start.sh from an hgen-ray checkout; "
                          "allowed here: 0")
    search = dataclasses.replace(config.search, algorithm="random", trials=trials, max_concurrent_trials=workers,
                                 cpus_per_trial=1, references=False, reuse_actors=False,
                                 storage_path=str(out / "storage"))  # what every node of the cluster reaches
    out.mkdir(parents=True, exist_ok=True)
    config_file = out / "config.yaml"
    config_file.write_text(yaml.safe_dump(as_dict(dataclasses.replace(config, search=search)), sort_keys=False))
    env = _cluster_env(out / "cluster")
    with open(out / "cluster.log", "w") as log_file:
        subprocess.run([str(LOCAL_CLUSTER / "start.sh"), str(workers)], env=env, check=True, stdout=log_file,
                       stderr=subprocess.STDOUT, timeout=CLUSTER_START_TIMEOUT_S)
    try:
        hgen_ray = shutil.which("hgen-ray") or str(REPO / ".venv" / "bin" / "hgen-ray")
        with open(out / "search.log", "w") as log_file:
            subprocess.run([hgen_ray, "search", "--config", str(config_file), "--out", str(out / "search"),
                            "--address", f"127.0.0.1:{BENCH_GCS_PORT}"], env=env, check=True, stdout=log_file,
                           stderr=subprocess.STDOUT, timeout=SEARCH_TIMEOUT_S)
    finally:
        subprocess.run([str(LOCAL_CLUSTER / "stop.sh")], env=env, capture_output=True, timeout=120)
    return _trials_per_minute(Path(tune_location((out / "search").resolve(), search.storage_path)))


def git_commit() -> str:
    """The checkout's commit (with ``+changes`` when the tree is dirty), or ``unknown``."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+changes" if dirty else "")


def machine_description() -> str:
    """Cores, memory and GPU, for the report's provenance line."""
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} cores, {memory_gb:.0f} GiB RAM, {gpu}, {platform.platform()}, torch {torch.__version__}"
