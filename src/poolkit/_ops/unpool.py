"""Max unpooling: ``max_unpool1d/2d/3d``, their backward passes and layers.

The partial inverse of max pooling: every input value is written at its flat index in
a zero output plane (PyTorch's ``max_unpool*d``).
"""

from __future__ import annotations

from dataclasses import dataclass
from inspect import Parameter
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .. import _args, _docs, _engine
from .._geometry import PaddingSpec, output_shape
from .._kernels import LazyModule
from .params import OUT, IndexedParams, take, with_options

#: compiled kernels, imported (with numba) by the first call that needs them
_indexed: Any = LazyModule("indexed")

__all__ = [
    "max_unpool1d",
    "max_unpool1d_backward",
    "max_unpool2d",
    "max_unpool2d_backward",
    "max_unpool3d",
    "max_unpool3d_backward",
]


@dataclass(frozen=True)
class UnpoolParams(IndexedParams):
    """Validated max unpooling options (``padding.pytorch``: symmetric ints)."""

    _padding_type = "IntOrTuple | tuple[tuple[int, int], ...]"

    @staticmethod
    def _padding(padding: Any, nd: int, kernel: tuple[int, ...]) -> PaddingSpec:
        return _args.parse_unpool_padding(padding, nd)

    @classmethod
    def _more(
        cls, nd: int, channels_last: bool = False, index_format: str = "plane",
        storage_order: int = 0,
    ) -> tuple[Any, ...]:
        """The options of every max unpooling function and layer after ``padding`` (the
        forward functions also take ``output_size``, between the two)."""
        return (_args.check_bool(channels_last, "channels_last"),
                *_args.check_index_format(index_format, storage_order))

    def out_size(self, in_spatial: tuple[int, ...], output_size: Any, ndim: int) -> tuple:
        """PyTorch's rule: default ``(L-1)*s - 2p + k``; a given size must lie strictly
        within one stride of it."""
        default = tuple(
            (n - 1) * s - (pb + pe) + k
            for n, s, pb, pe, k in zip(
                in_spatial, self.stride, self.padding.begin, self.padding.end, self.kernel
            )
        )
        if output_size is None:
            if any(d < 1 for d in default):
                raise ValueError(
                    f"output size must be >= 1 in every dimension, but x with spatial size "
                    f"{in_spatial} unpools to {default} (kernel_size={self.kernel}, "
                    f"stride={self.stride}, padding={self.padding.describe()})"
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


def _pixels(arr: np.ndarray, nd: int) -> np.ndarray:
    """``(N, pixels, C)`` C-contiguous kernel form of a channels-last array (a view when
    it is C-contiguous already; float16 as its bits)."""
    view = _engine.pixel_view(np.ascontiguousarray(arr), nd)
    return view.reshape(view.shape[0], -1, view.shape[-1])


def scatter_on(arr: np.ndarray, plane_idx: np.ndarray, shape: tuple[int, ...], nd: int,
               channels_last: bool) -> np.ndarray:
    """Write each value of ``arr`` at its plane index in a zero array of ``shape``: the
    entry point on resolved sizes (ONNX MaxUnpool passes the whole tensor as one plane).
    The last write to a slot wins, in row-major order."""
    out = np.zeros(shape, dtype=arr.dtype)
    if channels_last and out.size:  # channels side by side, no moved-axis copies
        src, dst = _pixels(arr, nd), _pixels(out, nd)
        bad = np.zeros(dst.shape[0], dtype=np.uint8)
        _engine.run_tasks(_indexed.scatter_set_pixels, dst.shape[0], out.size + arr.size,
                          src, _pixels(plane_idx, nd), dst, bad)
        if bad.any():
            raise _args.index_range_error("indices", dst.shape[1], shape)
        return out
    planes = np.ascontiguousarray(_engine.to_planes(_engine.kernel_bits(out), nd, channels_last))
    bad = np.zeros(planes.shape[0], dtype=np.uint8)
    _engine.run_tasks(
        _indexed.scatter_set, planes.shape[0], out.size + arr.size,
        np.ascontiguousarray(_engine.to_planes(_engine.kernel_bits(arr), nd, channels_last)),
        np.ascontiguousarray(_engine.to_planes(plane_idx, nd, channels_last)), planes, bad,
    )
    if bad.any():
        raise _args.index_range_error("indices", planes.shape[1], shape)
    return _engine.from_planes(planes, shape, nd, channels_last).view(arr.dtype)


def unpool(x: Any, indices: Any, p: UnpoolParams, output_size: Any) -> np.ndarray:
    """Max unpooling on validated options; validates the arrays and ``output_size``."""
    arr = _args.as_array(x)
    _args.check_dtype(arr, "x")
    _args.check_input(arr.shape, p.nd, "x", p.channels_last)
    idx = _args.check_index_array(indices, arr.shape)
    in_spatial = _args.spatial_shape(arr.shape, p.nd, p.channels_last)
    out_spatial = p.out_size(in_spatial, output_size, arr.ndim)
    shape = output_shape(arr.shape, p.nd, out_spatial, p.channels_last)
    return scatter_on(arr, p.indices_to_plane(idx, shape), shape, p.nd, p.channels_last)


def backward(grad_output: Any, indices: Any, input_shape: Any, p: UnpoolParams,
             out: Any = None) -> np.ndarray:
    """Validated unpooling backward: each element gathers its slot's gradient if it won."""
    grad = _args.as_array(grad_output, "grad_output")
    _args.check_dtype(grad, "grad_output", _args.FLOAT_DTYPES)
    shape = _args.check_shape_arg(input_shape, "input_shape")
    _args.check_input(shape, p.nd, "input_shape", p.channels_last)
    idx = _args.check_index_array(indices, shape, like="the forward x (input_shape)")
    if grad.ndim != len(shape):
        raise ValueError(
            f"grad_output must have as many dimensions as input_shape {shape}, "
            f"got shape {grad.shape}"
        )
    _args.check_input(grad.shape, p.nd, "grad_output", p.channels_last)
    out = _args.check_out(out, shape, grad.dtype, grad, indices)
    out_spatial = _args.spatial_shape(grad.shape, p.nd, p.channels_last)
    in_spatial = _args.spatial_shape(shape, p.nd, p.channels_last)
    try:  # the gradient must have a size the forward could have produced
        p.out_size(in_spatial, out_spatial, len(shape))
    except ValueError as exc:
        raise ValueError(f"grad_output has an impossible unpooled size: {exc}") from None
    _args.check_grad_shape(grad, output_shape(shape, p.nd, out_spatial, p.channels_last))
    idx = p.indices_to_plane(idx, grad.shape)
    if p.channels_last and grad.size:  # channels side by side, no moved-axis copies
        g_pixels = _pixels(grad, p.nd)
        dx = np.empty(shape, dtype=grad.dtype)
        dx_pixels = _pixels(dx, p.nd)
        bad = np.zeros(g_pixels.shape[0], dtype=np.uint8)
        _engine.run_tasks(_indexed.unpool_backward_pixels, g_pixels.shape[0],
                          dx.size + grad.size, g_pixels, _pixels(idx, p.nd), dx_pixels, bad)
        if bad.any():
            raise _args.index_range_error("indices", g_pixels.shape[1], grad.shape)
        return _engine.deliver(dx, out)
    g_planes = np.ascontiguousarray(
        _engine.to_planes(_engine.kernel_bits(grad), p.nd, p.channels_last)
    )
    dx = np.empty((g_planes.shape[0], int(np.prod(in_spatial))), dtype=g_planes.dtype)
    bad = np.zeros(g_planes.shape[0], dtype=np.uint8)
    _engine.run_tasks(
        _indexed.unpool_backward, dx.shape[0], dx.size + grad.size, g_planes,
        np.ascontiguousarray(_engine.to_planes(idx, p.nd, p.channels_last)), dx, bad,
    )
    if bad.any():
        raise _args.index_range_error("indices", g_planes.shape[1], grad.shape)
    result = _engine.from_planes(dx, shape, p.nd, p.channels_last).view(grad.dtype)
    return _engine.deliver(result, out)


_FORWARD_DOC = """{nd}-D max unpooling: place each value at its index in a zero output.

    Parameters
    ----------
    x : array_like
        ``{layout}`` or ``{unbatched}`` (channels last with ``channels_last=True``);
        a float, signed or unsigned integer dtype.
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

    {examples}
    >>> x = np.array([5.0, 7.0]).reshape({row2})
    >>> pk.max_unpool{nd}d(x, np.array([1, 2]).reshape({row2}), {k2}).ravel()
    array([0., 5., 7., 0.])
    """

_BACKWARD_DOC = """Gradient of :func:`max_unpool{nd}d` with respect to ``x``.

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
    {backward}
    >>> g = np.arange(4.0).reshape({row4})
    >>> i = np.array([1, 2]).reshape({row2})
    >>> pk.max_unpool{nd}d_backward(g, i, {row2}, {k2}).ravel()
    array([1., 2.])
    """


#: The forward's ``output_size``: after ``padding``, not an option of the layer.
_OUTPUT_SIZE = Parameter("output_size", Parameter.POSITIONAL_OR_KEYWORD, default=None,
                         annotation="tuple[int, ...] | None")
_OPTIONS = UnpoolParams.options()
_AT = [p.name for p in _OPTIONS].index("padding") + 1


def _for_rank(nd: int):
    def unpool_nd(x: ArrayLike, indices: ArrayLike, *options: Any, **kw: Any) -> np.ndarray:
        options, output_size = take(options, kw, _AT, "output_size")
        return unpool(x, indices, UnpoolParams.of(nd, options, kw), output_size)

    def backward_nd(grad_output: ArrayLike, indices: ArrayLike, input_shape: tuple[int, ...],
                    *options: Any, **kw: Any) -> np.ndarray:
        options, out = take(options, kw, len(_OPTIONS), "out")
        p = UnpoolParams.of(nd, options, kw)
        return backward(grad_output, indices, input_shape, p, out)

    forward = with_options(unpool_nd, [*_OPTIONS[:_AT], _OUTPUT_SIZE, *_OPTIONS[_AT:]])
    return (_docs.for_rank(forward, f"max_unpool{nd}d", _FORWARD_DOC, nd),
            _docs.for_rank(with_options(backward_nd, [*_OPTIONS, OUT]),
                           f"max_unpool{nd}d_backward", _BACKWARD_DOC, nd))


max_unpool1d, max_unpool1d_backward = _for_rank(1)
max_unpool2d, max_unpool2d_backward = _for_rank(2)
max_unpool3d, max_unpool3d_backward = _for_rank(3)
