"""The trained base H-CNN, cached on disk by config hash.

Training takes about a minute on 2 cores, and every candidate of a search
starts from the same base, so it is trained once and loaded from
``cache_dir/base-<hash>.pt``. The hash covers everything that changes the
weights: data split, model config, seed and the hgen-ray version. Checkpoints hold only tensors and
numbers and are loaded with ``weights_only=True``, so a cache file cannot run
code; a corrupt file is reported and retrained over.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

import hgen_ray
from hgen_ray.atomic_write import replaced_atomically
from hgen_ray.config import ExperimentConfig, config_hash
from hgen_ray.data.splits import Splits
from hgen_ray.models.gate import fit_temperature
from hgen_ray.models.h_cnn import BaseCNN, build_h_cnn
from hgen_ray.models.training import predict_logits, train_classifier

__all__ = ["TrainedBase", "base_cache_path", "load_or_train_base"]

log = logging.getLogger(__name__)


@dataclass
class TrainedBase:
    model: BaseCNN
    temperature: float  # gate calibration on the clean validation split
    val_accuracy: float  # clean validation accuracy of the base model


def base_cache_path(config: ExperimentConfig) -> Path:
    key = config_hash(config.model, config.data.validation_size, config.seed, hgen_ray.__version__)
    return Path(config.cache_dir) / f"base-{key}.pt"


def _train(config: ExperimentConfig, splits: Splits) -> TrainedBase:
    torch.manual_seed(config.seed)
    model = build_h_cnn(config.model)
    images, labels = splits.train_images, splits.train_labels
    if config.model.train_subset:
        images, labels = images[: config.model.train_subset], labels[: config.model.train_subset]
    log.info("training the base %s on %d clean images", config.model.name, len(images))
    train_classifier(model, images, labels, epochs=config.model.epochs, batch_size=config.model.batch_size,
                     learning_rate=config.model.learning_rate, seed=config.seed, label="base")
    logits = predict_logits(model, splits.val_images)
    accuracy = float((logits.argmax(1) == splits.val_labels).float().mean())
    return TrainedBase(model, fit_temperature(logits, splits.val_labels), accuracy)


def _save(base: TrainedBase, path: Path) -> None:
    payload = {"state_dict": base.model.state_dict(), "temperature": base.temperature, "val_accuracy": base.val_accuracy}
    with replaced_atomically(path) as temporary:  # a concurrent reader sees old or new, never half
        torch.save(payload, temporary)


def _load(config: ExperimentConfig, path: Path) -> TrainedBase | None:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        model = build_h_cnn(config.model)
        model.load_state_dict(payload["state_dict"])
        return TrainedBase(model.eval(), float(payload["temperature"]), float(payload["val_accuracy"]))
    except Exception as error:  # any unreadable or foreign file: retrain rather than fail
        log.warning("ignoring unusable cached base model %s (%s); retraining", path, error)
        return None


def load_or_train_base(config: ExperimentConfig, splits: Splits) -> TrainedBase:
    """Load the cached base model for this config, or train and cache it."""
    path = base_cache_path(config)
    if path.is_file():
        cached = _load(config, path)
        if cached is not None:
            log.info("loaded base model from %s", path)
            return cached
    base = _train(config, splits)
    _save(base, path)
    log.info("trained base model: clean val accuracy %.4f, temperature %.3f, cached at %s",
             base.val_accuracy, base.temperature, path)
    return base
