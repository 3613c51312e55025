"""Supervised training and batched inference for the classifiers.

Base training and post-compression fine-tuning share this loop, so that every
strategy fine-tunes the same way on the same clean train split (DESIGN.md,
"Fair comparisons"). Fine-tuning may also distil from the uncompressed base
(``finetune.distill``): Hinton et al., "Distilling the Knowledge in a Neural
Network" (2015), ``(1 - w) CE + w T^2 KL(softmax(teacher / T) || softmax(student / T))``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["Distillation", "batches", "distillation_loss", "predict_logits", "train_classifier", "training_step"]

log = logging.getLogger(__name__)


def batches(images: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Shuffled mini-batches, in an order fixed by ``seed``."""
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        yield images[index], labels[index]


def training_step(batch: tuple[torch.Tensor, torch.Tensor], model: nn.Module) -> torch.Tensor:
    """Cross-entropy loss of one batch; also NNI's ``training_step`` hook."""
    inputs, targets = batch
    return nn.functional.cross_entropy(model(inputs), targets)


@dataclass(frozen=True)
class Distillation:
    """A teacher to distil from, at a softmax temperature, with the weight of its term in the loss."""

    teacher: nn.Module
    temperature: float
    weight: float


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
                      distillation: Distillation) -> torch.Tensor:
    """Hinton et al.'s loss: cross-entropy on the labels plus the softened teacher's KL, scaled by T^2 so that
    its gradients keep their size as T grows."""
    temperature = distillation.temperature
    soft = nn.functional.kl_div(nn.functional.log_softmax(student_logits / temperature, dim=1),
                                nn.functional.log_softmax(teacher_logits / temperature, dim=1),
                                reduction="batchmean", log_target=True) * temperature**2
    hard = nn.functional.cross_entropy(student_logits, targets)
    return (1.0 - distillation.weight) * hard + distillation.weight * soft


def train_classifier(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    label: str = "train",
    distillation: Distillation | None = None,
) -> float:
    """Train with Adam and a cosine schedule; returns the last epoch's mean loss.

    Args:
        model: The classifier; it normalises its own ``[0, 1]`` input.
        images: Float ``[N, 1, H, W]`` in ``[0, 1]``.
        labels: Class indices ``[N]``.
        epochs: Passes over the data; 0 leaves the model untouched.
        batch_size: Mini-batch size.
        learning_rate: Adam's initial step size.
        seed: Fixes the shuffling (and so, with the weights, the result).
        label: Names the phase in progress logs.
        distillation: A teacher whose softened outputs join the loss; None trains on the labels alone.
    """
    if epochs == 0 or len(images) == 0:
        return float("nan")
    torch.manual_seed(seed)  # dropout draws from the global generator
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # a GPU trial trains on its GPU
    model.to(device)
    teacher = distillation.teacher.to(device).eval() if distillation else None
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    steps = epochs * -(-len(images) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=learning_rate, total_steps=steps)
    model.train()
    mean_loss = float("nan")
    for epoch in range(epochs):
        total, count = 0.0, 0
        for inputs, targets in batches(images, labels, batch_size, seed + epoch):
            batch = (inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True))
            optimizer.zero_grad(set_to_none=True)
            if teacher is None:
                loss = training_step(batch, model)
            else:
                with torch.no_grad():
                    teacher_logits = teacher(batch[0])
                loss = distillation_loss(model(batch[0]), teacher_logits, batch[1], distillation)  # type: ignore[arg-type]
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(batch[0])
            count += len(batch[0])
        mean_loss = total / count
        log.info("%s epoch %d/%d: loss %.4f", label, epoch + 1, epochs, mean_loss)
    model.to("cpu").eval()  # measured and saved on the CPU, as a phone would run it
    if teacher is not None:
        teacher.to("cpu")
    return mean_loss


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Logits for a float batch, computed in eval mode."""
    model.eval()
    return torch.cat([model(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])
