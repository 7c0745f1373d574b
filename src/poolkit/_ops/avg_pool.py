"""Average pooling: ``avg_pool*`` and ``avg_pool*_backward`` (docs/semantics.md §7).

Dilation 1 runs PyTorch-exact kernels (each window summed in row-major order in opmath,
divided once): the vector-IR row kernels of :mod:`poolkit._kernels.avg_rows` (NCHW) and
the pixel kernels of :mod:`poolkit._kernels.avg_cl` (channels-last; a multiply by the
reciprocal when every divisor is a power of two) for C-contiguous
float32/float64, else the loops of :mod:`poolkit._kernels.avg_pool`; dilated windows and windows
without any input element (possible only through ONNX pads) take the separable
window-sum path of :mod:`poolkit._window_sum`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from .. import _args, _engine
from .._engine import KERNEL_NDIM
from .._geometry import Geometry, PaddingSpec, empty_windows, output_shape
from .._kernels import LazyModule
from .._types import IntOrTuple
from .._window_sum import window_counts, window_sums, window_sums_transpose
from .params import WindowParams, rank_functions

#: compiled kernels, imported (with numba) by the first call that needs them
_k: Any = LazyModule("avg_pool")
_rows: Any = LazyModule("avg_rows")
_cl: Any = LazyModule("avg_cl")

__all__ = [
    "avg_pool1d",
    "avg_pool1d_backward",
    "avg_pool2d",
    "avg_pool2d_backward",
    "avg_pool3d",
    "avg_pool3d_backward",
]

#: dtypes average pooling accepts; integers are pooled in float64 (docs/semantics.md §11).
AVG_DTYPES = _args.MAX_POOL_DTYPES


@dataclass(frozen=True)
class AvgPoolParams(WindowParams):
    """Validated, per-dimension average pooling options (input-independent)."""

    ceil_mode: bool
    count_include_pad: bool
    divisor_override: int  # 0: none
    channels_last: bool
    dilation: tuple[int, ...]

    @property
    def dilated(self) -> bool:
        return any(d != 1 for d in self.dilation)

    @classmethod
    def _more(
        cls,
        nd: int,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
        channels_last: bool = False,
        dilation: IntOrTuple = 1,
    ) -> tuple[Any, ...]:
        """The options of every average pooling function and layer after ``padding``."""
        return (
            _args.check_bool(ceil_mode, "ceil_mode"),
            _args.check_bool(count_include_pad, "count_include_pad"),
            _args.check_divisor_override(divisor_override),
            _args.check_bool(channels_last, "channels_last"),
            _args.int_tuple(dilation, nd, "dilation", minimum=1),
        )

    @classmethod
    def plane_sum(cls, spatial: tuple[int, ...], channels_last: bool) -> AvgPoolParams:
        """One window over the whole plane, divided by 1: the plane sum."""
        nd = len(spatial)
        return cls(nd, spatial, spatial, PaddingSpec.symmetric((0,) * nd), False, True, 1,
                   channels_last, (1,) * nd)

    def geometry(self, in_spatial: tuple[int, ...]) -> Geometry:
        """The windows of this call on an input of spatial size ``in_spatial``."""
        return _args.build_geometry(
            in_spatial, self.kernel, self.stride, self.padding, self.dilation, self.ceil_mode
        )


#: dtypes of the vector kernels (:mod:`poolkit._kernels.avg_rows`, ``avg_cl``)
_VECTOR_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_HALF = np.dtype(np.float16)
_HALF_NAN = np.uint16(0x7E00)  # the NaN every float16 path stores (_scalar.float_to_half)


def _opmath(dtype: np.dtype) -> np.dtype:
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


def _separable(geom: Geometry) -> bool:
    """Dilated windows, or windows holding no input element: the window-sum path."""
    if any(d != 1 for d in geom.dilation):
        return True
    if all(b < k and (o - 1) * s - b < n for n, k, s, b, o in zip(
            geom.in_size, geom.kernel, geom.stride, geom.pad_begin, geom.out_size)):
        return False  # k taps from a start in (-k, L): every window holds an input element
    return any(
        empty_windows(*dims)
        for dims in zip(geom.in_size, geom.kernel, geom.stride, geom.pad_begin, geom.dilation,
                        geom.out_size)
    )


def _divisors(geom: Geometry, include_pad: bool, divisor: int, dtype: np.dtype) -> np.ndarray:
    """Per-window divisor of the separable path: the override, or the counted taps."""
    if divisor:
        return np.asarray(divisor, dtype=dtype)
    return window_counts(geom, include_pad).astype(dtype)


def _axis_divisors(n: int, k: int, s: int, pb: int, pe: int, n_out: int, include_pad: bool):
    """Per window of one dim: its clipped element count and padded length (PyTorch's
    rules: the window may not run past the end padding)."""
    start = np.arange(n_out, dtype=np.int64) * s - pb
    end = np.minimum(start + k, n + pe)
    count = np.minimum(end, n) - np.maximum(start, 0)
    return count, (end - start if include_pad else count)


@lru_cache(maxsize=256)
def divisor_table(geom: Geometry, include_pad: bool, divisor: int, dtype: np.dtype) -> np.ndarray:
    """Read-only ``(out_d, out_h, out_w)`` divisors in the opmath ``dtype`` of a dilation-1
    geometry: the override, or the padded or clipped window size; 1 where a window has
    no input element (its sum +0 then gives 0, PyTorch's result)."""
    lead = KERNEL_NDIM - len(geom.kernel)
    dims = ((1, 1, 1, 0, 0, 1),) * lead + tuple(zip(
        geom.in_size, geom.kernel, geom.stride, geom.pad_begin, geom.pad_end, geom.out_size))
    counts, sizes = zip(*(_axis_divisors(*d, include_pad) for d in dims))
    empty = (counts[0][:, None, None] <= 0) | (counts[1][None, :, None] <= 0) | (
        counts[2][None, None, :] <= 0)
    if divisor:
        table = np.full(empty.shape, divisor, dtype=np.int64)
    else:
        table = sizes[0][:, None, None] * sizes[1][None, :, None] * sizes[2][None, None, :]
    table = np.where(empty, 1, table).astype(dtype)
    table.flags.writeable = False
    return table


class _Plan:
    """What one average-pooling call on a (geometry, shape, dtype, layout) runs: the
    kernel pair, its tables, the task count and the work estimate."""

    __slots__ = (
        "batched",
        "channels_last",
        "cl",
        "divs",
        "kp",
        "moved",
        "n_tasks",
        "nd",
        "out_shape",
        "pad_end",
        "rows",
        "shapes",
        "wide",
        "work",
    )

    def __init__(self, geom: Geometry, shape: tuple[int, ...], dtype: np.dtype, batched: bool,
                 channels_last: bool, include_pad: bool, divisor: int, backward: bool):
        nd = len(geom.kernel)
        self.nd, self.batched, self.channels_last = nd, batched, channels_last
        self.divs = divisor_table(geom, include_pad, divisor, _opmath(dtype))
        self.kp = _engine.kernel_table(geom.kernel, geom.stride, geom.pad_begin, geom.dilation)
        self.pad_end = _engine.pad_end_table(geom.pad_end)
        self.out_shape = output_shape(shape, nd, geom.out_size, channels_last)
        n_batch = shape[0] if batched else 1
        n_chan = shape[-1] if channels_last else shape[-nd - 1]
        in_d, _, _ = _engine.lead3(geom.in_size)
        out_d, out_h, _ = _engine.lead3(geom.out_size)
        if backward:
            self.n_tasks = n_batch * n_chan * in_d
        elif channels_last:
            self.n_tasks = n_batch * out_d * out_h
        else:
            self.n_tasks = n_batch * n_chan * out_d
        self.work = math.prod(self.out_shape) * math.prod(geom.kernel)
        # the vector row kernels: float32/float64, any stride along W, C-contiguous
        # input (checked per call); name, tables, flat divisors and output row count
        self.rows = None
        if not (backward or channels_last) and dtype in _VECTOR_DTYPES:
            rows, geo = _rows_tables(geom)
            self.rows = (_rows_kernel_name(geom.kernel[-1], geom.stride[-1]), rows, geo,
                         self.divs.reshape(-1), n_batch * n_chan * out_d * out_h)
        # the channels-last pixel kernels: float32/float64, C-contiguous input (checked per
        # call); name and divisor table
        self.cl = None
        if channels_last and not backward and dtype in _VECTOR_DTYPES:
            self.cl = _cl_kernel(self.divs)
        # float16 forward: the float32 plan on the widened input, rounded once. The
        # float16 loops sum in float32 (the opmath type) from +0 in row-major order and
        # divide by the same float32 divisors, so the bits are theirs
        self.wide = None
        if dtype == _HALF and not backward:
            self.wide = _plan(geom, shape, np.dtype(np.float32), batched, channels_last,
                              include_pad, divisor, False)
        self.shapes = None if backward else (
            _kernel_shape(n_batch, n_chan, geom.in_size, channels_last),
            _kernel_shape(n_batch, n_chan, geom.out_size, channels_last))
        # bytes a forward call of the vector kernels reads and writes (the streaming
        # choice; 0: the other kernels, which do not stream); they store runs of
        # out_shape[-1] elements (an output row; channels last, a pixel)
        self.moved = 0
        if self.rows is not None or self.cl is not None:
            self.moved = _engine.streamable_bytes(
                (math.prod(shape) + math.prod(self.out_shape)) * dtype.itemsize,
                self.out_shape[-1] * dtype.itemsize)

    def views(self, src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """5-D kernel views: ``(N, C, D, H, W)``, or ``(N, D, H, W, C)`` channels-last
        (forward only: the backward moves the channel axis of channels-last arrays)."""
        if self.shapes is None:
            return (_engine.kernel_view(src, self.nd, self.batched, self.channels_last),
                    _engine.kernel_view(dst, self.nd, self.batched, self.channels_last))
        # only unit axes are added: always a view, whatever the strides
        return (_engine.kernel_bits(src).reshape(self.shapes[0]),
                _engine.kernel_bits(dst).reshape(self.shapes[1]))

    def forward(self, arr: np.ndarray) -> np.ndarray:
        if self.wide is not None:
            return _to_half(self.wide.forward(arr.astype(np.float32)))
        # a call larger than the cache streams: its stores go past the cache
        stream = _engine.streams(self.moved)
        out = _engine.new_array(self.out_shape, arr.dtype, aligned=stream)
        if self.rows is not None and arr.flags.c_contiguous:
            name, rows, geo, divs, n_rows = self.rows
            kernel = getattr(_rows, name)
            _engine.run_tasks(kernel, n_rows, self.work, arr.reshape(-1), out.reshape(-1),
                              divs, rows, geo, int(stream))
            return out
        x5, o5 = self.views(arr, out)
        if self.cl is not None and x5.flags.c_contiguous:
            name, scale = self.cl
            _engine.run_tasks(getattr(_cl, name), self.n_tasks, self.work, x5, o5, scale,
                              self.kp, int(stream))
            return out
        if self.channels_last:
            kernel = _k.forward_nhwc_range
        else:
            kernel = _k.forward_split_range
        _engine.run_tasks(kernel, self.n_tasks, self.work, x5, o5, self.divs, self.kp,
                          self.pad_end)
        return out

    def backward(self, grad: np.ndarray, dx: np.ndarray) -> None:
        if self.channels_last and grad.flags.c_contiguous and dx.flags.c_contiguous:
            # the pixel kernels: deltas once per window, then each input row (n, z, y)
            g5, d5 = _engine.pixel_view(grad, self.nd), _engine.pixel_view(dx, self.nd)
            delta = np.empty_like(g5)
            _engine.run_tasks(_k.deltas_pixels, math.prod(g5.shape[:3]), grad.size, g5,
                              self.divs, delta)
            _engine.run_tasks(_k.backward_pixels, math.prod(d5.shape[:3]), self.work, delta,
                              d5, self.kp)
            return
        g5, d5 = self.views(grad, dx)
        _engine.run_tasks(_k.backward_range, self.n_tasks, self.work, g5, d5, self.divs,
                          self.kp)


def _cl_kernel(divs: np.ndarray) -> tuple[str, np.ndarray]:
    """``(name, table)`` of the :mod:`poolkit._kernels.avg_cl` kernel for the divisor
    table ``divs``: ``avg_cl_times`` with the reciprocals when every divisor is a power
    of two (``s * 2**-k`` rounds exactly as ``s / 2**k``, so docs/semantics.md §7 holds
    bit for bit), else ``avg_cl`` with the divisors."""
    mantissa, _ = np.frexp(divs)
    if not np.all(np.abs(mantissa) == 0.5):
        return "avg_cl", divs
    recips = (1 / divs).astype(divs.dtype)
    recips.flags.writeable = False
    return "avg_cl_times", recips


def _rows_kernel_name(kw: int, sw: int) -> str:
    """The :mod:`poolkit._kernels.avg_rows` kernel of window width ``kw``, stride ``sw``."""
    if sw == 1:
        return "avg_s1"
    if sw > 2:
        return "avg_sn"
    return {2: "avg_k2s2", 3: "avg_k3s2"}.get(kw, "avg_s2")


def _rows_tables(geom: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, geo)`` of the row kernels (see :mod:`poolkit._kernels.avg_rows`).

    Output row ``q = od * out_h + oh`` of a plane: ``rows[q, 0]`` window rows inside the
    input, at the plane offsets ``rows[q, 1:1 + rows[q, 0]]`` (row-major over (z, y)).
    """
    in_size, out_size = _engine.lead3(geom.in_size), _engine.lead3(geom.out_size)
    kernel, stride = _engine.lead3(geom.kernel), _engine.lead3(geom.stride)
    lead = (0,) * (KERNEL_NDIM - len(geom.kernel))
    pad_begin, pad_end = lead + tuple(geom.pad_begin), lead + tuple(geom.pad_end)
    spans = [[range(max(o * s - pb, 0), min(min(o * s - pb + k, n + pe), n))
              for o in range(n_out)]
             for n, k, s, pb, pe, n_out in zip(in_size[:2], kernel[:2], stride[:2],
                                               pad_begin[:2], pad_end[:2], out_size[:2])]
    (in_d, in_h, in_w), (out_d, out_h, out_w) = in_size, out_size
    width = 1 + min(kernel[0], in_d) * min(kernel[1], in_h)
    rows = np.zeros((out_d * out_h, width), dtype=np.int64)
    for od, zs in enumerate(spans[0]):
        for oh, ys in enumerate(spans[1]):
            offs = [(z * in_h + y) * in_w for z in zs for y in ys]
            rows[od * out_h + oh, :1 + len(offs)] = [len(offs)] + offs
    kw, sw, pw = kernel[2], stride[2], pad_begin[2]
    lo = min(-(-pw // sw), out_w)  # output columns [lo, hi): windows inside the row
    num = in_w - kw + pw
    hi = max(min(num // sw + 1 if num >= 0 else 0, out_w), lo)
    geo = np.array([in_d * in_h * in_w, in_w, out_d * out_h, out_w, kw, pw, lo, hi, width,
                    sw], dtype=np.int64)
    rows.flags.writeable = False
    geo.flags.writeable = False
    return rows.reshape(-1), geo


def _kernel_shape(n_batch: int, n_chan: int, spatial: tuple[int, ...], channels_last: bool):
    """The forward kernels' 5-D shape: ``(N, C, D, H, W)`` or ``(N, D, H, W, C)``."""
    dhw = _engine.lead3(spatial)
    return (n_batch,) + dhw + (n_chan,) if channels_last else (n_batch, n_chan) + dhw


def _plan(geom: Geometry, shape: tuple[int, ...], dtype: np.dtype, batched: bool,
          channels_last: bool, include_pad: bool, divisor: int, backward: bool) -> _Plan:
    key = ("avg", geom, shape, dtype, batched, channels_last, include_pad, divisor, backward)
    plan = _engine.plans.get(key)
    if plan is None:
        plan = _Plan(geom, shape, dtype, batched, channels_last, include_pad, divisor,
                     backward)
        _engine.plans.put(key, plan)
    return plan


def forward_on(
    arr: np.ndarray,
    geom: Geometry,
    batched: bool,
    channels_last: bool,
    count_include_pad: bool,
    divisor_override: int = 0,
) -> np.ndarray:
    """Average pooling of a validated float ``arr`` on a resolved geometry.

    The entry point of :func:`avg_pool2d` and friends, ONNX AveragePool and chunked
    execution. ``divisor_override`` 0 means none. A window with no input element and no
    override divides 0 by 0 (NaN), as ONNX.

    Examples
    --------
    >>> import numpy as np
    >>> g = Geometry.build((4,), (2,), (2,), (0,), (0,), (1,), False)
    >>> forward_on(np.array([[[1.0, 3.0, 2.0, 0.0]]]), g, True, False, True)
    array([[[2., 1.]]])
    """
    if _separable(geom):
        work = _opmath(arr.dtype)
        planes = _engine.channels_first(arr, batched, channels_last).astype(work, copy=False)
        with np.errstate(invalid="ignore", divide="ignore"):  # a window of no taps: NaN
            out = window_sums(planes, geom) / _divisors(geom, count_include_pad,
                                                        divisor_override, work)
        return _engine.from_channels_first(out, batched, channels_last, arr.dtype)
    return _plan(geom, arr.shape, arr.dtype, batched, channels_last, count_include_pad,
                 divisor_override, False).forward(arr)


def backward_on(
    grad: np.ndarray,
    geom: Geometry,
    shape: tuple[int, ...],
    batched: bool,
    channels_last: bool,
    count_include_pad: bool,
    divisor_override: int = 0,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Adjoint of :func:`forward_on`: each input gets the gradient / divisor of every
    window holding it, added in output row-major order (``out``: a validated buffer)."""
    if _separable(geom):
        work = _opmath(grad.dtype)
        g = _engine.channels_first(grad, batched, channels_last).astype(work, copy=False)
        with np.errstate(invalid="ignore", divide="ignore"):
            dx = window_sums_transpose(
                g / _divisors(geom, count_include_pad, divisor_override, work), geom
            )
        return _engine.deliver(
            _engine.from_channels_first(dx, batched, channels_last, grad.dtype), out
        )
    dx = _engine.gradient_buffer(shape, grad.dtype, out, zeroed=False)  # fully written
    _plan(geom, shape, grad.dtype, batched, channels_last, count_include_pad,
          divisor_override, True).backward(grad, dx)
    return dx


def pool(x: Any, p: AvgPoolParams) -> np.ndarray:
    """Average pooling on validated options; validates ``x``."""
    arr = _args.as_array(x)
    _args.check_dtype(arr, "x", AVG_DTYPES)
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float64)
    key = ("avg pool", p, arr.shape, arr.dtype)
    hit = _engine.plans.get(key)
    if hit is None:  # first call with these options/shape/dtype: validate and plan
        batched = _args.check_input(arr.shape, p.nd, "x", p.channels_last)
        geom = p.geometry(_args.spatial_shape(arr.shape, p.nd, p.channels_last))
        plan = None if _separable(geom) else _plan(
            geom, arr.shape, arr.dtype, batched, p.channels_last, p.count_include_pad,
            p.divisor_override, False)
        hit = (batched, geom, plan)
        _engine.plans.put(key, hit)
    batched, geom, plan = hit
    if plan is not None:
        return plan.forward(arr)
    return forward_on(arr, geom, batched, p.channels_last, p.count_include_pad,
                      p.divisor_override)


def _to_half(wide: np.ndarray) -> np.ndarray:
    """float32 averages rounded to float16 as the float16 loops round them: NumPy's cast
    rounds to nearest even like ``float_to_half`` (overflow and subnormals included),
    and NaN is then stored as ``float_to_half``'s 0x7E00."""
    with np.errstate(over="ignore"):  # overflow to inf, silently as in the loops
        out = wide.astype(np.float16)
    np.copyto(out.view(np.uint16), _HALF_NAN, where=np.isnan(wide))
    return out


def backward(grad_output: Any, input_shape: Any, p: AvgPoolParams, out: Any = None):
    """Validated average pooling backward."""
    grad, shape, batched, out = _args.backward_args(
        grad_output, input_shape, p.nd, p.channels_last, out
    )
    geom = p.geometry(_args.spatial_shape(shape, p.nd, p.channels_last))
    _args.check_grad_shape(grad, output_shape(shape, p.nd, geom.out_size, p.channels_last))
    return backward_on(grad, geom, shape, batched, p.channels_last, p.count_include_pad,
                       p.divisor_override, out)


_FORWARD_DOC = """{nd}-D average pooling, bit-identical to PyTorch's CPU ``avg_pool{nd}d``.

    Parameters
    ----------
    x : array_like
        ``{layout}`` or ``{unbatched}``; with ``channels_last=True`` ``{cl}`` or
        ``{cl_unbatched}``. float16/32/64; integer inputs are pooled in float64 and give
        a float64 result (PyTorch truncates int64 averages).
    kernel_size : int or tuple of {nd} ints
        Window size.
    stride : int or tuple of {nd} ints, optional
        Step between windows; ``None`` (default) means ``kernel_size``.
    padding : int, tuple of {nd} ints, {nd} (begin, end) pairs, or str, default 0
        Zero padding. An int or one int per dim pads both sides by at most
        ``kernel_size // 2`` (PyTorch). ``(begin, end)`` pairs may exceed it as long as
        every window keeps an input element; ``"valid"`` (none), ``"same"`` (output
        ``ceil(L / stride)``, odd pad at the end) and ``"same_lower"`` (odd pad first).
    ceil_mode : bool, default False
        Round output sizes up; a window must still start inside the input or the left
        padding.
    count_include_pad : bool, default True
        Divide by the window size including padding (the ceil_mode overhang past the
        padding never counts); ``False`` divides by the number of input elements.
    divisor_override : int, optional
        Non-zero divisor used for every window instead.
    channels_last : bool, default False
        Channels are the last axis.
    dilation : int or tuple of {nd} ints, default 1
        Spacing between window taps (ONNX AveragePool-19). Divisors count taps: those
        inside the input, or with ``count_include_pad`` inside the padded input.

    Returns
    -------
    out : ndarray
        Same layout as ``x``, dtype of ``x`` (float64 for integer ``x``); spatial sizes
        as max pooling's (docs/semantics.md §2).

    Notes
    -----
    Each window is summed in row-major order in float32 (float16 and float32 inputs)
    or float64, divided once by the integer divisor and rounded to the output dtype:
    PyTorch's CPU arithmetic, so values are bit-identical (docs/semantics.md §7).

    {examples}
    >>> x = np.array([1.0, 3.0, 2.0, 0.0]).reshape({row4})
    >>> pk.avg_pool{nd}d(x, {k2}).ravel()
    array([2., 1.])
    """

_BACKWARD_DOC = """Gradient of :func:`avg_pool{nd}d` with respect to its input.

    Each output gradient, divided by its window's divisor, is added to every input
    element of the window (planes in parallel, outputs in row-major order: the
    same sums, bit for bit, as PyTorch's CPU backward).

    Parameters
    ----------
    grad_output : array_like
        float16/32/64, shaped like the forward output (``{layout}`` / ``{unbatched}``,
        or ``{cl}`` / ``{cl_unbatched}`` with ``channels_last=True``).
    {input_shape}
    kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, \
channels_last, dilation
        The forward options.
    {backward}
    >>> g = np.array([1.0, 2.0]).reshape({row2})
    >>> pk.avg_pool{nd}d_backward(g, {row4}, {k2}).ravel()
    array([0.5, 0.5, 1. , 1. ])
    """


(avg_pool1d, avg_pool1d_backward, avg_pool2d, avg_pool2d_backward,
 avg_pool3d, avg_pool3d_backward) = rank_functions(
    AvgPoolParams, "avg_pool", pool, backward, ("input_shape", "tuple[int, ...]"),
    (_FORWARD_DOC, _BACKWARD_DOC),
)
