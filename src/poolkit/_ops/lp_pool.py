"""Lp (power-average) pooling: ``lp_pool*`` and ``lp_pool*_backward`` (docs/semantics.md §8).

Without padding or dilation, PyTorch's formula on the average-pooling kernels:
``(avg_pool(|x|^p) * prod(kernel))^(1/p)``. With them (ONNX LpPool), the window sums
of ``|x|^p`` (:func:`sums_on`, the entry point on a resolved geometry).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .. import _args, _engine
from .._geometry import Geometry, output_shape
from .._types import IntOrTuple, Padding
from .._window_sum import window_sums, window_sums_transpose
from . import avg_pool
from .avg_pool import AvgPoolParams
from .params import PoolParams, rank_functions

__all__ = [
    "lp_pool1d",
    "lp_pool1d_backward",
    "lp_pool2d",
    "lp_pool2d_backward",
    "lp_pool3d",
    "lp_pool3d_backward",
]


def power(a: np.ndarray, p: float) -> np.ndarray:
    """``a ** p`` with PyTorch's special cases (exact products and roots) for ``pow``."""
    if p == 1.0:
        return a.copy()
    if p == 2.0:
        return a * a
    if p == 3.0:
        return a * a * a
    if p == 0.5:
        return np.sqrt(a)
    return np.power(a, a.dtype.type(p))


@dataclass(frozen=True)
class LpPoolParams(PoolParams):
    """Validated Lp pooling options: an exponent plus the average pooling options."""

    norm_type: float
    avg: AvgPoolParams

    @classmethod
    def _parse(
        cls,
        nd: int,
        norm_type: float,
        kernel_size: IntOrTuple,
        stride: IntOrTuple | None = None,
        ceil_mode: bool = False,
        channels_last: bool = False,
        padding: Padding = 0,
        dilation: IntOrTuple = 1,
    ) -> LpPoolParams:
        """The options of every Lp pooling function and layer."""
        p = _args.check_norm_type(norm_type)
        avg = AvgPoolParams.parse(
            nd, kernel_size, stride, padding, ceil_mode, True, None, channels_last, dilation
        )
        return cls(p, avg)

    @property
    def extended(self) -> bool:
        """Padding or dilation (ONNX LpPool): window sums instead of PyTorch's formula."""
        spec = self.avg.padding
        padded = spec.mode != "explicit" or any(spec.begin) or any(spec.end)
        return padded or self.avg.dilated


def sums_on(arr: np.ndarray, geom: Geometry, batched: bool, channels_last: bool,
            p: float) -> np.ndarray:
    """``sum over each window of |x|^p`` (opmath, channels first) on a resolved geometry;
    padding contributes 0. The entry point of ONNX LpPool and the padded/dilated path."""
    work = np.float64 if arr.dtype == np.float64 else np.float32
    planes = _engine.channels_first(arr, batched, channels_last).astype(work)
    return window_sums(power(np.abs(planes), p), geom)


def forward_on(arr: np.ndarray, geom: Geometry, batched: bool, channels_last: bool,
               p: float) -> np.ndarray:
    """ONNX's ``(sum of |x|^p over the window)^(1/p)`` in ``arr``'s layout and dtype."""
    total = sums_on(arr, geom, batched, channels_last, p)
    return _engine.from_channels_first(power(total, 1.0 / p), batched, channels_last,
                                       arr.dtype)


def pool(x: Any, p: LpPoolParams) -> np.ndarray:
    """Lp pooling on validated options; validates ``x``."""
    arr = _args.as_array(x)
    _args.check_dtype(arr, "x", _args.FLOAT_DTYPES)
    a = p.avg
    if p.extended:
        batched = _args.check_input(arr.shape, a.nd, "x", a.channels_last)
        geom = a.geometry(_args.spatial_shape(arr.shape, a.nd, a.channels_last))
        return forward_on(arr, geom, batched, a.channels_last, p.norm_type)
    mean = avg_pool.pool(power(np.abs(arr), p.norm_type), a)
    scaled = mean * arr.dtype.type(np.prod(a.kernel))
    return power(scaled, 1.0 / p.norm_type)


def _window_scale(p: AvgPoolParams, geom: Geometry, batched: bool) -> np.ndarray:
    """prod(kernel) / clipped window size per output, broadcastable to the output."""
    scale = np.ones((1,) * (p.nd + 1 + batched), dtype=np.float64)
    for j in range(p.nd):
        starts = np.arange(geom.out_size[j]) * geom.stride[j]
        lengths = np.minimum(starts + geom.kernel[j], geom.in_size[j]) - starts
        shape = [1] * scale.ndim
        axis = scale.ndim - p.nd - 1 + j if p.channels_last else scale.ndim - p.nd + j
        shape[axis] = geom.out_size[j]
        scale = scale * (geom.kernel[j] / lengths).reshape(shape)
    return scale


def _local(x64: np.ndarray, norm: float, ax: np.ndarray | None = None) -> np.ndarray:
    """``sign(x) |x|^(p-1)``, 0 where ``x`` is 0 (or NaN): the factor every Lp gradient
    ends with (``ax``: ``|x|`` if already computed). Built in place: ``copysign`` by
    the sign of a nonzero ``x`` is the product by ``sign(x)``, bit for bit, and every
    input-sized temporary costs more (page faults) than its arithmetic."""
    ax = np.abs(x64) if ax is None else ax
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        local = ax ** (norm - 1.0)
    np.copysign(local, x64, out=local)
    np.copyto(local, 0.0, where=~(ax > 0))
    return local


def outer_gradient(grad: np.ndarray, y: np.ndarray, norm: float) -> np.ndarray:
    """``g * y^(1-p)``, 0 where the output ``y`` is 0 (PyTorch gives NaN there)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(y > 0, grad * y ** (1.0 - norm), 0.0)


def backward(grad_output: Any, x: Any, p: LpPoolParams, out: Any = None) -> np.ndarray:
    """``dx = sign(x) |x|^(p-1) * sum_windows(g * scale * y^(1-p))``, in float64."""
    arr = _args.as_array(x)
    _args.check_dtype(arr, "x", _args.FLOAT_DTYPES)
    a = p.avg
    grad, shape, batched, out = _args.backward_args(
        grad_output, tuple(arr.shape), a.nd, a.channels_last, out, arr
    )
    geom = a.geometry(_args.spatial_shape(shape, a.nd, a.channels_last))
    _args.check_grad_shape(grad, output_shape(shape, a.nd, geom.out_size, a.channels_last))
    x64 = arr.astype(np.float64)
    norm = p.norm_type
    if p.extended:
        y = power(sums_on(x64, geom, batched, a.channels_last, norm), 1.0 / norm)
        g = _engine.channels_first(grad, batched, a.channels_last).astype(np.float64)
        spread = window_sums_transpose(outer_gradient(g, y, norm), geom)
        local = _local(_engine.channels_first(x64, batched, a.channels_last), norm)
        dx = _engine.from_channels_first(spread * local, batched, a.channels_last, grad.dtype)
        return _engine.deliver(dx, out)
    ax = np.abs(x64)
    y = (avg_pool.pool(ax ** norm, a) * np.prod(a.kernel)) ** (1.0 / norm)
    t = outer_gradient(grad.astype(np.float64) * _window_scale(a, geom, batched), y, norm)
    spread = avg_pool.backward(t, shape, replace(a, divisor_override=1))  # a new array
    np.multiply(spread, _local(x64, norm, ax), out=spread)
    return _engine.deliver(spread.astype(grad.dtype, copy=False), out)


_FORWARD_DOC = """{nd}-D power-average (Lp) pooling: ``(sum over the window of |x|^p)^(1/p)``.

    Parameters
    ----------
    x : array_like
        ``{layout}`` or ``{unbatched}`` (``{cl}`` / ``{cl_unbatched}`` with
        ``channels_last=True``); float16/32/64.
    norm_type : float
        The exponent ``p``, finite and > 0 (``inf`` and ``p <= 0`` are rejected; for
        the max of ``|x|`` use max pooling on ``abs(x)``).
    kernel_size : int or tuple of {nd} ints
        Window size.
    stride : int or tuple of {nd} ints, optional
        Step between windows; ``None`` (default) means ``kernel_size``.
    ceil_mode : bool, default False
        Round output sizes up. As in PyTorch, a window cut short by the end of the
        input is scaled by ``prod(kernel_size) / elements`` before the root.
    channels_last : bool, default False
        Channels are the last axis.
    padding : int, tuple of {nd} ints, {nd} (begin, end) pairs, or str, default 0
        Zero padding, every form of :func:`max_pool{nd}d` (ONNX ``LpPool`` pads).
    dilation : int or tuple of {nd} ints, default 1
        Spacing between window taps (ONNX LpPool-18). With padding or dilation the
        result is ONNX's ``(sum of |x|^p over the window)^(1/p)``: padding contributes
        0 and no window is rescaled.

    Returns
    -------
    out : ndarray
        Same layout and dtype as ``x``.

    Notes
    -----
    On non-negative inputs the values equal PyTorch's ``lp_pool{nd}d`` (same steps, so
    results agree to within a few ulp, exactly for p = 1, 2 and 3 up to the final root).
    Negative inputs use ``|x|^p``, the true Lp norm as in ONNX ``LpPool``
    (docs/semantics.md §8).

    {examples}
    >>> x = np.array([3.0, 4.0, 0.0, -2.0]).reshape({row4})
    >>> pk.lp_pool{nd}d(x, 2, {k2}).ravel()
    array([5., 2.])
    """

_BACKWARD_DOC = """Gradient of :func:`lp_pool{nd}d` with respect to its input.

    ``dx_i = sign(x_i) |x_i|^(p-1) * sum over windows w containing i of
    g_w * scale_w * y_w^(1-p)`` (computed in float64, returned in the dtype of
    ``grad_output``). Windows whose output is 0 contribute 0 (PyTorch gives NaN).

    Parameters
    ----------
    {grad}
    x : array_like
        The forward input.
    norm_type, kernel_size, stride, ceil_mode, channels_last, padding, dilation
        The forward options.
    {backward}
    >>> x = np.array([3.0, 4.0]).reshape({row2})
    >>> pk.lp_pool{nd}d_backward(np.ones({ones}), x, 2, {k2}).ravel()
    array([0.6, 0.8])
    """


(lp_pool1d, lp_pool1d_backward, lp_pool2d, lp_pool2d_backward,
 lp_pool3d, lp_pool3d_backward) = rank_functions(
    LpPoolParams, "lp_pool", pool, backward, ("x", "ArrayLike"), (_FORWARD_DOC, _BACKWARD_DOC)
)
