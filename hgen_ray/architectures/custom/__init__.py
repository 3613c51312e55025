"""The user's own classifier, through an import path.

    model: {name: custom, factory: "mypkg.nets:build"}

``build(num_classes: int, in_channels: int)`` returns an ``nn.Module`` taking
``[N, in_channels, H, W]`` images in ``[0, 1]`` and returning class logits.
Compressible layers are found automatically (or named in ``model.layers``).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from collections.abc import Callable

from torch import nn

from hgen_ray.architectures.classifier import ImageClassifier
from hgen_ray.architectures.weights import file_digest, load_user_weights
from hgen_ray.config import ConfigError, ExperimentConfig

__all__ = ["CustomClassifier", "load_factory"]

FACTORY_FORM = '"package.module:function"'


def load_factory(path: str) -> Callable[..., nn.Module]:
    """The function at ``path``.

    Raises:
        ConfigError: It is malformed, does not import, or is not callable.
    """
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"model.factory: {path!r} is not an import path; allowed: {FACTORY_FORM}")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # a missing module or one that fails on import: the user's to fix
        raise ConfigError(f"model.factory: {path!r} does not import ({type(error).__name__}: {error}); "
                          f"allowed: {FACTORY_FORM} on the PYTHONPATH") from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise ConfigError(f"model.factory: {module_name} has no function {attribute!r}; allowed: {FACTORY_FORM}")
    return factory


class CustomClassifier(ImageClassifier):
    name = "custom"

    def check_config(self, config: ExperimentConfig) -> None:
        load_factory(config.model.factory)

    def build(self, config: ExperimentConfig, channels: int, num_classes: int) -> nn.Module:
        network = load_factory(config.model.factory)(num_classes=num_classes, in_channels=channels)
        if not isinstance(network, nn.Module):
            raise ConfigError(f"model.factory: {config.model.factory!r} returned {type(network).__name__}, "
                              "not an nn.Module; allowed: a function returning a torch.nn.Module")
        return network

    def starting_point(self, config: ExperimentConfig) -> str:
        """The factory's module source and the weights file: editing either makes a new base."""
        try:
            source = inspect.getsource(inspect.getmodule(load_factory(config.model.factory)))  # type: ignore[arg-type]
        except (OSError, TypeError):  # no source to read (a compiled module): its name alone keys the cache
            source = config.model.factory
        weights = file_digest(config.model.weights) if config.model.weights else ""
        return hashlib.sha256(source.encode()).hexdigest() + weights

    def starting_weights(self, config: ExperimentConfig, model: nn.Module) -> bool:
        if not config.model.weights:
            return False
        load_user_weights(model, config.model.weights)
        return True
