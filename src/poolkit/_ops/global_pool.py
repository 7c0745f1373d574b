"""Global pooling over every spatial dim: ``global_{avg,max,lp}_pool`` and their backward
passes, plus the plane mean that adaptive average pooling to size 1 shares.

The planes are flattened, so any number of spatial dims works. The plane mean sums in
a fixed 16-lane order (docs/semantics.md §9), the same on every machine and in every
layout: contiguous planes on the plane kernel, contiguous pixels (channels last in
memory) on the channels-last kernel with the same order per channel, other strides made
contiguous first.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .. import _args, _docs, _engine
from .._geometry import output_shape
from .._kernels import LazyModule
from .._threads import get_num_threads
from . import argmax, avg_pool
from .avg_pool import AvgPoolParams
from .lp_pool import outer_gradient, power

#: compiled kernels, imported (with numba) by the first call that needs them
_k: Any = LazyModule("adaptive")
_route: Any = LazyModule("route")

__all__ = [
    "global_avg_pool",
    "global_avg_pool_backward",
    "global_lp_pool",
    "global_lp_pool_backward",
    "global_max_pool",
    "global_max_pool_backward",
]

#: The docstrings of the backward passes, with the gradient every one of them takes.
_shared = partial(_docs.shared, global_grad="grad_output : array_like\n"
                  "        ``(N, C, 1, ..., 1)`` or ``(N, C)``, float16/32/64.")

#: Channels-last plane mean: rows of lane sums at least this long are filled one lane
#: at a time (shorter ones: all 16 lanes at once, L1 sized); no channel block is shorter.
_MIN_ROW_BYTES = 1024

#: Tasks per thread a parallel channels-last plane mean aims for.
_TASKS_PER_THREAD = 4


def plane_mean(arr: np.ndarray, nd: int, channels_last: bool, out: np.ndarray) -> None:
    """Mean of every plane of ``arr`` (any layout) into the fresh ``out``, whose spatial
    sizes are all 1, so its memory order is the planes' order in either layout.

    Contiguous planes (``(N, C, *spatial)`` in memory) go to the plane kernel, contiguous
    pixels (``(N, *spatial, C)`` in memory, whatever the declared layout) to the
    channels-last kernel, which sums each channel in the same lane order; other strides
    are made contiguous in the declared layout first. Every path gives the same bits.
    """
    n_planes = out.size
    if not n_planes:
        return
    means = _engine.kernel_bits(out).reshape(n_planes)
    n_batch = arr.shape[0]
    n_chan = n_planes // n_batch
    if arr.flags.c_contiguous:  # the declared layout in memory: no moved-axis views
        if channels_last and 1 < n_chan < arr.size // n_batch:
            _pixel_means(_engine.kernel_bits(arr).reshape(n_batch, -1, n_chan), means,
                         arr.dtype)
        else:  # channels first, or pixels of one channel, or planes of one pixel
            _plane_means(_engine.kernel_bits(arr).reshape(n_planes, -1), means)
        return
    first = _engine.channels_first(arr, True, channels_last)  # (N, C, *spatial) views
    last = np.moveaxis(first, 1, -1)  # (N, *spatial, C)
    if not first.flags.c_contiguous and not last.flags.c_contiguous:
        if channels_last:
            last = np.ascontiguousarray(last)
        else:
            first = np.ascontiguousarray(first)
    if first.flags.c_contiguous:
        _plane_means(_engine.kernel_bits(first).reshape(n_planes, -1), means)
    else:
        _pixel_means(_engine.kernel_bits(last).reshape(n_batch, -1, n_chan), means, arr.dtype)


def _plane_means(planes: np.ndarray, means: np.ndarray) -> None:
    """Means of the contiguous ``(planes, P)`` rows into ``means``."""
    _engine.run_tasks(_k.plane_mean_range, planes.shape[0], planes.size, planes, means)


def _pixel_means(pixels: np.ndarray, means: np.ndarray, dtype: np.dtype) -> None:
    """Per-channel means of the contiguous ``(N, P, C)`` pixels into ``means``."""
    n_batch, _, n_chan = pixels.shape
    row_bytes = n_chan * (8 if dtype == np.float64 else 4)  # a row of opmath sums
    block = n_chan
    if not _engine.is_serial(pixels.size):
        want = _TASKS_PER_THREAD * get_num_threads()
        if n_batch < want:  # blocks of channels too, none under _MIN_ROW_BYTES
            per_item = min(-(-want // n_batch), max(1, row_bytes // _MIN_ROW_BYTES))
            block = -(-n_chan // per_item)
    n_tasks = n_batch * -(-n_chan // block)
    by_lane = row_bytes * block // n_chan >= _MIN_ROW_BYTES
    _engine.run_tasks(_route.plane_mean_pixels_range, n_tasks, pixels.size, pixels, means,
                      block, by_lane)


def spread_mean(grad: np.ndarray, dx: np.ndarray, kd: int, kh: int, kw: int) -> None:
    """``dx`` (zeroed, channels first) gets each plane's gradient / plane size."""
    planes = _engine.kernel_bits(dx).reshape(-1, kd * kh * kw)
    _engine.run_tasks(_k.plane_mean_backward, planes.shape[0], dx.size,
                      np.ascontiguousarray(_engine.kernel_bits(grad)).reshape(-1), planes,
                      kd, kh, kw, True)


def scatter_mean(g5: np.ndarray, dx5: np.ndarray, single: bool) -> None:
    """Adaptive average backward on 5-D kernel views; the gradient goes in as contiguous
    ``(planes, outputs)`` rows."""
    n_out = int(np.prod(g5.shape[2:]))
    planes = np.ascontiguousarray(g5).reshape(g5.shape[0] * g5.shape[1], n_out)
    _engine.run_tasks(_k.adaptive_avg_backward, planes.shape[0], dx5.size + planes.size, planes,
                      dx5, np.array(g5.shape[2:], dtype=np.int64), single)


def _global_input(x: Any, channels_last: Any, allowed) -> tuple[np.ndarray, int, bool]:
    channels_last = _args.check_bool(channels_last, "channels_last")
    arr = _args.as_array(x)
    _args.check_dtype(arr, "x", allowed)
    if arr.ndim < 3:
        layout = "(N, *spatial, C)" if channels_last else "(N, C, *spatial)"
        raise ValueError(
            f"x must be batched, laid out {layout} with at least one spatial dimension; "
            f"got shape {arr.shape}"
        )
    nd = arr.ndim - 2
    _args.check_input(arr.shape, nd, "x", channels_last)
    return arr, nd, channels_last


def _global_shape(shape: tuple[int, ...], nd: int, keepdims: bool, channels_last: bool):
    if keepdims:
        return output_shape(shape, nd, (1,) * nd, channels_last)
    return (shape[0], shape[-1] if channels_last else shape[1])


def _global_out(arr, nd, keepdims, channels_last, kernel_out) -> np.ndarray:
    """Reshape an ``(N, C, 1, 1, 1)`` kernel result to the global output layout."""
    flat = kernel_out.reshape(kernel_out.shape[0], kernel_out.shape[1])
    if not keepdims:
        return flat
    return flat.reshape(_global_shape(arr.shape, nd, True, channels_last))


def global_avg_pool(x: ArrayLike, keepdims: bool = True, channels_last: bool = False):
    """Average over all spatial dimensions (ONNX ``GlobalAveragePool``).

    Parameters
    ----------
    x : array_like
        ``(N, C, *spatial)`` (``(N, *spatial, C)`` with ``channels_last=True``), at least
        one spatial dim; float16/32/64.
    keepdims : bool, default True
        Keep the spatial dims as size 1 (ONNX layout); ``False`` gives ``(N, C)``.
    channels_last : bool, default False
        Channels are the last axis.

    Returns
    -------
    out : ndarray
        ``(N, C, 1, ..., 1)`` (or ``(N, C)``), dtype of ``x``. Each plane is summed
        in float32 for float16/32 (float64 for float64) in a fixed order, the same on
        every machine and in either layout: 16 lane sums (element ``i`` goes to lane
        ``i % 16``), folded pairwise; then divided once by the plane size ``n``.

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> pk.global_avg_pool(np.arange(8.0).reshape(1, 2, 2, 2), keepdims=False)
    array([[1.5, 5.5]])
    """
    arr, nd, channels_last = _global_input(x, channels_last, _args.FLOAT_DTYPES)
    keepdims = _args.check_bool(keepdims, "keepdims")
    out = np.empty((arr.shape[0], arr.shape[-1] if channels_last else arr.shape[1], 1, 1, 1),
                   arr.dtype)
    plane_mean(arr, nd, channels_last, out)
    return _global_out(arr, nd, keepdims, channels_last, out)


def _global_grad(grad_output: Any, input_shape: Any, channels_last: Any, out: Any,
                 *inputs: Any):
    """Validated global backward arguments: ``(grad as (N, C, 1, 1, 1), shape, nd,
    channels_last, out)``."""
    channels_last = _args.check_bool(channels_last, "channels_last")
    grad = _args.as_array(grad_output, "grad_output")
    _args.check_dtype(grad, "grad_output", _args.FLOAT_DTYPES)
    shape = _args.check_shape_arg(input_shape, "input_shape")
    if len(shape) < 3:
        raise ValueError(f"input_shape must be (N, C, *spatial), got {shape}")
    nd = len(shape) - 2
    _args.check_input(shape, nd, "input_shape", channels_last)
    kept, flat = (_global_shape(shape, nd, k, channels_last) for k in (True, False))
    if grad.shape not in (kept, flat):
        raise ValueError(
            f"grad_output must have shape {kept} or {flat} for input_shape {shape}, got "
            f"shape {grad.shape}"
        )
    out = _args.check_out(out, shape, grad.dtype, grad, *inputs)
    return grad.reshape(shape[0], -1)[:, :, None, None, None], shape, nd, channels_last, out


@_shared
def global_avg_pool_backward(
    grad_output: ArrayLike, input_shape: tuple[int, ...], channels_last: bool = False,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Gradient of :func:`global_avg_pool`: ``grad / plane size`` at every position.

    Parameters
    ----------
    {global_grad}
    {input_shape}
    channels_last : bool, default False
        Layout of the forward input.
    {backward}
    >>> pk.global_avg_pool_backward(np.ones((1, 1)), (1, 1, 2, 2))[0, 0]
    array([[0.25, 0.25],
           [0.25, 0.25]])
    """
    g5, shape, nd, channels_last, out = _global_grad(grad_output, input_shape, channels_last,
                                                     out)
    dx = _engine.gradient_buffer(shape, g5.dtype, out, zeroed=True)
    if not channels_last:
        spread_mean(g5, dx, 1, 1, int(np.prod(shape[2:])))
        return dx
    scatter_mean(_engine.kernel_bits(g5),
                 _engine.kernel_bits(_engine.flat_planes(dx, nd, True, channels_last)), True)
    return dx


def global_max_pool(
    x: ArrayLike, keepdims: bool = True, return_indices: bool = False, channels_last: bool = False
):
    """Max over all spatial dimensions (ONNX ``GlobalMaxPool``).

    Parameters
    ----------
    x : array_like
        ``(N, C, *spatial)`` (``(N, *spatial, C)`` with ``channels_last=True``);
        a float, signed or unsigned integer dtype.
    keepdims : bool, default True
        Keep the spatial dims as size 1; ``False`` gives ``(N, C)``.
    return_indices : bool, default False
        Also return the int64 flat index of each maximum within its plane.
    channels_last : bool, default False
        Channels are the last axis.

    Returns
    -------
    out : ndarray
        ``(N, C, 1, ..., 1)`` (or ``(N, C)``), dtype of ``x``; first maximum wins ties,
        the last NaN wins.
    indices : ndarray of int64, optional
        Same shape as ``out``.

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> pk.global_max_pool(np.array([[[1.0, 4.0], [3.0, 2.0]]])[None], keepdims=False)
    array([[4.]])
    """
    arr, nd, channels_last = _global_input(x, channels_last, _args.MAX_POOL_DTYPES)
    keepdims = _args.check_bool(keepdims, "keepdims")
    want = _args.check_bool(return_indices, "return_indices")
    n_chan = arr.shape[-1] if channels_last else arr.shape[1]
    out = np.empty((arr.shape[0], n_chan, 1, 1, 1), _engine.comparable_dtype(arr.dtype))
    idx = np.empty((arr.shape[0], n_chan, 1, 1, 1), np.int64)
    _engine.run_tasks(_k.adaptive_max_forward, out.shape[0] * n_chan, arr.size,
                      _engine.flat_planes(_engine.comparable(arr), nd, True, channels_last),
                      _engine.kernel_bits(out), idx, True)
    out = _global_out(arr, nd, keepdims, channels_last, _engine.restore(out, arr.dtype))
    if want:
        return out, _global_out(arr, nd, keepdims, channels_last, idx)
    return out


@_shared
def global_max_pool_backward(
    grad_output: ArrayLike,
    indices: ArrayLike,
    input_shape: tuple[int, ...],
    channels_last: bool = False,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Gradient of :func:`global_max_pool`: each gradient goes to its plane's argmax.

    Parameters
    ----------
    {global_grad}
    indices : array_like of int
        The indices of the forward pass (same shape as ``grad_output``).
    {input_shape}
    channels_last : bool, default False
        Layout of the forward input.
    {backward}
    >>> pk.global_max_pool_backward(np.ones((1, 1)), np.array([[2]]), (1, 1, 4)).ravel()
    array([0., 0., 1., 0.])
    """
    g5, shape, nd, channels_last, out = _global_grad(grad_output, input_shape, channels_last,
                                                     out, indices)
    idx = _args.check_index_array(indices, np.shape(grad_output), like="grad_output")
    n_out = (1,) * nd
    g = g5.reshape(output_shape(shape, nd, n_out, channels_last))
    i = idx.reshape(g.shape)
    return argmax.route(g, i, shape, nd, channels_last, allow_missing=False, out=out)


def global_lp_pool(
    x: ArrayLike, p: float = 2.0, keepdims: bool = True, channels_last: bool = False
) -> np.ndarray:
    """Lp norm over all spatial dimensions (ONNX ``GlobalLpPool``): ``(sum |x|^p)^(1/p)``.

    Parameters
    ----------
    x : array_like
        ``(N, C, *spatial)`` (``(N, *spatial, C)`` with ``channels_last=True``), at least
        one spatial dim; float16/32/64.
    p : float, default 2.0
        Exponent, finite and > 0.
    keepdims : bool, default True
        Keep the spatial dims as size 1; ``False`` gives ``(N, C)``.
    channels_last : bool, default False
        Channels are the last axis.

    Returns
    -------
    out : ndarray
        ``(N, C, 1, ..., 1)`` (or ``(N, C)``), dtype of ``x``.

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> pk.global_lp_pool(np.array([[[3.0, -4.0]]]), keepdims=False)
    array([[5.]])
    """
    arr, nd, channels_last = _global_input(x, channels_last, _args.FLOAT_DTYPES)
    norm = _args.check_norm_type(p)
    keepdims = _args.check_bool(keepdims, "keepdims")
    total = _plane_sums(power(np.abs(arr), norm), nd, channels_last)
    out = power(total, 1.0 / norm)
    if keepdims:
        return out.reshape(_global_shape(arr.shape, nd, True, channels_last))
    return out.reshape(out.shape[0], -1)


def _plane_sums(arr: np.ndarray, nd: int, channels_last: bool) -> np.ndarray:
    """``(N, C, 1)`` (channels last ``(N, 1, C)``) row-major sum of every plane, any rank,
    on the average-pooling kernel (one window over the flattened plane, divisor 1)."""
    planes = _engine.flat_planes(arr, nd, True, channels_last)[:, :, 0, 0, :]
    if channels_last:
        planes = np.moveaxis(planes, 1, -1)
    params = AvgPoolParams.plane_sum((planes.shape[-2 if channels_last else -1],),
                                     channels_last)
    return avg_pool.pool(planes, params)


@_shared
def global_lp_pool_backward(
    grad_output: ArrayLike, x: ArrayLike, p: float = 2.0, channels_last: bool = False,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Gradient of :func:`global_lp_pool`: ``g * sign(x) |x|^(p-1) / y^(p-1)``.

    Computed in float64 and returned in the dtype of ``grad_output``; a plane whose
    norm is 0 gets gradient 0.

    Parameters
    ----------
    {global_grad}
    x : array_like
        The forward input.
    p : float, default 2.0
        The forward exponent.
    channels_last : bool, default False
        Layout of ``x``.
    {backward}
    >>> pk.global_lp_pool_backward(np.ones((1, 1)), np.array([[[3.0, -4.0]]]))
    array([[[ 0.6, -0.8]]])
    """
    arr, nd, channels_last = _global_input(x, channels_last, _args.FLOAT_DTYPES)
    norm = _args.check_norm_type(p)
    g5, _, nd, channels_last, out = _global_grad(grad_output, arr.shape, channels_last, out,
                                                 arr)
    x64 = arr.astype(np.float64)
    ax = np.abs(x64)
    total = _plane_sums(ax**norm, nd, channels_last)
    y = (total ** (1.0 / norm)).reshape(_global_shape(arr.shape, nd, True, channels_last))
    t = outer_gradient(g5.reshape(y.shape).astype(np.float64), y, norm)
    with np.errstate(divide="ignore", invalid="ignore"):
        local = np.where(ax > 0, np.sign(x64) * ax ** (norm - 1.0), 0.0)
    return _engine.deliver((t * local).astype(g5.dtype), out)
