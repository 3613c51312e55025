"""How much of a layer a compression ratio keeps: the one arithmetic compression and the storage projection share.

Pruning a conv by ``ratio`` keeps ``out - int(ratio * out)`` output channels, NNI 3.0's
count (``tests/compress`` checks it against NNI on every ratio of the grid). SVD keeps
``ceil((1 - ratio) * full_rank)`` of an fc layer's rank, at least 1.
"""

from __future__ import annotations

import math

__all__ = ["kept_channels", "kept_rank"]


def kept_channels(out_channels: int, ratio: float) -> int:
    """Output channels a conv keeps when pruned by ``ratio`` (NNI's count)."""
    return out_channels - int(ratio * out_channels)


def kept_rank(full_rank: int, ratio: float) -> int:
    """Rank an SVD keeps when ``ratio`` of the full rank is removed (at least 1)."""
    return max(1, math.ceil((1.0 - ratio) * full_rank))
