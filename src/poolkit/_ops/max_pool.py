"""Max pooling: ``max_pool*`` and ``max_pool*_backward`` (docs/semantics.md §2-§6).

Forward: a :class:`ForwardPlan` per (options, shape, dtype), built once and cached in
the engine, runs the 3-D kernels of :mod:`poolkit._kernels.max_pool` (more than 3
spatial dims: the any-rank kernel on flattened planes). Backward: the indices go back
to plane form and through the one router, :func:`poolkit._ops.argmax.route`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .. import _args, _docs, _engine, _indices
from .._geometry import Geometry
from .._kernels import LazyModule
from .._types import IntOrTuple
from . import argmax, max_select
from .params import OUT, IndexedParams, take, with_options

#: compiled kernels, imported (with numba) by the first call that needs them
_k: Any = LazyModule("max_pool")

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

_DUMMY_IDX5 = np.zeros((1, 1, 1, 1, 1), dtype=np.int64)
_F16 = np.dtype(np.float16)
_U16 = np.dtype(np.uint16)


@dataclass(frozen=True)
class MaxPoolParams(IndexedParams):
    """Validated, per-dimension max pooling options (input-independent)."""

    dilation: tuple[int, ...]
    ceil_mode: bool
    return_indices: bool

    @classmethod
    def _more(
        cls,
        nd: int,
        dilation: IntOrTuple = 1,
        ceil_mode: bool = False,
        return_indices: bool = False,
        channels_last: bool = False,
        index_format: str = "plane",
        storage_order: int = 0,
    ) -> tuple[Any, ...]:
        """The options of every max pooling function and layer after ``padding``."""
        rest = (
            _args.int_tuple(dilation, nd, "dilation", minimum=1),
            _args.check_bool(ceil_mode, "ceil_mode"),
            _args.check_bool(return_indices, "return_indices"),
        )
        layout = _args.check_bool(channels_last, "channels_last")
        return (layout, *_args.check_index_format(index_format, storage_order), *rest)


class ForwardPlan:
    """Everything about a forward call that depends only on shapes, dtype and options.

    Built once per (options, input shape, dtype) and reused, so a repeated call costs
    two allocations, a reshape and the kernel call.
    """

    __slots__ = (
        "fill", "in5", "kp", "moved", "n_tasks", "nhwc", "out5", "out_dtype", "plain", "run",
        "store_dtype", "user_out", "want", "work",
    )

    def __init__(
        self,
        shape: tuple[int, ...],
        dtype: np.dtype,
        geom: Geometry,
        batched: bool,
        channels_last: bool,
        want: bool,
    ) -> None:
        nd = len(geom.kernel)
        out_size = geom.out_size
        lead = (1,) * (3 - nd)
        if channels_last:
            n_batch = shape[0] if batched else 1
            self.in5 = (n_batch,) + lead + shape[-nd - 1 : -1] + (shape[-1],)
            self.out5 = (n_batch,) + lead + out_size + (shape[-1],)
            self.user_out = (shape[:1] if batched else ()) + out_size + (shape[-1],)
        else:
            n_batch, n_chan = (shape[0], shape[1]) if batched else (1, shape[0])
            self.in5 = (n_batch, n_chan) + lead + shape[-nd:]
            self.out5 = (n_batch, n_chan) + lead + out_size
            self.user_out = shape[:-nd] + out_size
        o = self.out5
        # one task per output row: (n, c, od, oh) channels first, (n, od, oh) channels last
        self.n_tasks = o[0] * o[1] * o[2] * (1 if channels_last else o[3])
        self.work = math.prod(o) * math.prod(geom.kernel)
        self.nhwc = channels_last
        self.out_dtype = dtype
        self.store_dtype = _engine.comparable_dtype(dtype)  # uint16 is pooled as int16
        self.plain = dtype not in (_F16, _U16)  # the kernels take the array as it is
        self.fill = _engine.lowest(self.store_dtype)
        self.kp = _engine.kernel_table(geom.kernel, geom.stride, geom.pad_begin, geom.dilation)
        self.want = want
        # bytes a call reads and writes (for the streaming choice); the kernels store
        # runs of o[-1] elements (an output row; channels last, a pixel)
        self.moved = _engine.streamable_bytes(
            math.prod(self.in5) * dtype.itemsize
            + math.prod(o) * (dtype.itemsize + (8 if want else 0)),
            o[-1] * dtype.itemsize, o[-1] * 8 if want else 0)
        # the one kernel variant this plan runs (row, pixel or window kernels)
        self.run = max_select.forward_runner(self.in5, self.out5, self.store_dtype, self.kp,
                                             self.fill, want, channels_last, self.work,
                                             self.n_tasks)

    def __call__(self, arr: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Run the forward on ``arr`` (shape and dtype as planned)."""
        stream = _engine.streams(self.moved)
        out = _engine.new_array(self.out5, self.store_dtype, aligned=stream)
        want = self.want
        idx = _engine.new_array(self.out5, np.int64, aligned=stream) if want else _DUMMY_IDX5
        x5 = arr.reshape(self.in5)
        o5 = out
        if not self.plain:
            x5, o5 = _engine.comparable(x5), _engine.kernel_bits(out)
        self.run(x5, o5, idx, stream)
        user_out = self.user_out
        if not self.plain:
            out = _engine.restore(out, self.out_dtype)
        out = out.reshape(user_out)
        return out, (idx.reshape(user_out) if want else None)


def forward_on(
    arr: np.ndarray, geom: Geometry, batched: bool, channels_last: bool, want_indices: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Max pooling on a resolved geometry: the entry point of ONNX and chunked execution.

    Parameters
    ----------
    arr : ndarray
        A validated input (any strides), ``(N, C, *spatial)`` / ``(C, *spatial)`` or
        channels-last; a max pooling dtype.
    geom : Geometry
        Explicit begin/end pads and window counts (any rule: PyTorch's, ONNX's, a chunk's).
    batched, channels_last : bool
        Layout of ``arr``.
    want_indices : bool
        Also compute the plane row-major indices (-1 for a window with no input element).

    Returns
    -------
    out : ndarray
        The pooled values, in ``arr``'s layout and dtype.
    indices : ndarray of int64 or None
        Plane indices, same shape as ``out``, or None.

    Examples
    --------
    >>> import numpy as np
    >>> g = Geometry.build((4,), (2,), (2,), (0,), (1,), (1,), False)
    >>> forward_on(np.array([[[1.0, 3.0, 2.0, 0.0]]]), g, True, False, True)
    (array([[[3., 2.]]]), array([[[1, 2]]]))
    """
    if len(geom.kernel) > 3:
        return _forward_any_rank(arr, geom, batched, channels_last, want_indices)
    return ForwardPlan(arr.shape, arr.dtype, geom, batched, channels_last, want_indices)(arr)


def _forward_any_rank(arr, geom: Geometry, batched: bool, channels_last: bool, want: bool):
    """Forward for more than 3 spatial dims: the any-rank kernel on flattened planes."""
    nd = len(geom.kernel)
    planes = _engine.flat_planes(_engine.comparable(arr), nd, batched, channels_last)
    n_batch, n_chan = planes.shape[:2]
    x2 = np.ascontiguousarray(planes).reshape(n_batch * n_chan, -1)
    n_out = math.prod(geom.out_size)
    out2 = np.empty((n_batch * n_chan, n_out), dtype=x2.dtype)
    idx2 = np.empty((n_batch * n_chan, n_out) if want else (0, 0), dtype=np.int64)
    params = np.array(
        [geom.kernel, geom.stride, geom.pad_begin, geom.dilation, geom.out_size], dtype=np.int64
    )
    _engine.run_tasks(
        _k.max_pool_forward_nd, x2.shape[0], out2.size * math.prod(geom.kernel), x2, out2, idx2,
        np.array(geom.in_size, dtype=np.int64), params,
        _engine.lowest(_engine.comparable_dtype(arr.dtype)), want,
    )
    out2 = _engine.restore(out2, arr.dtype)

    def to_layout(a2: np.ndarray) -> np.ndarray:
        a = a2.reshape((n_batch, n_chan) + geom.out_size)
        if channels_last:
            a = np.ascontiguousarray(np.moveaxis(a, 1, -1))
        return a if batched else a[0]

    out = to_layout(out2)
    if arr.dtype == _F16:
        out = out.view(_F16)
    return out, (to_layout(idx2) if want else None)


def pool(x: Any, p: MaxPoolParams, want_indices: bool, convert: bool = True):
    """Max pooling on validated options; validates ``x`` only.

    Indices come back in ``p``'s layout, or as plane row-major ones with ``convert=False``.
    """
    arr = _args.as_array(x)
    _args.check_dtype(arr, "x")
    key = ("max", p, arr.shape, arr.dtype, want_indices)
    plan = _engine.plans.get(key)
    if plan is None:  # first call with these options/shape/dtype: validate and plan
        batched = _args.check_input(arr.shape, p.nd, "x", p.channels_last)
        in_spatial = _args.spatial_shape(arr.shape, p.nd, p.channels_last)
        geom = _args.build_geometry(
            in_spatial, p.kernel, p.stride, p.padding, p.dilation, p.ceil_mode
        )
        if p.nd > 3:
            out, idx = _forward_any_rank(arr, geom, batched, p.channels_last, want_indices)
            return out, _convert_indices(idx, arr.shape, p, convert)
        plan = ForwardPlan(arr.shape, arr.dtype, geom, batched, p.channels_last, want_indices)
        _engine.plans.put(key, plan)
    out, idx = plan(arr)
    return out, _convert_indices(idx, arr.shape, p, convert)


def _convert_indices(idx, shape: tuple[int, ...], p: MaxPoolParams, convert: bool):
    """Plane row-major kernel indices in ``p``'s layout (unchanged with ``convert=False``)."""
    if idx is None or not convert:
        return idx
    return p.indices_from_plane(idx, shape)


def backward(
    grad_output: Any,
    indices: Any,
    input_shape: Any,
    nd: int,
    channels_last: Any = False,
    index_format: Any = "plane",
    storage_order: Any = 0,
    out: Any = None,
) -> np.ndarray:
    """Validated max pooling backward: indices to plane form, then the argmax router."""
    channels_last = _args.check_bool(channels_last, "channels_last")
    index_format, storage_order = _args.check_index_format(index_format, storage_order)
    idx = _args.as_array(indices, "indices")
    grad, shape, batched, out = _args.backward_args(
        grad_output, input_shape, nd, channels_last, out, idx
    )
    if idx.dtype.kind not in "iu":
        raise TypeError(f"indices must be an integer array, got dtype {idx.dtype}")
    if idx.shape != grad.shape:
        raise ValueError(
            f"indices must have the shape of grad_output {grad.shape}, got {idx.shape}"
        )
    idx = _indices.to_plane(
        idx.astype(np.int64, copy=False), shape, nd, batched, channels_last, index_format,
        storage_order,
    )
    return argmax.route(grad, idx, shape, nd, channels_last, out=out)


def _finish(out: np.ndarray, idx: np.ndarray | None, return_indices: bool):
    return (out, idx) if return_indices else out


_FORWARD_DOC = """{nd}-D max pooling, exact and PyTorch-compatible (docs/semantics.md §2-§5).

    Parameters
    ----------
    x : array_like
        ``{layout}`` or ``{unbatched}``; with ``channels_last=True`` ``{cl}`` or
        ``{cl_unbatched}``. Any array-like, any strides; a float, signed or unsigned
        integer dtype.
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

    {examples}
    >>> x = np.array([1.0, 3.0, 2.0, 0.0]).reshape({row4})
    >>> pk.max_pool{nd}d(x, {k2}).ravel()
    array([3., 2.])
    """

_BACKWARD_DOC = """Gradient of :func:`max_pool{nd}d` with respect to its input.

    Each output gradient flows to the input element that won its window; where
    windows overlap, contributions add up (in output row-major order, so results are
    deterministic and bit-identical to PyTorch's CPU backward). Indices may come in
    either layout of the forward pass (``index_format``, ``storage_order``).

    Parameters
    ----------
    grad_output : array_like
        Gradient of the pooled output, float16/32/64, shaped like the forward output
        (``{layout}`` / ``{unbatched}``, or ``{cl}`` / ``{cl_unbatched}`` with
        ``channels_last=True``).
    indices : array_like of int
        The indices returned by the forward pass, same shape as ``grad_output``.
    {input_shape}
    channels_last : bool, default False
        Layout of all three arrays.
    index_format : {{"plane", "global"}}, default "plane"
        Layout of ``indices``, as given to the forward pass.
    storage_order : {{0, 1}}, default 0
        Row- or column-major plane flattening of ``indices``, as given to the forward.
    {backward}
    >>> x = np.array([1.0, 3.0, 2.0, 0.0]).reshape({row4})
    >>> y, idx = pk.max_pool{nd}d(x, {k2}, return_indices=True)
    >>> pk.max_pool{nd}d_backward(np.ones_like(y), idx, x.shape).ravel()
    array([0., 1., 1., 0.])
    """


_GENERAL_DOC = """Max pooling over any number of trailing spatial dimensions.

    Parameters
    ----------
    x : array_like
        ``(N, C, *spatial)`` or ``(C, *spatial)``; with ``channels_last=True``
        ``(N, *spatial, C)`` or ``(*spatial, C)``. A float, signed or unsigned integer
        dtype (docs/semantics.md §11).
    kernel_size : tuple of int
        Window size, one entry per spatial dimension; its length sets the number of
        spatial dimensions.
    stride, padding, dilation, ceil_mode, return_indices, channels_last, index_format, \
storage_order
        As in :func:`max_pool2d`, one entry per spatial dimension.

    Returns
    -------
    out : ndarray
        Same layout and dtype as ``x``, spatial sizes replaced by the output sizes
        (docs/semantics.md §2).
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


#: The layout options of the forward that every max pooling backward takes too.
_LAYOUT = ("channels_last", "index_format", "storage_order")


def _pool_function(nd: int | None):
    """The forward of ``nd`` spatial dims (None: as many as ``kernel_size`` has)."""

    def pool_nd(x: ArrayLike, *options: Any,
                **kw: Any) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        p = MaxPoolParams.of(nd, options, kw)
        return _finish(*pool(x, p, p.return_indices), p.return_indices)

    return with_options(pool_nd, MaxPoolParams.options())


def _for_rank(nd: int):
    def backward_nd(grad_output: ArrayLike, indices: ArrayLike, input_shape: tuple[int, ...],
                    *options: Any, **kw: Any) -> np.ndarray:
        options, out = take(options, kw, len(_LAYOUT), "out")
        return backward(grad_output, indices, input_shape, nd, *options, out=out, **kw)

    layout = [p for p in MaxPoolParams.options() if p.name in _LAYOUT]
    return (_docs.for_rank(_pool_function(nd), f"max_pool{nd}d", _FORWARD_DOC, nd),
            _docs.for_rank(with_options(backward_nd, [*layout, OUT]), f"max_pool{nd}d_backward",
                           _BACKWARD_DOC, nd))


max_pool = _pool_function(None)
max_pool.__name__ = max_pool.__qualname__ = "max_pool"
max_pool.__doc__ = _GENERAL_DOC
max_pool1d, max_pool1d_backward = _for_rank(1)
max_pool2d, max_pool2d_backward = _for_rank(2)
max_pool3d, max_pool3d_backward = _for_rank(3)


def max_pool_backward(
    grad_output: ArrayLike,
    indices: ArrayLike,
    input_shape: tuple[int, ...],
    channels_last: bool = False,
    spatial_dims: int | None = None,
    index_format: str = "plane",
    storage_order: int = 0,
    out: np.ndarray | None = None,
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
    index_format, storage_order
        Layout of ``indices``, as given to the forward pass.
    out : ndarray, optional
        Preallocated result (see :func:`max_pool2d_backward`).

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
    return backward(grad_output, indices, input_shape, nd, channels_last, index_format,
                    storage_order, out)
