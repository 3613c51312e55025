"""Datasets: an image-classification dataset (Fashion-MNIST by default) and the 12 challenge categories."""

from hgen_ray.data.challenges import CHALLENGES, apply_challenge
from hgen_ray.data.dataset_error import DatasetError
from hgen_ray.data.fashion_mnist import CLASS_NAMES, FashionMNIST, is_fashion_mnist, load_fashion_mnist, \
    resolve_data_root
from hgen_ray.data.image_dataset import ImageDataset, load_image_dataset
from hgen_ray.data.image_formats import FORMATS, ImageSplit, read_split

__all__ = [
    "CHALLENGES",
    "CLASS_NAMES",
    "DatasetError",
    "FORMATS",
    "FashionMNIST",
    "ImageDataset",
    "ImageSplit",
    "apply_challenge",
    "is_fashion_mnist",
    "load_fashion_mnist",
    "load_image_dataset",
    "read_split",
    "resolve_data_root",
]
