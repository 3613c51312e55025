from __future__ import annotations

import pytest
import torch
from torch import nn

from hgen_ray.compress.svd import factorize_linear, rank_for_ratio, replace_module


@pytest.fixture
def layer() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(60, 40)


def test_full_rank_factorisation_reproduces_the_layer(layer: nn.Linear) -> None:
    x = torch.randn(8, 60)
    assert torch.allclose(factorize_linear(layer, 40)(x), layer(x), atol=1e-5)


def test_truncation_error_equals_the_dropped_singular_values(layer: nn.Linear) -> None:
    singular = torch.linalg.svdvals(layer.weight.detach())
    factored = factorize_linear(layer, 10)
    approx = factored[1].weight @ factored[0].weight
    error = torch.linalg.matrix_norm(layer.weight.detach() - approx.detach())
    assert float(error) == pytest.approx(float(singular[10:].square().sum().sqrt()), rel=1e-4)  # Eckart-Young


def test_rank_follows_the_ratio_and_cuts_parameters(layer: nn.Linear) -> None:
    assert rank_for_ratio(layer, 0.0) == 40
    assert rank_for_ratio(layer, 0.75) == 10
    assert rank_for_ratio(layer, 0.9) == 4
    params = sum(p.numel() for p in factorize_linear(layer, 10).parameters())
    assert params == 10 * 60 + 40 * 10 + 40 < sum(p.numel() for p in layer.parameters())


def test_replace_module_swaps_a_nested_layer() -> None:
    model = nn.Sequential(nn.Sequential(nn.Linear(4, 4)), nn.ReLU())
    replace_module(model, "0.0", nn.Identity())
    assert isinstance(model[0][0], nn.Identity)
