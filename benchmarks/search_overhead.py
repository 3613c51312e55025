"""Framework overhead of a search: Tune + the RLlib controller against a plain loop.

    .venv/bin/python benchmarks/search_overhead.py [--config configs/quickstart.yaml] [--trials 8]

Runs N trials through ``run_search`` (Tune trials, the H-Gen searcher, its
learning, checkpoints, result files), then evaluates the very same N candidates
in a plain Python loop in this process. Both clocks include loading the data and
the cached base model and starting the human pool; both run one candidate at a
time with the same torch thread count, so the ratio is the cost of the framework.
Target: <= 1.10. The base model is trained before either clock starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

import ray
import torch

from hgen_ray.config import load_config
from hgen_ray.controller.space import config_to_candidate
from hgen_ray.evaluate import evaluate_candidate
from hgen_ray.human import HumanPool
from hgen_ray.search import _prepare, run_search

TARGET_RATIO = 1.10


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/quickstart.yaml")
    parser.add_argument("--trials", type=int, default=8)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING)
    threads = 2
    config = load_config(args.config)
    search = dataclasses.replace(config.search, trials=args.trials, max_concurrent_trials=1,
                                 cpus_per_trial=threads, references=False)
    config = dataclasses.replace(config, search=search)
    ray.init(address="local", logging_level="WARNING", log_to_driver=False)
    _prepare(config)  # trains the base model, if it is not cached yet, outside both clocks

    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        run = run_search(config, Path(folder) / "out")
        tune_s = time.perf_counter() - started
        candidates = [config_to_candidate(result.config) for result in run.results]

    torch.set_num_threads(threads)
    started = time.perf_counter()
    prepared, splits, _ = _prepare(config)
    with HumanPool(prepared.human_pool, prepared.seed) as pool:
        for candidate in candidates:
            evaluate_candidate(prepared, candidate, data=splits, pool=pool)
        loop_s = time.perf_counter() - started
    ray.shutdown()
    ratio = tune_s / loop_s
    verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
    print(f"{args.trials} trials, one at a time, {threads} torch threads")
    print(f"  Tune + H-Gen controller: {tune_s:.1f} s ({tune_s / args.trials:.2f} s per trial)")
    print(f"  plain loop:              {loop_s:.1f} s ({loop_s / args.trials:.2f} s per trial)")
    print(f"  overhead ratio: {ratio:.3f} ({verdict} target <= {TARGET_RATIO:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
