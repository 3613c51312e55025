from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from hgen_ray.architectures import get_architecture
from hgen_ray.architectures.classifier import TrainedBase
from hgen_ray.architectures.h_cnn.network import COMPRESSIBLE_LAYERS
from hgen_ray.architectures.training import predict_logits
from hgen_ray.compress import validate_candidate
from hgen_ray.config import Candidate, ConfigError, ExperimentConfig, LayerChoice
from hgen_ray.data.splits import Splits

H_CNN = get_architecture("h_cnn")  # a real network to compress; the pipeline itself knows none


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("technique", ["l1", "l2", "fpgm", "taylor"])
def test_pruning_physically_removes_channels(technique: str, trained_base: TrainedBase, splits: Splits,
                                              tiny_config: ExperimentConfig) -> None:
    candidate = Candidate(layers={"conv1": LayerChoice(technique, 0.5), "conv2": LayerChoice(technique, 0.25)})
    model = H_CNN.compress(tiny_config, trained_base.model, candidate, splits, tiny_config.finetune)
    first, second = tiny_config.model.conv_channels
    assert model.conv1.out_channels == first // 2
    assert model.conv2.in_channels == first // 2
    assert model.conv2.out_channels == second * 3 // 4
    assert model.fc1.in_features == second * 3 // 4 * 49
    assert _params(model) < 0.8 * _params(trained_base.model)
    accuracy = (predict_logits(model, splits.test_images).argmax(1) == splits.test_labels).float().mean()
    assert float(accuracy) > 0.7  # fine-tuning recovers a working classifier


def test_svd_and_pruning_compose_and_leave_the_base_untouched(trained_base: TrainedBase, splits: Splits,
                                                               tiny_config: ExperimentConfig) -> None:
    before = {k: v.clone() for k, v in trained_base.model.state_dict().items()}
    candidate = Candidate(layers={"conv2": LayerChoice("l1", 0.5), "fc1": LayerChoice("svd", 0.75)})
    model = H_CNN.compress(tiny_config, trained_base.model, candidate, splits, tiny_config.finetune)
    assert isinstance(model.fc1, nn.Sequential) and model.fc1[0].out_features == 32  # 128 * (1 - 0.75)
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert all(torch.equal(v, trained_base.model.state_dict()[k]) for k, v in before.items())


def test_no_compression_keeps_the_shape_and_gets_the_same_fine_tuning(trained_base: TrainedBase, splits: Splits,
                                                                       tiny_config: ExperimentConfig) -> None:
    x = splits.test_images[:16]
    untouched = H_CNN.compress(tiny_config, trained_base.model, Candidate(), splits,
                               dataclasses.replace(tiny_config.finetune, epochs=0))
    assert torch.equal(predict_logits(untouched, x), predict_logits(trained_base.model, x))
    # the reference gets the fine-tuning every compressed candidate gets
    tuned = H_CNN.compress(tiny_config, trained_base.model, Candidate(), splits, tiny_config.finetune)
    assert {k: v.shape for k, v in tuned.state_dict().items()} == {
        k: v.shape for k, v in trained_base.model.state_dict().items()}
    assert not torch.equal(predict_logits(tuned, x), predict_logits(trained_base.model, x))


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ({"conv9": LayerChoice("l1", 0.5)}, "candidate.layers.conv9: no such compressible layer"),
        ({"fc1": LayerChoice("l1", 0.5)}, "'l1' does not apply to a fc layer; allowed: none, svd"),
        ({"conv1": LayerChoice("svd", 0.5)}, "'svd' does not apply to a conv layer"),
    ],
)
def test_invalid_candidates_are_refused_by_name(layers: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_candidate(Candidate(layers=layers), COMPRESSIBLE_LAYERS)
