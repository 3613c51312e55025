"""The 12 challenges on colour and larger images; the 28 px grey results stay exactly what they were."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hgen_ray.config import CHALLENGE_CATEGORIES, DataConfig
from hgen_ray.data.challenges import apply_challenge
from hgen_ray.data.image_dataset import load_image_dataset
from hgen_ray.data.preview import draw_challenge_grid
from tests.datasets import read_fashion_mnist, write_image_folder

# Sum and sum of squares (float64) of each category at severity 3, seed 0, on the first 64 Fashion-MNIST test
# images, computed with the challenges as they were before they took colour and other sizes.
GREY_28PX_SEVERITY_3_SEED_0 = {
    "low_resolution": (14160.368370905418, 8380.207318477083),
    "small_size": (3533.499338694106, 2219.0393100101173),
    "motion_blur": (13945.934306401032, 8304.337848708414),
    "defocus_blur": (14010.450803913758, 8507.013618347797),
    "gaussian_noise": (15890.030611667198, 10815.637642939791),
    "impulse_noise": (15063.270821749233, 11472.277172407217),
    "low_light": (4918.143742499407, 1239.4329814551188),
    "low_contrast": (14051.839702874422, 5344.618592914068),
    "fog": (24653.378743693233, 13950.385641858047),
    "occlusion": (14622.360967251007, 9495.059975827773),
    "jpeg": (14410.686550761573, 9895.883093567722),
    "rotation": (13772.82714610062, 9433.956860596703),
}


@pytest.fixture(scope="module")
def rgb_images(tmp_path_factory: pytest.TempPathFactory) -> torch.Tensor:
    """40 real Fashion-MNIST items as tinted 32 x 32 RGB PNGs, read back through the image_folder reader."""
    root = write_image_folder(tmp_path_factory.mktemp("folder"), train_per_class=4, test_per_class=1)
    config = DataConfig(root=str(root), format="image_folder")
    return load_image_dataset(config).train.images


@pytest.fixture(scope="module")
def grey_images() -> torch.Tensor:
    images, _ = read_fashion_mnist("test")
    return torch.from_numpy(images[:64].copy()).float().div(255).unsqueeze(1)


@pytest.mark.parametrize("category", CHALLENGE_CATEGORIES)
def test_grey_28px_results_are_unchanged(grey_images: torch.Tensor, category: str) -> None:
    out = apply_challenge(grey_images, category, 3, seed=0).double()
    total, squares = GREY_28PX_SEVERITY_3_SEED_0[category]
    assert float(out.sum()) == pytest.approx(total, rel=0, abs=1e-6)
    assert float((out * out).sum()) == pytest.approx(squares, rel=0, abs=1e-6)


@pytest.mark.parametrize("category", CHALLENGE_CATEGORIES)
def test_every_category_corrupts_rgb_32px_keeping_shape_and_range(rgb_images: torch.Tensor, category: str) -> None:
    assert rgb_images.shape == (40, 3, 32, 32)
    out = apply_challenge(rgb_images, category, 3, seed=0)
    assert out.shape == rgb_images.shape and out.dtype == torch.float32
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    assert float((out - rgb_images).abs().mean()) > 0.005
    assert torch.equal(out, apply_challenge(rgb_images, category, 3, seed=0))


@pytest.mark.parametrize("shape", [(6, 1, 64, 64), (6, 3, 16, 16), (6, 3, 48, 32)])
@pytest.mark.parametrize("category", CHALLENGE_CATEGORIES)
def test_every_category_takes_other_sizes_and_channels(shape: tuple[int, ...], category: str) -> None:
    images = torch.rand(shape, generator=torch.Generator().manual_seed(0)) * 0.6 + 0.2
    out = apply_challenge(images, category, 5, seed=1)
    assert out.shape == images.shape and 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    assert float((out - images).abs().mean()) > 0.003


def test_the_occluder_covers_the_same_share_of_a_larger_image() -> None:
    covered = [float((apply_challenge(torch.zeros(4, 3, side, side), "occlusion", 3, seed=0) == 0.5).float().mean())
               for side in (28, 56)]
    assert covered[0] == pytest.approx(12 * 12 / 28**2) and covered[1] == pytest.approx(covered[0])


def test_the_preview_grid_draws_colour_images(rgb_images: torch.Tensor, tmp_path: Path) -> None:
    out = draw_challenge_grid(rgb_images, tmp_path / "grid.png", seed=0)
    pixels = np.asarray(Image.open(out).convert("RGB"), np.int16)
    assert (np.abs(pixels[..., 0] - pixels[..., 2]) > 30).any()  # the tints survive: the grid is in colour


# Sums and sums of squares of each whole-canvas challenge on 4 seeded 96 px canvases, severity 3, seed 0,
# computed at commit 8662101 (before challenges scaled with the image side): canvases hold 28 px items,
# so their blurs stay sized for the items, and the detectors' challenge images are unchanged.
CANVAS_PINS = {
    "motion_blur": (18398.821463912725, 9529.948895244077),
    "defocus_blur": (18398.230705991387, 9378.588592096949),
    "gaussian_noise": (18429.689828835428, 12782.051332854517),
    "fog": (22479.638504058123, 14672.993439815804),
    "jpeg": (18402.65921158064, 12040.460906042703),
}


@pytest.mark.parametrize("category", list(CANVAS_PINS))
def test_canvas_challenges_are_sized_for_their_28_px_items_as_before(category: str) -> None:
    canvases = torch.rand(4, 1, 96, 96, generator=torch.Generator().manual_seed(5))
    out = apply_challenge(canvases, category, 3, 0, item_side=28).double()
    assert (float(out.sum()), float(out.square().sum())) == pytest.approx(CANVAS_PINS[category], rel=1e-9)
    if category in ("motion_blur", "defocus_blur"):  # sized for the image, the blur would be 3.4 times longer
        assert not torch.equal(apply_challenge(canvases, category, 3, 0).double(), out)
