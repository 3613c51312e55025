"""A picture of the challenge categories: rows are categories, columns severities."""

from __future__ import annotations

from pathlib import Path

import torch

from hgen_ray.data.challenges import SEVERITY_LEVELS, apply_challenge
from hgen_ray.data.splits import EVALUATED_CATEGORIES

__all__ = ["draw_challenge_grid"]


def draw_challenge_grid(images: torch.Tensor, out: Path, seed: int, examples: int = 2) -> Path:
    """Save a categories x severities grid of ``examples`` images per cell to ``out``.

    Args:
        images: Float ``[N, 1, H, W]`` clean test images in ``[0, 1]``; the first ``examples`` are shown.
        out: PNG path to write.
        seed: Seed of the corruptions, as in evaluation.
        examples: Images side by side in each cell.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt

    shown = images[:examples]
    figure, axes = plt.subplots(len(EVALUATED_CATEGORIES), SEVERITY_LEVELS,
                                figsize=(1.1 * examples * SEVERITY_LEVELS, 1.1 * len(EVALUATED_CATEGORIES)))
    for row, category in enumerate(EVALUATED_CATEGORIES):
        for column in range(SEVERITY_LEVELS):
            corrupted = apply_challenge(shown, category, column + 1, seed)
            strip = torch.cat(list(corrupted[:, 0]), dim=1)
            axis = axes[row, column]
            axis.imshow(strip.numpy(), cmap="gray", vmin=0, vmax=1)
            axis.set_xticks([])
            axis.set_yticks([])
            if column == 0:
                axis.set_ylabel(category, rotation=0, ha="right", va="center", fontsize=8)
            if row == 0:
                axis.set_title(f"severity {column + 1}", fontsize=8)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return out
