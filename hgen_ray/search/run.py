"""Build and run the search: a Ray Tune Tuner whose searcher is the H-Gen controller.

    hgen-ray search --config configs/quickstart.yaml --out runs/q1
    hgen-ray search --resume runs/q1

Trials are scored on validation challenge images only; once the search is over,
the H-DNNs it chose and the references are measured on the test split
(:mod:`hgen_ray.search.final_evaluation`). Runs on the local node by default, or attaches
to a cluster given ``RAY_ADDRESS`` or ``--address``. Tune's experiment directory is ``DIR/tune``, so Tune's own tools
(``ExperimentAnalysis``, ``Tuner.restore``, TensorBoard) read it; the searcher's
state is saved there by Tune, which is what ``--resume`` restores.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from ray import tune

from hgen_ray.atomic_write import unwritable_cause, write_text_atomic
from hgen_ray.config import ExperimentConfig, as_dict, build_dataclass, read_yaml_mapping
from hgen_ray.human import HumanPool
from hgen_ray.metric import failed_reward
from hgen_ray.report import trial_rows, write_csv_atomic
from hgen_ray.search.callbacks import OutputGuard, Progress, TrialsTable
from hgen_ray.search.cluster import check_cluster_fits, init_ray, leave_job_working_dir
from hgen_ray.search.final_evaluation import evaluate_references, risk_coverage_curves, with_test_columns
from hgen_ray.output_lock import holding
from hgen_ray.search.output_dir import (
    SEARCH_CONFIG_FILE,
    SEARCH_FORMAT,
    SEARCH_FORMAT_FILE,
    create_output_dir,
    prepare_output_dir,
    saved_tune_location,
)
from hgen_ray.search.setup import Prepared, absolute_paths, check_budget_is_possible, prepare, searcher
from hgen_ray.trial import ContextHandle, TrialContext, run_trial
from hgen_ray.search.tune_location import check_shared_storage, check_storage_path, local_tune_dir, tune_location, \
    tune_run_place
from hgen_ray.search.tune_state import KeepWholeState

__all__ = ["SearchRun", "run_search"]

log = logging.getLogger(__name__)


class SearchInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) stopped the search: what finished is in trials.csv, and ``--resume`` finishes the plan.

    A ``KeyboardInterrupt``, so that nothing that goes on after a failed strategy (the bench) goes on after it.
    """

    def __init__(self, out: Path, finished: int, planned: int) -> None:
        super().__init__(f"interrupted after {finished} of {planned} trials; resume with: hgen-ray search --resume "
                         f"{out}")
        self.out, self.finished, self.planned = out, finished, planned


@dataclass
class SearchRun:
    out: Path
    results: tune.ResultGrid
    rows: list[dict[str, Any]]  # trials.csv: validation measures, plus test/ columns on the chosen rows
    references: dict[str, dict[str, dict[str, Any]]]  # split -> reference name -> measures
    elapsed_s: float
    gate_curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # best network, test


def trainable(context: TrialContext) -> Any:
    resources = {"cpu": context.experiment.search.cpus_per_trial, "gpu": context.experiment.search.gpus_per_trial}
    return tune.with_resources(tune.with_parameters(run_trial, handle=ContextHandle(context)), resources)


def run_search(config: ExperimentConfig | None, out: Path, *, resume: bool = False,
               address: str | None = None, trust: bool = False) -> SearchRun:
    """Run (or resume) a search into ``out`` and return Tune's results.

    Args:
        config: The experiment; ``None`` with ``resume`` reads ``out/search.yaml``.
        out: The output directory.
        resume: Continue the search in ``out``.
        address: A Ray cluster address; default ``RAY_ADDRESS`` or a local node.
        trust: Resume even from state another user could have written (it is unpickled).

    Raises:
        ConfigError: Bad output dir, impossible budget, nothing to resume, or another run holds ``out``.
    """
    out = out.resolve()
    if resume and not out.is_dir():
        prepare_output_dir(out, resume, trust)  # says there is no search to resume there
    if not resume:
        create_output_dir(out)
    with holding(out, "search --resume" if resume else "search"):  # checked and written under the lock
        return _run_search(config, prepare_output_dir(out, resume, trust), resume, address)


def _run_search(config: ExperimentConfig | None, out: Path, resume: bool, address: str | None) -> SearchRun:
    if resume:
        config = build_dataclass(ExperimentConfig, read_yaml_mapping(out / SEARCH_CONFIG_FILE))
    assert config is not None
    started = time.perf_counter()
    config = absolute_paths(config)  # while the cwd still exists (see leave_job_working_dir)
    check_storage_path(config.search.storage_path)
    init_ray(address)
    leave_job_working_dir(out)
    check_cluster_fits(config)
    check_shared_storage(config.search.storage_path)
    prepared = prepare(config)
    config, data = prepared.config, prepared.data
    if not resume:
        check_budget_is_possible(prepared)
        write_text_atomic(out / SEARCH_CONFIG_FILE, yaml.safe_dump(as_dict(config), sort_keys=False))
        # With shared storage, where Tune's state went is recorded, so that a moved or remounted --out finds it.
        location = {"tune_location": tune_location(out, config.search.storage_path)} if config.search.storage_path else {}
        write_text_atomic(out / SEARCH_FORMAT_FILE, json.dumps({**SEARCH_FORMAT, **location}) + "\n")
    pool = HumanPool(config.human_pool, config.seed, prepared.architecture.people_calibration(config, data))
    try:
        trial = trainable(TrialContext(experiment=config, data=data, pool=pool,
                                       input_shape=tuple(prepared.sample.shape[1:])))
        if resume:
            location = saved_tune_location(out)
            log.info("resuming the search in %s (Tune's state: %s)", out, location)
            tuner = tune.Tuner.restore(location, trainable=trial, resume_unfinished=True,
                                       resume_errored=False, restart_errored=False)
        else:
            tuner = new_tuner(prepared, trial, out, Progress(config.search.trials))
        try:
            with sigterm_as_sigint():
                results = tuner.fit()
        except Exception as error:
            cause = unwritable_cause(error)  # Tune wraps what stopped it; a full disk should read as one
            if cause is None:
                raise
            raise cause from None
        stop_if_interrupted(results, config, out)
        # The search is over: only now are the test images read, for what it chose and the references.
        rows = with_test_columns(config, trial_rows(results, failed_reward(config.reward)), pool)
        references = (evaluate_references(config, data, pool, ("validation", "test")) if config.search.references
                      else {})
        curves = risk_coverage_curves(config, rows)
    finally:
        pool.shutdown()
    return SearchRun(out=out, results=results, rows=rows, references=references,
                     elapsed_s=time.perf_counter() - started, gate_curves=curves)


@contextmanager
def sigterm_as_sigint() -> Iterator[None]:
    """SIGTERM stops the search as Ctrl-C does: Tune handles SIGINT by stopping its trials and saving its state."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread (a Ray job's entrypoint has it)
        return
    previous = signal.signal(signal.SIGTERM, lambda _signal, _frame: signal.raise_signal(signal.SIGINT))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def stop_if_interrupted(results: tune.ResultGrid, config: ExperimentConfig, out: Path) -> None:
    """After Tune returns: if it was stopped before every planned trial finished, rewrite trials.csv with the
    finished trials only (a trial Tune stopped has no measures and is not finished) and raise.

    Raises:
        SearchInterrupted: Fewer trials finished (measured, or failed) than planned.
    """
    finished = [result for result in results if result.error or "reward" in (result.metrics or {})]
    if len(finished) >= config.search.trials:
        return
    write_csv_atomic(out / "trials.csv", trial_rows(finished, failed_reward(config.reward)))
    raise SearchInterrupted(out, len(finished), config.search.trials)


def new_tuner(prepared: Prepared, trial: Any, out: Path, progress: Progress) -> Any:
    config = prepared.config
    tune_config = tune.TuneConfig(
        search_alg=searcher(prepared),
        num_samples=config.search.trials,
        max_concurrent_trials=config.search.max_concurrent_trials,
        reuse_actors=config.search.reuse_actors,  # a fresh trial process re-imports torch, NNI, Tune
        metric="reward",
        mode="max",
    )
    location = tune_location(out, config.search.storage_path)
    storage_path, name = tune_run_place(location)
    tune_dir = local_tune_dir(location)
    run_config = tune.RunConfig(
        name=name,
        storage_path=storage_path,  # a folder every node mounts, or object storage, on a multi-node cluster
        # Tune cannot tell a trial whose node died from one whose candidate crashed, so every
        # failed trial is rerun trial_retries times; a crash that repeats then scores infeasible.
        failure_config=tune.FailureConfig(max_failures=config.search.trial_retries, fail_fast=False),
        callbacks=[progress, TrialsTable(out, failed_reward(config.reward)), OutputGuard(out),
                   *([KeepWholeState(tune_dir)] if tune_dir is not None else [])],  # a copy needs a local folder
        verbose=0,
    )
    return tune.Tuner(trial, tune_config=tune_config, run_config=run_config)
