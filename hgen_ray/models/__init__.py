"""Models: the H-CNN network, its gate, training and the cached base model."""

from hgen_ray.models.base_model import TrainedBase, load_or_train_base
from hgen_ray.models.gate import confidence, defer_mask, fit_temperature
from hgen_ray.models.h_cnn import COMPRESSIBLE_LAYERS, BaseCNN, build_h_cnn
from hgen_ray.models.training import predict_logits, train_classifier

__all__ = [
    "COMPRESSIBLE_LAYERS",
    "BaseCNN",
    "TrainedBase",
    "build_h_cnn",
    "confidence",
    "defer_mask",
    "fit_temperature",
    "load_or_train_base",
    "predict_logits",
    "train_classifier",
]
