"""Datasets: Fashion-MNIST and the 12 challenge categories."""

from hgen_ray.data.challenges import CHALLENGES, apply_challenge
from hgen_ray.data.fashion_mnist import CLASS_NAMES, DatasetError, FashionMNIST, load_fashion_mnist, resolve_data_root

__all__ = [
    "CHALLENGES",
    "CLASS_NAMES",
    "DatasetError",
    "FashionMNIST",
    "apply_challenge",
    "load_fashion_mnist",
    "resolve_data_root",
]
