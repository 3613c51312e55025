"""hgen-ray: generate human-in-the-loop DNNs (H-DNNs) for mobile apps, on Ray."""

__version__ = "0.1.0"
__all__ = ["__version__"]
