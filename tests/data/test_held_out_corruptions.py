"""The rejector's held-out corruption families, on real Fashion-MNIST items: grey 28 px and tinted RGB 40 px."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hgen_ray.config import CHALLENGE_CATEGORIES, HELD_OUT_FAMILIES
from hgen_ray.data.held_out_corruptions import OVERLAP_WITH_TEST, apply_held_out, families_for
from tests.datasets import read_fashion_mnist

SEEDLESS = ("gaussian_blur", "saturate")  # deterministic operations, as in ImageNet-C: the seed cannot matter
CASES = [("grey28", family) for family in families_for(1)] + [("rgb40", family) for family in families_for(3)]


@pytest.fixture(scope="module")
def images() -> dict[str, torch.Tensor]:
    """16 Fashion-MNIST test items as they are (1 x 28 x 28) and tinted a seeded colour at 3 x 40 x 40."""
    pixels, _ = read_fashion_mnist("test")
    grey = torch.from_numpy(pixels[:16].copy()).float().div(255).unsqueeze(1)
    tint = 0.3 + 0.7 * torch.rand(16, 3, 1, 1, generator=torch.Generator().manual_seed(0))
    big = F.interpolate(grey, size=(40, 40), mode="bilinear", align_corners=False).clamp(0, 1)
    return {"grey28": grey, "rgb40": big * tint}


def _damage(clean: torch.Tensor, family: str, severity: int, seed: int = 0) -> float:
    return float((apply_held_out(clean, family, severity, seed) - clean).abs().mean())


@pytest.mark.parametrize(("kind", "family"), CASES)
def test_family_changes_images_keeping_shape_range_and_input(images: dict, kind: str, family: str) -> None:
    clean = images[kind]
    before = clean.clone()
    out = apply_held_out(clean, family, 3, seed=0)
    assert out.shape == clean.shape and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert float((out - clean).abs().mean()) > 0.02
    assert torch.equal(clean, before)


@pytest.mark.parametrize(("kind", "family"), CASES)
def test_family_is_deterministic_per_seed(images: dict, kind: str, family: str) -> None:
    clean = images[kind]
    first = apply_held_out(clean, family, 4, seed=7)
    assert torch.equal(first, apply_held_out(clean, family, 4, seed=7))
    other = apply_held_out(clean, family, 4, seed=8)
    if family in SEEDLESS:
        assert torch.equal(first, other)
    else:
        assert float((first - other).abs().mean()) > 0.01


@pytest.mark.parametrize(("kind", "family"), CASES)
def test_damage_grows_with_severity(images: dict, kind: str, family: str) -> None:
    damage = [_damage(images[kind], family, severity) for severity in range(1, 6)]
    assert all(low < high for low, high in zip(damage, damage[1:])), damage
    assert damage[4] > 2 * damage[0], damage


def test_saturate_is_left_out_for_grey_and_changes_only_colour(images: dict) -> None:
    assert "saturate" not in families_for(1)
    assert families_for(3) == HELD_OUT_FAMILIES
    assert families_for(1, ("saturate", "spatter")) == ("spatter",)
    grey = images["grey28"]
    assert torch.equal(apply_held_out(grey, "saturate", 5, seed=0), grey)
    rgb = images["rgb40"]
    washed = apply_held_out(rgb, "saturate", 1, seed=0)  # a factor below 1 stays in range: the luma is kept exactly
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    assert torch.allclose((washed * luma).sum(1), (rgb * luma).sum(1), atol=1e-6)
    assert float((washed - rgb).abs().mean()) > 0.01


def test_speckle_leaves_black_black_and_blur_leaves_flat_images_flat(images: dict) -> None:
    grey = images["grey28"]
    black = grey == 0
    assert int(black.sum()) > 1000
    assert float(apply_held_out(grey, "speckle_noise", 5, seed=0)[black].abs().max()) == 0.0
    flat = torch.full((2, 3, 40, 40), 0.6)
    assert torch.allclose(apply_held_out(flat, "gaussian_blur", 5, seed=0), flat, atol=1e-6)


def test_families_work_on_non_square_images() -> None:
    pattern = torch.rand(2, 3, 24, 36, generator=torch.Generator().manual_seed(1))
    for family in HELD_OUT_FAMILIES:
        out = apply_held_out(pattern, family, 2, seed=0)
        assert out.shape == pattern.shape
        assert float((out - pattern).abs().mean()) > 0.005, family


def test_no_family_is_a_test_category_and_each_states_its_overlap() -> None:
    assert not set(HELD_OUT_FAMILIES) & set(CHALLENGE_CATEGORIES)
    assert tuple(OVERLAP_WITH_TEST) == HELD_OUT_FAMILIES
    assert all(len(sentence) > 40 and sentence.endswith(".") for sentence in OVERLAP_WITH_TEST.values())


@pytest.mark.parametrize("severity", [0, 6, -1])
def test_bad_severity_raises(images: dict, severity: int) -> None:
    with pytest.raises(ValueError, match="severity must be 1-5"):
        apply_held_out(images["grey28"], "spatter", severity, seed=0)


@pytest.mark.parametrize("family", ["fog", "speckle", ""])
def test_unknown_family_raises_naming_the_allowed(images: dict, family: str) -> None:
    with pytest.raises(ValueError, match="allowed: speckle_noise, gaussian_blur, spatter, saturate, elastic_transform"):
        apply_held_out(images["grey28"], family, 3, seed=0)
