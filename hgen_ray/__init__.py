"""hgen-ray: generate human-in-the-loop DNNs (H-DNNs) for mobile apps, on Ray."""

from typing import Any

from hgen_ray.version import __version__

__all__ = ["__version__", "load_hdnn"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `import hgen_ray` (and the CLI's argument parsing) does not import torch.
    if name == "load_hdnn":
        from hgen_ray.hdnn import load_hdnn

        return load_hdnn
    raise AttributeError(f"module 'hgen_ray' has no attribute {name!r}")
