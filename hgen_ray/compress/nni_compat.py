"""Make NNI 3.0's ModelSpeedup work on torch 2.14.

NNI 3.0 (2023-09) predates two torch changes that break its concrete tracer:

1. Torch renamed ``torch._C._TensorBase`` to ``TensorBase``. Three of its static
   builtins (``_make_subclass``, ``_make_wrapper_subclass``, ``_dtensor__new__``)
   now have ``__module__ = None``, so the tracer's autowrap loop fails with
   ``AttributeError: 'NoneType' object has no attribute 'startswith'``
   (NNI issue 5768). They construct tensor subclasses and never appear in a
   model's forward, so we remove them from the tracer's autowrap table.
2. ``torch.fx.Node.is_impure`` gained an ``impure_random`` argument; NNI's
   replacement takes only the node, so dead-code elimination fails with
   ``TypeError: Node.is_impure() takes 1 positional argument but 2 were given``.
   We wrap NNI's replacement so it accepts and ignores the new argument.

Call :func:`apply_nni_compat` in every process that speeds up a model; Ray
workers are separate processes, so ``compress.pruning`` calls it on import.
"""

from __future__ import annotations

import functools
from types import MethodDescriptorType, MethodWrapperType
from typing import Any

_applied = False


def _has_no_module(func: Any) -> bool:
    if isinstance(func, (MethodDescriptorType, MethodWrapperType)):
        return False  # NNI handles descriptors without reading __module__
    return getattr(func, "__module__", "") is None


def _drop_moduleless_builtins() -> int:
    from nni.common.concrete_trace_utils.concrete_tracer import ConcreteTracer

    table = ConcreteTracer.default_autowrap_leaf_function
    broken = [func for func in table if _has_no_module(func)]
    for func in broken:
        del table[func]
    return len(broken)


def _accept_impure_random_argument() -> None:
    from nni.common.concrete_trace_utils import concrete_tracer

    nni_is_impure = concrete_tracer.node_is_impure_wrapper

    @functools.wraps(nni_is_impure)
    def is_impure(node: Any, *_args: Any, **_kwargs: Any) -> bool:
        return nni_is_impure(node)

    concrete_tracer.node_is_impure_wrapper = is_impure


def apply_nni_compat() -> None:
    """Patch NNI's tracer for torch 2.14; safe to call more than once."""
    global _applied
    if _applied:
        return
    _drop_moduleless_builtins()
    _accept_impure_random_argument()
    _applied = True
