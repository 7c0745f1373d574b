"""Max unpooling: ``max_unpool1d/2d/3d``, their backward passes and layers.

The partial inverse of max pooling: every input value is written at its flat index in
a zero output plane (PyTorch's ``max_unpool*d``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from . import _args, _indices
from ._geometry import output_shape
from ._kernels import LazyModule
from ._layer_base import Layer, compact
from ._planes import from_planes, kernel_bits, to_planes
from .functional import IntOrTuple

#: compiled kernels, imported (with numba) by the first call that needs them
_indexed: Any = LazyModule("indexed")

__all__ = [
    "MaxUnpool1d",
    "MaxUnpool2d",
    "MaxUnpool3d",
    "max_unpool1d",
    "max_unpool1d_backward",
    "max_unpool2d",
    "max_unpool2d_backward",
    "max_unpool3d",
    "max_unpool3d_backward",
]


@dataclass(frozen=True)
class UnpoolParams:
    """Validated max unpooling options."""

    nd: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]  # the begin pads
    channels_last: bool
    pad_end: tuple[int, ...] | None = None  # None: symmetric
    index_format: str = "plane"
    storage_order: int = 0

    @classmethod
    def parse(
        cls,
        nd: int,
        kernel_size: Any,
        stride: Any,
        padding: Any,
        channels_last: Any,
        index_format: Any = "plane",
        storage_order: Any = 0,
    ) -> UnpoolParams:
        kernel = _args.int_tuple(kernel_size, nd, "kernel_size", minimum=1)
        strides = kernel if stride is None else _args.int_tuple(stride, nd, "stride", minimum=1)
        begin, end = _args.parse_unpool_padding(padding, nd)
        return cls(
            nd,
            kernel,
            strides,
            begin,
            _args.check_bool(channels_last, "channels_last"),
            end,
            *_args.check_index_format(index_format, storage_order),
        )

    @property
    def ends(self) -> tuple[int, ...]:
        return self.padding if self.pad_end is None else self.pad_end

    def plane_indices(self, idx: np.ndarray, out_shape: tuple[int, ...]) -> np.ndarray:
        """``idx`` (in this layout) as plane row-major indices of the output planes."""
        batched = len(out_shape) == self.nd + 2
        return _indices.to_plane(
            idx, out_shape, self.nd, batched, self.channels_last, self.index_format,
            self.storage_order,
        )

    def out_size(self, in_spatial: tuple[int, ...], output_size: Any, ndim: int) -> tuple:
        """PyTorch's rule: default ``(L-1)*s - 2p + k``; a given size must lie strictly
        within one stride of it."""
        default = tuple(
            (n - 1) * s - (pb + pe) + k
            for n, s, pb, pe, k in zip(
                in_spatial, self.stride, self.padding, self.ends, self.kernel
            )
        )
        if output_size is None:
            if any(d < 1 for d in default):
                raise ValueError(
                    f"output size must be >= 1 in every dimension, but x with spatial size "
                    f"{in_spatial} unpools to {default} (kernel_size={self.kernel}, "
                    f"stride={self.stride}, padding={self.padding})"
                )
            return default
        if not isinstance(output_size, (tuple, list)):
            raise TypeError(
                f"output_size must be None or a tuple of ints, got {output_size!r}"
            )
        sizes = list(output_size)
        if len(sizes) in (ndim, self.nd + 2) and len(sizes) != self.nd:
            sizes = list(_args.spatial_shape(tuple(sizes), self.nd, self.channels_last))
        if len(sizes) != self.nd:
            raise ValueError(
                f"output_size must have {self.nd} entries (or the full rank of x), got "
                f"{tuple(output_size)!r}"
            )
        sizes_t = _args.int_tuple(sizes, self.nd, "output_size")
        for j, (o, d, s) in enumerate(zip(sizes_t, default, self.stride)):
            if not d - s < o < d + s:
                raise ValueError(
                    f"output_size[{j}] must be strictly between {d - s} and {d + s} (the "
                    f"default size {d} plus or minus the stride), got output_size={sizes_t}"
                )
        if any(o < 1 for o in sizes_t):
            raise ValueError(f"output_size must be >= 1 in every dimension, got {sizes_t}")
        return sizes_t


def _unpool_impl(x: Any, indices: Any, p: UnpoolParams, output_size: Any) -> np.ndarray:
    arr = _args.as_array(x)
    _args.check_dtype(arr, "x")
    _args.check_input(arr.shape, p.nd, "x", p.channels_last)
    idx = _args.check_index_array(indices, arr.shape)
    in_spatial = _args.spatial_shape(arr.shape, p.nd, p.channels_last)
    out_spatial = p.out_size(in_spatial, output_size, arr.ndim)
    shape = output_shape(arr.shape, p.nd, out_spatial, p.channels_last)
    idx = p.plane_indices(idx, shape)
    out = np.zeros(shape, dtype=arr.dtype)
    planes = np.ascontiguousarray(to_planes(kernel_bits(out), p.nd, p.channels_last))
    bad = np.zeros(planes.shape[0], dtype=np.uint8)
    _indexed.scatter_set(
        np.ascontiguousarray(to_planes(kernel_bits(arr), p.nd, p.channels_last)),
        np.ascontiguousarray(to_planes(idx, p.nd, p.channels_last)),
        planes,
        bad,
    )
    if bad.any():
        raise _args.index_range_error("indices", planes.shape[1], shape)
    return from_planes(planes, shape, p.nd, p.channels_last).view(arr.dtype)


def _unpool_backward_impl(
    grad_output: Any, indices: Any, input_shape: Any, p: UnpoolParams
) -> np.ndarray:
    grad = _args.as_array(grad_output, "grad_output")
    _args.check_dtype(grad, "grad_output", _args.FLOAT_DTYPES)
    shape = _args.check_shape_arg(input_shape, "input_shape")
    _args.check_input(shape, p.nd, "input_shape", p.channels_last)
    idx = _args.check_index_array(indices, shape)
    if grad.ndim != len(shape):
        raise ValueError(
            f"grad_output must have as many dimensions as input_shape {shape}, "
            f"got shape {grad.shape}"
        )
    _args.check_input(grad.shape, p.nd, "grad_output", p.channels_last)
    out_spatial = _args.spatial_shape(grad.shape, p.nd, p.channels_last)
    in_spatial = _args.spatial_shape(shape, p.nd, p.channels_last)
    try:  # the gradient must have a size the forward could have produced
        p.out_size(in_spatial, out_spatial, len(shape))
    except ValueError as exc:
        raise ValueError(f"grad_output has an impossible unpooled size: {exc}") from None
    _args.check_grad_shape(grad, output_shape(shape, p.nd, out_spatial, p.channels_last))
    idx = p.plane_indices(idx, grad.shape)
    g_planes = np.ascontiguousarray(to_planes(kernel_bits(grad), p.nd, p.channels_last))
    dx = np.empty((g_planes.shape[0], int(np.prod(_args.spatial_shape(shape, p.nd,
                                                                         p.channels_last)))),
                  dtype=g_planes.dtype)
    bad = np.zeros(g_planes.shape[0], dtype=np.uint8)
    _indexed.unpool_backward(
        g_planes, np.ascontiguousarray(to_planes(idx, p.nd, p.channels_last)), dx, bad
    )
    if bad.any():
        raise _args.index_range_error("indices", g_planes.shape[1], grad.shape)
    return from_planes(dx, shape, p.nd, p.channels_last).view(grad.dtype)


_LAYOUT = {
    1: ("(N, C, L)", "(C, L)"),
    2: ("(N, C, H, W)", "(C, H, W)"),
    3: ("(N, C, D, H, W)", "(C, D, H, W)"),
}


def _unpool_doc(nd: int) -> str:
    first, unbatched = _LAYOUT[nd]
    shape = "(1, 1" + ", 1" * (nd - 1) + ", 2)"
    kern = "(1,) * " + str(nd - 1) + " + (2,)" if nd > 1 else "2"
    return f"""{nd}-D max unpooling: place each value at its index in a zero output.

    Parameters
    ----------
    x : array_like
        ``{first}`` or ``{unbatched}`` (channels last with ``channels_last=True``);
        float16/32/64, int8/16/32/64 or uint8.
    indices : array_like of int
        Same shape as ``x``: positions in the output, as returned by
        ``max_pool{nd}d(..., return_indices=True)`` (in the layout ``index_format`` and
        ``storage_order`` name).
    kernel_size, stride : int or tuple of {nd} ints
        The options of the max pooling being inverted (``stride=None`` means
        ``kernel_size``).
    padding : int, tuple of {nd} ints, or {nd} (begin, end) pairs, default 0
        The pooling's padding (>= 0); pairs for asymmetric (ONNX) pads.
    output_size : tuple of int, optional
        Output spatial size ({nd} entries or the full shape); each entry must lie
        strictly within one stride of the default ``(L - 1)*s - (p_begin + p_end) + k``.
    channels_last : bool, default False
        Channels are the last axis.
    index_format : {{"plane", "global"}}, default "plane"
        ``"plane"``: flat positions per ``(n, c)`` output plane (PyTorch); ``"global"``:
        flat positions in the whole output tensor (ONNX MaxPool ``Indices``).
    storage_order : {{0, 1}}, default 0
        Row-major (0) or column-major (1) flattening of the spatial plane (ONNX).

    Returns
    -------
    out : ndarray
        Dtype of ``x``; zero except at the indexed positions.

    Raises
    ------
    ValueError
        If an index lies outside its output plane.

    Notes
    -----
    When several elements of a plane carry the same index, the last one in row-major
    order wins, whatever the thread count. PyTorch's CPU kernel runs in parallel over
    all input elements, so its winner depends on thread chunking (on one thread it is
    also the last). The backward routes a slot's gradient to the winner only (PyTorch
    gives it to every duplicate, which double-counts after a max_pool round trip).

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> x = np.array([5.0, 7.0]).reshape{shape}
    >>> pk.max_unpool{nd}d(x, np.array([1, 2]).reshape{shape}, {kern}).ravel()
    array([0., 5., 7., 0.])
    """


def _unpool_backward_doc(nd: int) -> str:
    shape = "(1, 1" + ", 1" * (nd - 1) + ", 2)"
    kern = "(1,) * " + str(nd - 1) + " + (2,)" if nd > 1 else "2"
    return f"""Gradient of :func:`max_unpool{nd}d` with respect to ``x``.

    ``grad_input[i] = grad_output[indices[i]]`` for the element that won its slot
    (the last one in row-major order); 0 for duplicates that were overwritten.

    Parameters
    ----------
    grad_output : array_like
        float16/32/64, shaped like the unpooled output.
    indices : array_like of int
        The indices given to the forward pass.
    input_shape : tuple of int
        Shape of the forward ``x``.
    kernel_size, stride, padding, channels_last, index_format, storage_order
        The forward options.

    Returns
    -------
    grad_input : ndarray
        Shape ``input_shape``, dtype of ``grad_output``.

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> g = np.arange(4.0).reshape(1, 1{", 1" * (nd - 1)}, 4)
    >>> i = np.array([1, 2]).reshape{shape}
    >>> pk.max_unpool{nd}d_backward(g, i, {shape}, {kern}).ravel()
    array([1., 2.])
    """


def _make_unpool(nd: int):
    def unpool(
        x: ArrayLike,
        indices: ArrayLike,
        kernel_size: IntOrTuple,
        stride: IntOrTuple | None = None,
        padding: IntOrTuple | tuple[tuple[int, int], ...] = 0,
        output_size: tuple[int, ...] | None = None,
        channels_last: bool = False,
        index_format: str = "plane",
        storage_order: int = 0,
    ) -> np.ndarray:
        p = UnpoolParams.parse(
            nd, kernel_size, stride, padding, channels_last, index_format, storage_order
        )
        return _unpool_impl(x, indices, p, output_size)

    def backward(
        grad_output: ArrayLike,
        indices: ArrayLike,
        input_shape: tuple[int, ...],
        kernel_size: IntOrTuple,
        stride: IntOrTuple | None = None,
        padding: IntOrTuple | tuple[tuple[int, int], ...] = 0,
        channels_last: bool = False,
        index_format: str = "plane",
        storage_order: int = 0,
    ) -> np.ndarray:
        p = UnpoolParams.parse(
            nd, kernel_size, stride, padding, channels_last, index_format, storage_order
        )
        return _unpool_backward_impl(grad_output, indices, input_shape, p)

    unpool.__name__ = unpool.__qualname__ = f"max_unpool{nd}d"
    backward.__name__ = backward.__qualname__ = f"max_unpool{nd}d_backward"
    unpool.__doc__ = _unpool_doc(nd)
    backward.__doc__ = _unpool_backward_doc(nd)
    return unpool, backward


max_unpool1d, max_unpool1d_backward = _make_unpool(1)
max_unpool2d, max_unpool2d_backward = _make_unpool(2)
max_unpool3d, max_unpool3d_backward = _make_unpool(3)


def _padding_repr(p: UnpoolParams) -> object:
    if p.pad_end is None:
        return compact(p.padding)
    return tuple(zip(p.padding, p.pad_end))


class _MaxUnpoolNd(Layer):
    """Max unpooling layer; ``forward(x, indices, output_size=None)``."""

    _nd = 0

    def __init__(
        self,
        kernel_size: IntOrTuple,
        stride: IntOrTuple | None = None,
        padding: IntOrTuple | tuple[tuple[int, int], ...] = 0,
        channels_last: bool = False,
        index_format: str = "plane",
        storage_order: int = 0,
    ) -> None:
        self.params = UnpoolParams.parse(
            self._nd, kernel_size, stride, padding, channels_last, index_format, storage_order
        )
        self._indices: np.ndarray | None = None
        self._input_shape: tuple[int, ...] = ()

    def forward(
        self, x: ArrayLike, indices: ArrayLike, output_size: tuple[int, ...] | None = None
    ) -> np.ndarray:
        """Unpool ``x`` at ``indices`` (see :func:`max_unpool2d`)."""
        out = _unpool_impl(x, indices, self.params, output_size)
        self._indices = np.asarray(indices)
        self._input_shape = tuple(np.shape(x))
        return out

    def backward(self, grad_output: ArrayLike) -> np.ndarray:
        """Gradient with respect to ``x`` of the most recent ``forward``."""
        self._require_forward(self._indices)
        return _unpool_backward_impl(grad_output, self._indices, self._input_shape, self.params)

    def __repr__(self) -> str:
        p = self.params
        text = (
            f"{type(self).__name__}(kernel_size={compact(p.kernel)}, "
            f"stride={compact(p.stride)}, padding={_padding_repr(p)!r}"
        )
        if p.channels_last:
            text += ", channels_last=True"
        text += _indices.layout_repr(p.index_format, p.storage_order)
        return text + ")"


class MaxUnpool1d(_MaxUnpoolNd):
    """1-D max unpooling layer. Options as :func:`poolkit.max_unpool1d`.

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> pk.MaxUnpool1d(2)(np.array([[[5.0, 7.0]]]), np.array([[[1, 2]]]))
    array([[[0., 5., 7., 0.]]])
    """

    _nd = 1


class MaxUnpool2d(_MaxUnpoolNd):
    """2-D max unpooling layer. Options as :func:`poolkit.max_unpool2d`.

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> x = np.random.default_rng(0).standard_normal((1, 1, 4, 4))
    >>> y, i = pk.max_pool2d(x, 2, return_indices=True)
    >>> pk.MaxUnpool2d(2)(y, i).shape
    (1, 1, 4, 4)
    """

    _nd = 2


class MaxUnpool3d(_MaxUnpoolNd):
    """3-D max unpooling layer. Options as :func:`poolkit.max_unpool3d`.

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> pk.MaxUnpool3d(2)(np.ones((1, 1, 1, 1, 1)), np.zeros((1, 1, 1, 1, 1), int)).shape
    (1, 1, 2, 2, 2)
    """

    _nd = 3
