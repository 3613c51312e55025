"""Write a finished bench's report again with today's report code, from its results.json (nothing is rerun).

    .venv/bin/python benchmarks/rerender_bench.py OUT [--to docs/results/bench-small]

A bench takes an hour or more; when the report gains a table or a goal, this
judges the very same trials again. The provenance lines (command, commit that
ran, machine, wall time) and the system figures are kept from OUT/bench.md, and
one line names the commit that re-rendered it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from hgen_ray.bench.report import ArchitectureResult, write_bench_report
from hgen_ray.bench.system import git_commit


def _header(report: str) -> dict[str, object]:
    def field(pattern: str) -> str:
        found = re.search(pattern, report, re.MULTILINE)
        if found is None:
            raise SystemExit(f"rerender_bench: no {pattern!r} in the old bench.md")
        return found.group(1)
    return {"command": field(r"^- command: `(.*)`$"),
            "commit": f"{field(r'^- git commit: `(.*)`$')}` (report re-rendered at `{git_commit()}",
            "machine": field(r"^- machine: (.*)$"), "elapsed_s": float(field(r"^- wall time: (\d+) s$"))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the bench's output folder (results.json and bench.md)")
    parser.add_argument("--to", type=Path, help="write bench.md and the plots there instead of OUT")
    args = parser.parse_args()
    old = (args.out / "bench.md").read_text()
    results = [ArchitectureResult(**entry) for entry in json.loads((args.out / "results.json").read_text())]
    system = old.split("## System", 1)[1].strip().splitlines() if "## System" in old else []
    target = args.to or args.out
    target.mkdir(parents=True, exist_ok=True)
    print(write_bench_report(target, results, _header(old), system))
    return 0


if __name__ == "__main__":
    sys.exit(main())
