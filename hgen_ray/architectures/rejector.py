"""The rejector: a small head on a network's features that learns when deferring a sample pays.

Learning to defer (Madras et al., "Predict Responsibly", NeurIPS 2018; Mozannar and
Sontag, "Consistent Estimators for Learning to Defer to an Expert", ICML 2020) trains a
rejector to send a sample to the expert where the expert is likelier right than the
model. Here the head's target on an image is the network being wrong times one person's
chance on it (:func:`hgen_ray.human.image_difficulty.person_chance`, the simulator's own
people model), learned with a cross-entropy on that soft target.

It learns on the validation split only: clean validation images and their corruptions by
the families of ``gate.rejector_families`` (:mod:`hgen_ray.data.held_out_corruptions`),
none of which is one of the 12 test categories, so no strategy's gate is fitted on a
test category. It is fitted inside each trial, after fine-tuning, on that trial's network.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from hgen_ray.config import CHALLENGE_CATEGORIES, ConfigError
from hgen_ray.data.held_out_corruptions import apply_held_out, families_for

__all__ = ["Rejector", "RejectorSet", "rejector_from_state", "rejector_training_set", "train_rejector"]

REJECTOR_HIDDEN = 32  # assumed: units of the head's one hidden layer
REJECTOR_IMAGES = 500  # assumed: validation images it learns from, clean and once per family
REJECTOR_STEPS = 300  # assumed: full-batch Adam steps; the loss flattens well before on Fashion-MNIST
REJECTOR_LEARNING_RATE = 1e-2  # assumed
REJECTOR_SEED_OFFSET = 424_242  # its corruptions are drawn apart from the validation challenge set's
SEVERITIES = (1, 2, 3, 4, 5)


class Rejector(nn.Module):
    """``(features, class probabilities) -> confidence``: one minus the estimated chance that deferring pays.

    The probabilities enter sorted, so the head learns from how peaked they are, not which class they name.
    """

    def __init__(self, features: int, classes: int, hidden: int = REJECTOR_HIDDEN) -> None:
        super().__init__()
        self.register_buffer("feature_mean", torch.zeros(features))
        self.register_buffer("feature_std", torch.ones(features))
        self.layers = nn.Sequential(nn.Linear(features + classes, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def logit(self, features: torch.Tensor, probabilities: torch.Tensor) -> torch.Tensor:
        peaked = torch.sort(probabilities, dim=1, descending=True).values
        return self.layers(torch.cat([(features - self.feature_mean) / self.feature_std, peaked], dim=1)).squeeze(1)

    def confidence(self, features: torch.Tensor, probabilities: torch.Tensor) -> torch.Tensor:
        return 1.0 - torch.sigmoid(self.logit(features, probabilities))


def rejector_from_state(tensors: dict[str, torch.Tensor]) -> Rejector:
    """A rejector shaped like its saved tensors, loaded with them."""
    hidden, inputs = tensors["layers.0.weight"].shape
    features = len(tensors["feature_mean"])
    rejector = Rejector(features, inputs - features, hidden)
    rejector.load_state_dict(tensors)
    return rejector.eval()


@dataclass(frozen=True)
class RejectorSet:
    """What the rejector learns from: corrupted (or clean) validation images beside their clean originals."""

    images: torch.Tensor
    clean: torch.Tensor
    labels: torch.Tensor
    family: tuple[str, ...]  # per image: "clean" or the held-out family that made it


def rejector_training_set(images: torch.Tensor, labels: torch.Tensor, families: tuple[str, ...],
                          seed: int) -> RejectorSet:
    """The last ``REJECTOR_IMAGES`` validation images, clean and through each family at a random severity 1-5.

    The validation challenge set takes the first images, so these are other items where there are enough.

    Raises:
        ConfigError: No family is left that changes these images, or one is a test category.
    """
    usable = families_for(int(images.shape[1]), families)
    leaked = [f for f in families if f in CHALLENGE_CATEGORIES]
    if leaked or not usable:
        raise ConfigError(f"gate.rejector_families: {', '.join(leaked or families) or 'none'} "
                          f"{'is a test category' if leaked else 'leaves no family that changes these images'}; "
                          f"allowed: families not among the 12 test categories, such as {', '.join(families_for(1))}")
    clean, clean_labels = images[-REJECTOR_IMAGES:], labels[-REJECTOR_IMAGES:]
    generator = np.random.default_rng(seed + REJECTOR_SEED_OFFSET)
    parts, names = [clean], ["clean"] * len(clean)
    for offset, family in enumerate(usable):
        severity = generator.choice(SEVERITIES, size=len(clean))
        corrupted = clean.clone()
        for level in SEVERITIES:
            chosen = torch.from_numpy(np.flatnonzero(severity == level))
            if len(chosen):
                corrupted[chosen] = apply_held_out(clean[chosen], family, int(level), seed + REJECTOR_SEED_OFFSET
                                                   + 10 * offset + int(level))
        parts.append(corrupted)
        names += [family] * len(clean)
    repeats = len(parts)
    return RejectorSet(torch.cat(parts), clean.repeat(repeats, 1, 1, 1), clean_labels.repeat(repeats), tuple(names))


def train_rejector(features: torch.Tensor, probabilities: torch.Tensor, target: torch.Tensor,
                   seed: int) -> dict[str, torch.Tensor]:
    """Fit the head to the soft target (the network wrong times a person's chance); its tensors.

    Args:
        features: Penultimate features of the training images.
        probabilities: The network's calibrated class probabilities on them.
        target: In [0, 1]: how much deferring each image pays.
        seed: Seeds the head's initial weights.
    """
    with torch.random.fork_rng():  # the trial's own random stream is left as it was
        torch.manual_seed(seed)
        rejector = Rejector(features.shape[1], probabilities.shape[1])
    rejector.feature_mean.copy_(features.mean(0))
    rejector.feature_std.copy_(features.std(0).clamp_min(1e-6))
    optimizer = torch.optim.Adam(rejector.parameters(), lr=REJECTOR_LEARNING_RATE)
    for _ in range(REJECTOR_STEPS):
        optimizer.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(rejector.logit(features, probabilities), target)
        loss.backward()
        optimizer.step()
    return {name: tensor.detach().clone() for name, tensor in rejector.state_dict().items()}

