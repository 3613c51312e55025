from __future__ import annotations

import pytest
import torch

from hgen_ray.config import CHALLENGE_CATEGORIES
from hgen_ray.data.challenges import apply_challenge
from hgen_ray.data.splits import Splits

RANDOMISED = {"small_size", "motion_blur", "gaussian_noise", "impulse_noise", "fog", "occlusion", "rotation"}


@pytest.fixture(scope="module")
def images(splits: Splits) -> torch.Tensor:
    return splits.test_images[:64]


def test_there_are_exactly_the_twelve_named_categories() -> None:
    assert len(CHALLENGE_CATEGORIES) == 12
    assert set(CHALLENGE_CATEGORIES) == {
        "low_resolution", "small_size", "motion_blur", "defocus_blur", "gaussian_noise", "impulse_noise",
        "low_light", "low_contrast", "fog", "occlusion", "jpeg", "rotation",
    }


@pytest.mark.parametrize("category", CHALLENGE_CATEGORIES)
def test_category_is_deterministic_in_range_and_shape_preserving(images: torch.Tensor, category: str) -> None:
    first = apply_challenge(images, category, 3, seed=7)
    again = apply_challenge(images, category, 3, seed=7)
    assert first.shape == images.shape
    assert torch.equal(first, again)
    assert 0.0 <= float(first.min()) and float(first.max()) <= 1.0
    assert float((first - images).abs().mean()) > 0.005  # it really corrupts


@pytest.mark.parametrize("category", sorted(RANDOMISED))
def test_random_categories_depend_on_the_seed(images: torch.Tensor, category: str) -> None:
    assert not torch.equal(apply_challenge(images, category, 3, seed=1), apply_challenge(images, category, 3, seed=2))


@pytest.mark.parametrize("category", CHALLENGE_CATEGORIES)
def test_higher_severity_moves_images_further_from_clean(images: torch.Tensor, category: str) -> None:
    distance = [float((apply_challenge(images, category, s, seed=0) - images).abs().mean()) for s in (1, 3, 5)]
    assert distance[0] < distance[1] < distance[2]


def test_clean_is_an_unchanged_copy(images: torch.Tensor) -> None:
    clean = apply_challenge(images, "clean", 1, seed=0)
    assert torch.equal(clean, images) and clean.data_ptr() != images.data_ptr()


def test_unknown_category_and_severity_are_refused(images: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="unknown challenge category 'haze'"):
        apply_challenge(images, "haze", 3, seed=0)
    with pytest.raises(ValueError, match="severity must be 1-5"):
        apply_challenge(images, "fog", 6, seed=0)


def test_low_light_scales_brightness_and_small_size_shrinks_the_item(images: torch.Tensor) -> None:
    dark = apply_challenge(images, "low_light", 3, seed=0)
    assert float(dark.mean()) == pytest.approx(0.35 * float(images.mean()), rel=1e-4)
    small = apply_challenge(images, "small_size", 5, seed=0)
    lit = (small > 0.05).flatten(1).sum(1).float().mean()
    assert lit < 0.2 * (images > 0.05).flatten(1).sum(1).float().mean()
