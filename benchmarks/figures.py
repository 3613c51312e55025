"""What every benchmark script prints alongside its numbers: memory and target verdicts."""

from __future__ import annotations

import resource

__all__ = ["peak_rss_gb", "verdict"]


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far, in GB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux reports KiB


def verdict(ok: bool) -> str:
    return "meets target" if ok else "MISSES target"
