"""One candidate's compression: prune convs, factorise fcs, fine-tune.

The classifier is pruned and sped up whole. A detector is too when it traces
(H-YOLO); Faster R-CNN's forward has data-dependent control flow that NNI's
tracer cannot follow, so its backbone is pruned and sped up as its own module,
while Taylor scores still come from the whole detector's loss.
"""

from __future__ import annotations

import copy
import logging

from torch import nn

from hgen_ray.compress.pruning import TaylorData, classifier_taylor_data, prune_conv_channels
from hgen_ray.compress.svd import factorize, replace_module
from hgen_ray.config import CONV_TECHNIQUES, FC_TECHNIQUES, Candidate, ConfigError, FinetuneConfig, LayerChoice
from hgen_ray.data.detection_splits import DetectionSet
from hgen_ray.data.splits import Splits
from hgen_ray.models.detectors import detection_batches, detection_loss, train_detector
from hgen_ray.models.h_faster_rcnn import HFasterRCNN, SPEEDUP_MODULE
from hgen_ray.models.training import train_classifier

__all__ = ["compress_candidate", "compress_detector", "validate_candidate"]

log = logging.getLogger(__name__)
_TECHNIQUES = {"conv": CONV_TECHNIQUES, "fc": FC_TECHNIQUES}
_DUMMY_BATCH = 2  # batch norm in train mode needs more than one sample per channel
_DETECTOR_TAYLOR_BATCH = 16


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
    model = prune_conv_channels(model, convs, splits.train_images[:_DUMMY_BATCH],
                                classifier_taylor_data(images, labels, seed))
    _factorise_fcs(model, candidate, layers)
    if finetune.epochs:  # uncompressed too: every candidate and reference gets the same training (fair comparison)
        train_classifier(model, images, labels, epochs=finetune.epochs, batch_size=finetune.batch_size,
                         learning_rate=finetune.learning_rate, seed=seed, label="fine-tune")
    return model.eval()


def _factorise_fcs(model: nn.Module, candidate: Candidate, layers: dict[str, str]) -> None:
    for name, choice in candidate.layers.items():
        if layers[name] == "fc" and choice.technique == "svd" and choice.ratio > 0:
            replace_module(model, name, factorize(model.get_submodule(name), choice.ratio))


def _prune_detector_convs(model: nn.Module, convs: dict[str, LayerChoice], train: DetectionSet, seed: int) -> None:
    # The loss is the whole detector's, in training mode: NNI only puts the pruned part in it,
    # and Faster R-CNN returns detections, not losses, in eval mode.
    taylor = TaylorData(lambda: detection_batches(train, _DETECTOR_TAYLOR_BATCH, seed),
                        lambda batch, _part: detection_loss(model.train(), *batch))
    dummy = train.images[:_DUMMY_BATCH]
    if isinstance(model, HFasterRCNN):
        prefix = SPEEDUP_MODULE + "."
        part = model.get_submodule(SPEEDUP_MODULE)
        within = {name.removeprefix(prefix): choice for name, choice in convs.items()}
        prune_conv_channels(part, within, model.transform(list(dummy))[0].tensors, taylor)
    else:
        prune_conv_channels(model, convs, dummy, taylor)


def compress_detector(base: nn.Module, candidate: Candidate, layers: dict[str, str], train: DetectionSet,
                      finetune: FinetuneConfig, seed: int) -> nn.Module:
    """A compressed, fine-tuned copy of a base detector; ``base`` itself is untouched.

    Args:
        base: The trained H-YOLO or H-Faster-RCNN.
        candidate: Per-layer technique and ratio (the human part is not used here).
        layers: The detector's compressible layers, name -> ``conv`` or ``fc``.
        train: Clean train canvases for Taylor scores and fine-tuning.
        finetune: Fine-tuning budget (``subset`` counts canvases).
        seed: Fixes pruning batches and fine-tune order.
    """
    validate_candidate(candidate, layers)
    model = copy.deepcopy(base).eval()
    data = train.subset(finetune.subset) if finetune.subset else train
    convs = {n: c for n, c in candidate.layers.items() if layers[n] == "conv"}
    _prune_detector_convs(model, convs, data, seed)
    _factorise_fcs(model, candidate, layers)
    if finetune.epochs:  # uncompressed too, as for the classifier
        train_detector(model, data, epochs=finetune.epochs, batch_size=finetune.batch_size,
                       learning_rate=finetune.learning_rate, seed=seed, label="fine-tune")
    return model.eval()
