"""How long a pool of simulated people takes to come up: every search, bench and serve starts one.

    .venv/bin/python benchmarks/pool_start.py [--people 8] [--repeats 3]

Starts a fresh :class:`~hgen_ray.human.HumanPool` of N people (real Ray actors,
each its own process) and times it until every person has answered once, R times
in one Ray session; prints each time and the median. Ray is up before the clock
starts. Each person's process imports :mod:`hgen_ray.human`; keeping torch out of
that import is what this measures (each import of torch cost ~1.2 s of CPU).
Ray hands actors the idle worker processes it keeps started, so a later repeat
may find some already up: compare medians of the same repeat count.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import ray

from hgen_ray.config import HumanPoolConfig
from hgen_ray.human import HumanPool


def seconds_to_answer(people: int, seed: int) -> float:
    """Seconds from making a pool until each of its people has answered once."""
    started = time.perf_counter()
    with HumanPool(HumanPoolConfig(size=people), seed) as pool:
        ray.get([person.pid.remote() for person in pool.people])
        return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.people < 1 or args.repeats < 1:
        print(f"pool_start: --people {args.people}, --repeats {args.repeats}: allowed: each at least 1",
              file=sys.stderr)
        return 2
    ray.init(address="local", logging_level="WARNING", log_to_driver=False)
    times = [seconds_to_answer(args.people, seed) for seed in range(args.repeats)]
    ray.shutdown()
    print(f"a pool of {args.people} people answers {statistics.median(times):.2f} s after it is made "
          f"(median of {args.repeats}: {', '.join(f'{t:.2f}' for t in times)} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
