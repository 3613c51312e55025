"""Compression: NNI channel pruning with speedup, SVD for fc layers; generic over networks."""

from hgen_ray.compress.nni_compat import apply_nni_compat
from hgen_ray.compress.pipeline import CompressionPlan, compress_network, validate_candidate
from hgen_ray.compress.pruning import TaylorData
from hgen_ray.compress.quantization import Int8Conv2d, Int8Linear, quantize_layers, rebuilt_with_int8
from hgen_ray.compress.svd import factorize_linear, rank_for_ratio

__all__ = ["CompressionPlan", "Int8Conv2d", "Int8Linear", "TaylorData", "apply_nni_compat", "compress_network",
           "factorize_linear", "quantize_layers", "rank_for_ratio", "rebuilt_with_int8", "validate_candidate"]
