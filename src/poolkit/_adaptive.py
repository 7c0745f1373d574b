"""Adaptive and global pooling: ``adaptive_{avg,max}_pool*``, ``global_*_pool`` and layers.

Adaptive windows: output ``o`` of a dimension covers input ``[floor(o*L/O),
ceil((o+1)*L/O))``. Global pooling is adaptive pooling to size 1 over every spatial
dimension at once (the planes are flattened, so any number of spatial dims works).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from . import _args
from ._avg import AvgPoolParams, _avg_forward_impl, _power
from ._geometry import as_kernel_view, output_shape
from ._kernels import LazyModule
from ._kernels.dispatch import SERIAL_WORK
from ._layer_base import Layer
from ._memo import BoundedCache, simple_key
from ._planes import from_planes, global_view, kernel_bits, kernel_view, to_planes

#: compiled kernels, imported (with numba) by the first call that needs them
_kernels: Any = LazyModule("adaptive")
_indexed: Any = LazyModule("indexed")

__all__ = [
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AdaptiveAvgPool3d",
    "AdaptiveMaxPool1d",
    "AdaptiveMaxPool2d",
    "AdaptiveMaxPool3d",
    "GlobalAvgPool",
    "GlobalLpPool",
    "GlobalMaxPool",
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
    "global_avg_pool",
    "global_avg_pool_backward",
    "global_lp_pool",
    "global_lp_pool_backward",
    "global_max_pool",
    "global_max_pool_backward",
]


#: Runs of planes a parallel plane mean is split into.
_PLANE_RUNS = 64

_SHAPES = BoundedCache()


def _adaptive_shapes(arr: np.ndarray, nd: int, output_size: Any, channels_last: Any,
                     allowed: tuple[np.dtype, ...]):
    """Validate an adaptive-pooling call: ``(batched, in_spatial, out_size, out_shape,
    all_ones)``.

    Validation depends only on the input's shape and dtype, the allowed dtypes and the
    options, so it is memoised for exact-typed options (a cached entry also implies
    that ``channels_last`` is a bool)."""
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


def _adaptive_avg_impl(x: Any, nd: int, output_size: Any, channels_last: Any) -> np.ndarray:
    arr = _args.as_array(x)
    batched, in_spatial, out_size, out_shape, all_ones = _adaptive_shapes(
        arr, nd, output_size, channels_last, _args.FLOAT_DTYPES
    )
    channels_last = bool(channels_last)  # validated above
    out = np.empty(out_shape, arr.dtype)
    if all_ones:
        _plane_mean(arr, nd, channels_last, out)
        return out
    if _uniform(arr, in_spatial, out_size, channels_last) and out.size:
        d, h, w = _lead3(in_spatial)
        od, oh, ow = _lead3(out_size)
        n_rows = out.size // ow
        # runs of super-rows sweeping ~_UNIFORM_GROUPS kw-groups each (kd*kh per output)
        per_task = max(1, _UNIFORM_GROUPS // ((d // od) * (h // oh) * ow))
        n_tasks = 1 if arr.size < SERIAL_WORK else (n_rows + per_task - 1) // per_task
        _kernels.adaptive_avg_uniform(
            arr.reshape(-1), out.reshape(-1), np.array((d, h, w, od, oh, ow), np.int64), n_tasks
        )
        return out
    in_w, out_w = in_spatial[-1], out_size[-1]
    narrow = out_w >= 1 and (in_w + out_w - 1) // out_w < 8
    if narrow and not channels_last and arr.flags.c_contiguous and out.size:
        # narrow windows: flat planes, 8 at a time (wide ones stream rows in the 5-D kernel)
        n_planes = out.size // int(np.prod(out_size))
        _kernels.adaptive_avg_flat(
            kernel_bits(arr).reshape(n_planes, -1),
            kernel_bits(out).reshape(n_planes, -1),
            np.array(_lead3(in_spatial), dtype=np.int64),
            np.array(_lead3(out_size), dtype=np.int64),
        )
        return out
    _kernels.adaptive_avg_forward(
        kernel_view(arr, nd, batched, channels_last), kernel_view(out, nd, batched, channels_last)
    )
    return out


#: kw-groups swept per task of the uniform-window kernel (its scratch row: 8 KiB of float32).
_UNIFORM_GROUPS = 2048


def _uniform(arr: np.ndarray, in_spatial, out_size, channels_last: bool) -> bool:
    """Does :func:`_kernels.adaptive_avg_uniform` take this input? C-contiguous
    float32/float64, every output length dividing its input length, windows at most 4
    wide and at most 4 rows (the sweep's extra work is kd*kh)."""
    if channels_last or not arr.flags.c_contiguous or arr.dtype.kind != "f":
        return False
    if arr.dtype.itemsize < 4:
        return False
    if any(o == 0 or i % o for i, o in zip(in_spatial, out_size)):
        return False
    kd, kh, kw = (i // o for i, o in zip(_lead3(in_spatial), _lead3(out_size)))
    return kw <= 4 and kd * kh <= 4


def _lead3(spatial: tuple[int, ...]) -> tuple[int, int, int]:
    """The spatial sizes padded to (D, H, W) with leading ones."""
    full = (1,) * (3 - len(spatial)) + tuple(spatial)
    return full[0], full[1], full[2]


def _plane_mean(arr: np.ndarray, nd: int, channels_last: bool, out: np.ndarray) -> None:
    """Mean of every plane of ``arr`` (any layout) into the fresh ``out``, whose spatial
    sizes are all 1, so its memory order is the planes' order in either layout. Planes
    are made contiguous first, so every layout sums in the same (lane) order."""
    n_planes = out.size
    if not n_planes:
        return
    if not channels_last and arr.flags.c_contiguous:
        planes = arr.reshape(n_planes, -1)
    else:
        planes = np.ascontiguousarray(to_planes(arr, nd, channels_last))
    planes, means = kernel_bits(planes), kernel_bits(out).reshape(n_planes)
    if planes.size < SERIAL_WORK:
        _kernels.plane_mean_range(planes, means, 0, n_planes)
    else:
        # fixed runs of planes: no thread-count query per call (any split gives the
        # same bits; numba deals the runs out to however many threads are active)
        _kernels.plane_mean_par(planes, means, min(n_planes, _PLANE_RUNS))


def _adaptive_avg_scatter(g5: np.ndarray, dx5: np.ndarray, single: bool) -> None:
    """Run the adaptive average backward kernel: 5-D kernel views of the gradient and
    of ``dx``; the gradient goes in as contiguous ``(planes, outputs)`` rows."""
    n_out = int(np.prod(g5.shape[2:]))
    planes = np.ascontiguousarray(g5).reshape(g5.shape[0] * g5.shape[1], n_out)
    out_size = np.array(g5.shape[2:], dtype=np.int64)
    _kernels.adaptive_avg_backward(planes, dx5, out_size, single)


def _grad_input_shape(grad_output: Any, input_shape: Any, nd: int, channels_last: Any):
    channels_last = _args.check_bool(channels_last, "channels_last")
    grad = _args.as_array(grad_output, "grad_output")
    _args.check_dtype(grad, "grad_output", _args.FLOAT_DTYPES)
    shape = _args.check_shape_arg(input_shape, "input_shape")
    batched = _args.check_input(shape, nd, "input_shape", channels_last)
    if grad.ndim != len(shape):
        raise ValueError(
            f"grad_output must have as many dimensions as input_shape {shape}, "
            f"got shape {grad.shape}"
        )
    _args.check_input(grad.shape, nd, "grad_output", channels_last)
    out_size = _args.spatial_shape(grad.shape, nd, channels_last)
    _args.check_grad_shape(grad, output_shape(shape, nd, out_size, channels_last))
    return grad, shape, batched, channels_last


def _adaptive_avg_backward_impl(grad_output, input_shape, nd, channels_last) -> np.ndarray:
    grad, shape, batched, channels_last = _grad_input_shape(
        grad_output, input_shape, nd, channels_last
    )
    single = all(o == 1 for o in _args.spatial_shape(grad.shape, nd, channels_last))
    dx = np.empty(shape, dtype=grad.dtype)  # adaptive_avg_backward writes every element
    if single and not channels_last:
        dx[...] = 0  # plane_mean_backward adds to zeros
        kd, kh, kw = _lead3(_args.spatial_shape(shape, nd, False))
        _kernels.plane_mean_backward(
            np.ascontiguousarray(kernel_bits(grad)).reshape(-1),
            kernel_bits(dx).reshape(-1, kd * kh * kw), kd, kh, kw, True,
        )
        return dx
    _adaptive_avg_scatter(
        as_kernel_view(kernel_bits(grad), nd, batched, channels_last),
        kernel_view(dx, nd, batched, channels_last),
        single,
    )
    return dx


def _adaptive_max_impl(x: Any, nd: int, output_size: Any, channels_last: Any):
    arr = _args.as_array(x)
    batched, _, _, shape, _ = _adaptive_shapes(
        arr, nd, output_size, channels_last, _args.MAX_POOL_DTYPES
    )
    channels_last = bool(channels_last)  # validated above
    out = np.empty(shape, arr.dtype)
    idx = np.empty(shape, np.int64)
    _kernels.adaptive_max_forward(
        kernel_view(arr, nd, batched, channels_last),
        kernel_view(out, nd, batched, channels_last),
        kernel_view(idx, nd, batched, channels_last),
        True,
    )
    return out, idx


def argmax_backward(
    grad_output: Any, indices: Any, input_shape: Any, nd: int, channels_last: Any
) -> np.ndarray:
    """Route each gradient to its argmax (adaptive, fractional and global max pooling).

    Contributions to one input add up in output row-major order (deterministic).
    """
    grad, shape, _, channels_last = _grad_input_shape(grad_output, input_shape, nd, channels_last)
    idx = _args.check_index_array(indices, grad.shape)
    dx = np.zeros(shape, dtype=grad.dtype)
    planes = to_planes(kernel_bits(dx), nd, channels_last)
    bad = np.zeros(planes.shape[0], dtype=np.uint8)
    _indexed.scatter_add(
        np.ascontiguousarray(to_planes(kernel_bits(grad), nd, channels_last)),
        np.ascontiguousarray(to_planes(idx, nd, channels_last)),
        planes,
        bad,
    )
    if bad.any():
        raise _args.index_range_error("indices", planes.shape[1], shape)
    return from_planes(planes, shape, nd, channels_last).view(grad.dtype)


_LAYOUT = {
    1: ("(N, C, L)", "(C, L)", "(N, L, C)", "(L, C)"),
    2: ("(N, C, H, W)", "(C, H, W)", "(N, H, W, C)", "(H, W, C)"),
    3: ("(N, C, D, H, W)", "(C, D, H, W)", "(N, D, H, W, C)", "(D, H, W, C)"),
}


def _example_shape(nd: int, last: int) -> str:
    return "(1, 1" + ", 1" * (nd - 1) + f", {last})"


def _adaptive_avg_doc(nd: int) -> str:
    first, unbatched, cl, cl_unbatched = _LAYOUT[nd]
    return f"""{nd}-D adaptive average pooling (PyTorch's ``adaptive_avg_pool{nd}d``).

    Parameters
    ----------
    x : array_like
        ``{first}`` or ``{unbatched}`` (``{cl}`` / ``{cl_unbatched}`` with
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

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> x = np.arange(5.0).reshape{_example_shape(nd, 5)}
    >>> pk.adaptive_avg_pool{nd}d(x, {(1,) * (nd - 1) + (2,) if nd > 1 else 2}).ravel()
    array([1., 3.])
    """


def _adaptive_max_doc(nd: int) -> str:
    first, unbatched, cl, cl_unbatched = _LAYOUT[nd]
    return f"""{nd}-D adaptive max pooling (PyTorch's ``adaptive_max_pool{nd}d``).

    Parameters
    ----------
    x : array_like
        ``{first}`` or ``{unbatched}`` (``{cl}`` / ``{cl_unbatched}`` with
        ``channels_last=True``); float16/32/64, int8/16/32/64 or uint8.
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

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> x = np.array([1.0, 5.0, 2.0, 4.0, 3.0]).reshape{_example_shape(nd, 5)}
    >>> pk.adaptive_max_pool{nd}d(x, {(1,) * (nd - 1) + (2,) if nd > 1 else 2}).ravel()
    array([5., 4.])
    """


def _adaptive_backward_doc(nd: int, kind: str) -> str:
    if kind == "avg":
        what = "each output gradient divided by its window lengths is added to the window"
        args = ""
        example = (
            f">>> g = np.ones((1, 1{', 1' * (nd - 1)}, 2))\n"
            f"    >>> pk.adaptive_avg_pool{nd}d_backward(g, {_example_shape(nd, 4)}).ravel()\n"
            "    array([0.5, 0.5, 0.5, 0.5])"
        )
    else:
        what = "each output gradient goes to the input that won its window"
        args = (
            "    indices : array_like of int\n"
            "        The indices returned by the forward pass.\n"
        )
        example = (
            f">>> x = np.array([1.0, 5.0, 2.0, 4.0]).reshape{_example_shape(nd, 4)}\n"
            f"    >>> y, i = pk.adaptive_max_pool{nd}d(x, {(1,) * (nd - 1) + (2,) if nd > 1 else 2}"
            ", return_indices=True)\n"
            f"    >>> pk.adaptive_max_pool{nd}d_backward(np.ones_like(y), i, x.shape).ravel()\n"
            "    array([0., 1., 0., 1.])"
        )
    return f"""Gradient of :func:`adaptive_{kind}_pool{nd}d` with respect to its input.

    Planes in parallel, outputs in row-major order: {what}; overlapping
    contributions add up (bit-identical to PyTorch's CPU backward).

    Parameters
    ----------
    grad_output : array_like
        float16/32/64, shaped like the forward output.
{args}    input_shape : tuple of int
        Shape of the forward input.
    channels_last : bool, default False
        Layout of the arrays.

    Returns
    -------
    grad_input : ndarray
        Shape ``input_shape``, dtype of ``grad_output``.

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    {example}
    """


def _make_adaptive(nd: int):
    def avg(x: ArrayLike, output_size: Any, channels_last: bool = False) -> np.ndarray:
        return _adaptive_avg_impl(x, nd, output_size, channels_last)

    def avg_backward(
        grad_output: ArrayLike, input_shape: tuple[int, ...], channels_last: bool = False
    ) -> np.ndarray:
        return _adaptive_avg_backward_impl(grad_output, input_shape, nd, channels_last)

    def mx(
        x: ArrayLike, output_size: Any, return_indices: bool = False, channels_last: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        want = _args.check_bool(return_indices, "return_indices")
        out, idx = _adaptive_max_impl(x, nd, output_size, channels_last)
        return (out, idx) if want else out

    def mx_backward(
        grad_output: ArrayLike,
        indices: ArrayLike,
        input_shape: tuple[int, ...],
        channels_last: bool = False,
    ) -> np.ndarray:
        return argmax_backward(grad_output, indices, input_shape, nd, channels_last)

    for fn, name, doc in (
        (avg, f"adaptive_avg_pool{nd}d", _adaptive_avg_doc(nd)),
        (avg_backward, f"adaptive_avg_pool{nd}d_backward", _adaptive_backward_doc(nd, "avg")),
        (mx, f"adaptive_max_pool{nd}d", _adaptive_max_doc(nd)),
        (mx_backward, f"adaptive_max_pool{nd}d_backward", _adaptive_backward_doc(nd, "max")),
    ):
        fn.__name__ = fn.__qualname__ = name
        fn.__doc__ = doc
    return avg, avg_backward, mx, mx_backward


(
    adaptive_avg_pool1d,
    adaptive_avg_pool1d_backward,
    adaptive_max_pool1d,
    adaptive_max_pool1d_backward,
) = _make_adaptive(1)
(
    adaptive_avg_pool2d,
    adaptive_avg_pool2d_backward,
    adaptive_max_pool2d,
    adaptive_max_pool2d_backward,
) = _make_adaptive(2)
(
    adaptive_avg_pool3d,
    adaptive_avg_pool3d_backward,
    adaptive_max_pool3d,
    adaptive_max_pool3d_backward,
) = _make_adaptive(3)


def _size_repr(sizes: Any) -> str:
    if isinstance(sizes, (tuple, list)):
        return repr(tuple(sizes))
    return repr(sizes)


class _AdaptiveAvgPoolNd(Layer):
    """Adaptive average pooling layer; remembers the input shape for ``backward``."""

    _nd = 0

    def __init__(self, output_size: Any, channels_last: bool = False) -> None:
        # validate the size now (against a dummy input of the right rank)
        _args.check_adaptive_output_size(output_size, (1,) * self._nd)
        self.output_size = output_size
        self.channels_last = _args.check_bool(channels_last, "channels_last")
        self._input_shape: tuple[int, ...] | None = None

    def forward(self, x: ArrayLike) -> np.ndarray:
        """Pool ``x`` (see :func:`adaptive_avg_pool2d`)."""
        out = _adaptive_avg_impl(x, self._nd, self.output_size, self.channels_last)
        self._input_shape = tuple(np.shape(x))
        return out

    def backward(self, grad_output: ArrayLike) -> np.ndarray:
        """Gradient with respect to the input of the most recent ``forward``."""
        self._require_forward(self._input_shape)
        return _adaptive_avg_backward_impl(
            grad_output, self._input_shape, self._nd, self.channels_last
        )

    def __repr__(self) -> str:
        cl = ", channels_last=True" if self.channels_last else ""
        return f"{type(self).__name__}(output_size={_size_repr(self.output_size)}{cl})"


class _AdaptiveMaxPoolNd(Layer):
    """Adaptive max pooling layer; keeps the indices for ``backward``."""

    _nd = 0

    def __init__(
        self, output_size: Any, return_indices: bool = False, channels_last: bool = False
    ) -> None:
        _args.check_adaptive_output_size(output_size, (1,) * self._nd)
        self.output_size = output_size
        self.return_indices = _args.check_bool(return_indices, "return_indices")
        self.channels_last = _args.check_bool(channels_last, "channels_last")
        self._indices: np.ndarray | None = None
        self._input_shape: tuple[int, ...] = ()

    def forward(self, x: ArrayLike) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Pool ``x`` (see :func:`adaptive_max_pool2d`) and remember the argmax."""
        out, idx = _adaptive_max_impl(x, self._nd, self.output_size, self.channels_last)
        self._indices = idx
        self._input_shape = tuple(np.shape(x))
        return (out, idx) if self.return_indices else out

    def backward(self, grad_output: ArrayLike) -> np.ndarray:
        """Gradient with respect to the input of the most recent ``forward``."""
        self._require_forward(self._indices)
        return argmax_backward(
            grad_output, self._indices, self._input_shape, self._nd, self.channels_last
        )

    def __repr__(self) -> str:
        text = f"{type(self).__name__}(output_size={_size_repr(self.output_size)}"
        if self.return_indices:
            text += ", return_indices=True"
        if self.channels_last:
            text += ", channels_last=True"
        return text + ")"


def _layer_doc(kind: str, nd: int) -> str:
    name = f"Adaptive{kind}Pool{nd}d"
    fn = f"adaptive_{kind.lower()}_pool{nd}d"
    size = "(1,) * " + str(nd - 1) + " + (2,)" if nd > 1 else "2"
    return f"""{nd}-D adaptive {kind.lower()} pooling layer. Options as :func:`poolkit.{fn}`.

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> layer = pk.{name}({size})
    >>> layer(np.zeros((2, 3{', 4' * nd}))).shape[-1]
    2
    """


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    __doc__ = _layer_doc("Avg", 1)
    _nd = 1


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    __doc__ = _layer_doc("Avg", 2)
    _nd = 2


class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    __doc__ = _layer_doc("Avg", 3)
    _nd = 3


class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    __doc__ = _layer_doc("Max", 1)
    _nd = 1


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    __doc__ = _layer_doc("Max", 2)
    _nd = 2


class AdaptiveMaxPool3d(_AdaptiveMaxPoolNd):
    __doc__ = _layer_doc("Max", 3)
    _nd = 3


# ----------------------------------------------------------------------- global pooling


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
    _plane_mean(arr, nd, channels_last, out)
    return _global_out(arr, nd, keepdims, channels_last, out)


def _global_grad(grad_output: Any, input_shape: Any, channels_last: Any):
    channels_last = _args.check_bool(channels_last, "channels_last")
    grad = _args.as_array(grad_output, "grad_output")
    _args.check_dtype(grad, "grad_output", _args.FLOAT_DTYPES)
    shape = _args.check_shape_arg(input_shape, "input_shape")
    if len(shape) < 3:
        raise ValueError(f"input_shape must be (N, C, *spatial), got {shape}")
    nd = len(shape) - 2
    _args.check_input(shape, nd, "input_shape", channels_last)
    if grad.shape not in (
        _global_shape(shape, nd, True, channels_last),
        _global_shape(shape, nd, False, channels_last),
    ):
        raise ValueError(
            f"grad_output must have shape {_global_shape(shape, nd, True, channels_last)} or "
            f"{_global_shape(shape, nd, False, channels_last)} for input_shape {shape}, got "
            f"shape {grad.shape}"
        )
    return grad.reshape(shape[0], -1)[:, :, None, None, None], shape, nd, channels_last


def global_avg_pool_backward(
    grad_output: ArrayLike, input_shape: tuple[int, ...], channels_last: bool = False
) -> np.ndarray:
    """Gradient of :func:`global_avg_pool`: ``grad / plane size`` at every position.

    Parameters
    ----------
    grad_output : array_like
        ``(N, C, 1, ..., 1)`` or ``(N, C)``, float16/32/64.
    input_shape : tuple of int
        Shape of the forward input.
    channels_last : bool, default False
        Layout of the forward input.

    Returns
    -------
    grad_input : ndarray
        Shape ``input_shape``, dtype of ``grad_output``.

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> pk.global_avg_pool_backward(np.ones((1, 1)), (1, 1, 2, 2))[0, 0]
    array([[0.25, 0.25],
           [0.25, 0.25]])
    """
    g5, shape, nd, channels_last = _global_grad(grad_output, input_shape, channels_last)
    dx = np.zeros(shape, g5.dtype)
    if not channels_last:
        plane = int(np.prod(shape[2:]))
        _kernels.plane_mean_backward(
            np.ascontiguousarray(kernel_bits(g5)).reshape(-1),
            kernel_bits(dx).reshape(-1, plane), 1, 1, plane, True,
        )
        return dx
    _adaptive_avg_scatter(kernel_bits(g5), kernel_bits(global_view(dx, nd, channels_last)), True)
    return dx


def global_max_pool(
    x: ArrayLike, keepdims: bool = True, return_indices: bool = False, channels_last: bool = False
):
    """Max over all spatial dimensions (ONNX ``GlobalMaxPool``).

    Parameters
    ----------
    x : array_like
        ``(N, C, *spatial)`` (``(N, *spatial, C)`` with ``channels_last=True``);
        float16/32/64, int8/16/32/64 or uint8.
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
    out = np.empty((arr.shape[0], n_chan, 1, 1, 1), arr.dtype)
    idx = np.empty((arr.shape[0], n_chan, 1, 1, 1), np.int64)
    _kernels.adaptive_max_forward(
        kernel_bits(global_view(arr, nd, channels_last)), kernel_bits(out), idx, True
    )
    out = _global_out(arr, nd, keepdims, channels_last, out)
    if want:
        return out, _global_out(arr, nd, keepdims, channels_last, idx)
    return out


def global_max_pool_backward(
    grad_output: ArrayLike,
    indices: ArrayLike,
    input_shape: tuple[int, ...],
    channels_last: bool = False,
) -> np.ndarray:
    """Gradient of :func:`global_max_pool`: each gradient goes to its plane's argmax.

    Parameters
    ----------
    grad_output : array_like
        ``(N, C, 1, ..., 1)`` or ``(N, C)``, float16/32/64.
    indices : array_like of int
        The indices of the forward pass (same shape as ``grad_output``).
    input_shape : tuple of int
        Shape of the forward input.
    channels_last : bool, default False
        Layout of the forward input.

    Returns
    -------
    grad_input : ndarray
        Shape ``input_shape``, dtype of ``grad_output``.

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> pk.global_max_pool_backward(np.ones((1, 1)), np.array([[2]]), (1, 1, 4)).ravel()
    array([0., 0., 1., 0.])
    """
    g5, shape, nd, channels_last = _global_grad(grad_output, input_shape, channels_last)
    idx = _args.check_index_array(indices, np.shape(grad_output))
    dx = np.zeros(shape, g5.dtype)
    planes = to_planes(kernel_bits(dx), nd, channels_last)
    bad = np.zeros(planes.shape[0], np.uint8)
    _indexed.scatter_add(
        np.ascontiguousarray(kernel_bits(g5).reshape(planes.shape[0], 1)),
        np.ascontiguousarray(idx.reshape(planes.shape[0], 1)),
        planes,
        bad,
    )
    if bad.any():
        raise _args.index_range_error("indices", planes.shape[1], shape)
    return from_planes(planes, shape, nd, channels_last).view(g5.dtype)


def _plane_sum_params(arr: np.ndarray, nd: int, channels_last: bool) -> AvgPoolParams:
    spatial = _args.spatial_shape(arr.shape, nd, channels_last)
    zeros = (0,) * nd
    return AvgPoolParams(nd, spatial, spatial, zeros, zeros, False, True, 1, channels_last)


def global_lp_pool(
    x: ArrayLike, p: float = 2.0, keepdims: bool = True, channels_last: bool = False
) -> np.ndarray:
    """Lp norm over all spatial dimensions (ONNX ``GlobalLpPool``): ``(sum |x|^p)^(1/p)``.

    Parameters
    ----------
    x : array_like
        ``(N, C, *spatial)`` (``(N, *spatial, C)`` with ``channels_last=True``),
        1 to 3 spatial dims; float16/32/64.
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
    _check_global_rank(nd)
    total = _avg_forward_impl(_power(np.abs(arr), norm), _plane_sum_params(arr, nd, channels_last))
    out = _power(total, 1.0 / norm)
    return out if keepdims else out.reshape(out.shape[0], -1)


def _check_global_rank(nd: int) -> None:
    if nd > 3:
        raise ValueError(f"global_lp_pool supports 1 to 3 spatial dimensions, got {nd}")


def global_lp_pool_backward(
    grad_output: ArrayLike, x: ArrayLike, p: float = 2.0, channels_last: bool = False
) -> np.ndarray:
    """Gradient of :func:`global_lp_pool`: ``g * sign(x) |x|^(p-1) / y^(p-1)``.

    Computed in float64 and returned in the dtype of ``grad_output``; a plane whose
    norm is 0 gets gradient 0.

    Parameters
    ----------
    grad_output : array_like
        ``(N, C, 1, ..., 1)`` or ``(N, C)``, float16/32/64.
    x : array_like
        The forward input.
    p : float, default 2.0
        The forward exponent.
    channels_last : bool, default False
        Layout of ``x``.

    Returns
    -------
    grad_input : ndarray
        Shape of ``x``, dtype of ``grad_output``.

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> pk.global_lp_pool_backward(np.ones((1, 1)), np.array([[[3.0, -4.0]]]))
    array([[[ 0.6, -0.8]]])
    """
    arr, nd, channels_last = _global_input(x, channels_last, _args.FLOAT_DTYPES)
    norm = _args.check_norm_type(p)
    _check_global_rank(nd)
    g5, _, nd, channels_last = _global_grad(grad_output, arr.shape, channels_last)
    x64 = arr.astype(np.float64)
    ax = np.abs(x64)
    total = _avg_forward_impl(ax**norm, _plane_sum_params(arr, nd, channels_last))
    y = total ** (1.0 / norm)
    g = g5.reshape(total.shape).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(y > 0, g * y ** (1.0 - norm), 0.0)
        local = np.where(ax > 0, np.sign(x64) * ax ** (norm - 1.0), 0.0)
    return (t * local).astype(g5.dtype)


class GlobalAvgPool(Layer):
    """Global average pooling layer (see :func:`poolkit.global_avg_pool`).

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> pk.GlobalAvgPool(keepdims=False)(np.ones((2, 3, 4, 4))).shape
    (2, 3)
    """

    def __init__(self, keepdims: bool = True, channels_last: bool = False) -> None:
        self.keepdims = _args.check_bool(keepdims, "keepdims")
        self.channels_last = _args.check_bool(channels_last, "channels_last")
        self._input_shape: tuple[int, ...] | None = None

    def forward(self, x: ArrayLike) -> np.ndarray:
        """Average every plane of ``x``."""
        out = global_avg_pool(x, self.keepdims, self.channels_last)
        self._input_shape = tuple(np.shape(x))
        return out

    def backward(self, grad_output: ArrayLike) -> np.ndarray:
        """Gradient with respect to the input of the most recent ``forward``."""
        self._require_forward(self._input_shape)
        return global_avg_pool_backward(grad_output, self._input_shape, self.channels_last)

    def __repr__(self) -> str:
        cl = ", channels_last=True" if self.channels_last else ""
        return f"{type(self).__name__}(keepdims={self.keepdims}{cl})"


class GlobalMaxPool(GlobalAvgPool):
    """Global max pooling layer (see :func:`poolkit.global_max_pool`).

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> layer = pk.GlobalMaxPool()
    >>> layer(np.arange(4.0).reshape(1, 1, 2, 2)).ravel()
    array([3.])
    >>> layer.backward(np.ones((1, 1, 1, 1))).ravel()
    array([0., 0., 0., 1.])
    """

    def forward(self, x: ArrayLike) -> np.ndarray:
        """Max of every plane of ``x``; remembers the argmax."""
        out, self._indices = global_max_pool(x, self.keepdims, True, self.channels_last)
        self._input_shape = tuple(np.shape(x))
        return out

    def backward(self, grad_output: ArrayLike) -> np.ndarray:
        """Gradient with respect to the input of the most recent ``forward``."""
        self._require_forward(self._input_shape)
        return global_max_pool_backward(
            grad_output, self._indices, self._input_shape, self.channels_last
        )


class GlobalLpPool(Layer):
    """Global Lp pooling layer (see :func:`poolkit.global_lp_pool`).

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> pk.GlobalLpPool(2.0, keepdims=False)(np.array([[[3.0, 4.0]]]))
    array([[5.]])
    """

    def __init__(self, p: float = 2.0, keepdims: bool = True, channels_last: bool = False):
        self.p = _args.check_norm_type(p)
        self.keepdims = _args.check_bool(keepdims, "keepdims")
        self.channels_last = _args.check_bool(channels_last, "channels_last")
        self._input: np.ndarray | None = None

    def forward(self, x: ArrayLike) -> np.ndarray:
        """Lp norm of every plane of ``x``."""
        out = global_lp_pool(x, self.p, self.keepdims, self.channels_last)
        self._input = np.asarray(x)
        return out

    def backward(self, grad_output: ArrayLike) -> np.ndarray:
        """Gradient with respect to the input of the most recent ``forward``."""
        self._require_forward(self._input)
        return global_lp_pool_backward(grad_output, self._input, self.p, self.channels_last)

    def __repr__(self) -> str:
        cl = ", channels_last=True" if self.channels_last else ""
        return f"{type(self).__name__}(p={self.p:g}, keepdims={self.keepdims}{cl})"

