"""A simulated person's actor: what its process loads."""

from __future__ import annotations

import subprocess
import sys


def test_a_person_s_actor_module_loads_without_torch() -> None:
    """Ray imports simulated_human (and so hgen_ray.human) in every person's process. With torch there, a pool of
    8 answered 8.62 s after it was made instead of 2.87 s (benchmarks/pool_start.py, median of 3, before and at
    7c9618f)."""
    loaded = subprocess.run([sys.executable, "-c", "import sys, hgen_ray.human.simulated_human; "
                             "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch')[:3])"],
                            capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.strip() == "[]"
