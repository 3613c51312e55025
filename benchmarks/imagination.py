"""Does Dyna-style imagination help the controller? hgen with and without it on the synthetic cliff.

    .venv/bin/python benchmarks/imagination.py [--trials 30] [--seeds 10] [--imagined 0,16] \\
        [--out docs/results/imagination.md]

The objective is the learning-cliff test's synthetic H-CNN world
(tests/controller/test_learning_cliff.py): a feasibility cliff and a labour
trade-off shaped like the real one, scored by the real reward, no training. Each
setting of ``search.imagined_per_trial`` gets the same seeds and trial budget;
random search is the floor. It prints, and writes as markdown, each seed's best
reward and the paired difference against the first setting with its 95% interval.
(The controller's seconds are benchmarks/search_overhead.py's to measure.)
Nothing in the bench is tuned on these figures: this is where the default (0)
was chosen, on a synthetic objective, never on bench images.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "controller"))
import test_learning_cliff as world  # noqa: E402  (the synthetic world is defined once, in its test)

from hgen_ray.config import RewardConfig, SearchConfig  # noqa: E402
from hgen_ray.controller import HGenSearcher, RandomSearcher  # noqa: E402
from hgen_ray.report.seed_intervals import bootstrap_mean_interval  # noqa: E402


def _best_reward(args: tuple[int, int, int]) -> float:
    """hgen's best reward in one seed with ``imagined`` episodes per trial."""
    seed, imagined, trials = args
    torch.set_num_threads(1)
    world.BUDGET = trials
    space = world._space()
    settings = SearchConfig(trials=trials, warmup_trials=8, imagined_per_trial=imagined)
    return world._best(HGenSearcher(space, RewardConfig(), settings, seed), space)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--imagined", default="0,16", help="imagined_per_trial settings, comma-separated")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    settings = [int(value) for value in args.imagined.split(",")]
    seeds = range(args.seeds)
    world.BUDGET = args.trials
    space = world._space()
    random = [world._best(RandomSearcher(space, seed), space) for seed in seeds]
    best: dict[int, list[float]] = {}
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as workers:
        for imagined in settings:
            best[imagined] = list(workers.map(_best_reward, [(seed, imagined, args.trials) for seed in seeds]))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    lines = ["# Imagination on the synthetic cliff", "",
             f"- command: `.venv/bin/python benchmarks/imagination.py --trials {args.trials} --seeds {args.seeds} "
             f"--imagined {args.imagined}`", f"- commit: `{commit}`",
             f"- objective: tests/controller/test_learning_cliff.py's synthetic world, {args.trials} trials, "
             f"seeds 0-{args.seeds - 1}, best reward of each search (no split: nothing is measured on images)", "",
             f"| search | median best reward | paired difference against imagined {settings[0]} [95% interval] |",
             "|---|---|---|", f"| random | {statistics.median(random):.4f} | - |"]
    for imagined in settings:
        difference = bootstrap_mean_interval([a - b for a, b in zip(best[imagined], best[settings[0]])])
        lines.append(f"| hgen, imagined {imagined} | {statistics.median(best[imagined]):.4f} | "
                     f"{difference.text(1, 3) if imagined != settings[0] else '-'} |")
    lines += ["", "Each seed's best reward:", ""]
    lines += [f"- random: {', '.join(f'{r:.4f}' for r in random)}"]
    lines += [f"- hgen, imagined {i}: {', '.join(f'{r:.4f}' for r in best[i])}" for i in settings]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
