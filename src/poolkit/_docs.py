"""Per-rank docstrings: each public function's docstring is written once, where the
function is defined, as a template; :func:`for_rank` fills in the rank's layouts and
example shapes (``{nd}``, ``{layout}``, ...), so ``help(pk.avg_pool3d)`` reads as if it
had been written for 3-D alone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: Blocks shared by many docstrings (``{out}`` in a template).
BLOCKS = {
    "out": "out : ndarray, optional\n"
    "        A C-contiguous array of the input's shape and ``grad_output``'s dtype, sharing no\n"
    "        memory with the other arguments, to write the result into (fully overwritten).",
    "grad": "grad_output : array_like\n        float16/32/64, shaped like the forward output.",
    "input_shape": "input_shape : tuple of int\n        Shape of the forward input.",
    "examples": "Examples\n    --------\n    >>> import numpy as np, poolkit as pk",
}
#: The end of every ``*_backward`` docstring: ``out``, Returns and the examples' import.
BLOCKS["backward"] = BLOCKS["out"] + """

    Returns
    -------
    grad_input : ndarray
        The input's shape, dtype of ``grad_output`` (``out`` when given).

    """ + BLOCKS["examples"]

_LAYOUTS = {
    1: ("(N, C, L)", "(C, L)", "(N, L, C)", "(L, C)"),
    2: ("(N, C, H, W)", "(C, H, W)", "(N, H, W, C)", "(H, W, C)"),
    3: ("(N, C, D, H, W)", "(C, D, H, W)", "(N, D, H, W, C)", "(D, H, W, C)"),
}


def fields(nd: int) -> dict[str, Any]:
    """The placeholders a rank template may use."""
    first, unbatched, cl, cl_unbatched = _LAYOUTS[nd]
    return {
        **BLOCKS,
        "nd": nd,
        "layout": first,
        "unbatched": unbatched,
        "cl": cl,
        "cl_unbatched": cl_unbatched,
        # a (1, 1, ..., 1, n) example input and a (1, ..., 2) window along the last axis
        "row4": "(1, 1) + (1,) * " + str(nd - 1) + " + (4,)",
        "row2": "(1, 1) + (1,) * " + str(nd - 1) + " + (2,)",
        "k2": "(1,) * " + str(nd - 1) + " + (2,)",
        "ones": "(1,) * " + str(nd + 1) + " + (1,)",
    }


def shared(fn: Callable[..., Any], **extra: str) -> Callable[..., Any]:
    """Fill the shared blocks (:data:`BLOCKS`, and a module's own ``extra`` ones) into
    ``fn``'s docstring."""
    fn.__doc__ = (fn.__doc__ or "").format(**BLOCKS, **extra)
    return fn


def for_rank(fn: Callable[..., Any], name: str, template: str, nd: int,
             **extra: Any) -> Callable[..., Any]:
    """Name ``fn`` and give it ``template`` filled in for ``nd`` spatial dims (plus any
    ``extra`` placeholders of its own)."""
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = template.format(**fields(nd), **extra)
    return fn
