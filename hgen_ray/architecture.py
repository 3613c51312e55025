"""What differs between the three H-DNNs when a search is set up.

The search, its space and its budget check need four things of the chosen
``model.name``: its compressible layers, an input sample, its data plus
trained base model, and a way to compress that base. This module answers them
for H-CNN (Fashion-MNIST images) and the detectors (canvases), so that the
search code reads the same for all three.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn

from hgen_ray.compress import compress_candidate
from hgen_ray.compress.pipeline import compress_detector
from hgen_ray.config import CHALLENGE_CATEGORIES, DETECTOR_NAMES, Candidate, ExperimentConfig, FinetuneConfig
from hgen_ray.data.splits import Splits, build_challenge_set, load_splits
from hgen_ray.evaluate_detection import DetectionData, load_detection_data
from hgen_ray.models import COMPRESSIBLE_LAYERS, confidence, fit_temperature, load_or_train_base, predict_logits
from hgen_ray.models.detectors import DETECTOR_LAYERS, load_or_train_detector
from hgen_ray.models.h_cnn import IMAGE_SIDE

__all__ = ["TAU_GRID", "compress_for", "compressible_layers", "estimated_deferral", "input_sample",
           "load_data_and_base"]

TAU_GRID = np.linspace(0.0, 1.0, 101)


def is_detector(config: ExperimentConfig) -> bool:
    return config.model.name in DETECTOR_NAMES


def compressible_layers(config: ExperimentConfig) -> dict[str, str]:
    return DETECTOR_LAYERS[config.model.name] if is_detector(config) else COMPRESSIBLE_LAYERS


def input_sample(config: ExperimentConfig) -> torch.Tensor:
    """One random input of the model's shape, for tracing and FLOP counts."""
    side = config.detection.canvas_size if is_detector(config) else IMAGE_SIDE
    return torch.rand(1, 1, side, side, generator=torch.Generator().manual_seed(config.seed))


def load_data_and_base(config: ExperimentConfig) -> tuple[Splits | DetectionData, nn.Module]:
    """A search's data and the trained (cached) base model.

    The data holds the train part cut to the fine-tuning subset and the validation split the
    search scores on; never the test split, which only the final evaluation of the chosen H-DNNs reads.
    """
    subset = config.finetune.subset
    if is_detector(config):
        data = load_detection_data(config, "validation")
        base = load_or_train_detector(config, data.splits.train, data.splits.val).model
        if subset:
            data = dataclasses.replace(data, splits=dataclasses.replace(data.splits,
                                                                        train=data.splits.train.subset(subset)))
        return data, base
    splits = load_splits(config.data, config.seed, with_test=False)
    classifier = load_or_train_base(config, splits).model
    subset = subset or len(splits.train_images)
    return dataclasses.replace(splits, train_images=splits.train_images[:subset],
                               train_labels=splits.train_labels[:subset]), classifier


def estimated_deferral(config: ExperimentConfig, base: nn.Module, data: Splits | DetectionData) -> np.ndarray | None:
    """Share of challenge samples the base H-CNN's gate defers at each tau of :data:`TAU_GRID`.

    Measured on the validation challenge set the search scores on (never on test
    images), for the search's labour limit. None for the detectors, whose gates
    are per cell or per image.
    """
    if not isinstance(data, Splits):
        return None
    temperature = fit_temperature(predict_logits(base, data.val_images), data.val_labels)
    challenge = build_challenge_set(data, config.data, config.seed, "validation")
    scores = torch.cat([confidence(predict_logits(base, challenge.images[c]), temperature)
                        for c in CHALLENGE_CATEGORIES])
    return np.array([float((scores < tau).float().mean()) for tau in TAU_GRID])


def compress_for(config: ExperimentConfig, base: nn.Module, candidate: Candidate, data: Splits | DetectionData,
                 finetune: FinetuneConfig) -> nn.Module:
    """``base`` compressed for ``candidate`` and fine-tuned with ``finetune``."""
    layers = compressible_layers(config)
    if isinstance(data, DetectionData):
        return compress_detector(base, candidate, layers, data.splits.train, finetune, config.seed)
    return compress_candidate(base, candidate, layers, data, finetune, config.seed)
