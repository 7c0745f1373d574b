"""Separable window sums on any :class:`~poolkit._geometry.Geometry` (NumPy).

A window's sum over a box is a sum along each spatial dim in turn, so every pooling
that sums (average, Lp) runs as one strided add per kernel tap and dimension: any
dilation, any (asymmetric) pads, and windows that reach past the padded input (ONNX's
ceil rule before opset 22). Padding contributes 0. Used for dilated average pooling and
by :mod:`poolkit.onnx`; the PyTorch-exact kernels of undilated average pooling keep
their own summation order.
"""

from __future__ import annotations

import numpy as np

from ._geometry import Geometry


def accumulator(dtype: np.dtype) -> np.dtype:
    """Accumulation dtype: float32 for float16, the dtype itself otherwise."""
    return np.dtype(np.float32) if dtype == np.float16 else np.dtype(dtype)


def _padded_length(geom: Geometry, j: int) -> int:
    """Length of dim ``j`` once padded far enough for every window (at least the input)."""
    reach = (geom.out_size[j] - 1) * geom.stride[j] + geom.dilation[j] * (geom.kernel[j] - 1) + 1
    return max(reach, geom.pad_begin[j] + geom.in_size[j])


def _tap(ndim: int, axis: int, geom: Geometry, j: int, t: int) -> tuple[slice, ...]:
    """Index of tap ``t`` of every window along ``axis`` of a padded array."""
    s, d, n_out = geom.stride[j], geom.dilation[j], geom.out_size[j]
    sel = [slice(None)] * ndim
    sel[axis] = slice(t * d, t * d + (n_out - 1) * s + 1, s)
    return tuple(sel)


def _padded_zeros(like: np.ndarray, axis: int, geom: Geometry, j: int) -> np.ndarray:
    shape = list(like.shape)
    shape[axis] = _padded_length(geom, j)
    return np.zeros(shape, dtype=like.dtype)


def _input_part(ndim: int, axis: int, geom: Geometry, j: int) -> tuple[slice, ...]:
    """Index of the unpadded input inside a padded array."""
    sel = [slice(None)] * ndim
    sel[axis] = slice(geom.pad_begin[j], geom.pad_begin[j] + geom.in_size[j])
    return tuple(sel)


def window_sums(values: np.ndarray, geom: Geometry, first_axis: int = 2) -> np.ndarray:
    """Sum of every window of ``values`` (spatial axes from ``first_axis`` on).

    Parameters
    ----------
    values : ndarray
        ``(N, C, *in_size)`` (``first_axis=2``) or any leading axes before the spatial ones.
    geom : Geometry
        The windows; ``geom.in_size`` must match the spatial shape.

    Returns
    -------
    ndarray
        ``values.shape`` with the spatial sizes replaced by ``geom.out_size``.
    """
    cur = values
    for j in range(len(geom.kernel)):
        axis = first_axis + j
        padded = _padded_zeros(cur, axis, geom, j)
        padded[_input_part(cur.ndim, axis, geom, j)] = cur
        acc = padded[_tap(cur.ndim, axis, geom, j, 0)].copy()
        for t in range(1, geom.kernel[j]):
            acc += padded[_tap(cur.ndim, axis, geom, j, t)]
        cur = acc
    return cur


def window_sums_transpose(grad: np.ndarray, geom: Geometry, first_axis: int = 2) -> np.ndarray:
    """Adjoint of :func:`window_sums`: every input gets the sum of its windows' ``grad``.

    ``grad`` has the output's spatial sizes; the result has ``geom.in_size``.
    """
    cur = grad
    for j in reversed(range(len(geom.kernel))):
        axis = first_axis + j
        padded = _padded_zeros(cur, axis, geom, j)
        for t in range(geom.kernel[j]):
            padded[_tap(cur.ndim, axis, geom, j, t)] += cur  # one tap: no collisions
        cur = padded[_input_part(cur.ndim, axis, geom, j)]
    return np.ascontiguousarray(cur)


def window_counts(geom: Geometry, include_pad: bool) -> np.ndarray:
    """Divisor of every window, shaped ``(1, 1, *out_size)``.

    Counts the taps inside the input, or (``include_pad``) inside the padded input
    ``[-pad_begin, L + pad_end)``: taps of a ceil overhang past the end padding never count.
    """
    nd = len(geom.kernel)
    total = np.ones((1, 1) + (1,) * nd, dtype=np.int64)
    for j in range(nd):
        k, s, d = geom.kernel[j], geom.stride[j], geom.dilation[j]
        length, pb, pe = geom.in_size[j], geom.pad_begin[j], geom.pad_end[j]
        starts = np.arange(geom.out_size[j]) * s - pb
        taps = starts[:, None] + d * np.arange(k)[None, :]
        low, high = (-pb, length + pe) if include_pad else (0, length)
        count = ((taps >= low) & (taps < high)).sum(axis=1)
        shape = [1] * (nd + 2)
        shape[2 + j] = geom.out_size[j]
        total = total * count.reshape(shape)
    return total
