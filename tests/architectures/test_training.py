"""Fine-tuning with distillation: Hinton et al.'s loss, and a student that moves toward its teacher."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from hgen_ray.architectures import get_architecture
from hgen_ray.architectures.h_cnn.network import BaseCNN
from hgen_ray.architectures.training import Distillation, distillation_loss, predict_logits, train_classifier
from hgen_ray.config import ConfigError, ExperimentConfig, FinetuneConfig


def test_the_loss_is_cross_entropy_at_weight_0_and_vanishes_on_the_teacher_s_own_logits_at_weight_1() -> None:
    logits, targets = torch.randn(6, 10, generator=torch.Generator().manual_seed(0)), torch.arange(6)
    labels_only = Distillation(nn.Identity(), temperature=4.0, weight=0.0)
    assert distillation_loss(logits, logits, targets, labels_only) == pytest.approx(
        float(nn.functional.cross_entropy(logits, targets)))
    teacher_only = Distillation(nn.Identity(), temperature=4.0, weight=1.0)
    assert float(distillation_loss(logits, logits, targets, teacher_only)) == pytest.approx(0.0, abs=1e-6)
    assert float(distillation_loss(logits, -logits, targets, teacher_only)) > 1.0


def _disagreement(student: nn.Module, teacher: nn.Module, images: torch.Tensor) -> float:
    """KL of the student's softmax from the teacher's."""
    return float(nn.functional.kl_div(predict_logits(student, images).log_softmax(1),
                                       predict_logits(teacher, images).log_softmax(1),
                                       reduction="batchmean", log_target=True))


def test_a_distilled_copy_stays_closer_to_its_teacher_than_one_fine_tuned_on_labels_alone() -> None:
    generator = torch.Generator().manual_seed(0)
    images, labels = torch.rand(256, 1, 28, 28, generator=generator), torch.randint(0, 10, (256,), generator=generator)
    torch.manual_seed(1)
    teacher = BaseCNN((8, 16), 32)
    other_labels = (labels + 1 + torch.randint(0, 9, (256,), generator=generator)) % 10  # a view the labels lack
    train_classifier(teacher, images, other_labels, epochs=30, batch_size=32, learning_rate=1e-2, seed=0)
    students = {}
    for weight in (0.0, 1.0):
        student = copy.deepcopy(teacher)  # as fine-tuning starts from the compressed copy of the base
        train_classifier(student, images, labels, epochs=3, batch_size=32, learning_rate=3e-3, seed=0,
                         distillation=Distillation(teacher, temperature=4.0, weight=weight))
        students[weight] = _disagreement(student, teacher, images)
    assert students[1.0] < 0.5 * students[0.0]


def test_distillation_on_a_detector_is_refused_in_one_line() -> None:
    config = ExperimentConfig()
    config = type(config)(**{**config.__dict__, "finetune": FinetuneConfig(distill=True)})
    with pytest.raises(ConfigError, match=r"^finetune.distill: h_yolo has no distillation loss .*; allowed: false$"):
        get_architecture("h_yolo").check_config(config)
