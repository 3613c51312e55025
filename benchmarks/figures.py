"""What every benchmark script prints alongside its numbers: memory and target verdicts."""

from __future__ import annotations

import resource
import statistics
from collections.abc import Sequence

__all__ = ["peak_rss_gb", "timing_summary", "verdict"]


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far, in GB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux reports KiB


def verdict(ok: bool) -> str:
    return "meets target" if ok else "MISSES target"


def timing_summary(what: str, timings: Sequence[float], target_s: float) -> str:
    """``what: median M s of N [t1, t2, ...] (meets target <= T s)``."""
    median = statistics.median(timings)
    runs = ", ".join(f"{t:.1f}" for t in timings)
    judged = f"{verdict(median <= target_s)} <= {target_s:.0f} s"
    return f"{what}: median {median:.1f} s of {len(timings)} [{runs}] ({judged})"
