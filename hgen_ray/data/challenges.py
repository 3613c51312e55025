"""The 12 challenge categories: hard inputs on which compressed DNNs lose most.

Each category maps a float batch ``[N, C, H, W]`` in ``[0, 1]`` (C = 1 grey or
3 RGB, sides of 16 px or more) to a corrupted batch of the same shape, at
severity 1 (mild) to 5 (harsh). Every random draw comes from a
``torch.Generator``, so a (seed, category, severity) triple always gives the
same images. torchvision.transforms.v2 is used where it has the
operation (resize, brightness, contrast, JPEG, erase); motion blur, defocus,
fog, impulse noise and per-image rotation are written here with torch ops.

Severity tables follow the spirit of ImageNet-C (Hendrycks & Dietterich,
ICLR 2019), rescaled for 28 px greyscale items; severity 3 is roughly where a
small CNN keeps half to three quarters of its clean accuracy. Sizes given in
pixels are for a 28 px side and scale with the image's side, so that a blur,
an occluder or a squeeze hides the same share of any image; at 28 px they are
exactly the table's. Noise is drawn per channel; fog and the occluder are grey.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF

from hgen_ray.config import CHALLENGE_CATEGORIES

__all__ = ["CHALLENGES", "SEVERITY_LEVELS", "apply_challenge"]

SEVERITY_LEVELS = 5
_TABLE_SIDE_PX = 28  # the pixel sizes below are for a 28 x 28 image (Fashion-MNIST)
_LOW_RESOLUTION_PX = (18, 14, 12, 10, 8)  # side the image is squeezed to, then restored
_SMALL_SIZE_SCALE = (0.75, 0.6, 0.5, 0.42, 0.35)  # item side as a fraction of the canvas
_MOTION_LENGTH_PX = (3, 5, 7, 9, 11)  # length of the straight motion path
_DEFOCUS_RADIUS_PX = (1.0, 1.5, 2.0, 2.5, 3.0)  # radius of the disk (circle of confusion)
_GAUSSIAN_SIGMA = (0.08, 0.12, 0.18, 0.26, 0.38)  # std of additive noise, image in [0, 1]
_IMPULSE_FRACTION = (0.03, 0.06, 0.09, 0.17, 0.27)  # share of pixels set to 0 or 1
_LOW_LIGHT_FACTOR = (0.6, 0.45, 0.35, 0.25, 0.15)  # brightness multiplier
_LOW_CONTRAST_FACTOR = (0.5, 0.4, 0.3, 0.2, 0.12)  # contrast blend toward the mean
_FOG_OPACITY = (0.3, 0.4, 0.5, 0.6, 0.7)  # weight of the fog layer
_OCCLUSION_SIDE_PX = (8, 10, 12, 14, 16)  # side of the square occluder
_JPEG_QUALITY = (25, 15, 10, 7, 4)  # libjpeg quality
_ROTATION_DEG = (15.0, 25.0, 35.0, 45.0, 60.0)  # rotation magnitude, random sign
_OCCLUDER_GREY = 0.5  # a neutral grey patch, like a finger or sticker


def _level(table: tuple, severity: int):  # type: ignore[no-untyped-def]
    return table[severity - 1]


def _scaled(px: float, side: int) -> float:
    """A table size in pixels, for an image side of ``side`` px instead of 28."""
    return px * side / _TABLE_SIDE_PX


def _shorter_side(x: torch.Tensor) -> int:
    return min(x.shape[-2:])


def _per_image_conv(images: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Convolve every channel of image i with kernel i, using the batch's channels as groups."""
    n, c, h, w = images.shape
    size = kernels.shape[-1]
    padded = F.pad(images.reshape(1, n * c, h, w), [size // 2] * 4, mode="replicate")
    per_channel = kernels.repeat_interleave(c, dim=0).unsqueeze(1)
    return F.conv2d(padded, per_channel, groups=n * c).reshape(n, c, h, w)


def low_resolution(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    px = _level(_LOW_RESOLUTION_PX, severity)
    squeezed = [max(2, round(_scaled(px, side))) for side in x.shape[-2:]]
    small = TF.resize(x, squeezed, antialias=True)
    return TF.resize(small, list(x.shape[-2:]), antialias=False).clamp(0, 1)


def small_size(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    height, width = x.shape[-2:]
    scale = _level(_SMALL_SIZE_SCALE, severity)
    item_height, item_width = max(4, round(scale * height)), max(4, round(scale * width))
    small = TF.resize(x, [item_height, item_width], antialias=True)
    out = torch.zeros_like(x)
    tops = torch.randint(0, height - item_height + 1, (len(x),), generator=gen)
    lefts = torch.randint(0, width - item_width + 1, (len(x),), generator=gen)
    for i, (top, left) in enumerate(zip(tops.tolist(), lefts.tolist())):
        out[i, :, top : top + item_height, left : left + item_width] = small[i]
    return out


def _line_kernels(length: int, angles: torch.Tensor) -> torch.Tensor:
    steps = torch.linspace(-(length - 1) / 2, (length - 1) / 2, 4 * length)
    kernels = torch.zeros(len(angles), length, length)
    centre = (length - 1) / 2
    for i, angle in enumerate(angles.tolist()):
        cols = (centre + steps * math.cos(angle)).round().long().clamp(0, length - 1)
        rows = (centre + steps * math.sin(angle)).round().long().clamp(0, length - 1)
        kernels[i, rows, cols] = 1.0
    return kernels / kernels.sum(dim=(1, 2), keepdim=True)


def motion_blur(x: torch.Tensor, severity: int, gen: torch.Generator, item_side: int | None = None) -> torch.Tensor:
    angles = torch.rand(len(x), generator=gen) * math.pi
    length = round(_scaled(_level(_MOTION_LENGTH_PX, severity), item_side or _shorter_side(x)))
    length += 1 - length % 2  # odd, so that the kernel has a centre pixel
    return _per_image_conv(x, _line_kernels(length, angles)).clamp(0, 1)


def defocus_blur(x: torch.Tensor, severity: int, gen: torch.Generator, item_side: int | None = None) -> torch.Tensor:
    radius = _scaled(_level(_DEFOCUS_RADIUS_PX, severity), item_side or _shorter_side(x))
    half = math.ceil(radius)
    coords = torch.arange(-half, half + 1, dtype=torch.float32)
    distance = torch.sqrt(coords[:, None] ** 2 + coords[None, :] ** 2)
    disk = (radius + 0.5 - distance).clamp(0, 1)  # anti-aliased rim
    disk = disk / disk.sum()
    return _per_image_conv(x, disk.expand(len(x), -1, -1)).clamp(0, 1)


def gaussian_noise(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    noise = torch.randn(x.shape, generator=gen) * _level(_GAUSSIAN_SIGMA, severity)
    return (x + noise).clamp(0, 1)


def impulse_noise(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    hit = torch.rand(x.shape, generator=gen) < _level(_IMPULSE_FRACTION, severity)
    salt = (torch.rand(x.shape, generator=gen) < 0.5).to(x.dtype)
    return torch.where(hit, salt, x)


def low_light(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    return TF.adjust_brightness(x, _level(_LOW_LIGHT_FACTOR, severity))


def low_contrast(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    return TF.adjust_contrast(x, _level(_LOW_CONTRAST_FACTOR, severity))


def _fractal_noise(n: int, height: int, width: int, gen: torch.Generator) -> torch.Tensor:
    """Sum of upsampled random grids, coarse octaves weighted most: a fog-like haze."""
    total = torch.zeros(n, 1, height, width)
    for octave, cells in enumerate((2, 4, 8)):
        grid = torch.rand(n, 1, cells, cells, generator=gen)
        total += F.interpolate(grid, size=(height, width), mode="bicubic", align_corners=False) / 2**octave
    low = total.amin(dim=(2, 3), keepdim=True)
    high = total.amax(dim=(2, 3), keepdim=True)
    return (total - low) / (high - low + 1e-8)


def fog(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    opacity = _level(_FOG_OPACITY, severity)
    haze = 0.4 + 0.6 * _fractal_noise(len(x), x.shape[-2], x.shape[-1], gen)
    return ((1 - opacity) * x + opacity * haze).clamp(0, 1)


def occlusion(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    side = round(_scaled(_level(_OCCLUSION_SIDE_PX, severity), _shorter_side(x)))
    height, width = x.shape[-2:]
    tops = torch.randint(0, height - side + 1, (len(x),), generator=gen).tolist()
    lefts = torch.randint(0, width - side + 1, (len(x),), generator=gen).tolist()
    grey = torch.tensor(_OCCLUDER_GREY)
    return torch.stack([TF.erase(img, t, l, side, side, grey) for img, t, l in zip(x, tops, lefts)])


def jpeg(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    as_bytes = (x * 255).round().to(torch.uint8)
    return TF.jpeg(as_bytes, _level(_JPEG_QUALITY, severity)).float() / 255


def rotation(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    sign = torch.randint(0, 2, (len(x),), generator=gen) * 2 - 1
    angle = torch.deg2rad(sign * _level(_ROTATION_DEG, severity))
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, torch.zeros_like(cos)], 1),
                         torch.stack([sin, cos, torch.zeros_like(cos)], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


Challenge = Callable[..., torch.Tensor]  # (images, severity, generator[, item_side])
CHALLENGES: dict[str, Challenge] = {
    "low_resolution": low_resolution,
    "small_size": small_size,
    "motion_blur": motion_blur,
    "defocus_blur": defocus_blur,
    "gaussian_noise": gaussian_noise,
    "impulse_noise": impulse_noise,
    "low_light": low_light,
    "low_contrast": low_contrast,
    "fog": fog,
    "occlusion": occlusion,
    "jpeg": jpeg,
    "rotation": rotation,
}
assert tuple(CHALLENGES) == CHALLENGE_CATEGORIES


_SIZED_BY_ITEMS = ("motion_blur", "defocus_blur")  # the whole-image challenges whose size is in item pixels


def apply_challenge(images: torch.Tensor, category: str, severity: int, seed: int,
                    item_side: int | None = None) -> torch.Tensor:
    """Corrupt a float batch ``[N, C, H, W]`` in ``[0, 1]``; ``clean`` returns it unchanged.

    Args:
        images: Float images in ``[0, 1]``, C = 1 (grey) or 3 (RGB), sides of 16 px or more.
        category: One of the 12 categories or ``"clean"``.
        severity: 1 (mild) to 5 (harsh).
        seed: Seeds every random draw, with the category folded in.
        item_side: The side of the items in the image, when they are smaller than it (a detection canvas holds
            28 px items): the blurs are sized for the items. Default: the image's shorter side.
    """
    if category == "clean":
        return images.clone()
    if category not in CHALLENGES:
        raise ValueError(f"unknown challenge category {category!r}; allowed: clean, {', '.join(CHALLENGES)}")
    if not 1 <= severity <= SEVERITY_LEVELS:
        raise ValueError(f"severity must be 1-{SEVERITY_LEVELS}, got {severity}")
    gen = torch.Generator().manual_seed(seed * 1000 + CHALLENGE_CATEGORIES.index(category) * 10 + severity)
    sized = {"item_side": item_side} if item_side and category in _SIZED_BY_ITEMS else {}
    return CHALLENGES[category](images.float(), severity, gen, **sized).contiguous()
