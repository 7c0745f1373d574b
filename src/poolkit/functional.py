"""Functional pooling API: ``max_pool*`` and their ``*_backward``.

Every public function validates its arguments once (via :mod:`poolkit._args`), builds a
:class:`~poolkit._geometry.Geometry`, and hands 5-D views to the compiled kernels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from . import _args, _indices
from ._geometry import Geometry, PaddingSpec
from ._kernels import dispatch as _dispatch
from ._memo import BoundedCache, simple_key

IntOrTuple = int | tuple[int, ...]
#: Every accepted ``padding`` form: an int, per-dim ints, per-dim (begin, end) pairs, or
#: "valid" / "same" / "same_lower".
Padding = int | tuple[int, ...] | tuple[tuple[int, int], ...] | str

__all__ = [
    "max_pool",
    "max_pool1d",
    "max_pool1d_backward",
    "max_pool2d",
    "max_pool2d_backward",
    "max_pool3d",
    "max_pool3d_backward",
    "max_pool_backward",
]


@dataclass(frozen=True)
class MaxPoolParams:
    """Validated, per-dimension max pooling options (input-independent)."""

    nd: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: PaddingSpec
    dilation: tuple[int, ...]
    ceil_mode: bool
    return_indices: bool
    channels_last: bool
    index_format: str = "plane"
    storage_order: int = 0

    @classmethod
    def parse(
        cls,
        nd: int,
        kernel_size: Any,
        stride: Any,
        padding: Any,
        dilation: Any,
        ceil_mode: Any,
        return_indices: Any,
        channels_last: Any,
        index_format: Any = "plane",
        storage_order: Any = 0,
    ) -> MaxPoolParams:
        default_layout = index_format == "plane" and type(storage_order) is int
        default_layout = default_layout and storage_order == 0
        key = (
            simple_key(
                (nd, kernel_size, stride, padding, dilation, ceil_mode, return_indices,
                 channels_last)
            )
            if default_layout
            else None  # other index layouts are validated on every call
        )
        if key is not None and key in _PARSED:
            return _PARSED[key]
        kernel = _args.int_tuple(kernel_size, nd, "kernel_size", minimum=1)
        strides = kernel if stride is None else _args.int_tuple(stride, nd, "stride", minimum=1)
        dil = _args.int_tuple(dilation, nd, "dilation", minimum=1)
        pads = _args.parse_padding(padding, kernel)
        parsed = cls(
            nd,
            kernel,
            strides,
            pads,
            dil,
            _args.check_bool(ceil_mode, "ceil_mode"),
            _args.check_bool(return_indices, "return_indices"),
            _args.check_bool(channels_last, "channels_last"),
            *_args.check_index_format(index_format, storage_order),
        )
        if key is not None:
            _PARSED.put(key, parsed)
        return parsed


#: Validated options by exact-typed raw arguments (see :mod:`poolkit._memo`).
_PARSED = BoundedCache(256)


# Value a window with no input element produces (PyTorch: -inf / the dtype minimum).
def _lowest(dtype: np.dtype) -> np.generic:
    if dtype.kind == "f":
        return dtype.type(-np.inf)
    return np.iinfo(dtype).min


def _kernel_dtype_view(arr: np.ndarray) -> np.ndarray:
    """float16 goes through the kernels as its bits (numba has no CPU float16)."""
    return arr.view(np.uint16) if arr.dtype == np.float16 else arr


def _max_pool_impl(x: Any, p: MaxPoolParams, want_indices: bool, convert: bool = True):
    """Run a max pooling forward on validated options; validates ``x`` only.

    Indices come back in ``p``'s layout, or as plane row-major ones with ``convert=False``.
    """
    arr = _args.as_array(x)
    _args.check_dtype(arr, "x")
    key = (p, arr.shape, arr.dtype, want_indices)
    plan = _dispatch.forward_plans.get(key)
    if plan is None:  # first call with these options/shape/dtype: validate and plan
        batched = _args.check_input(arr.shape, p.nd, "x", p.channels_last)
        in_spatial = _args.spatial_shape(arr.shape, p.nd, p.channels_last)
        geom = _args.build_geometry(
            in_spatial, p.kernel, p.stride, p.padding, p.dilation, p.ceil_mode
        )
        if p.nd > 3:
            out, idx = _max_pool_any_rank(arr, p, geom, batched, want_indices)
            return out, _convert_indices(idx, arr.shape, p, convert)
        plan = _forward_plan(arr, p.nd, batched, p.channels_last, geom, want_indices)
        _dispatch.forward_plans.put(key, plan)
    out, idx = plan(arr)
    return out, _convert_indices(idx, arr.shape, p, convert)


def _convert_indices(idx, shape: tuple[int, ...], p: MaxPoolParams, convert: bool):
    """Plane row-major kernel indices in ``p``'s layout (unchanged with ``convert=False``)."""
    if idx is None or not convert:
        return idx
    batched = len(shape) == p.nd + 2
    return _indices.from_plane(
        idx, shape, p.nd, batched, p.channels_last, p.index_format, p.storage_order
    )


def _forward_plan(
    arr: np.ndarray, nd: int, batched: bool, channels_last: bool, geom: Geometry, want: bool
) -> _dispatch.ForwardPlan:
    return _dispatch.ForwardPlan(
        arr.shape,
        arr.dtype,
        nd,
        batched,
        channels_last,
        geom.out_size,
        _dispatch.kernel_table(geom.kernel, geom.stride, geom.pad_begin, geom.dilation),
        math.prod(geom.kernel),
        want,
    )


def _max_pool_forward(arr: np.ndarray, p: MaxPoolParams, geom: Geometry, batched: bool, want):
    """Max pooling on a prepared geometry (any pads, any window count): plane indices.

    The entry point of :mod:`poolkit.onnx`, whose geometries follow ONNX's rules.
    """
    if p.nd > 3:
        return _max_pool_any_rank(arr, p, geom, batched, want)
    return _forward_plan(arr, p.nd, batched, p.channels_last, geom, want)(arr)


def _flat_planes(arr: np.ndarray, nd: int, batched: bool, channels_last: bool) -> np.ndarray:
    """``(N, C, 1, 1, prod(spatial))`` view (or copy, if strides forbid a view) of ``arr``."""
    view = arr if batched else arr[np.newaxis]
    plane = int(np.prod(_args.spatial_shape(view.shape, nd, channels_last)))
    if channels_last:
        view = np.moveaxis(view.reshape(view.shape[0], plane, view.shape[-1]), -1, 1)
    else:
        view = view.reshape(view.shape[0], view.shape[1], plane)
    return view[:, :, np.newaxis, np.newaxis, :]


def _max_pool_any_rank(arr, p, geom, batched, want_indices):
    """Forward for more than 3 spatial dims: the any-rank kernel on flattened planes."""
    planes = _flat_planes(_kernel_dtype_view(arr), p.nd, batched, p.channels_last)
    n_batch, n_chan = planes.shape[:2]
    x2 = np.ascontiguousarray(planes).reshape(n_batch * n_chan, -1)
    n_out = int(np.prod(geom.out_size))
    out2 = np.empty((n_batch * n_chan, n_out), dtype=x2.dtype)
    idx2 = np.empty((n_batch * n_chan, n_out) if want_indices else (0, 0), dtype=np.int64)
    params = np.array(
        [geom.kernel, geom.stride, geom.pad_begin, geom.dilation, geom.out_size], dtype=np.int64
    )
    fill = _lowest(arr.dtype)
    if arr.dtype == np.float16:
        fill = np.float16(fill).view(np.uint16)
    _dispatch._k.max_pool_forward_nd(
        x2, out2, idx2, np.array(geom.in_size, dtype=np.int64), params, fill, want_indices
    )

    def to_layout(a2: np.ndarray) -> np.ndarray:
        a = a2.reshape((n_batch, n_chan) + geom.out_size)
        if p.channels_last:
            a = np.ascontiguousarray(np.moveaxis(a, 1, -1))
        return a if batched else a[0]

    out = to_layout(out2)
    if arr.dtype == np.float16:
        out = out.view(np.float16)
    return out, (to_layout(idx2) if want_indices else None)


def _finish(out: np.ndarray, idx: np.ndarray | None, return_indices: bool):
    return (out, idx) if return_indices else out


def max_pool(
    x: ArrayLike,
    kernel_size: tuple[int, ...],
    stride: IntOrTuple | None = None,
    padding: Padding = 0,
    dilation: IntOrTuple = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
    channels_last: bool = False,
    index_format: str = "plane",
    storage_order: int = 0,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Max pooling over any number of trailing spatial dimensions.

    Parameters
    ----------
    x : array_like
        ``(N, C, *spatial)`` or ``(C, *spatial)``; with ``channels_last=True``
        ``(N, *spatial, C)`` or ``(*spatial, C)``. float16/32/64, int8/16/32/64 or uint8.
    kernel_size : tuple of int
        Window size, one entry per spatial dimension; its length sets the number of
        spatial dimensions.
    stride : int or tuple of int, optional
        Step between windows; ``None`` (default) means ``kernel_size``.
    padding : int, tuple of int, tuple of (begin, end) pairs, or str, default 0
        Implicit ``-inf`` padding. An int or one int per dim pads both sides by at most
        ``kernel_size // 2`` (PyTorch). Per-dim ``(begin, end)`` pairs may go further as
        long as every window keeps an input element. ``"valid"`` means no padding,
        ``"same"`` pads to an output size of ``ceil(L / stride)`` with the odd pad at the
        end (ONNX SAME_UPPER, TensorFlow SAME), ``"same_lower"`` with it at the start.
    dilation : int or tuple of int, default 1
        Spacing between window elements.
    ceil_mode : bool, default False
        Round the output size up instead of down (a window must still start inside the
        input or the left padding).
    return_indices : bool, default False
        Also return the int64 flat index of each maximum.
    channels_last : bool, default False
        Channels are the last axis instead of the one after the batch.
    index_format : {"plane", "global"}, default "plane"
        ``"plane"``: indices flattened per ``(n, c)`` plane (PyTorch); ``"global"``:
        flattened over the whole input, batch and channel included (ONNX MaxPool).
    storage_order : {0, 1}, default 0
        Flatten the spatial plane row-major (0) or column-major (1, ONNX
        ``storage_order``).

    Returns
    -------
    out : ndarray
        Same layout and dtype as ``x``, spatial sizes replaced by the output sizes
        ``floor((L + p_begin + p_end - d(k-1) - 1) / s) + 1`` (see :func:`max_pool2d`).
    indices : ndarray of int64, optional
        Only with ``return_indices=True``; same shape as ``out``.

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> pk.max_pool(x, kernel_size=(2, 2))[0, 0]
    array([[ 5.,  7.],
           [13., 15.]])
    """
    nd = _args.spatial_ndim_of(kernel_size)
    p = MaxPoolParams.parse(nd, kernel_size, stride, padding, dilation, ceil_mode,
                            return_indices, channels_last, index_format, storage_order)
    return _finish(*_max_pool_impl(x, p, p.return_indices), p.return_indices)


def _fixed_rank_max_pool(nd: int):
    def pool(
        x: ArrayLike,
        kernel_size: IntOrTuple,
        stride: IntOrTuple | None = None,
        padding: Padding = 0,
        dilation: IntOrTuple = 1,
        ceil_mode: bool = False,
        return_indices: bool = False,
        channels_last: bool = False,
        index_format: str = "plane",
        storage_order: int = 0,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        p = MaxPoolParams.parse(nd, kernel_size, stride, padding, dilation, ceil_mode,
                                return_indices, channels_last, index_format, storage_order)
        return _finish(*_max_pool_impl(x, p, p.return_indices), p.return_indices)

    return pool


_SHAPES = {
    1: (
        "(N, C, L)",
        "(C, L)",
        "(N, L, C)",
        "(L, C)",
        "np.arange(6.0).reshape(1, 1, 6)",
        "2",
        "array([1., 3., 5.])",
        "0, 0",
    ),
    2: (
        "(N, C, H, W)",
        "(C, H, W)",
        "(N, H, W, C)",
        "(H, W, C)",
        "np.arange(16.0).reshape(1, 1, 4, 4)",
        "2",
        "array([[ 5.,  7.],\n           [13., 15.]])",
        "0, 0",
    ),
    3: (
        "(N, C, D, H, W)",
        "(C, D, H, W)",
        "(N, D, H, W, C)",
        "(D, H, W, C)",
        "np.arange(8.0).reshape(1, 1, 2, 2, 2)",
        "2",
        "array([[[7.]]])",
        "0, 0",
    ),
}


def _max_pool_doc(nd: int) -> str:
    first, unbatched, cl, cl_unbatched, example, k, result, sel = _SHAPES[nd]
    return f"""{nd}-D max pooling, exact and PyTorch-compatible.

    Parameters
    ----------
    x : array_like
        ``{first}`` or ``{unbatched}``; with ``channels_last=True`` ``{cl}`` or
        ``{cl_unbatched}``. Any array-like, any strides. float16/32/64,
        int8/16/32/64 or uint8.
    kernel_size : int or tuple of {nd} ints
        Window size.
    stride : int or tuple of {nd} ints, optional
        Step between windows; ``None`` (default) means ``kernel_size``.
    padding : int, tuple of {nd} ints, {nd} (begin, end) pairs, or str, default 0
        Implicit padding; it never wins: it acts as ``-inf`` (the dtype minimum for
        integers). An int or one int per dim pads both sides by at most
        ``kernel_size // 2`` (PyTorch's limit). ``(begin, end)`` pairs per dim may exceed
        it as long as every window keeps at least one input element. ``"valid"``: no
        padding; ``"same"``: output size ``ceil(L / stride)``, the odd pad at the end
        (ONNX SAME_UPPER, TensorFlow SAME); ``"same_lower"``: the odd pad at the start.
    dilation : int or tuple of {nd} ints, default 1
        Spacing between window elements.
    ceil_mode : bool, default False
        Round output sizes up; a window must still start inside the input or the left
        padding.
    return_indices : bool, default False
        Also return int64 indices of the maxima into the unpadded input.
    channels_last : bool, default False
        Channels are the last axis.
    index_format : {{"plane", "global"}}, default "plane"
        ``"plane"``: flattened per ``(n, c)`` plane (PyTorch); ``"global"``: flattened
        over the whole input, batch and channel included (ONNX MaxPool ``Indices``).
    storage_order : {{0, 1}}, default 0
        Row-major (0) or column-major (1) flattening of the spatial plane (ONNX).

    Returns
    -------
    out : ndarray
        Same dtype and layout as ``x``; each spatial size becomes
        ``floor((L + p_begin + p_end - d*(k-1) - 1 [+ s-1 with ceil_mode]) / s) + 1``.
    indices : ndarray of int64, optional
        With ``return_indices=True``: same shape as ``out``.

    Notes
    -----
    Ties go to the first maximum in row-major window order; NaN propagates and the
    last NaN in window order wins. A window that covers no input element (possible with
    dilation and padding) gives ``-inf`` (the dtype minimum) and index ``-1``.

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> x = {example}
    >>> pk.max_pool{nd}d(x, {k})[{sel}]
    {result}
    """


def _max_pool_backward_doc(nd: int) -> str:
    first, unbatched, cl, cl_unbatched, *_ = _SHAPES[nd]
    return f"""Gradient of :func:`max_pool{nd}d` with respect to its input.

    Each output gradient flows to the input element that won its window; where
    windows overlap, contributions add up (in output row-major order, so results are
    deterministic and bit-identical to PyTorch's CPU backward). Indices may come in
    either layout of the forward pass (``index_format``, ``storage_order``).

    Parameters
    ----------
    grad_output : array_like
        Gradient of the pooled output, float16/32/64, shaped like the forward output
        (``{first}`` / ``{unbatched}``, or ``{cl}`` / ``{cl_unbatched}`` with
        ``channels_last=True``).
    indices : array_like of int
        The indices returned by the forward pass, same shape as ``grad_output``.
    input_shape : tuple of int
        Shape of the forward input.
    channels_last : bool, default False
        Layout of all three arrays.
    index_format : {{"plane", "global"}}, default "plane"
        Layout of ``indices``, as given to the forward pass.
    storage_order : {{0, 1}}, default 0
        Row- or column-major plane flattening of ``indices``, as given to the forward.

    Returns
    -------
    grad_input : ndarray
        Shape ``input_shape``, dtype of ``grad_output``.

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> x = np.array([1.0, 3.0, 2.0, 0.0]).reshape((1, 1) + (1,) * {nd - 1} + (4,))
    >>> y, idx = pk.max_pool{nd}d(x, (1,) * {nd - 1} + (2,), return_indices=True)
    >>> pk.max_pool{nd}d_backward(np.ones_like(y), idx, x.shape).ravel()
    array([0., 1., 1., 0.])
    """


max_pool1d = _fixed_rank_max_pool(1)
max_pool2d = _fixed_rank_max_pool(2)
max_pool3d = _fixed_rank_max_pool(3)


def _backward_impl(
    grad_output: Any,
    indices: Any,
    input_shape: Any,
    nd: int,
    channels_last: Any,
    index_format: Any = "plane",
    storage_order: Any = 0,
) -> np.ndarray:
    channels_last = _args.check_bool(channels_last, "channels_last")
    index_format, storage_order = _args.check_index_format(index_format, storage_order)
    grad = _args.as_array(grad_output, "grad_output")
    _args.check_dtype(grad, "grad_output", _args.FLOAT_DTYPES)
    idx = _args.as_array(indices, "indices")
    if idx.dtype.kind not in "iu":
        raise TypeError(f"indices must be an integer array, got dtype {idx.dtype}")
    if idx.shape != grad.shape:
        raise ValueError(
            f"indices must have the shape of grad_output {grad.shape}, got {idx.shape}"
        )
    shape = (
        _args.int_tuple(input_shape, len(tuple(input_shape)), "input_shape", minimum=0)
        if isinstance(input_shape, (tuple, list))
        else None
    )
    if shape is None:
        raise TypeError(f"input_shape must be a tuple of ints, got {input_shape!r}")
    if len(shape) != grad.ndim:
        raise ValueError(
            f"input_shape must have as many dimensions as grad_output ({grad.ndim}), "
            f"got input_shape={shape}"
        )
    batched = _args.check_input(shape, nd, "input_shape", channels_last)
    spatial_axes = (
        range(grad.ndim - nd - 1, grad.ndim - 1)
        if channels_last
        else range(grad.ndim - nd, grad.ndim)
    )
    lead_same = all(shape[a] == grad.shape[a] for a in range(grad.ndim) if a not in spatial_axes)
    if not lead_same:
        raise ValueError(
            f"grad_output {grad.shape} and input_shape {shape} must agree on the batch and "
            "channel dimensions"
        )
    idx = _indices.to_plane(
        idx.astype(np.int64, copy=False),
        shape,
        nd,
        batched,
        channels_last,
        index_format,
        storage_order,
    )
    dx, ok = _dispatch.max_pool_backward(grad, idx, shape, nd, batched, channels_last
    )
    if not ok:
        plane = int(np.prod([shape[a] for a in spatial_axes]))
        raise ValueError(
            f"indices must lie in [0, {plane}) (the flattened spatial plane of input_shape "
            f"{shape}) or be -1; got values outside that range"
        )
    return dx


def _fixed_rank_backward(nd: int):
    def backward(
        grad_output: ArrayLike,
        indices: ArrayLike,
        input_shape: tuple[int, ...],
        channels_last: bool = False,
        index_format: str = "plane",
        storage_order: int = 0,
    ) -> np.ndarray:
        return _backward_impl(
            grad_output, indices, input_shape, nd, channels_last, index_format, storage_order
        )

    return backward


max_pool1d_backward = _fixed_rank_backward(1)
max_pool2d_backward = _fixed_rank_backward(2)
max_pool3d_backward = _fixed_rank_backward(3)

for _nd, _fn, _bw in (
    (1, max_pool1d, max_pool1d_backward),
    (2, max_pool2d, max_pool2d_backward),
    (3, max_pool3d, max_pool3d_backward),
):
    _fn.__name__ = _fn.__qualname__ = f"max_pool{_nd}d"
    _bw.__name__ = _bw.__qualname__ = f"max_pool{_nd}d_backward"
    _fn.__doc__ = _max_pool_doc(_nd)
    _bw.__doc__ = _max_pool_backward_doc(_nd)


def max_pool_backward(
    grad_output: ArrayLike,
    indices: ArrayLike,
    input_shape: tuple[int, ...],
    channels_last: bool = False,
    spatial_dims: int | None = None,
    index_format: str = "plane",
    storage_order: int = 0,
) -> np.ndarray:
    """Gradient of :func:`max_pool` with respect to its input, any number of spatial dims.

    Parameters
    ----------
    grad_output : array_like
        Gradient of the pooled output (float16/32/64), shaped like the forward output.
    indices : array_like of int
        Indices returned by the forward pass, same shape as ``grad_output``.
    input_shape : tuple of int
        Shape of the forward input.
    channels_last : bool, default False
        Layout of the arrays.
    spatial_dims : int, optional
        Number of spatial dimensions; default ``len(input_shape) - 2`` (a batched input).
    index_format : {"plane", "global"}, default "plane"
        Layout of ``indices``, as given to the forward pass.
    storage_order : {0, 1}, default 0
        Row- or column-major plane flattening of ``indices``, as given to the forward.

    Returns
    -------
    grad_input : ndarray
        Shape ``input_shape``, dtype of ``grad_output``.

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> x = np.array([[[[1.0, 3.0], [2.0, 0.0]]]])
    >>> y, idx = pk.max_pool(x, (2, 2), return_indices=True)
    >>> pk.max_pool_backward(np.ones_like(y), idx, x.shape)[0, 0]
    array([[0., 1.],
           [0., 0.]])
    """
    if spatial_dims is None:
        if not isinstance(input_shape, (tuple, list)):
            raise TypeError(f"input_shape must be a tuple of ints, got {input_shape!r}")
        nd = len(input_shape) - 2
        if nd < 1:
            raise ValueError(
                "input_shape must have at least 3 dimensions (N, C, *spatial) when "
                f"spatial_dims is not given, got {tuple(input_shape)}"
            )
    else:
        nd = _args.int_tuple(spatial_dims, 1, "spatial_dims", minimum=1)[0]
    return _backward_impl(
        grad_output, indices, input_shape, nd, channels_last, index_format, storage_order
    )

# The pooling family lives in private modules; re-exported here as the functional API.
from ._adaptive import (  # noqa: E402
    adaptive_avg_pool1d,
    adaptive_avg_pool1d_backward,
    adaptive_avg_pool2d,
    adaptive_avg_pool2d_backward,
    adaptive_avg_pool3d,
    adaptive_avg_pool3d_backward,
    adaptive_max_pool1d,
    adaptive_max_pool1d_backward,
    adaptive_max_pool2d,
    adaptive_max_pool2d_backward,
    adaptive_max_pool3d,
    adaptive_max_pool3d_backward,
    global_avg_pool,
    global_avg_pool_backward,
    global_lp_pool,
    global_lp_pool_backward,
    global_max_pool,
    global_max_pool_backward,
)
from ._avg import (  # noqa: E402
    avg_pool1d,
    avg_pool1d_backward,
    avg_pool2d,
    avg_pool2d_backward,
    avg_pool3d,
    avg_pool3d_backward,
    lp_pool1d,
    lp_pool1d_backward,
    lp_pool2d,
    lp_pool2d_backward,
    lp_pool3d,
    lp_pool3d_backward,
)
from ._fractional import (  # noqa: E402
    fractional_max_pool2d,
    fractional_max_pool2d_backward,
    fractional_max_pool3d,
    fractional_max_pool3d_backward,
)
from ._unpool import (  # noqa: E402
    max_unpool1d,
    max_unpool1d_backward,
    max_unpool2d,
    max_unpool2d_backward,
    max_unpool3d,
    max_unpool3d_backward,
)

__all__ += [
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
    "avg_pool1d",
    "avg_pool1d_backward",
    "avg_pool2d",
    "avg_pool2d_backward",
    "avg_pool3d",
    "avg_pool3d_backward",
    "fractional_max_pool2d",
    "fractional_max_pool2d_backward",
    "fractional_max_pool3d",
    "fractional_max_pool3d_backward",
    "global_avg_pool",
    "global_avg_pool_backward",
    "global_lp_pool",
    "global_lp_pool_backward",
    "global_max_pool",
    "global_max_pool_backward",
    "lp_pool1d",
    "lp_pool1d_backward",
    "lp_pool2d",
    "lp_pool2d_backward",
    "lp_pool3d",
    "lp_pool3d_backward",
    "max_unpool1d",
    "max_unpool1d_backward",
    "max_unpool2d",
    "max_unpool2d_backward",
    "max_unpool3d",
    "max_unpool3d_backward",
]
