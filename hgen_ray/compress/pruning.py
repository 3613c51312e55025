"""Channel pruning of conv layers with NNI, then physical speedup.

NNI's pruners only compute masks; ``ModelSpeedup`` then rebuilds the layers
with fewer channels (and shrinks whatever consumes them: batch norm, the next
conv, the first fc), so the pruned model is really smaller and faster.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import warnings

import torch
from torch import nn

with warnings.catch_warnings():
    # NNI 3.0 re-registers torch.fx pytree nodes through a deprecated torch API on import.
    warnings.simplefilter("ignore", FutureWarning)
    warnings.filterwarnings("ignore", message=r".*already registered as pytree node.*")
    import nni
    from nni.compression.pruning import FPGMPruner, L1NormPruner, L2NormPruner, TaylorPruner
    from nni.compression.speedup import ModelSpeedup
    from nni.compression.utils import TorchEvaluator

from hgen_ray.compress.nni_compat import apply_nni_compat
from hgen_ray.config import LayerChoice

__all__ = ["TAYLOR_TRAINING_STEPS", "TaylorData", "prune_conv_channels"]

apply_nni_compat()  # every process that imports this module can speed up
# NNI's speedup logs every replaced layer at INFO; route it to our own logger.
_speedup_log = logging.getLogger(__name__ + ".speedup")
_speedup_log.setLevel(logging.WARNING)

TAYLOR_TRAINING_STEPS = 20  # batches of gradients Taylor averages before scoring channels
_NORM_PRUNERS = {"l1": L1NormPruner, "l2": L2NormPruner, "fpgm": FPGMPruner}

Masks = dict[str, dict[str, torch.Tensor]]


@contextlib.contextmanager
def _quiet_nni() -> Iterator[None]:
    """Silence NNI's per-layer INFO logs and the debug prints in its mask_conflict."""
    loggers = [logging.getLogger(n) for n in list(logging.root.manager.loggerDict) if n.startswith("nni")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)  # "both dim0 and dim1 masks found" is expected when chained convs are pruned
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


@dataclass(frozen=True)
class TaylorData:
    """Where Taylor pruning takes its gradients from.

    ``step(batch, module)`` returns the loss of one batch. For a classifier it is
    the cross-entropy of ``module``; for a detector pruned part by part it is the
    whole detector's loss (the part is wrapped in place, so gradients reach it).
    """

    batches: Callable[[], Iterable[Any]]
    step: Callable[[Any, nn.Module], torch.Tensor]


def _taylor_evaluator(data: TaylorData) -> TorchEvaluator:
    def training(model: nn.Module, optimizers: torch.optim.Optimizer, step: Callable, lr_schedulers: object = None,
                 max_steps: int | None = None, max_epochs: int | None = None) -> None:
        model.train()
        # NNI scores channels only once it has seen max_steps batches, so a small subset is gone
        # through again until then (with too few steps every channel silently stays).
        steps = max_steps if max_steps is not None else sum(1 for _ in data.batches())
        done = 0
        while done < steps:
            for batch in data.batches():
                if done >= steps:
                    break
                optimizers.zero_grad()
                step(batch, model).backward()
                optimizers.step()
                done += 1

    return TorchEvaluator(training, nni.trace(torch.optim.SGD)([torch.zeros(1)], lr=0.0), data.step)


def _masks_for(model: nn.Module, technique: str, layers: dict[str, float], taylor: TaylorData) -> Masks:
    config_list = [{"op_names": [name], "sparse_ratio": ratio} for name, ratio in layers.items()]
    if technique == "taylor":
        pruner = TaylorPruner(model, config_list, _taylor_evaluator(taylor), TAYLOR_TRAINING_STEPS)
    else:
        pruner = _NORM_PRUNERS[technique](model, config_list)
    _, masks = pruner.compress()  # TaylorPruner.compress() takes no arguments in NNI 3.0
    pruner.unwrap_model()
    return masks


def prune_conv_channels(model: nn.Module, choices: dict[str, LayerChoice], dummy_input: torch.Tensor,
                        taylor: TaylorData) -> nn.Module:
    """Prune each chosen conv layer's output channels, then speed the model up.

    Args:
        model: The network (or the traceable part of one) to prune, modified in place.
        choices: Conv layer name (within ``model``) -> technique (l1, l2, fpgm, taylor) and sparse ratio.
        dummy_input: A batch the tracer runs through ``model`` to find what consumes each channel.
        taylor: Clean training batches and their loss, for Taylor scores.
    """
    by_technique: dict[str, dict[str, float]] = defaultdict(dict)
    for name, choice in choices.items():
        if choice.technique != "none" and choice.ratio > 0:
            by_technique[choice.technique][name] = choice.ratio
    if not by_technique:
        return model
    masks: Masks = {}
    for technique, layers in sorted(by_technique.items()):
        masks.update(_masks_for(model, technique, layers, taylor))
    model.eval()
    with _quiet_nni():
        ModelSpeedup(model, dummy_input, masks, logger=_speedup_log).speedup_model()
    return model
