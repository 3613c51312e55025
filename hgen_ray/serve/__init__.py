"""``hgen-ray serve``: a saved H-DNN on Ray Serve, with a web page where real people answer what it defers.

The stage after search and export: it reads a saved H-DNN (:mod:`hgen_ray.hdnn`) and never feeds a search.
"""
