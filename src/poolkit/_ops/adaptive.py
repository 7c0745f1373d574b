"""Adaptive pooling: ``adaptive_{avg,max}_pool*`` and their backward passes.

Output ``o`` of a dimension covers input ``[floor(o*L/O), ceil((o+1)*L/O))``
(docs/semantics.md §9). Average: four kernel paths (the plane mean when every output
size is 1, a flat sweep for uniform windows, flat planes for narrow windows, 5-D rows
otherwise). Max: one kernel; its backward is the one argmax router.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .. import _args, _docs, _engine
from .._geometry import output_shape
from .._kernels import LazyModule
from .._memo import BoundedCache, simple_key
from . import argmax, global_pool

#: compiled kernels, imported (with numba) by the first call that needs them
_k: Any = LazyModule("adaptive")

__all__ = [
    "adaptive_avg_pool1d",
    "adaptive_avg_pool1d_backward",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool2d_backward",
    "adaptive_avg_pool3d",
    "adaptive_avg_pool3d_backward",
    "adaptive_max_pool1d",
    "adaptive_max_pool1d_backward",
    "adaptive_max_pool2d",
    "adaptive_max_pool2d_backward",
    "adaptive_max_pool3d",
    "adaptive_max_pool3d_backward",
]

#: Validated call shapes by (input shape, dtype, rank, dtypes, exact-typed options).
_SHAPES = BoundedCache()

#: kw-groups swept per task of the uniform-window kernel (its scratch row: 8 KiB of float32).
_UNIFORM_GROUPS = 2048


def check_output_size(output_size: Any, nd: int) -> None:
    """Validate an ``output_size`` before any input is seen (the layers' constructors)."""
    _args.check_adaptive_output_size(output_size, (1,) * nd)


def _shapes(arr: np.ndarray, nd: int, output_size: Any, channels_last: Any,
            allowed: tuple[np.dtype, ...]):
    """Validate an adaptive-pooling call: ``(batched, in_spatial, out_size, out_shape,
    all_ones)``, memoised for exact-typed options (a cached entry also implies that
    ``channels_last`` is a bool)."""
    options = simple_key((output_size, channels_last))
    key = None if options is None else (arr.shape, arr.dtype, nd, allowed, options)
    shapes = None if key is None else _SHAPES.get(key)
    if shapes is None:
        channels_last = _args.check_bool(channels_last, "channels_last")
        _args.check_dtype(arr, "x", allowed)
        batched = _args.check_input(arr.shape, nd, "x", channels_last)
        in_spatial = _args.spatial_shape(arr.shape, nd, channels_last)
        out_size = _args.check_adaptive_output_size(output_size, in_spatial)
        shapes = (batched, in_spatial, out_size,
                  output_shape(arr.shape, nd, out_size, channels_last),
                  all(o == 1 for o in out_size))
        if key is not None:
            _SHAPES.put(key, shapes)
    return shapes


def uniform(arr: np.ndarray, in_spatial, out_size, channels_last: bool) -> bool:
    """Does the uniform-window sweep take this input? C-contiguous float32/float64, every
    output length dividing its input length, windows at most 4 wide and at most 4 rows
    (the sweep's extra work is kd*kh)."""
    if channels_last or not arr.flags.c_contiguous or arr.dtype.kind != "f":
        return False
    if arr.dtype.itemsize < 4:
        return False
    if any(o == 0 or i % o for i, o in zip(in_spatial, out_size)):
        return False
    kd, kh, kw = (i // o for i, o in zip(_engine.lead3(in_spatial), _engine.lead3(out_size)))
    return kw <= 4 and kd * kh <= 4


def avg_pool(x: Any, nd: int, output_size: Any, channels_last: Any) -> np.ndarray:
    """Adaptive average pooling; validates everything."""
    arr = _args.as_array(x)
    batched, in_spatial, out_size, out_shape, all_ones = _shapes(
        arr, nd, output_size, channels_last, _args.FLOAT_DTYPES
    )
    channels_last = bool(channels_last)  # validated above
    out = np.empty(out_shape, arr.dtype)
    if all_ones:
        global_pool.plane_mean(arr, nd, channels_last, out)
        return out
    if uniform(arr, in_spatial, out_size, channels_last) and out.size:
        d, h, w = _engine.lead3(in_spatial)
        od, oh, ow = _engine.lead3(out_size)
        # blocks of super-rows sweeping ~_UNIFORM_GROUPS kw-groups each (kd*kh per output)
        per_block = max(1, _UNIFORM_GROUPS // ((d // od) * (h // oh) * ow))
        _engine.run_tasks(_k.adaptive_avg_uniform, out.size // ow, arr.size, arr.reshape(-1),
                          out.reshape(-1), np.array((d, h, w, od, oh, ow), np.int64), per_block)
        return out
    in_w, out_w = in_spatial[-1], out_size[-1]
    narrow = out_w >= 1 and (in_w + out_w - 1) // out_w < 8
    if narrow and not channels_last and arr.flags.c_contiguous and out.size:
        # narrow windows: flat planes, 8 at a time (wide ones stream rows in the 5-D kernel)
        n_planes = out.size // int(np.prod(out_size))
        _engine.run_tasks(
            _k.adaptive_avg_flat, -(-n_planes // _k.PLANE_BLOCK), arr.size,
            _engine.kernel_bits(arr).reshape(n_planes, -1),
            _engine.kernel_bits(out).reshape(n_planes, -1),
            np.array(_engine.lead3(in_spatial), dtype=np.int64),
            np.array(_engine.lead3(out_size), dtype=np.int64),
        )
        return out
    if channels_last and arr.flags.c_contiguous and out.size:
        # pixels of C contiguous values: the channels side by side
        x5, o5 = _engine.pixel_view(arr, nd), _engine.pixel_view(out, nd)
        _engine.run_tasks(_k.adaptive_avg_pixels, o5.shape[0] * o5.shape[1] * o5.shape[2],
                          arr.size, x5, o5)
        return out
    x5 = _engine.kernel_view(arr, nd, batched, channels_last)
    o5 = _engine.kernel_view(out, nd, batched, channels_last)
    n_tasks = o5.shape[0] * -(-o5.shape[1] // _k.PLANE_BLOCK) * o5.shape[2]
    _engine.run_tasks(_k.adaptive_avg_forward, n_tasks, arr.size, x5, o5)
    return out


def _backward_args(grad_output: Any, input_shape: Any, nd: int, channels_last: Any, out: Any):
    channels_last = _args.check_bool(channels_last, "channels_last")
    grad, shape, batched, out = _args.backward_args(grad_output, input_shape, nd,
                                                    channels_last, out)
    _args.check_input(grad.shape, nd, "grad_output", channels_last)
    return grad, shape, batched, channels_last, out


def avg_backward(grad_output: Any, input_shape: Any, nd: int, channels_last: Any,
                 out: Any = None) -> np.ndarray:
    """Adaptive average pooling backward; validates everything."""
    grad, shape, batched, channels_last, out = _backward_args(
        grad_output, input_shape, nd, channels_last, out
    )
    single = all(o == 1 for o in _args.spatial_shape(grad.shape, nd, channels_last))
    if single and not channels_last:
        dx = _engine.gradient_buffer(shape, grad.dtype, out, zeroed=True)
        kd, kh, kw = _engine.lead3(_args.spatial_shape(shape, nd, False))
        global_pool.spread_mean(grad, dx, kd, kh, kw)
        return dx
    dx = _engine.gradient_buffer(shape, grad.dtype, out, zeroed=False)  # every element set
    global_pool.scatter_mean(
        _engine.as_kernel_view(_engine.kernel_bits(grad), nd, batched, channels_last),
        _engine.kernel_view(dx, nd, batched, channels_last),
        single,
    )
    return dx


def max_pool(x: Any, nd: int, output_size: Any, channels_last: Any):
    """Adaptive max pooling: ``(values, plane indices)``; validates everything."""
    arr = _args.as_array(x)
    batched, _, _, shape, _ = _shapes(arr, nd, output_size, channels_last,
                                      _args.MAX_POOL_DTYPES)
    channels_last = bool(channels_last)  # validated above
    out = np.empty(shape, _engine.comparable_dtype(arr.dtype))
    idx = np.empty(shape, np.int64)
    if channels_last and arr.flags.c_contiguous and out.size:
        # pixels of C contiguous values: the channels side by side
        x5, o5, i5 = (_engine.pixel_view(a, nd) for a in (_engine.comparable(arr), out, idx))
        _engine.run_tasks(_k.adaptive_max_pixels, o5.shape[0] * o5.shape[1] * o5.shape[2],
                          arr.size, x5, o5, i5, True)
        return _engine.restore(out, arr.dtype), idx
    o5 = _engine.kernel_view(out, nd, batched, channels_last)
    _engine.run_tasks(
        _k.adaptive_max_forward, o5.shape[0] * o5.shape[1] * o5.shape[2], arr.size,
        _engine.as_kernel_view(_engine.comparable(arr), nd, batched, channels_last), o5,
        _engine.kernel_view(idx, nd, batched, channels_last), True,
    )
    return _engine.restore(out, arr.dtype), idx


_AVG_DOC = """{nd}-D adaptive average pooling (PyTorch's ``adaptive_avg_pool{nd}d``).

    Parameters
    ----------
    x : array_like
        ``{layout}`` or ``{unbatched}`` (``{cl}`` / ``{cl_unbatched}`` with
        ``channels_last=True``); float16/32/64.
    output_size : int or tuple of {nd} (int or None)
        Output spatial size; ``None`` keeps that input size.
    channels_last : bool, default False
        Channels are the last axis.

    Returns
    -------
    out : ndarray
        Same layout and dtype as ``x``, spatial sizes ``output_size``.

    Notes
    -----
    Output ``o`` averages input ``[floor(o*L/O), ceil((o+1)*L/O))``: the window is
    summed in row-major order (float32 for float16/32) and divided by each window
    length in turn, PyTorch's CPU arithmetic, so values are bit-identical. The one
    exception: when every output size is 1, PyTorch calls ``mean()``, whose summation
    order differs; poolkit then takes the plane mean of :func:`global_avg_pool` (a
    fixed 16-lane vector sum, one division), so values agree to rounding (relative
    1e-6 in float32), and the backward, one division too, is bit-identical.

    {examples}
    >>> x = np.array([0.0, 1.0, 2.0, 3.0]).reshape({row4})
    >>> pk.adaptive_avg_pool{nd}d(x, {k2}).ravel()
    array([0.5, 2.5])
    """

_MAX_DOC = """{nd}-D adaptive max pooling (PyTorch's ``adaptive_max_pool{nd}d``).

    Parameters
    ----------
    x : array_like
        ``{layout}`` or ``{unbatched}`` (``{cl}`` / ``{cl_unbatched}`` with
        ``channels_last=True``); a float, signed or unsigned integer dtype.
    output_size : int or tuple of {nd} (int or None)
        Output spatial size; ``None`` keeps that input size.
    return_indices : bool, default False
        Also return the int64 flat index of each maximum within its ``(n, c)`` plane.
    channels_last : bool, default False
        Channels are the last axis.

    Returns
    -------
    out : ndarray
        Same layout and dtype as ``x``.
    indices : ndarray of int64, optional
        With ``return_indices=True``.

    Notes
    -----
    Windows as :func:`adaptive_avg_pool{nd}d`. The first maximum in row-major order
    wins ties and the last NaN wins, as in PyTorch (values and indices identical).
    PyTorch has no integer kernel; poolkit accepts integers.

    {examples}
    >>> x = np.array([1.0, 5.0, 2.0, 4.0]).reshape({row4})
    >>> pk.adaptive_max_pool{nd}d(x, {k2}).ravel()
    array([5., 4.])
    """

_BACKWARD_DOC = """Gradient of :func:`adaptive_{kind}_pool{nd}d` with respect to its input.

    Planes in parallel, outputs in row-major order: {what}; overlapping
    contributions add up (bit-identical to PyTorch's CPU backward).

    Parameters
    ----------
    {grad}
{indices}    {input_shape}
    channels_last : bool, default False
        Layout of the arrays.
    {backward}
    >>> x = np.array([1.0, 5.0, 2.0, 4.0]).reshape({row4})
{example}
    """

_AVG_EXAMPLE = """    >>> pk.adaptive_avg_pool{nd}d_backward(np.ones({row2}), x.shape).ravel()
    array([0.5, 0.5, 0.5, 0.5])"""
_MAX_EXAMPLE = """    >>> y, i = pk.adaptive_max_pool{nd}d(x, {k2}, return_indices=True)
    >>> pk.adaptive_max_pool{nd}d_backward(np.ones_like(y), i, x.shape).ravel()
    array([0., 1., 0., 1.])"""


def _backward_doc(kind: str) -> str:
    """The backward template of one kind, still to be filled in per rank."""
    avg = kind == "avg"
    return _BACKWARD_DOC.replace("{kind}", kind).replace(
        "{what}", "each output gradient divided by its window lengths is added to the window"
        if avg else "each output gradient goes to the input that won its window"
    ).replace("{indices}", "" if avg else (
        "    indices : array_like of int\n        The indices returned by the forward pass.\n"
    )).replace("{example}", _AVG_EXAMPLE if avg else _MAX_EXAMPLE)


def _for_rank(nd: int):
    def avg(x: ArrayLike, output_size: Any, channels_last: bool = False) -> np.ndarray:
        return avg_pool(x, nd, output_size, channels_last)

    def avg_back(grad_output: ArrayLike, input_shape: tuple[int, ...],
                 channels_last: bool = False, out: np.ndarray | None = None) -> np.ndarray:
        return avg_backward(grad_output, input_shape, nd, channels_last, out)

    def mx(
        x: ArrayLike, output_size: Any, return_indices: bool = False, channels_last: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        want = _args.check_bool(return_indices, "return_indices")
        out, idx = max_pool(x, nd, output_size, channels_last)
        return (out, idx) if want else out

    def mx_back(grad_output: ArrayLike, indices: ArrayLike, input_shape: tuple[int, ...],
                channels_last: bool = False, out: np.ndarray | None = None) -> np.ndarray:
        return argmax.backward(grad_output, indices, input_shape, nd, channels_last, out)

    name = f"adaptive_{{}}_pool{nd}d"
    return (
        _docs.for_rank(avg, name.format("avg"), _AVG_DOC, nd),
        _docs.for_rank(avg_back, name.format("avg") + "_backward", _backward_doc("avg"), nd),
        _docs.for_rank(mx, name.format("max"), _MAX_DOC, nd),
        _docs.for_rank(mx_back, name.format("max") + "_backward", _backward_doc("max"), nd),
    )


(adaptive_avg_pool1d, adaptive_avg_pool1d_backward,
 adaptive_max_pool1d, adaptive_max_pool1d_backward) = _for_rank(1)
(adaptive_avg_pool2d, adaptive_avg_pool2d_backward,
 adaptive_max_pool2d, adaptive_max_pool2d_backward) = _for_rank(2)
(adaptive_avg_pool3d, adaptive_avg_pool3d_backward,
 adaptive_max_pool3d, adaptive_max_pool3d_backward) = _for_rank(3)
