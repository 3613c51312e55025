from __future__ import annotations

import pytest
import torch

from hgen_ray.architectures.gate import confidence, defer_mask, fit_temperature


def test_fit_temperature_recovers_the_temperature_that_generated_labels() -> None:
    generator = torch.Generator().manual_seed(0)
    true_logits = torch.randn(20000, 10, generator=generator) * 3
    labels = torch.multinomial(torch.softmax(true_logits, 1), 1, generator=generator).squeeze(1)
    overconfident = true_logits * 2.5  # a model that is 2.5x too sure
    assert fit_temperature(overconfident, labels) == pytest.approx(2.5, rel=0.05)


def test_gate_defers_exactly_the_samples_below_tau() -> None:
    logits = torch.log(torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.5, 0.5]]))
    assert confidence(logits, 1.0).tolist() == pytest.approx([0.9, 0.6, 0.5])
    assert defer_mask(logits, 1.0, 0.7).tolist() == [False, True, True]
    assert defer_mask(logits, 1.0, 0.0).tolist() == [False, False, False]
    assert defer_mask(logits, 1.0, 1.0).tolist() == [True, True, True]
