"""One candidate's compression: prune convs, factorise fcs, fine-tune."""

from __future__ import annotations

import copy
import logging

from torch import nn

from hgen_ray.compress.pruning import prune_conv_channels
from hgen_ray.compress.svd import factorize_linear, rank_for_ratio, replace_module
from hgen_ray.config import CONV_TECHNIQUES, FC_TECHNIQUES, Candidate, ConfigError, FinetuneConfig
from hgen_ray.data.splits import Splits
from hgen_ray.models.training import train_classifier

__all__ = ["compress_candidate", "validate_candidate"]

log = logging.getLogger(__name__)
_TECHNIQUES = {"conv": CONV_TECHNIQUES, "fc": FC_TECHNIQUES}
_DUMMY_BATCH = 2  # batch norm in train mode needs more than one sample per channel


def validate_candidate(candidate: Candidate, layers: dict[str, str]) -> None:
    """Check layer names and that each technique suits its layer kind.

    Raises:
        ConfigError: Naming the layer and what is allowed.
    """
    for name, choice in candidate.layers.items():
        if name not in layers:
            raise ConfigError(f"candidate.layers.{name}: no such compressible layer; allowed: {', '.join(layers)}")
        allowed = _TECHNIQUES[layers[name]]
        if choice.technique not in allowed:
            raise ConfigError(
                f"candidate.layers.{name}.technique: {choice.technique!r} does not apply to a "
                f"{layers[name]} layer; allowed: {', '.join(allowed)}"
            )


def compress_candidate(base: nn.Module, candidate: Candidate, layers: dict[str, str], splits: Splits,
                       finetune: FinetuneConfig, seed: int) -> nn.Module:
    """A compressed, fine-tuned copy of ``base``; ``base`` itself is untouched.

    Args:
        base: The trained base network.
        candidate: Per-layer technique and ratio (the human part is not used here).
        layers: The model's compressible layers, name -> ``conv`` or ``fc``.
        splits: Clean train images for Taylor scores and fine-tuning.
        finetune: Fine-tuning budget.
        seed: Fixes pruning batches and fine-tune order.
    """
    validate_candidate(candidate, layers)
    model = copy.deepcopy(base).eval()
    subset = finetune.subset or len(splits.train_images)
    images, labels = splits.train_images[:subset], splits.train_labels[:subset]
    convs = {n: c for n, c in candidate.layers.items() if layers[n] == "conv"}
    model = prune_conv_channels(model, convs, splits.train_images[:_DUMMY_BATCH], images, labels, seed)
    for name, choice in candidate.layers.items():
        if layers[name] == "fc" and choice.technique == "svd" and choice.ratio > 0:
            linear = model.get_submodule(name)
            assert isinstance(linear, nn.Linear)
            replace_module(model, name, factorize_linear(linear, rank_for_ratio(linear, choice.ratio)))
    changed = any(c.technique != "none" and c.ratio > 0 for c in candidate.layers.values())
    if changed and finetune.epochs:
        train_classifier(model, images, labels, epochs=finetune.epochs, batch_size=finetune.batch_size,
                         learning_rate=finetune.learning_rate, seed=seed, label="fine-tune")
    return model.eval()
