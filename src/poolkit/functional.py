"""The functional API: every pooling function and its ``*_backward``.

Each function lives with its family in :mod:`poolkit._ops` (options, forward, backward
and the entry point on a resolved geometry); this module is the public face that
gathers them. Semantics: docs/semantics.md.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _args
from ._ops import adaptive as _adaptive
from ._ops import avg_pool as _avg_pool
from ._ops import fractional as _fractional
from ._ops import global_pool as _global_pool
from ._ops import lp_pool as _lp_pool
from ._ops import max_pool as _max_pool
from ._ops import unpool as _unpool
from ._ops.adaptive import *  # noqa: F403
from ._ops.avg_pool import *  # noqa: F403
from ._ops.fractional import *  # noqa: F403
from ._ops.global_pool import *  # noqa: F403
from ._ops.lp_pool import *  # noqa: F403
from ._ops.max_pool import *  # noqa: F403
from ._ops.unpool import *  # noqa: F403
from ._types import IntOrTuple, Padding

__all__ = sorted(
    name
    for family in (_max_pool, _avg_pool, _lp_pool, _adaptive, _global_pool, _fractional, _unpool)
    for name in family.__all__
)


def _dask_aware(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, except that a dask array as first argument goes to the same-named function
    of :mod:`poolkit.dask` (imported on first use), which returns a lazy result."""
    name = fn.__name__

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        if args and type(args[0]) is not np.ndarray and _args.is_dask(args[0]):
            from . import dask as lazy

            target = getattr(lazy, name, None)
            if target is None:
                raise TypeError(f"{name} has no dask version; compute the input first")
            return target(*args, **kwargs)
        return fn(*args, **kwargs)

    return call


for _name in __all__:
    globals()[_name] = _dask_aware(globals()[_name])
del _name

__all__ += ["IntOrTuple", "Padding"]
