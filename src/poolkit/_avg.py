"""Average and Lp pooling: ``avg_pool*``, ``lp_pool*``, their backward passes and layers.

Both run on the shared window engine (:class:`~poolkit._geometry.Geometry`, 5-D
kernel views) and the compiled kernels of :mod:`poolkit._kernels.avg_pool`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from . import _args
from ._geometry import Geometry, PaddingSpec, output_shape
from ._kernels import LazyModule
from ._layer_base import Layer, compact
from ._planes import kernel_view
from ._window_sum import window_counts, window_sums, window_sums_transpose
from .functional import IntOrTuple, Padding

#: compiled kernels, imported (with numba) by the first call that needs them
_avg_kernels: Any = LazyModule("avg_pool")

__all__ = [
    "AvgPool1d",
    "AvgPool2d",
    "AvgPool3d",
    "LPPool1d",
    "LPPool2d",
    "LPPool3d",
    "avg_pool1d",
    "avg_pool1d_backward",
    "avg_pool2d",
    "avg_pool2d_backward",
    "avg_pool3d",
    "avg_pool3d_backward",
    "lp_pool1d",
    "lp_pool1d_backward",
    "lp_pool2d",
    "lp_pool2d_backward",
    "lp_pool3d",
    "lp_pool3d_backward",
]

#: dtypes average pooling accepts; integers are pooled in float64 (see avg_pool2d).
AVG_DTYPES = _args.MAX_POOL_DTYPES


@dataclass(frozen=True)
class AvgPoolParams:
    """Validated, per-dimension average pooling options (input-independent)."""

    nd: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    pad_begin: tuple[int, ...]
    pad_end: tuple[int, ...]
    ceil_mode: bool
    count_include_pad: bool
    divisor_override: int  # 0: none
    channels_last: bool
    #: the parsed ``padding`` (any form); None: the symmetric ``pad_begin``/``pad_end``
    padding: PaddingSpec | None = None
    #: None or all ones: the PyTorch-exact kernels; else the separable dilated path
    dilation: tuple[int, ...] | None = None

    @property
    def dilated(self) -> bool:
        return self.dilation is not None and any(d != 1 for d in self.dilation)

    @classmethod
    def parse(
        cls,
        nd: int,
        kernel_size: Any,
        stride: Any,
        padding: Any,
        ceil_mode: Any,
        count_include_pad: Any,
        divisor_override: Any,
        channels_last: Any,
        dilation: Any = 1,
    ) -> AvgPoolParams:
        kernel = _args.int_tuple(kernel_size, nd, "kernel_size", minimum=1)
        strides = kernel if stride is None else _args.int_tuple(stride, nd, "stride", minimum=1)
        spec = _args.parse_padding(padding, kernel)
        return cls(
            nd,
            kernel,
            strides,
            spec.begin,
            spec.end,
            _args.check_bool(ceil_mode, "ceil_mode"),
            _args.check_bool(count_include_pad, "count_include_pad"),
            _args.check_divisor_override(divisor_override),
            _args.check_bool(channels_last, "channels_last"),
            spec,
            _args.int_tuple(dilation, nd, "dilation", minimum=1),
        )

    def geometry(self, in_spatial: tuple[int, ...]) -> Geometry:
        if self.padding is not None:  # every padding form, resolved for this input
            return _args.build_geometry(
                in_spatial,
                self.kernel,
                self.stride,
                self.padding,
                self.dilation or (1,) * self.nd,
                self.ceil_mode,
            )
        geom = Geometry.build(
            in_spatial,
            self.kernel,
            self.stride,
            self.pad_begin,
            self.pad_end,
            (1,) * self.nd,
            self.ceil_mode,
        )
        _args.check_output_size(geom.out_size, in_spatial)
        return geom


def _pad_end_table(geom: Geometry) -> np.ndarray:
    lead = 3 - len(geom.kernel)
    return np.array((0,) * lead + geom.pad_end, dtype=np.int64)


def _channels_first(arr: np.ndarray, batched: bool, channels_last: bool) -> np.ndarray:
    """``(N, C, *spatial)`` view of a batched/unbatched, channels-first/last array."""
    view = arr if batched else arr[np.newaxis]
    return np.moveaxis(view, -1, 1) if channels_last else view


def _from_channels_first(
    arr: np.ndarray, batched: bool, channels_last: bool, dtype: np.dtype
) -> np.ndarray:
    view = np.moveaxis(arr, 1, -1) if channels_last else arr
    return np.ascontiguousarray((view if batched else view[0]).astype(dtype, copy=False))


def _opmath(dtype: np.dtype) -> np.dtype:
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


def _divisors(p: AvgPoolParams, geom: Geometry, dtype: np.dtype) -> np.ndarray:
    """Per-window divisor of the dilated path: the override, or the counted taps."""
    if p.divisor_override:
        return np.asarray(p.divisor_override, dtype=dtype)
    return window_counts(geom, p.count_include_pad).astype(dtype)


def _dilated_forward(arr: np.ndarray, p: AvgPoolParams, geom: Geometry, batched: bool):
    """Dilated average pooling: separable window sums (opmath) over the taps / divisor."""
    work = _opmath(arr.dtype)
    planes = _channels_first(arr, batched, p.channels_last).astype(work, copy=False)
    with np.errstate(invalid="ignore", divide="ignore"):  # a window of no taps: NaN
        out = window_sums(planes, geom) / _divisors(p, geom, work)
    return _from_channels_first(out, batched, p.channels_last, arr.dtype)


def _dilated_backward(grad: np.ndarray, p: AvgPoolParams, geom: Geometry, batched: bool):
    """Adjoint of :func:`_dilated_forward`: each input gets grad / divisor of its windows."""
    work = _opmath(grad.dtype)
    g = _channels_first(grad, batched, p.channels_last).astype(work, copy=False)
    with np.errstate(invalid="ignore", divide="ignore"):
        dx = window_sums_transpose(g / _divisors(p, geom, work), geom)
    return _from_channels_first(dx, batched, p.channels_last, grad.dtype)


def _avg_forward_impl(x: Any, p: AvgPoolParams) -> np.ndarray:
    arr = _args.as_array(x)
    _args.check_dtype(arr, "x", AVG_DTYPES)
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float64)
    batched = _args.check_input(arr.shape, p.nd, "x", p.channels_last)
    in_spatial = _args.spatial_shape(arr.shape, p.nd, p.channels_last)
    geom = p.geometry(in_spatial)
    if p.dilated:
        return _dilated_forward(arr, p, geom, batched)
    out = np.empty(output_shape(arr.shape, p.nd, geom.out_size, p.channels_last), arr.dtype)
    _avg_kernels.avg_pool_forward(
        kernel_view(arr, p.nd, batched, p.channels_last),
        kernel_view(out, p.nd, batched, p.channels_last),
        geom.kernel_params(),
        _pad_end_table(geom),
        p.count_include_pad,
        p.divisor_override,
    )
    return out


def _grad_and_shape(grad_output: Any, input_shape: Any, nd: int, channels_last: bool):
    """Validate a backward call's gradient and input shape; return (grad, shape, batched)."""
    grad = _args.as_array(grad_output, "grad_output")
    _args.check_dtype(grad, "grad_output", _args.FLOAT_DTYPES)
    shape = _args.check_shape_arg(input_shape, "input_shape")
    batched = _args.check_input(shape, nd, "input_shape", channels_last)
    return grad, shape, batched


def _avg_backward_impl(grad_output: Any, input_shape: Any, p: AvgPoolParams) -> np.ndarray:
    grad, shape, batched = _grad_and_shape(grad_output, input_shape, p.nd, p.channels_last)
    geom = p.geometry(_args.spatial_shape(shape, p.nd, p.channels_last))
    _args.check_grad_shape(grad, output_shape(shape, p.nd, geom.out_size, p.channels_last))
    if p.dilated:
        return _dilated_backward(grad, p, geom, batched)
    dx = np.empty(shape, dtype=grad.dtype)  # the kernel writes every element
    _avg_kernels.avg_pool_backward(
        kernel_view(grad, p.nd, batched, p.channels_last),
        kernel_view(dx, p.nd, batched, p.channels_last),
        geom.kernel_params(),
        _pad_end_table(geom),
        p.count_include_pad,
        p.divisor_override,
    )
    return dx


_LAYOUT = {
    1: ("(N, C, L)", "(C, L)", "(N, L, C)", "(L, C)"),
    2: ("(N, C, H, W)", "(C, H, W)", "(N, H, W, C)", "(H, W, C)"),
    3: ("(N, C, D, H, W)", "(C, D, H, W)", "(N, D, H, W, C)", "(D, H, W, C)"),
}


def _avg_doc(nd: int) -> str:
    first, unbatched, cl, cl_unbatched = _LAYOUT[nd]
    shape = "(1, 1) + (1,) * " + str(nd - 1) + " + (4,)"
    kern = "(1,) * " + str(nd - 1) + " + (2,)"
    return f"""{nd}-D average pooling, bit-identical to PyTorch's CPU ``avg_pool{nd}d``.

    Parameters
    ----------
    x : array_like
        ``{first}`` or ``{unbatched}``; with ``channels_last=True`` ``{cl}`` or
        ``{cl_unbatched}``. float16/32/64; integer inputs (int8/16/32/64, uint8) are
        pooled in float64 and give a float64 result (PyTorch truncates int64 averages).
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
        ``floor((L + 2p - k [+ s-1 with ceil_mode]) / s) + 1``.

    Notes
    -----
    Each window is summed in row-major order in float32 (float16 and float32 inputs)
    or float64, divided once by the integer divisor and rounded to the output dtype:
    PyTorch's CPU arithmetic, so values are bit-identical. float16 is supported for
    3-D pooling too, where PyTorch has no CPU kernel.

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> x = np.array([1.0, 3.0, 2.0, 0.0]).reshape({shape})
    >>> pk.avg_pool{nd}d(x, {kern}).ravel()
    array([2., 1.])
    """


def _avg_backward_doc(nd: int) -> str:
    first, unbatched, cl, cl_unbatched = _LAYOUT[nd]
    shape = "(1, 1) + (1,) * " + str(nd - 1) + " + (4,)"
    kern = "(1,) * " + str(nd - 1) + " + (2,)"
    return f"""Gradient of :func:`avg_pool{nd}d` with respect to its input.

    Each output gradient, divided by its window's divisor, is added to every input
    element of the window (planes in parallel, outputs in row-major order: the
    same sums, bit for bit, as PyTorch's CPU backward).

    Parameters
    ----------
    grad_output : array_like
        float16/32/64, shaped like the forward output (``{first}`` / ``{unbatched}``,
        or ``{cl}`` / ``{cl_unbatched}`` with ``channels_last=True``).
    input_shape : tuple of int
        Shape of the forward input.
    kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, \
channels_last, dilation
        The forward options.

    Returns
    -------
    grad_input : ndarray
        Shape ``input_shape``, dtype of ``grad_output``.

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> g = np.array([1.0, 2.0]).reshape({shape[:-5]}(2,))
    >>> pk.avg_pool{nd}d_backward(g, {shape}, {kern}).ravel()
    array([0.5, 0.5, 1. , 1. ])
    """


def _make_avg(nd: int):
    def pool(
        x: ArrayLike,
        kernel_size: IntOrTuple,
        stride: IntOrTuple | None = None,
        padding: Padding = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
        channels_last: bool = False,
        dilation: IntOrTuple = 1,
    ) -> np.ndarray:
        p = AvgPoolParams.parse(
            nd, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override,
            channels_last, dilation,
        )
        return _avg_forward_impl(x, p)

    def backward(
        grad_output: ArrayLike,
        input_shape: tuple[int, ...],
        kernel_size: IntOrTuple,
        stride: IntOrTuple | None = None,
        padding: Padding = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
        channels_last: bool = False,
        dilation: IntOrTuple = 1,
    ) -> np.ndarray:
        p = AvgPoolParams.parse(
            nd, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override,
            channels_last, dilation,
        )
        return _avg_backward_impl(grad_output, input_shape, p)

    pool.__name__ = pool.__qualname__ = f"avg_pool{nd}d"
    backward.__name__ = backward.__qualname__ = f"avg_pool{nd}d_backward"
    pool.__doc__ = _avg_doc(nd)
    backward.__doc__ = _avg_backward_doc(nd)
    return pool, backward


avg_pool1d, avg_pool1d_backward = _make_avg(1)
avg_pool2d, avg_pool2d_backward = _make_avg(2)
avg_pool3d, avg_pool3d_backward = _make_avg(3)


def _padding_repr(p: AvgPoolParams) -> object:
    if p.padding is None or p.padding.pytorch:
        return compact(p.pad_begin)
    return p.padding.describe()


class _AvgPoolNd(Layer):
    """Average pooling layer; remembers the input shape for ``backward``."""

    _nd = 0

    def __init__(
        self,
        kernel_size: IntOrTuple,
        stride: IntOrTuple | None = None,
        padding: Padding = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
        channels_last: bool = False,
        dilation: IntOrTuple = 1,
    ) -> None:
        self.params = AvgPoolParams.parse(
            self._nd, kernel_size, stride, padding, ceil_mode, count_include_pad,
            divisor_override, channels_last, dilation,
        )
        self._input_shape: tuple[int, ...] | None = None

    def forward(self, x: ArrayLike) -> np.ndarray:
        """Pool ``x`` (see :func:`avg_pool2d`) and remember its shape."""
        out = _avg_forward_impl(x, self.params)
        self._input_shape = tuple(np.shape(x))
        return out

    def backward(self, grad_output: ArrayLike) -> np.ndarray:
        """Gradient with respect to the input of the most recent ``forward``."""
        self._require_forward(self._input_shape)
        return _avg_backward_impl(grad_output, self._input_shape, self.params)

    def __repr__(self) -> str:
        p = self.params
        text = (
            f"{type(self).__name__}(kernel_size={compact(p.kernel)}, "
            f"stride={compact(p.stride)}, padding={_padding_repr(p)!r}, "
            f"ceil_mode={p.ceil_mode}, count_include_pad={p.count_include_pad}"
        )
        if p.dilated:
            text += f", dilation={compact(p.dilation)}"
        if p.divisor_override:
            text += f", divisor_override={p.divisor_override}"
        if p.channels_last:
            text += ", channels_last=True"
        return text + ")"


class AvgPool1d(_AvgPoolNd):
    """1-D average pooling layer. Options as :func:`poolkit.avg_pool1d`.

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> layer = pk.AvgPool1d(2)
    >>> layer(np.array([[[1.0, 3.0, 2.0, 0.0]]]))
    array([[[2., 1.]]])
    >>> layer.backward(np.ones((1, 1, 2)))
    array([[[0.5, 0.5, 0.5, 0.5]]])
    """

    _nd = 1


class AvgPool2d(_AvgPoolNd):
    """2-D average pooling layer. Options as :func:`poolkit.avg_pool2d`.

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> layer = pk.AvgPool2d(3, stride=2, padding=1)
    >>> layer(np.zeros((8, 4, 16, 16), np.float32)).shape
    (8, 4, 8, 8)
    """

    _nd = 2


class AvgPool3d(_AvgPoolNd):
    """3-D average pooling layer. Options as :func:`poolkit.avg_pool3d`.

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> pk.AvgPool3d(2)(np.ones((1, 2, 4, 4, 4))).shape
    (1, 2, 2, 2, 2)
    """

    _nd = 3


# --------------------------------------------------------------------------- Lp pooling


def _power(a: np.ndarray, p: float) -> np.ndarray:
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
class LpPoolParams:
    """Validated Lp pooling options: an exponent plus zero-padding-free average options."""

    norm_type: float
    avg: AvgPoolParams

    @classmethod
    def parse(
        cls, nd: int, norm_type: Any, kernel_size: Any, stride: Any, ceil_mode: Any,
        channels_last: Any, padding: Any = 0, dilation: Any = 1,
    ) -> LpPoolParams:
        p = _args.check_norm_type(norm_type)
        avg = AvgPoolParams.parse(
            nd, kernel_size, stride, padding, ceil_mode, True, None, channels_last, dilation
        )
        return cls(p, avg)

    @property
    def extended(self) -> bool:
        """Padding or dilation (ONNX LpPool): the separable path instead of PyTorch's."""
        spec = self.avg.padding
        padded = spec is not None and (
            spec.mode != "explicit" or any(spec.begin) or any(spec.end)
        )
        return padded or self.avg.dilated


def _lp_extended_forward(arr: np.ndarray, p: LpPoolParams, batched: bool):
    """``(sum over the window of |x|^p)^(1/p)`` by separable window sums (opmath)."""
    a = p.avg
    geom = a.geometry(_args.spatial_shape(arr.shape, a.nd, a.channels_last))
    planes = _channels_first(arr, batched, a.channels_last).astype(_opmath(arr.dtype))
    total = window_sums(_power(np.abs(planes), p.norm_type), geom)
    return total, geom


def _lp_extended_backward(grad: np.ndarray, arr: np.ndarray, p: LpPoolParams) -> np.ndarray:
    """``dx = sign(x)|x|^(p-1) * sum over windows of g * y^(1-p)`` (0 where y or x is 0)."""
    a = p.avg
    batched = arr.ndim == a.nd + 2
    total, geom = _lp_extended_forward(arr.astype(np.float64), p, batched)
    y = _power(total, 1.0 / p.norm_type)
    g = _channels_first(grad, batched, a.channels_last).astype(np.float64)
    _args.check_grad_shape(g, y.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(y > 0, g * y ** (1.0 - p.norm_type), 0.0)
    spread = window_sums_transpose(t, geom)
    x64 = _channels_first(arr, batched, a.channels_last).astype(np.float64)
    ax = np.abs(x64)
    with np.errstate(divide="ignore", invalid="ignore"):
        local = np.where(ax > 0, np.sign(x64) * ax ** (p.norm_type - 1.0), 0.0)
    return _from_channels_first(spread * local, batched, a.channels_last, grad.dtype)


def _lp_forward_impl(x: Any, p: LpPoolParams) -> np.ndarray:
    arr = _args.as_array(x)
    _args.check_dtype(arr, "x", _args.FLOAT_DTYPES)
    if p.extended:
        batched = _args.check_input(arr.shape, p.avg.nd, "x", p.avg.channels_last)
        total, _ = _lp_extended_forward(arr, p, batched)
        out = _power(total, 1.0 / p.norm_type)
        return _from_channels_first(out, batched, p.avg.channels_last, arr.dtype)
    powered = _power(np.abs(arr), p.norm_type)
    mean = _avg_forward_impl(powered, p.avg)
    scaled = mean * arr.dtype.type(np.prod(p.avg.kernel))
    return _power(scaled, 1.0 / p.norm_type)


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


def _lp_backward_impl(grad_output: Any, x: Any, p: LpPoolParams) -> np.ndarray:
    """``dx = sign(x) |x|^(p-1) * sum_windows(g * scale * y^(1-p))``, in float64.

    Where an output is 0 (all-zero window) its gradient contribution is 0 (PyTorch
    gives NaN there).
    """
    arr = _args.as_array(x)
    _args.check_dtype(arr, "x", _args.FLOAT_DTYPES)
    a = p.avg
    grad, shape, batched = _grad_and_shape(grad_output, tuple(arr.shape), a.nd, a.channels_last)
    if p.extended:
        return _lp_extended_backward(grad, arr, p)
    geom = a.geometry(_args.spatial_shape(shape, a.nd, a.channels_last))
    _args.check_grad_shape(grad, output_shape(shape, a.nd, geom.out_size, a.channels_last))
    x64 = arr.astype(np.float64)
    ax = np.abs(x64)
    norm = p.norm_type
    scale = _window_scale(a, geom, batched)
    y = (_avg_forward_impl(ax**norm, a) * np.prod(a.kernel)) ** (1.0 / norm)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(y > 0, grad.astype(np.float64) * scale * y ** (1.0 - norm), 0.0)
    spread = _avg_backward_impl(
        t,
        shape,
        AvgPoolParams(a.nd, a.kernel, a.stride, a.pad_begin, a.pad_end, a.ceil_mode, True, 1,
                      a.channels_last),
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        local = np.where(ax > 0, np.sign(x64) * ax ** (norm - 1.0), 0.0)
    return (spread * local).astype(grad.dtype)


def _lp_doc(nd: int) -> str:
    first, unbatched, cl, cl_unbatched = _LAYOUT[nd]
    shape = "(1, 1) + (1,) * " + str(nd - 1) + " + (4,)"
    kern = "(1,) * " + str(nd - 1) + " + (2,)"
    return f"""{nd}-D power-average (Lp) pooling: ``(sum over the window of |x|^p)^(1/p)``.

    Parameters
    ----------
    x : array_like
        ``{first}`` or ``{unbatched}`` (``{cl}`` / ``{cl_unbatched}`` with
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
    On non-negative inputs the values equal PyTorch's ``lp_pool{nd}d`` (which computes
    ``(avg_pool(x**p) * prod(kernel))**(1/p)``; poolkit uses the same steps, so results
    agree to within a few ulp, exactly for p = 1, 2 and 3 up to the final root).
    Negative inputs use ``|x|^p``, the true Lp norm as in ONNX ``LpPool``; PyTorch
    raises the signed value to the power (odd ``p`` then gives a different value or
    NaN).

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> x = np.array([3.0, 4.0, 0.0, -2.0]).reshape({shape})
    >>> pk.lp_pool{nd}d(x, 2, {kern}).ravel()
    array([5., 2.])
    """


def _lp_backward_doc(nd: int) -> str:
    shape = "(1, 1) + (1,) * " + str(nd - 1) + " + (2,)"
    kern = "(1,) * " + str(nd - 1) + " + (2,)"
    return f"""Gradient of :func:`lp_pool{nd}d` with respect to its input.

    ``dx_i = sign(x_i) |x_i|^(p-1) * sum over windows w containing i of
    g_w * scale_w * y_w^(1-p)`` (computed in float64, returned in the dtype of
    ``grad_output``). Windows whose output is 0 contribute 0 (PyTorch gives NaN).

    Parameters
    ----------
    grad_output : array_like
        float16/32/64, shaped like the forward output.
    x : array_like
        The forward input.
    norm_type, kernel_size, stride, ceil_mode, channels_last, padding, dilation
        The forward options.

    Returns
    -------
    grad_input : ndarray
        Shape of ``x``, dtype of ``grad_output``.

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> x = np.array([3.0, 4.0]).reshape({shape})
    >>> pk.lp_pool{nd}d_backward(np.ones((1,) * {nd + 1} + (1,)), x, 2, {kern}).ravel()
    array([0.6, 0.8])
    """


def _make_lp(nd: int):
    def pool(
        x: ArrayLike,
        norm_type: float,
        kernel_size: IntOrTuple,
        stride: IntOrTuple | None = None,
        ceil_mode: bool = False,
        channels_last: bool = False,
        padding: Padding = 0,
        dilation: IntOrTuple = 1,
    ) -> np.ndarray:
        p = LpPoolParams.parse(
            nd, norm_type, kernel_size, stride, ceil_mode, channels_last, padding, dilation
        )
        return _lp_forward_impl(x, p)

    def backward(
        grad_output: ArrayLike,
        x: ArrayLike,
        norm_type: float,
        kernel_size: IntOrTuple,
        stride: IntOrTuple | None = None,
        ceil_mode: bool = False,
        channels_last: bool = False,
        padding: Padding = 0,
        dilation: IntOrTuple = 1,
    ) -> np.ndarray:
        p = LpPoolParams.parse(
            nd, norm_type, kernel_size, stride, ceil_mode, channels_last, padding, dilation
        )
        return _lp_backward_impl(grad_output, x, p)

    pool.__name__ = pool.__qualname__ = f"lp_pool{nd}d"
    backward.__name__ = backward.__qualname__ = f"lp_pool{nd}d_backward"
    pool.__doc__ = _lp_doc(nd)
    backward.__doc__ = _lp_backward_doc(nd)
    return pool, backward


lp_pool1d, lp_pool1d_backward = _make_lp(1)
lp_pool2d, lp_pool2d_backward = _make_lp(2)
lp_pool3d, lp_pool3d_backward = _make_lp(3)


class _LPPoolNd(Layer):
    """Lp pooling layer; keeps the input for ``backward``."""

    _nd = 0

    def __init__(
        self,
        norm_type: float,
        kernel_size: IntOrTuple,
        stride: IntOrTuple | None = None,
        ceil_mode: bool = False,
        channels_last: bool = False,
        padding: Padding = 0,
        dilation: IntOrTuple = 1,
    ) -> None:
        self.params = LpPoolParams.parse(
            self._nd, norm_type, kernel_size, stride, ceil_mode, channels_last, padding,
            dilation,
        )
        self._input: np.ndarray | None = None

    def forward(self, x: ArrayLike) -> np.ndarray:
        """Pool ``x`` (see :func:`lp_pool2d`) and keep it for ``backward``."""
        out = _lp_forward_impl(x, self.params)
        self._input = np.asarray(x)
        return out

    def backward(self, grad_output: ArrayLike) -> np.ndarray:
        """Gradient with respect to the input of the most recent ``forward``."""
        self._require_forward(self._input)
        return _lp_backward_impl(grad_output, self._input, self.params)

    def __repr__(self) -> str:
        a = self.params.avg
        text = (
            f"{type(self).__name__}(norm_type={self.params.norm_type:g}, "
            f"kernel_size={compact(a.kernel)}, stride={compact(a.stride)}, "
            f"ceil_mode={a.ceil_mode}"
        )
        if self.params.extended:
            text += f", padding={_padding_repr(a)!r}"
            if a.dilated:
                text += f", dilation={compact(a.dilation)}"
        return text + (", channels_last=True)" if a.channels_last else ")")


class LPPool1d(_LPPoolNd):
    """1-D Lp pooling layer. Options as :func:`poolkit.lp_pool1d`.

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> pk.LPPool1d(2, 2)(np.array([[[3.0, 4.0]]]))
    array([[[5.]]])
    """

    _nd = 1


class LPPool2d(_LPPoolNd):
    """2-D Lp pooling layer. Options as :func:`poolkit.lp_pool2d`.

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> pk.LPPool2d(2, 2)(np.ones((1, 1, 4, 4)))[0, 0]
    array([[2., 2.],
           [2., 2.]])
    """

    _nd = 2


class LPPool3d(_LPPoolNd):
    """3-D Lp pooling layer. Options as :func:`poolkit.lp_pool3d`.

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> pk.LPPool3d(1, 2)(np.ones((1, 1, 2, 2, 2))).ravel()
    array([8.])
    """

    _nd = 3
