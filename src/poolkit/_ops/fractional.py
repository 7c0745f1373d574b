"""Fractional max pooling (Graham, 2014): ``fractional_max_pool2d/3d`` (docs/semantics.md §10).

Window starts follow PyTorch's pseudo-random sequence: for a sample ``u`` in [0, 1),
``alpha = (L - k) / (O - 1)``, ``start[i] = int((i + u) * alpha) - int(u * alpha)`` for
``i < O - 1`` and ``start[O - 1] = L - k``, computed in the input's float dtype.
Given the same samples, windows, values and indices equal PyTorch's.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .. import _args, _docs, _engine
from .._geometry import interval_starts, output_shape
from .._kernels import LazyModule
from .._types import IntOrTuple
from . import argmax

#: compiled kernels, imported (with numba) by the first call that needs them
_indexed: Any = LazyModule("indexed")

__all__ = [
    "fractional_max_pool2d",
    "fractional_max_pool2d_backward",
    "fractional_max_pool3d",
    "fractional_max_pool3d_backward",
]


def ratio_tuple(value: Any, nd: int) -> tuple[float, ...]:
    items = list(value) if isinstance(value, (tuple, list, np.ndarray)) else [value] * nd
    if len(items) != nd:
        raise ValueError(
            f"output_ratio must be a float or a tuple of {nd} floats, got {value!r}"
        )
    for v in items:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
            raise TypeError(f"output_ratio must be a float or a tuple of floats, got {value!r}")
    ratios = tuple(float(v) for v in items)
    if any(not 0.0 < r < 1.0 for r in ratios):
        raise ValueError(f"output_ratio must be in (0, 1) in every dimension, got {ratios}")
    return ratios


def _sizes(
    nd: int, kernel_size: Any, output_size: Any, output_ratio: Any, in_spatial: tuple[int, ...]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    kernel = _args.int_tuple(kernel_size, nd, "kernel_size", minimum=1)
    if output_size is not None:
        out = _args.int_tuple(output_size, nd, "output_size", minimum=1)
    elif output_ratio is not None:
        out = tuple(int(n * r) for n, r in zip(in_spatial, ratio_tuple(output_ratio, nd)))
        if any(o < 1 for o in out):
            raise ValueError(
                f"output_ratio={output_ratio!r} gives an empty output {out} for x with spatial "
                f"size {in_spatial}"
            )
    else:
        raise ValueError(
            f"fractional_max_pool{nd}d requires either output_size or output_ratio, got neither"
        )
    # PyTorch's limits: 2-D allows output + kernel - 1 == input, 3-D does not
    slack = 0 if nd == 2 else 1
    for j, (o, k, n) in enumerate(zip(out, kernel, in_spatial)):
        if o + k - 1 + slack > n:
            rule = "<=" if nd == 2 else "<"
            raise ValueError(
                f"output_size {out} with kernel_size {kernel} is too large for x with spatial "
                f"size {in_spatial}: dimension {j} needs output + kernel - 1 {rule} input "
                f"(got {o} + {k} - 1 vs {n})"
            )
    return kernel, out


def _draw_samples(rng: Any, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Uniform samples in [0, 1) in ``dtype`` (float16: multiples of 2**-11, never 1.0)."""
    if rng is None:
        rng = np.random.default_rng()
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator or None, got {rng!r}")
    if dtype == np.float16:
        return (rng.integers(0, 2048, size=shape) / 2048.0).astype(np.float16)
    return rng.random(shape, dtype=dtype)


def _samples(
    random_samples: Any, rng: Any, n_batch: int, n_chan: int, nd: int, dtype: np.dtype
) -> np.ndarray:
    shape = (n_batch, n_chan, nd)
    if random_samples is None:
        return _draw_samples(rng, shape, dtype)
    if isinstance(random_samples, np.ndarray) and random_samples.dtype != dtype:
        raise TypeError(
            f"random_samples must have the dtype of x ({dtype}), got {random_samples.dtype}"
        )
    arr = _args.as_array(random_samples, "random_samples")
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"random_samples must be a float array, got dtype {arr.dtype}")
    arr = arr.astype(dtype, copy=False)
    if arr.shape != shape:
        raise ValueError(
            f"random_samples must have shape (N, C, {nd}) = {shape}, got {arr.shape}"
        )
    if not (np.all(arr >= 0) and np.all(arr < 1)):
        raise ValueError("random_samples must lie in [0, 1)")
    return arr


def pool(
    x: Any,
    nd: int,
    kernel_size: Any,
    output_size: Any,
    output_ratio: Any,
    random_samples: Any,
    rng: Any,
):
    arr = _args.as_array(x)
    _args.check_dtype(arr, "x")
    batched = _args.check_input(arr.shape, nd, "x", False)
    in_spatial = _args.spatial_shape(arr.shape, nd, False)
    kernel, out_size = _sizes(nd, kernel_size, output_size, output_ratio, in_spatial)
    n_batch = arr.shape[0] if batched else 1
    n_chan = arr.shape[1 if batched else 0]
    sample_dtype = arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float64)
    u = _samples(random_samples, rng, n_batch, n_chan, nd, sample_dtype)
    u = u.reshape(n_batch * n_chan, nd)
    lead = 3 - nd
    starts = [np.zeros((n_batch * n_chan, 1), dtype=np.int64)] * lead
    # PyTorch: 2-D samples are (w, h), 3-D samples are (t, h, w)
    order = (1, 0) if nd == 2 else (0, 1, 2)
    for j in range(nd):
        starts.append(interval_starts(u[:, order[j]], in_spatial[j], out_size[j], kernel[j]))
    shape = output_shape(arr.shape, nd, out_size, False)
    out = np.empty(shape, dtype=_engine.comparable_dtype(arr.dtype))
    idx = np.empty(shape, dtype=np.int64)
    pool = np.array((1,) * lead + kernel, dtype=np.int64)
    o5 = _engine.kernel_view(out, nd, batched, False)
    _engine.run_tasks(
        _indexed.fractional_max_forward, o5.shape[0] * o5.shape[1] * o5.shape[2],
        out.size * math.prod(kernel),
        _engine.as_kernel_view(_engine.comparable(arr), nd, batched, False), o5,
        _engine.kernel_view(idx, nd, batched, False), starts[0], starts[1], starts[2], pool,
    )
    return _engine.restore(out, arr.dtype), idx


_FORWARD_DOC = """{nd}-D fractional max pooling, PyTorch's ``fractional_max_pool{nd}d``.

    Parameters
    ----------
    x : array_like
        ``{layout}`` or ``{unbatched}``; float16/32/64 (PyTorch's dtypes) or
        int8/16/32/64, uint8/16/32/64 (samples then in float64).
    kernel_size : int or tuple of {nd} ints
        Pooling window size.
    output_size : int or tuple of {nd} ints, optional
        Output spatial size; needs ``output + kernel - 1 <= input`` per dim (``<`` for
        3-D, as PyTorch).
    output_ratio : float or tuple of {nd} floats, optional
        In (0, 1): ``output = int(input * ratio)``. Used when ``output_size`` is None.
    return_indices : bool, default False
        Also return int64 flat indices of the maxima per ``(n, c)`` plane.
    random_samples : array_like, optional
        ``(N, C, {nd})`` samples in [0, 1) in the dtype of ``x`` (unbatched: N = 1),
        ordered {order} per plane as PyTorch's ``_random_samples``. Given the same
        samples, windows, values and indices equal PyTorch's.
    rng : numpy.random.Generator, optional
        Source of the samples when ``random_samples`` is None (a fresh
        ``default_rng()`` if both are None).

    Returns
    -------
    out : ndarray
        Dtype of ``x``.
    indices : ndarray of int64, optional
        With ``return_indices=True``.

    Notes
    -----
    First maximum wins ties, the last NaN wins. Stricter than PyTorch: samples outside
    [0, 1), a wrong samples shape and empty outputs are rejected.

    {examples}
    >>> x = np.arange(25.0 * {planes}).reshape((1, 1) + (2,) * {depth} + (5, 5))
    >>> k = {k22}
    >>> pk.fractional_max_pool{nd}d(x, k, output_size=k, rng=np.random.default_rng(0)).ravel()
    {result}
    """

_BACKWARD_DOC = """Gradient of :func:`fractional_max_pool{nd}d` with respect to its input.

    Each output gradient goes to the input that won its window; overlapping windows
    add up in output row-major order.

    Parameters
    ----------
    {grad}
    indices : array_like of int
        The indices returned by the forward pass.
    {input_shape}
    {backward}
    >>> x = np.arange(9.0 * {planes}).reshape((1, 1) + (2,) * {depth} + (3, 3))
    >>> k, o = {k22}, {o11}
    >>> y, i = pk.fractional_max_pool{nd}d(x, k, output_size=o, return_indices=True)
    >>> dx = pk.fractional_max_pool{nd}d_backward(np.ones_like(y), i, x.shape)
    >>> np.flatnonzero(dx), x.ravel()[np.flatnonzero(dx)]
    (array([{last}]), array([{last}.]))
    """


def _doc_fields(nd: int) -> dict[str, object]:
    """The examples' shapes: a stack of 5x5 (3x3) planes, 2x2 windows."""
    return {
        "order": "(w, h)" if nd == 2 else "(t, h, w)",
        "planes": 2 ** (nd - 2),
        "depth": nd - 2,
        "k22": (1,) * (nd - 2) + (2, 2),
        "o11": (1,) * (nd - 2) + (1, 1),
        "last": 9 * 2 ** (nd - 2) - 1,
        "result": "array([ 6.,  9., 21., 24.])" if nd == 2 else "array([31., 34., 46., 49.])",
    }


def _make_fractional(nd: int):
    def pool_nd(
        x: ArrayLike,
        kernel_size: IntOrTuple,
        output_size: IntOrTuple | None = None,
        output_ratio: float | tuple[float, ...] | None = None,
        return_indices: bool = False,
        random_samples: ArrayLike | None = None,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        want = _args.check_bool(return_indices, "return_indices")
        out, idx = pool(
            x, nd, kernel_size, output_size, output_ratio, random_samples, rng
        )
        return (out, idx) if want else out

    def backward(
        grad_output: ArrayLike, indices: ArrayLike, input_shape: tuple[int, ...],
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        return argmax.backward(grad_output, indices, input_shape, nd, False, out)

    extra = _doc_fields(nd)
    return (_docs.for_rank(pool_nd, f"fractional_max_pool{nd}d", _FORWARD_DOC, nd, **extra),
            _docs.for_rank(backward, f"fractional_max_pool{nd}d_backward", _BACKWARD_DOC, nd,
                           **extra))


fractional_max_pool2d, fractional_max_pool2d_backward = _make_fractional(2)
fractional_max_pool3d, fractional_max_pool3d_backward = _make_fractional(3)
