"""Build and run the search: a Ray Tune Tuner whose searcher is the H-Gen controller.

    hgen-ray search --config configs/quickstart.yaml --out runs/q1
    hgen-ray search --resume runs/q1

Trials are scored on validation challenge images only; once the search is over,
the H-DNNs it chose and the references are measured on the test split
(:mod:`hgen_ray.final_evaluation`). Runs on the local node by default, or attaches
to a cluster given ``RAY_ADDRESS`` or ``--address``. Tune's experiment directory is ``DIR/tune``, so Tune's own tools
(``ExperimentAnalysis``, ``Tuner.restore``, TensorBoard) read it; the searcher's
state is saved there by Tune, which is what ``--resume`` restores.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
import yaml
from ray import tune
from ray.tune import Callback, TuneError
from ray.tune.experiment import Trial
from torch import nn

from hgen_ray.architecture import (
    TAU_GRID,
    compress_for,
    compressible_layers,
    estimated_deferral,
    input_sample,
    load_data_and_base,
)
from hgen_ray.atomic_write import unwritable_cause, write_text_atomic
from hgen_ray.config import (
    MAX_COMPRESSION_RATIO,
    Candidate,
    ConfigError,
    Constraints,
    ExperimentConfig,
    LayerChoice,
    as_dict,
    build_dataclass,
    read_yaml_mapping,
)
from hgen_ray.controller import HGenSearcher, RandomSearcher, SearchSpace, describe_layers
from hgen_ray.controller.projection import ProjectedSearcher, action_space
from hgen_ray.controller.space import LaborEstimate
from hgen_ray.data.fashion_mnist import resolve_data_root
from hgen_ray.data.splits import Splits
from hgen_ray.evaluate_detection import DetectionData
from hgen_ray.final_evaluation import evaluate_references, with_test_columns
from hgen_ray.human import HumanPool
from hgen_ray.human.calibration import mean_answer_s
from hgen_ray.human.pool_timeline import capacity_s_per_1k
from hgen_ray.metric import failed_reward
from hgen_ray.profile import estimate_energy_mj, storage_mb
from hgen_ray.report import last_error_line, trial_rows, write_csv_atomic
from hgen_ray.trial import TrialContext, run_trial
from hgen_ray.tune_state import KeepWholeState, recorded_trial_ids

__all__ = ["SearchRun", "create_output_dir", "prepare_output_dir", "run_search"]

log = logging.getLogger(__name__)
SEARCH_CONFIG_FILE = "search.yaml"
# Marks a search that scores on validation and reports on test; one made before has none and is not resumed.
SEARCH_FORMAT_FILE = "search-format.json"
SEARCH_FORMAT = {"format": 2, "scored_on": "validation", "reported_on": "test"}
TUNE_DIR = "tune"
UNRECORDED_TRIALS_FILE = "trials-unrecorded.csv"  # see _keep_unrecorded_trials
RAY_JOB_WORKING_DIRS = "runtime_resources/working_dir_files"
CONNECT_TIMEOUT_S = 10.0  # an unreachable cluster must fail fast, never hang


@dataclass
class SearchRun:
    out: Path
    results: tune.ResultGrid
    rows: list[dict[str, Any]]  # trials.csv: validation measures, plus test/ columns on the chosen rows
    references: dict[str, dict[str, dict[str, Any]]]  # split -> reference name -> measures
    elapsed_s: float


class _Progress(Callback):
    """One line per finished trial: how many are done and the best reward so far."""

    def __init__(self, planned: int) -> None:
        self.planned = planned
        self.done = 0
        self.best = float("-inf")

    def _line(self, trial: Any, outcome: str) -> None:
        self.done += 1
        log.info("trial %d/%d %s %s (best reward so far %.4f)", self.done, self.planned, trial.trial_id, outcome,
                 self.best)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        reward = (trial.last_result or {}).get("reward")
        if reward is not None:
            self.best = max(self.best, float(reward))
        feasible = "feasible" if (trial.last_result or {}).get("feasible") else "infeasible"
        self._line(trial, f"reward {reward:.4f}, {feasible}" if reward is not None else "no result")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._line(trial, "FAILED (scored as infeasible)")

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        error = trial.get_error()  # Tune hands recover callbacks no exception; it keeps it in the trial's error file
        reason = last_error_line(error) if error else "no reason given"
        log.info("trial %s failed (%s); running it again (retry %d of %d)", trial.trial_id, reason,
                 trial.num_failures, trial.max_failures)


class _OutputGuard(Callback):
    """Ends the search as soon as its output dir cannot be written (a full disk, read-only, permissions).

    Tune takes a trial that could not save its checkpoint for a failed trial and would fail every
    later one the same way. So after each trial the guard writes and removes a probe file; if that
    fails, its OSError ends the run. Everything written so far stays whole, and
    ``hgen-ray search --resume`` continues once there is room, as after a killed driver.
    """

    PROBE_BYTES = 1 << 20  # a write of a real size: a full disk may still take a few bytes

    def __init__(self, out: Path) -> None:
        self.out = out

    def _probe(self) -> None:
        probe = self.out / ".write-probe"
        try:
            with open(probe, "wb") as handle:
                handle.write(bytes(self.PROBE_BYTES))
                handle.flush()
                os.fsync(handle.fileno())  # tmpfs and some network filesystems report ENOSPC only here
        finally:
            probe.unlink(missing_ok=True)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._probe()

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._probe()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._probe()


class _TrialsTable(Callback):
    """Rewrites trials.csv, atomically, each time a trial finishes.

    A search that dies (a full disk, a killed driver) then still leaves a whole, readable table of
    every trial it finished. The final report writes the same table once more, from Tune's results.
    """

    def __init__(self, out: Path, failed_reward: float) -> None:
        self.out = out
        self.failed_reward = failed_reward

    def _write(self, trials: list, trial: Any, failed: bool) -> None:
        done = {t.trial_id: t.status == Trial.ERROR for t in trials if t.status in (Trial.TERMINATED, Trial.ERROR)}
        done[trial.trial_id] = failed  # Tune calls back before it sets the trial's final status
        results = [tune.Result(metrics={**(t.last_result or {}), "config": t.config},
                               checkpoint=None if done[t.trial_id] else t.checkpoint,
                               error=(t.get_error() or TuneError("failed")) if done[t.trial_id] else None,
                               path=t.path)
                   for t in trials if t.trial_id in done]
        write_csv_atomic(self.out / "trials.csv", trial_rows(results, self.failed_reward))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._write(trials, trial, failed=False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._write(trials, trial, failed=True)


def _keep_unrecorded_trials(out: Path, recorded: set[str]) -> None:
    """Move aside the rows of finished trials that Tune's state missed, before the resume rewrites trials.csv.

    A trial that finished just before the disk filled is in trials.csv (see _TrialsTable) but can be
    missing from Tune's state, whose save needed the disk; the resume then runs a new trial in its
    place. Its row is the only record of its results in ``out``, so it is kept in UNRECORDED_TRIALS_FILE.
    """
    table = out / "trials.csv"
    if not table.is_file():
        return
    with open(table, newline="", encoding="utf-8") as handle:
        unrecorded = [row for row in csv.DictReader(handle) if row["trial_id"] not in recorded]
    if not unrecorded:
        return
    kept = out / UNRECORDED_TRIALS_FILE
    if kept.is_file():  # an earlier resume kept some already
        with open(kept, newline="", encoding="utf-8") as handle:
            earlier = list(csv.DictReader(handle))
        kept_ids = {row["trial_id"] for row in earlier}
        unrecorded = earlier + [row for row in unrecorded if row["trial_id"] not in kept_ids]
    write_csv_atomic(kept, unrecorded)
    log.warning("%d finished trial(s) are missing from Tune's saved state (it could not be written); their rows are "
                "kept in %s and new trials take their place", len(unrecorded), kept)


def prepare_output_dir(out: Path, resume: bool) -> Path:
    """Check the output dir before anything is written.

    Raises:
        ConfigError: Unwritable, or (without resume) it already holds a search, or (with resume) it holds none.
    """
    out = out.resolve()
    if resume:
        if not (out / SEARCH_CONFIG_FILE).is_file() or not (out / TUNE_DIR).is_dir():
            raise ConfigError(f"--resume {out}: no search to resume there (no {SEARCH_CONFIG_FILE} and {TUNE_DIR}/)")
        if not (out / SEARCH_FORMAT_FILE).is_file():
            raise ConfigError(f"--resume {out}: this search was made before hgen-ray scored on validation and "
                              "reported on test; its trials cannot be mixed with new ones: start a new search")
        _keep_unrecorded_trials(out, recorded_trial_ids(out / TUNE_DIR))
        return out
    if (out / SEARCH_CONFIG_FILE).exists():
        raise ConfigError(f"--out {out}: already holds a search; use --resume {out} or choose another --out")
    return create_output_dir(out)


def create_output_dir(out: Path) -> Path:
    """Create ``out`` (and its parents), or say in one line why it cannot be written.

    Raises:
        ConfigError: It cannot be created or written.
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"--out {out}: cannot create it ({error.strerror})") from None
    if not os.access(out, os.W_OK):
        raise ConfigError(f"--out {out}: not writable")
    return out


def _absolute_paths(config: ExperimentConfig) -> ExperimentConfig:
    """Trials run in their own directories (and on other nodes): make paths absolute."""
    data = dataclasses.replace(config.data, root=str(resolve_data_root(config.data.root).resolve()))
    return dataclasses.replace(config, data=data, cache_dir=str(Path(config.cache_dir).resolve()))


def _smallest_candidate(layers: dict[str, str]) -> Candidate:
    return Candidate(layers={n: LayerChoice("l1" if k == "conv" else "svd", MAX_COMPRESSION_RATIO)
                             for n, k in layers.items()})


def _check_budget_is_possible(config: ExperimentConfig, base: nn.Module, data: Splits | DetectionData) -> None:
    """Refuse a storage limit below the smallest model the space can produce."""
    limit = config.constraints.storage_mb_max
    if limit == float("inf"):
        return
    no_finetune = dataclasses.replace(config.finetune, epochs=0)
    smallest = storage_mb(compress_for(config, base, _smallest_candidate(compressible_layers(config)), data,
                                       no_finetune))
    if limit < smallest:
        raise ConfigError(f"constraints.storage_mb_max: {limit} MB is below the smallest model this search space "
                          f"can produce ({smallest:.4f} MB); allowed: at least {smallest:.4f}")


def search_space(config: ExperimentConfig, base: nn.Module, data: Splits | DetectionData) -> SearchSpace:
    """The space every strategy searches, with the same storage projection and labour cap for all.

    ``compression_only`` is the same space with the human step always off.
    """
    human = config.search.algorithm != "compression_only"
    sample = input_sample(config)
    reference = {"storage_mb": storage_mb(base), "energy_mj": estimate_energy_mj(base, sample)}
    specs = describe_layers(base, compressible_layers(config), sample)
    return SearchSpace(specs, labour_within_pool(config), reference, human_enabled=human,
                       pool_size=config.human_pool.size, max_tau=_max_tau(config),
                       labor=_labor_estimate(config, base, data) if human else None)


def labour_within_pool(config: ExperimentConfig) -> Constraints:
    """The constraints with L_c lowered to what the pool can do (rho < 1) when that is less."""
    pool = config.human_pool
    capacity = capacity_s_per_1k(pool.size, pool.arrival_rate_per_s)
    return dataclasses.replace(config.constraints,
                               labor_s_per_1k_max=min(config.constraints.labor_s_per_1k_max, capacity))


def _labor_estimate(config: ExperimentConfig, base: nn.Module, data: Splits | DetectionData) -> LaborEstimate | None:
    """The base gate's labour curve, for the labour cap (always finite: the pool's capacity); None for the detectors."""
    deferral = estimated_deferral(config, base, data)
    answer_s = mean_answer_s(config.data.severity, config.human_pool.clean_majority_of_3_accuracy)
    return LaborEstimate(TAU_GRID, deferral, answer_s) if deferral is not None else None


def _max_tau(config: ExperimentConfig) -> float:
    """H-YOLO's band is ``[tau, tau_high]`` with the config candidate's ``tau_high``: tau may not pass it."""
    return config.candidate.human.tau_high if config.model.name == "h_yolo" else 1.0


def _searcher(config: ExperimentConfig, base: nn.Module, data: Splits | DetectionData) -> Any:
    space = search_space(config, base, data)
    algorithm = config.search.algorithm
    if algorithm == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        # Single-objective TPE on the same reward hgen maximises, over the same actions.
        tpe = OptunaSearch(space=action_space(space), metric="reward", mode="max", seed=config.seed)
        return ProjectedSearcher(tpe, space)
    if algorithm == "random":
        return RandomSearcher(space, config.seed)
    return HGenSearcher(space, config.reward, config.search, config.seed)


def _trainable(context: TrialContext) -> Any:
    resources = {"cpu": context.experiment.search.cpus_per_trial, "gpu": context.experiment.search.gpus_per_trial}
    return tune.with_resources(tune.with_parameters(run_trial, context=context), resources)


def _prepare(config: ExperimentConfig) -> tuple[ExperimentConfig, Splits | DetectionData, nn.Module]:
    config = _absolute_paths(config)
    data, base = load_data_and_base(config)  # the base is trained once here, so trials only load it
    return config, data, base


def _check_reachable(address: str) -> None:
    """Fail in seconds, not minutes, when a cluster address does not answer."""
    if address in ("auto", "local"):
        return
    host_port = address.split("://", 1)[-1].rstrip("/")
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address {address}: expected host:port (or ray://host:port, http://host:port)")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as error:
        raise ConfigError(f"--address {address}: no Ray cluster answers there ({error.strerror or error})") from None


def _init_ray(address: str | None) -> None:
    if ray.is_initialized():
        return
    target = address or os.environ.get("RAY_ADDRESS")
    if target:
        _check_reachable(target)
    # "local": a fresh node by default, never a stray `ray start` cluster found on this machine.
    ray.init(address=target or "local", logging_level=logging.WARNING, log_to_driver=False)


def _check_cluster_fits(config: ExperimentConfig) -> None:
    """Refuse trials no node can hold: they would wait forever."""
    nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    most_cpus = max((n.get("CPU", 0.0) for n in nodes), default=0.0)
    most_gpus = max((n.get("GPU", 0.0) for n in nodes), default=0.0)
    wanted = config.search
    if wanted.gpus_per_trial > 0 and most_gpus == 0:
        raise ConfigError(f"search.gpus_per_trial: {wanted.gpus_per_trial} asked for, but no node of this Ray "
                          "cluster has a GPU; allowed here: 0")
    if wanted.gpus_per_trial > most_gpus:
        raise ConfigError(f"search.gpus_per_trial: {wanted.gpus_per_trial} exceeds the most GPUs on one node "
                          f"({most_gpus:g}); allowed: up to {most_gpus:g}")
    if wanted.cpus_per_trial > most_cpus:
        raise ConfigError(f"search.cpus_per_trial: {wanted.cpus_per_trial:g} exceeds the most CPUs on one node "
                          f"({most_cpus:g}); allowed: up to {most_cpus:g}")


def _leave_job_working_dir(out: Path) -> None:
    """Under `ray job submit`, work from the output dir instead of the job's working_dir.

    Ray re-extracts a job's working_dir (deleting the old copy) once the driver
    connects, which leaves the driver in a deleted cwd; Tune then fails resolving
    paths at the end of ``fit()`` (ray-project/ray#52343). Every path is absolute
    by now, and imports come from the absolute PYTHONPATH entry, so moving is safe.
    """
    try:
        inside_job_dir = RAY_JOB_WORKING_DIRS in os.getcwd()
    except FileNotFoundError:  # already deleted under us
        inside_job_dir = True
    if inside_job_dir:
        os.chdir(out)


def run_search(config: ExperimentConfig | None, out: Path, *, resume: bool = False,
               address: str | None = None) -> SearchRun:
    """Run (or resume) a search into ``out`` and return Tune's results.

    Args:
        config: The experiment; ``None`` with ``resume`` reads ``out/search.yaml``.
        out: The output directory.
        resume: Continue the search in ``out``.
        address: A Ray cluster address; default ``RAY_ADDRESS`` or a local node.

    Raises:
        ConfigError: Bad output dir, impossible budget, or nothing to resume.
    """
    out = prepare_output_dir(out, resume)
    if resume:
        config = build_dataclass(ExperimentConfig, read_yaml_mapping(out / SEARCH_CONFIG_FILE))
    assert config is not None
    started = time.perf_counter()
    config = _absolute_paths(config)  # while the cwd still exists (see _leave_job_working_dir)
    _init_ray(address)
    _leave_job_working_dir(out)
    _check_cluster_fits(config)
    config, data, base = _prepare(config)
    if not resume:
        _check_budget_is_possible(config, base, data)
        write_text_atomic(out / SEARCH_CONFIG_FILE, yaml.safe_dump(as_dict(config), sort_keys=False))
        write_text_atomic(out / SEARCH_FORMAT_FILE, json.dumps(SEARCH_FORMAT) + "\n")
    pool = HumanPool(config.human_pool, config.seed)
    try:
        trainable = _trainable(TrialContext(experiment=config, data=data, pool=pool))
        if resume:
            log.info("resuming the search in %s", out / TUNE_DIR)
            tuner = tune.Tuner.restore(str(out / TUNE_DIR), trainable=trainable, resume_unfinished=True,
                                       resume_errored=False, restart_errored=False)
        else:
            tuner = _new_tuner(config, base, data, trainable, out, _Progress(config.search.trials))
        try:
            results = tuner.fit()
        except Exception as error:
            cause = unwritable_cause(error)  # Tune wraps what stopped it; a full disk should read as one
            if cause is None:
                raise
            raise cause from None
        # The search is over: only now are the test images read, for what it chose and the references.
        rows = with_test_columns(config, trial_rows(results, failed_reward(config.reward)), pool)
        references = (evaluate_references(config, data, pool, ("validation", "test")) if config.search.references
                      else {})
    finally:
        pool.shutdown()
    return SearchRun(out=out, results=results, rows=rows, references=references,
                     elapsed_s=time.perf_counter() - started)


def _new_tuner(config: ExperimentConfig, base: nn.Module, data: Splits | DetectionData, trainable: Any, out: Path,
               progress: _Progress) -> Any:
    tune_config = tune.TuneConfig(
        search_alg=_searcher(config, base, data),
        num_samples=config.search.trials,
        max_concurrent_trials=config.search.max_concurrent_trials,
        reuse_actors=config.search.reuse_actors,  # a fresh trial process re-imports torch, NNI, Tune
        metric="reward",
        mode="max",
    )
    run_config = tune.RunConfig(
        name=TUNE_DIR,
        storage_path=str(out),
        # Tune cannot tell a trial whose node died from one whose candidate crashed, so every
        # failed trial is rerun trial_retries times; a crash that repeats then scores infeasible.
        failure_config=tune.FailureConfig(max_failures=config.search.trial_retries, fail_fast=False),
        callbacks=[progress, _TrialsTable(out, failed_reward(config.reward)), _OutputGuard(out),
                   KeepWholeState(out / TUNE_DIR)],
        verbose=0,
    )
    return tune.Tuner(trainable, tune_config=tune_config, run_config=run_config)
