"""Compression: NNI channel pruning with speedup, SVD for fc layers, fine-tuning."""

from hgen_ray.compress.nni_compat import apply_nni_compat
from hgen_ray.compress.pipeline import compress_candidate, validate_candidate
from hgen_ray.compress.svd import factorize_linear, rank_for_ratio

__all__ = ["apply_nni_compat", "compress_candidate", "factorize_linear", "rank_for_ratio", "validate_candidate"]
