"""hgen-ray's version, in a module that imports nothing, so that any module may read it."""

__version__ = "0.1.0"
