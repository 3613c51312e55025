"""``hgen-ray bench``: every strategy with the same trial budget, on each architecture.

    hgen-ray bench --config configs/bench-small.yaml --out runs/bench-small

For each experiment named in the bench file and each of ``seeds`` seeds (the
experiment's own seed and the next ones: each its own base model, splits,
corruptions and people), the search strategies (hgen, random,
compression_only, optuna) each run a full search with the bench's trial budget
into ``OUT/<label>/seed-<seed>/<strategy>/`` (Tune's dir and a ``trials.csv``),
and the references (``original``, ``human_only``) are evaluated once. Every
strategy fine-tunes on the same clean train split. After each strategy the rows so far are written to
``OUT/results.json`` (atomically), so a stopped bench loses at most the strategy
in progress. Then the system figures (overhead, throughput on 1 and 2 worker
nodes, peak memory per trial) and ``OUT/bench.md`` with its plots.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray

from hgen_ray.architectures import architecture_for
from hgen_ray.atomic_write import write_text_atomic
from hgen_ray.bench.report import ArchitectureResult, write_bench_report
from hgen_ray.bench.system import git_commit, machine_description, measure_overhead, measure_throughput
from hgen_ray.config import BenchConfig, ConfigError, ExperimentConfig, build_dataclass, load_config, read_yaml_mapping
from hgen_ray.human import HumanPool
from hgen_ray.output_lock import holding
from hgen_ray.report import write_csv_atomic
from hgen_ray.search import create_output_dir, prepare, run_search
from hgen_ray.search.cluster import init_ray
from hgen_ray.search.final_evaluation import REFERENCE_NAMES, evaluate_references

__all__ = ["load_bench", "run_bench", "seeds_of", "trial_budget"]

log = logging.getLogger(__name__)
RESULTS_FILE = "results.json"
MAX_TRIALS = 100000
SAFE_LABEL = re.compile(r"[A-Za-z0-9_.-]+")
SCALING_WORKERS = (1, 2)


def load_bench(path: str | Path) -> tuple[BenchConfig, dict[str, ExperimentConfig]]:
    """The bench file and each experiment it names (paths relative to the bench file).

    Raises:
        ConfigError: Naming the bench key or the experiment file at fault.
    """
    path = Path(path)
    bench = build_dataclass(BenchConfig, read_yaml_mapping(path), "bench")
    if not bench.experiments:
        raise ConfigError("bench.experiments: expected at least one label: experiment YAML")
    for label, trials in bench.trials_per_experiment.items():
        if label not in bench.experiments:
            raise ConfigError(f"bench.trials_per_experiment.{label}: no such experiment; allowed: "
                              f"{', '.join(bench.experiments)}")
        if not 1 <= trials <= MAX_TRIALS:
            raise ConfigError(f"bench.trials_per_experiment.{label}: {trials} is out of range [1, {MAX_TRIALS}]")
    for label in bench.experiments:
        if not SAFE_LABEL.fullmatch(label) or set(label) == {"."}:  # labels name folders under --out
            raise ConfigError(f"bench.experiments.{label}: a label names a folder under --out; allowed: letters, "
                              "digits, '_', '-', '.', and not only dots")
    experiments = {}
    for label, relative in bench.experiments.items():
        experiment_path = (path.parent / relative).resolve()
        if not experiment_path.is_file():
            raise ConfigError(f"bench.experiments.{label}: no experiment file at {experiment_path}")
        experiments[label] = load_config(experiment_path)
        architecture_for(experiments[label])  # its model settings, checked before any search starts
    return bench, experiments


def trial_budget(bench: BenchConfig, label: str) -> int:
    """The trials every search strategy gets on this experiment."""
    return bench.trials_per_experiment.get(label, bench.trials)


def _strategy_config(experiment: ExperimentConfig, bench: BenchConfig, strategy: str, trials: int) -> ExperimentConfig:
    search = dataclasses.replace(experiment.search, algorithm=strategy, trials=trials,
                                 max_concurrent_trials=bench.max_concurrent_trials,
                                 warmup_trials=bench.warmup_trials, references=False, test_evaluation="best")
    return dataclasses.replace(experiment, search=search)


def _reference_rows(experiment: ExperimentConfig, names: tuple[str, ...]) -> dict[str, list[dict[str, Any]]]:
    """The references asked for, on the test split, with one data load and one pool, as one-row tables."""
    prepared = prepare(experiment)
    config, data = prepared.config, prepared.data
    with HumanPool(config.human_pool, config.seed, prepared.architecture.people_calibration(config, data)) as pool:
        measured = evaluate_references(config, data, pool, ("test",), names)["test"]
    return {name: [{"trial": 1, "trial_id": name, "status": "TERMINATED", "error": "", **row}]
            for name, row in measured.items()}


def _search_rows(experiment: ExperimentConfig, bench: BenchConfig, strategy: str, trials: int,
                 out: Path) -> list[dict[str, Any]]:
    config = _strategy_config(experiment, bench, strategy, trials)
    run = run_search(config, out)
    write_csv_atomic(out / "trials.csv", run.rows)
    return run.rows


def _save_results(out: Path, results: list[ArchitectureResult]) -> None:
    payload = [dataclasses.asdict(r) for r in results]
    write_text_atomic(out / RESULTS_FILE, json.dumps(payload, indent=1, default=str) + "\n")


def _system_lines(bench: BenchConfig, experiments: dict[str, ExperimentConfig], out: Path,
                  results: list[ArchitectureResult]) -> list[str]:
    lines = []
    memory = [float(r["peak_rss_mb"]) for a in results for rows in a.rows.values() for r in rows if "peak_rss_mb" in r]
    if memory:
        lines.append(f"- peak memory per trial process: median {statistics.median(memory):.0f} MB, "
                     f"max {max(memory):.0f} MB, over {len(memory)} trials")
    classifier = next((e for e in experiments.values() if e.model.name == "h_cnn"), next(iter(experiments.values())))
    if bench.overhead_trials:
        log.info("measuring the framework overhead over %d trials", bench.overhead_trials)
        figures = measure_overhead(classifier, bench.overhead_trials)
        lines.append(f"- framework overhead ({figures.trials} trials one at a time): Tune + controller "
                     f"{figures.tune_s:.1f} s vs plain loop {figures.loop_s:.1f} s, ratio {figures.ratio:.3f} "
                     f"(target <= 1.10); {figures.before_first_trial_s:.1f} s before the first trial (the loop "
                     f"{figures.loop_setup_s:.1f} s), {figures.between_trials_s:.1f} s between trials; "
                     f"the controller alone {figures.controller_s / figures.trials:.2f} s per trial; "
                     f"after the last trial, {figures.after_trials_s:.1f} s measuring the chosen H-DNN on test "
                     "(not in the ratio: the loop does no test measurement)")
    if bench.scaling_trials:
        lines.append(_scaling_line(classifier, bench.scaling_trials, out))
    return lines or ["- no system figures were asked for (bench.scaling_trials and bench.overhead_trials are 0)"]


def _scaling_line(experiment: ExperimentConfig, trials: int, out: Path) -> str:
    ray.shutdown()  # each search below is its own process on its own local cluster
    rates = {}
    for workers in SCALING_WORKERS:
        log.info("measuring throughput on %d worker node(s)", workers)
        try:
            rates[workers] = measure_throughput(experiment, trials, workers, out / f"scaling-{workers}")
        except (subprocess.SubprocessError, RuntimeError) as error:  # the bench's other figures still stand
            return f"- throughput: the {workers}-worker-node run failed ({type(error).__name__}); see {out}/scaling-*"
    efficiency = rates[2] / (2 * rates[1])
    return (f"- throughput ({trials} H-CNN trials, 1-CPU worker nodes of clusters/local, head with no CPUs): "
            f"{rates[1]:.2f} trials/min on 1 worker node, {rates[2]:.2f} on 2; scaling efficiency {efficiency:.2f}")


def seeds_of(bench: BenchConfig, experiment: ExperimentConfig) -> range:
    """The experiment's own seed and the next ``bench.seeds - 1``: each its base model, splits and people."""
    return range(experiment.seed, experiment.seed + bench.seeds)


def _run_strategies(bench: BenchConfig, experiment: ExperimentConfig, result: ArchitectureResult, out: Path,
                    save: Callable[[], None]) -> None:
    """Every strategy of the bench on one seeded experiment, saving the results after each."""
    references = tuple(s for s in bench.strategies if s in REFERENCE_NAMES)
    for strategy in bench.strategies:
        if strategy in result.rows:
            continue  # a reference already measured with the others
        log.info("bench %s, seed %d: %s", result.label, result.seed, strategy)
        try:
            if strategy in REFERENCE_NAMES:
                result.rows.update(_reference_rows(experiment, references))
            else:
                result.rows[strategy] = _search_rows(experiment, bench, strategy, result.trials, out / strategy)
        except Exception as error:  # one broken strategy must not cost the rest of a long bench
            log.exception("bench %s, seed %d: %s failed", result.label, result.seed, strategy)
            result.rows[strategy] = []
            result.errors[strategy] = f"{type(error).__name__}: {error}".splitlines()[0][:300]
        save()


def run_bench(bench: BenchConfig, experiments: dict[str, ExperimentConfig], out: Path) -> Path:
    """Run every strategy on every experiment into ``out``; returns the path of bench.md.

    Raises:
        ConfigError: ``out`` already holds a bench, or cannot be written.
    """
    create_output_dir(out)
    with holding(out, "bench"):  # checked under the lock: two benches cannot both find it empty
        if (out / RESULTS_FILE).exists():
            raise ConfigError(f"--out {out}: already holds a bench; choose another --out")
        return _run_bench(bench, experiments, out)


def _run_bench(bench: BenchConfig, experiments: dict[str, ExperimentConfig], out: Path) -> Path:
    started = time.perf_counter()
    commit = git_commit()  # the code that runs, even if the checkout moves on during a long bench
    init_ray(None)
    results = []
    for label, experiment in experiments.items():
        for seed in seeds_of(bench, experiment):
            result = ArchitectureResult(label, experiment.model.name, experiment.constraints.labor_s_per_1k_max,
                                        trial_budget(bench, label), seed, experiment.finetune.distill,
                                        experiment.search.int8)
            results.append(result)
            _run_strategies(bench, dataclasses.replace(experiment, seed=seed), result, out / label / f"seed-{seed}",
                            lambda: _save_results(out, results))
    system = _system_lines(bench, experiments, out, results)
    header = {"command": " ".join(["hgen-ray", *sys.argv[1:]]), "commit": commit,
              "machine": machine_description(),
              "elapsed_s": time.perf_counter() - started}
    return write_bench_report(out, results, header, system)
