"""Framework overhead of a search: Tune + the RLlib controller against a plain loop.

    .venv/bin/python benchmarks/search_overhead.py [--config configs/quickstart.yaml] [--trials 16]

Runs N trials through ``run_search`` (Tune trials, the H-Gen searcher, its
learning, checkpoints, result files), then evaluates the very same N candidates
in a plain Python loop in this process. Both clocks include loading the data and
the cached base model and starting the human pool; both run one candidate at a
time with the same torch thread count, so the ratio is the cost of the framework.
The search's clock stops at its last trial's report: after it, ``run_search``
measures the chosen H-DNN on the test split, which the loop does not do (until
commit 99be356 that measurement was counted, about 37 s at any trial count).
It is printed apart. Target: <= 1.10. The base model is trained before either clock starts.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings

import ray

from hgen_ray.bench.system import measure_overhead
from hgen_ray.config import load_config

TARGET_RATIO = 1.10
THREADS = 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/quickstart.yaml")
    parser.add_argument("--trials", type=int, default=16)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING)
    config = load_config(args.config)
    ray.init(address="local", logging_level="WARNING", log_to_driver=False)
    figures = measure_overhead(config, args.trials, THREADS)
    ray.shutdown()
    verdict = "meets" if figures.ratio <= TARGET_RATIO else "MISSES"
    print(f"{args.trials} trials, one at a time, {THREADS} torch threads")
    print(f"  Tune + H-Gen controller: {figures.tune_s:.1f} s ({figures.tune_s / args.trials:.2f} s per trial), "
          "to the last trial's report")
    print(f"  plain loop:              {figures.loop_s:.1f} s ({figures.loop_s / args.trials:.2f} s per trial)")
    print(f"  overhead ratio: {figures.ratio:.3f} ({verdict} target <= {TARGET_RATIO:.2f})")
    print(f"  of which the controller (suggest, imagine, updates): {figures.controller_s:.1f} s "
          f"({figures.controller_s / args.trials:.2f} s per trial)")
    print(f"  not in the ratio: {figures.after_trials_s:.1f} s after the last trial, measuring the chosen H-DNN "
          f"on test (ratio with it: {(figures.tune_s + figures.after_trials_s) / figures.loop_s:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
