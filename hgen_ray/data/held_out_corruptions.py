"""Held-out corruption families: what a learned gate (rejector) trains on, never one of the 12 test categories.

ImageNet-C's four held-out families (Hendrycks & Dietterich, ICLR 2019: speckle noise, Gaussian blur, spatter,
saturate) plus elastic transform. Same contract as ``hgen_ray.data.challenges``: a float batch ``[N, C, H, W]``
in ``[0, 1]``, any side and channel count, severity 1 (mild) to 5 (harsh), every random draw from a seeded
``torch.Generator``, sizes in pixels given for a 28 px side and scaled with the image's shorter side.
Gaussian blur and saturate draw nothing at random (as in ImageNet-C), so their output does not depend on the seed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from hgen_ray.config import HELD_OUT_FAMILIES
from hgen_ray.data.challenges import SEVERITY_LEVELS, _level, _scaled, _shorter_side

__all__ = ["OVERLAP_WITH_TEST", "apply_held_out", "families_for"]

# ImageNet-C's speckle_noise std at 224 px, [.15, .2, .35, .45, .6]; noise is per pixel, so it needs no rescaling.
_SPECKLE_SIGMA = (0.15, 0.2, 0.35, 0.45, 0.6)
# Blur std in px at 28 px. Assumed: ImageNet-C's [1, 2, 3, 4, 6] at 224 px would be under a pixel here, so these
# sit between CIFAR-10-C's [.4, .6, .7, .8, 1] at 32 px and the test's defocus radii (1-3 px at 28 px).
_BLUR_SIGMA_PX = (0.6, 0.8, 1.0, 1.3, 1.6)
_SPATTER_BLOB_SIGMA_PX = 1.5  # assumed: smoothing of the noise, so that drops are about 3-5 px across at 28 px
# Assumed: the drops cover the noise above this many standard deviations, about 5%, 10%, 16%, 23%, 31% of the image.
_SPATTER_THRESHOLD_STD = (1.65, 1.3, 1.0, 0.75, 0.5)
_SPATTER_OPACITY = (0.6, 0.65, 0.7, 0.75, 0.8)  # assumed: how much of the pixel beneath a drop hides
# Assumed: a muddy grey. ImageNet-C's mud, (63, 42, 20) / 255, would vanish on Fashion-MNIST's black background.
_SPATTER_RGB = (0.45, 0.40, 0.35)
# Factor on each pixel's distance from its grey: below 1 washes colour out, above 1 over-saturates, following
# ImageNet-C's mix of both directions ([.3, .1, 2, 5, 20] on HSV saturation); assumed values, so |factor - 1| grows.
_SATURATION_FACTOR = (0.5, 0.2, 2.5, 4.0, 8.0)
_LUMA_RGB = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma, the grey torchvision's rgb_to_grayscale uses
_ELASTIC_SIGMA_PX = 4.0  # smoothing of the displacement field, Simard, Steinkraus & Platt (ICDAR 2003) on MNIST
# RMS displacement in px at 28 px. Assumed; severity 3 is near Simard et al.'s alpha = 34, sigma = 4 (~1.4 px RMS).
_ELASTIC_RMS_PX = (0.6, 0.9, 1.3, 1.8, 2.4)
_SEED_OFFSET = 500  # keeps these generators' seeds apart from challenges.py's (index * 10 + severity < 500)

OVERLAP_WITH_TEST: dict[str, str] = {
    "speckle_noise": "Multiplicative per-pixel noise, akin in kind to the test's additive gaussian_noise (and "
                     "impulse_noise) but a different family: it scales with brightness and leaves black pixels black.",
    "gaussian_blur": "A smooth isotropic blur, akin in kind to the test's defocus_blur (disk kernel), motion_blur "
                     "(line kernel) and low_resolution's loss of detail: of the five, the closest to a test category.",
    "spatter": "Random liquid drops that partly occlude, akin to the test's occlusion (one grey square) but scattered, "
               "irregular and semi-transparent.",
    "saturate": "Changes colour saturation only, keeping each pixel's grey value (save where over-saturation clips "
                "at 0 or 1); no test category does this, and on greyscale images it changes nothing.",
    "elastic_transform": "A smooth local warp of the pixel grid, unlike the test's rotation (one global turn) and "
                         "unlike every other test category, which keeps pixels in place.",
}
assert tuple(OVERLAP_WITH_TEST) == HELD_OUT_FAMILIES


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))  # three sigmas hold 99.7% of the weight
    coords = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (coords / sigma) ** 2)
    return kernel / kernel.sum()


def _gaussian_smooth(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur every channel of ``[N, C, H, W]`` with a separable Gaussian; edges are replicated, not darkened."""
    n, c, h, w = x.shape
    kernel = _gaussian_kernel(sigma)
    pad = len(kernel) // 2
    flat = x.reshape(n * c, 1, h, w)
    flat = F.conv2d(F.pad(flat, [pad, pad, 0, 0], mode="replicate"), kernel.view(1, 1, 1, -1))
    flat = F.conv2d(F.pad(flat, [0, 0, pad, pad], mode="replicate"), kernel.view(1, 1, -1, 1))
    return flat.reshape(n, c, h, w)


def speckle_noise(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    noise = torch.randn(x.shape, generator=gen) * _level(_SPECKLE_SIGMA, severity)
    return x + x * noise


def gaussian_blur(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    return _gaussian_smooth(x, _scaled(_level(_BLUR_SIGMA_PX, severity), _shorter_side(x)))


def spatter(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    noise = torch.randn(len(x), 1, *x.shape[-2:], generator=gen)
    smooth = _gaussian_smooth(noise, _scaled(_SPATTER_BLOB_SIGMA_PX, _shorter_side(x)))
    # Standardised per image, so a threshold in standard deviations covers the same share of any image size.
    z = (smooth - smooth.mean(dim=(2, 3), keepdim=True)) / smooth.std(dim=(2, 3), keepdim=True)
    drops = (z > _level(_SPATTER_THRESHOLD_STD, severity)).float() * _level(_SPATTER_OPACITY, severity)
    rgb = torch.tensor(_SPATTER_RGB)
    colour = rgb.view(1, 3, 1, 1) if x.shape[1] == 3 else (rgb @ torch.tensor(_LUMA_RGB)).view(1, 1, 1, 1)
    return (1 - drops) * x + drops * colour


def saturate(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    if x.shape[1] != 3:
        return x.clone()  # a grey image has no saturation to change
    grey = (x * torch.tensor(_LUMA_RGB).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
    return grey + _level(_SATURATION_FACTOR, severity) * (x - grey)


def elastic_transform(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    side = _shorter_side(x)
    field = _gaussian_smooth(torch.randn(n, 2, h, w, generator=gen), _scaled(_ELASTIC_SIGMA_PX, side))
    # Normalised to unit RMS, so the table's displacement in px holds whatever the smoothing did to the noise.
    field = field / field.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt()
    shift_px = field * _scaled(_level(_ELASTIC_RMS_PX, severity), side)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    # With align_corners=True, -1 and 1 are the outer pixels' centres: one pixel is 2 / (side - 1).
    grid = torch.stack([xs + shift_px[:, 0] * 2 / (w - 1), ys + shift_px[:, 1] * 2 / (h - 1)], dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=True)


_FAMILIES = {
    "speckle_noise": speckle_noise,
    "gaussian_blur": gaussian_blur,
    "spatter": spatter,
    "saturate": saturate,
    "elastic_transform": elastic_transform,
}
assert tuple(_FAMILIES) == HELD_OUT_FAMILIES


def families_for(channels: int, families: tuple[str, ...] = HELD_OUT_FAMILIES) -> tuple[str, ...]:
    """The given families that change an image with ``channels`` channels.

    Args:
        channels: The images' channel count (1 grey, 3 RGB).
        families: Families to choose from, in order. Default: all of ``HELD_OUT_FAMILIES``.

    Returns:
        ``families`` without ``saturate`` unless ``channels == 3``: on other images it is the identity.
    """
    return tuple(family for family in families if family != "saturate" or channels == 3)


def apply_held_out(images: torch.Tensor, family: str, severity: int, seed: int) -> torch.Tensor:
    """A corrupted copy of a float batch ``[N, C, H, W]`` in ``[0, 1]``; the input is left as it was.

    Args:
        images: Float images in ``[0, 1]``, any channel count and side.
        family: One of ``HELD_OUT_FAMILIES``.
        severity: 1 (mild) to 5 (harsh).
        seed: Seeds every random draw, with the family and severity folded in.

    Returns:
        The corrupted images, same shape, clamped to ``[0, 1]``.

    Raises:
        ValueError: On an unknown family or a severity outside 1-5.
    """
    if family not in _FAMILIES:
        raise ValueError(f"unknown held-out family {family!r}; allowed: {', '.join(_FAMILIES)}")
    if not 1 <= severity <= SEVERITY_LEVELS:
        raise ValueError(f"severity must be 1-{SEVERITY_LEVELS}, got {severity}")
    index = HELD_OUT_FAMILIES.index(family)
    gen = torch.Generator().manual_seed(seed * 1000 + _SEED_OFFSET + index * 10 + severity)
    return _FAMILIES[family](images.float(), severity, gen).clamp(0, 1).contiguous()
