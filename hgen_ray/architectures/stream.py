"""The deployed app's one stream of queries, the same for every candidate and architecture."""

from __future__ import annotations

import numpy as np

from hgen_ray.config import ExperimentConfig
from hgen_ray.data.splits import SPLIT_NAMES
from hgen_ray.human import stream_arrivals

__all__ = ["query_stream"]


def query_stream(config: ExperimentConfig, split: str, counts: dict[str, int]) -> dict[str, np.ndarray]:
    """When the app sees each sample of one split's challenge sets: one mixed stream, fixed by the seed."""
    return stream_arrivals(counts, config.human_pool.arrival_rate_per_s, [config.seed, SPLIT_NAMES.index(split)])
