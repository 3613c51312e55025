"""Pictures of the challenge categories.

For H-CNN: rows are categories, columns severities. For the detectors: rows
are categories at the configured severity, with the true boxes drawn on a few
test canvases.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hgen_ray.data.challenges import SEVERITY_LEVELS, apply_challenge
from hgen_ray.data.detection_splits import DetectionSet
from hgen_ray.data.splits import EVALUATED_CATEGORIES

__all__ = ["draw_canvas_grid", "draw_challenge_grid"]

CANVASES_SHOWN = 4


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt

    return plt


def _save(figure, out: Path) -> Path:  # type: ignore[no-untyped-def]
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    figure.clf()
    return out


def draw_canvas_grid(sets: dict[str, DetectionSet], out: Path, shown: int = CANVASES_SHOWN) -> Path:
    """Save a categories x canvases grid, with every true box outlined, to ``out``."""
    plt = _pyplot()
    figure, axes = plt.subplots(len(sets), shown, figsize=(1.6 * shown, 1.6 * len(sets)))
    for row, (category, data) in enumerate(sets.items()):
        for column in range(shown):
            axis = axes[row, column]
            axis.imshow(data.images[column, 0].numpy(), cmap="gray", vmin=0, vmax=1)
            for x1, y1, x2, y2 in data.boxes[column].tolist():
                axis.add_patch(plt.Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, color="lime", lw=0.8))
            axis.set_xticks([])
            axis.set_yticks([])
            if column == 0:
                axis.set_ylabel(category, rotation=0, ha="right", va="center", fontsize=8)
    path = _save(figure, out)
    plt.close(figure)
    return path


def _side_by_side(images: torch.Tensor) -> np.ndarray:
    """A batch ``[N, C, H, W]`` as one picture imshow takes: ``[H, N*W]`` grey or ``[H, N*W, 3]`` RGB."""
    strip = torch.cat(list(images), dim=2)
    return strip[0].numpy() if strip.shape[0] == 1 else strip.permute(1, 2, 0).numpy()


def draw_challenge_grid(images: torch.Tensor, out: Path, seed: int, examples: int = 2) -> Path:
    """Save a categories x severities grid of ``examples`` images per cell to ``out``.

    Args:
        images: Float ``[N, C, H, W]`` clean images in ``[0, 1]``, grey or RGB; the first ``examples`` are shown.
        out: PNG path to write.
        seed: Seed of the corruptions, as in evaluation.
        examples: Images side by side in each cell.
    """
    plt = _pyplot()
    shown = images[:examples]
    figure, axes = plt.subplots(len(EVALUATED_CATEGORIES), SEVERITY_LEVELS,
                                figsize=(1.1 * examples * SEVERITY_LEVELS, 1.1 * len(EVALUATED_CATEGORIES)))
    for row, category in enumerate(EVALUATED_CATEGORIES):
        for column in range(SEVERITY_LEVELS):
            corrupted = apply_challenge(shown, category, column + 1, seed)
            axis = axes[row, column]
            axis.imshow(_side_by_side(corrupted), cmap="gray", vmin=0, vmax=1)  # RGB ignores the grey map
            axis.set_xticks([])
            axis.set_yticks([])
            if column == 0:
                axis.set_ylabel(category, rotation=0, ha="right", va="center", fontsize=8)
            if row == 0:
                axis.set_title(f"severity {column + 1}", fontsize=8)
    path = _save(figure, out)
    plt.close(figure)
    return path
