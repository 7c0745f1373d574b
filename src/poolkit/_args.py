"""Argument normalisation and validation: every user-facing error message lives here.

Public functions call these helpers once, where arguments enter; kernels downstream
assume their inputs are valid and never check again.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ._geometry import Geometry, PaddingSpec, empty_windows

#: dtypes max pooling accepts: PyTorch's CPU set (less bfloat16) plus uint16/32/64
#: (docs/semantics.md §11).
MAX_POOL_DTYPES = (
    np.dtype(np.float16),
    np.dtype(np.float32),
    np.dtype(np.float64),
    np.dtype(np.int8),
    np.dtype(np.int16),
    np.dtype(np.int32),
    np.dtype(np.int64),
    np.dtype(np.uint8),
    np.dtype(np.uint16),
    np.dtype(np.uint32),
    np.dtype(np.uint64),
)
FLOAT_DTYPES = MAX_POOL_DTYPES[:3]

_DTYPE_NAMES = ", ".join(d.name for d in MAX_POOL_DTYPES)


def _describe(value: Any) -> str:
    """Short description of an offending value for error messages."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def is_dask(x: Any) -> bool:
    """Is ``x`` a dask collection? (Checked without importing dask.)"""
    return type(x).__module__.partition(".")[0] == "dask" and hasattr(x, "__dask_graph__")


def as_array(x: Any, name: str = "x") -> np.ndarray:
    """Convert an array-like to an ndarray without copying when possible.

    Rejects ragged nested sequences and inputs that cannot become a numeric array, and
    dask arrays (``np.asarray`` would compute them whole): the functions of
    :mod:`poolkit` hand those to :mod:`poolkit.dask` before they get here.
    """
    if isinstance(x, np.ndarray):
        return x
    if is_dask(x):
        raise TypeError(
            f"{name} is a dask array; layers and in-memory calls would compute it whole. "
            "Use the poolkit.dask functions (or the poolkit functions, which return lazy "
            "dask arrays for dask input)"
        )
    if isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be an array-like of numbers, got {_describe(x)}")
    try:
        return np.asarray(x)
    except ValueError as exc:  # ragged nested lists
        raise ValueError(
            f"{name} must be a rectangular array-like (all rows the same length), "
            f"got a ragged sequence: {exc}"
        ) from None
    except TypeError as exc:
        raise TypeError(f"{name} must be an array-like of numbers, got {_describe(x)}") from exc


def check_dtype(arr: np.ndarray, name: str, allowed: Sequence[np.dtype] = MAX_POOL_DTYPES) -> None:
    """Reject dtypes outside ``allowed`` with a TypeError naming the argument."""
    if arr.dtype not in allowed:
        names = ", ".join(np.dtype(d).name for d in allowed)
        raise TypeError(f"{name} must have one of the dtypes {names}; got dtype {arr.dtype}")


def _as_int(value: Any, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int or a tuple of ints, got {_describe(value)}")
    return int(value)


def per_dim(value: Any, nd: int, mismatch: Callable[[list[Any]], str]) -> list[Any]:
    """The entries of the sequence ``value``, one per spatial dim (one entry stands for
    every dim); any other length is a ValueError with the message ``mismatch(entries)``."""
    items = list(value)
    if len(items) == 1 and nd != 1:
        items = items * nd
    if len(items) != nd:
        raise ValueError(mismatch(items))
    return items


def int_tuple(value: Any, ndim: int, name: str, minimum: int | None = None) -> tuple[int, ...]:
    """Normalise an int or a length-``ndim`` sequence of ints to a tuple.

    Parameters
    ----------
    value : int or sequence of int
    ndim : int
        Number of spatial dimensions expected.
    name : str
        Argument name used in error messages.
    minimum : int, optional
        Smallest allowed value of every entry.
    """
    if isinstance(value, (np.ndarray,)) and value.ndim == 0:
        value = value.item()
    if isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, (str, bytes)):
        items = per_dim(value, ndim, lambda items: (
            f"{name} must be an int or a tuple of {ndim} ints, "
            f"got a sequence of length {len(items)}: {tuple(items)!r}"
        ))
        result = tuple(_as_int(v, name) for v in items)
    else:
        result = (_as_int(value, name),) * ndim
    if minimum is not None and any(v < minimum for v in result):
        raise ValueError(f"{name} must be >= {minimum} in every dimension, got {result}")
    return result


def kernel_and_stride(
    kernel_size: Any, stride: Any, nd: int
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``kernel_size`` and ``stride`` as per-dim tuples; ``stride=None`` means the kernel."""
    kernel = int_tuple(kernel_size, nd, "kernel_size", minimum=1)
    strides = kernel if stride is None else int_tuple(stride, nd, "stride", minimum=1)
    return kernel, strides


def spatial_ndim_of(kernel_size: Any) -> int:
    """Number of spatial dims implied by a general ``max_pool`` kernel_size argument."""
    if isinstance(kernel_size, (Sequence, np.ndarray)) and not isinstance(
        kernel_size, (str, bytes)
    ):
        n = len(kernel_size)
        if n < 1:
            raise ValueError("kernel_size must name at least one spatial dimension, got ()")
        return n
    raise TypeError(
        "kernel_size of the general max_pool must be a tuple with one int per spatial "
        f"dimension, got {_describe(kernel_size)}"
    )


def check_bool(value: Any, name: str) -> bool:
    """Accept Python and NumPy booleans only."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {_describe(value)}")
    return bool(value)


def check_input(shape: tuple[int, ...], nd: int, name: str, channels_last: bool) -> bool:
    """Validate the rank and sizes of a pooling input shape; return True if batched."""
    ndim = len(shape)
    if ndim == nd + 2:
        batched = True
    elif ndim == nd + 1:
        batched = False
    else:
        layout = (
            f"(N, {'*spatial' if nd > 1 else 'L'}, C) or ({'*spatial' if nd > 1 else 'L'}, C)"
            if channels_last
            else f"(N, C, {'*spatial' if nd > 1 else 'L'}) or (C, {'*spatial' if nd > 1 else 'L'})"
        )
        raise ValueError(
            f"{name} must have {nd + 1} (unbatched) or {nd + 2} (batched) dimensions for "
            f"{nd}-D pooling, laid out {layout}; got shape {tuple(shape)}"
        )
    spatial = spatial_shape(shape, nd, channels_last)
    channels = shape[-1] if channels_last else shape[1 if batched else 0]
    if any(s == 0 for s in spatial):
        raise ValueError(f"{name} must have non-empty spatial dimensions, got shape {shape}")
    if channels == 0:
        raise ValueError(f"{name} must have at least one channel, got shape {shape}")
    return batched


def spatial_shape(shape: tuple[int, ...], nd: int, channels_last: bool) -> tuple[int, ...]:
    """The ``nd`` spatial sizes of an input shape in either layout."""
    return tuple(shape[-nd - 1 : -1]) if channels_last else tuple(shape[-nd:])


def check_padding(padding: Any, kernel: tuple[int, ...], name: str = "padding") -> tuple[int, ...]:
    """PyTorch-form padding: int or per-dim ints, 0 <= pad <= kernel // 2."""
    pads = int_tuple(padding, len(kernel), name)
    if any(p < 0 for p in pads):
        raise ValueError(f"{name} must be non-negative, got {pads}")
    limit = tuple(k // 2 for k in kernel)
    if any(p > lim for p, lim in zip(pads, limit)):
        raise ValueError(
            f"{name} must be at most half of kernel_size (kernel_size // 2 = {limit}) in every "
            f"dimension, got {name}={pads} with kernel_size={kernel}"
        )
    return pads


_PADDING_MODES = {
    "valid": "valid",
    "same": "same",
    "same_upper": "same",
    "same_lower": "same_lower",
}


def _is_sequence(value: Any) -> bool:
    return isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, (str, bytes))


def parse_padding(padding: Any, kernel: tuple[int, ...], name: str = "padding") -> PaddingSpec:
    """Parse every accepted form of ``padding`` into a :class:`~poolkit._geometry.PaddingSpec`.

    Forms: an int or one int per dim (PyTorch: symmetric, ``0 <= p <= kernel // 2``); a
    sequence of per-dim ``(begin, end)`` pairs (an int entry means ``(p, p)``, a single
    pair applies to every dim), any non-negative sizes; or one of the strings
    ``"valid"`` (no padding), ``"same"`` (alias ``"same_upper"``: output ``ceil(L / s)``,
    odd pad at the end) and ``"same_lower"`` (odd pad at the start). Only the PyTorch
    form keeps PyTorch's limit; the others are checked per call by
    :func:`check_windows_cover` (every window must hold an input element).
    """
    nd = len(kernel)
    if isinstance(padding, str):
        mode = _PADDING_MODES.get(padding.lower())
        if mode is None:
            raise ValueError(
                f"{name} must be an int, a tuple of ints, a sequence of (begin, end) pairs or "
                f"one of 'valid', 'same', 'same_lower'; got {padding!r}"
            )
        if mode == "valid":
            return PaddingSpec("explicit", (0,) * nd, (0,) * nd, False)
        return PaddingSpec(mode, (0,) * nd, (0,) * nd, False)
    if _is_sequence(padding) and any(_is_sequence(v) for v in padding):
        items = per_dim(padding, nd, lambda items: (
            f"{name} given as (begin, end) pairs must have one entry per spatial dimension "
            f"({nd}), got {len(items)}: {padding!r}"
        ))
        pairs = []
        for item in items:
            pair = list(item) if _is_sequence(item) else [item, item]
            if len(pair) != 2:
                raise ValueError(
                    f"{name} entries must be (begin, end) pairs or ints, got {tuple(pair)!r}"
                )
            pairs.append(tuple(_as_int(v, name) for v in pair))
        if any(v < 0 for pair in pairs for v in pair):
            raise ValueError(f"{name} must be non-negative, got {tuple(pairs)}")
        return PaddingSpec(
            "explicit", tuple(b for b, _ in pairs), tuple(e for _, e in pairs), False
        )
    return PaddingSpec.symmetric(check_padding(padding, kernel, name))


def parse_unpool_padding(padding: Any, nd: int, name: str = "padding") -> PaddingSpec:
    """Max unpooling's padding: ints (>= 0, no kernel limit, as PyTorch: ``pytorch`` set)
    or (begin, end) pairs. The string forms depend on the pooled input's size, which
    unpooling does not know, so they are rejected."""
    if isinstance(padding, str):
        raise ValueError(
            f"{name} of max unpooling must be ints or (begin, end) pairs (the pads the "
            f"pooling resolved); got {padding!r}"
        )
    if _is_sequence(padding) and any(_is_sequence(v) for v in padding):
        return parse_padding(padding, (1,) * nd, name)
    return PaddingSpec.symmetric(int_tuple(padding, nd, name, minimum=0))


def check_windows_cover(geom: Geometry, name: str = "padding") -> None:
    """Reject padding that leaves a window without any input element."""
    for j, dims in enumerate(zip(geom.in_size, geom.kernel, geom.stride, geom.pad_begin,
                                 geom.dilation, geom.out_size)):
        bad = empty_windows(*dims)
        if bad:
            raise ValueError(
                f"{name} too large: along spatial dimension {j} (size {geom.in_size[j]}) the "
                f"window(s) at output position(s) {bad[:5]} cover no input element (pad "
                f"begin {geom.pad_begin[j]}, kernel_size {geom.kernel[j]}, stride "
                f"{geom.stride[j]}, dilation {geom.dilation[j]}); every window must hold at "
                "least one input element"
            )


def build_geometry(
    in_size: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    padding: PaddingSpec,
    dilation: tuple[int, ...],
    ceil_mode: bool,
    name: str = "x",
) -> Geometry:
    """Resolve ``padding`` for this input, build the geometry and validate it.

    The one place every pooling function turns its parsed padding into windows: SAME
    pads are computed from ``in_size``, the output must be non-empty, and non-PyTorch
    padding must leave no window without an input element.
    """
    pad_begin, pad_end = padding.resolve(in_size, kernel, stride, dilation)
    geom = Geometry.build(in_size, kernel, stride, pad_begin, pad_end, dilation, ceil_mode)
    check_output_size(geom.out_size, in_size, name)
    if not padding.pytorch:
        check_windows_cover(geom)
    return geom


_INDEX_FORMATS = ("plane", "global")


def check_index_format(index_format: Any, storage_order: Any) -> tuple[str, int]:
    """Validate ``index_format`` ("plane" or "global") and ``storage_order`` (0 or 1)."""
    if not isinstance(index_format, str):
        raise TypeError(f"index_format must be a str, got {_describe(index_format)}")
    if index_format not in _INDEX_FORMATS:
        raise ValueError(f"index_format must be 'plane' or 'global', got {index_format!r}")
    order = _as_int(storage_order, "storage_order")
    if order not in (0, 1):
        raise ValueError(
            f"storage_order must be 0 (row-major) or 1 (column-major), got {order}"
        )
    return index_format, order


def bad_indices(message: str) -> ValueError:
    """The error raised for indices that cannot come from the matching forward pass."""
    return ValueError(f"indices {message}")


def bad_attribute(op: str, name: str, expectation: str, value: Any) -> ValueError:
    """The error for an ONNX node attribute or input that breaks the operator's spec."""
    return ValueError(f"{op}: {name} must be {expectation}, got {value!r}")


def check_output_size(out: tuple[int, ...], in_spatial: tuple[int, ...], name: str = "x") -> None:
    """Reject configurations whose output would be empty."""
    if any(o < 1 for o in out):
        raise ValueError(
            f"output size must be >= 1 in every dimension, but {name} with spatial size "
            f"{in_spatial} gives output size {out}; use a smaller kernel_size or dilation, "
            "or more padding"
        )


# --- pooling family (average, Lp, adaptive, global, fractional, unpooling) -------------


def check_shape_arg(value: Any, name: str) -> tuple[int, ...]:
    """A shape argument: a tuple or list of non-negative ints."""
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"{name} must be a tuple of ints, got {_describe(value)}")
    if all(type(v) is int and v >= 0 for v in value):  # the common case, cheaply
        return tuple(value)
    return int_tuple(value, len(value), name, minimum=0) if value else ()


def backward_args(
    grad_output: Any,
    input_shape: Any,
    nd: int,
    channels_last: bool,
    out: Any = None,
    *inputs: Any,
) -> tuple[np.ndarray, tuple[int, ...], bool, np.ndarray | None]:
    """The one validator of every ``*_backward`` call: ``(grad, shape, batched, out)``.

    ``grad_output`` must be a float array with as many dims as ``input_shape``, agreeing
    with it on the batch and channel dims (each operation then checks its spatial sizes);
    ``out``, when given, is checked by :func:`check_out` against ``grad_output`` and the
    call's other array ``inputs``.
    """
    grad = as_array(grad_output, "grad_output")
    check_dtype(grad, "grad_output", FLOAT_DTYPES)
    shape = check_shape_arg(input_shape, "input_shape")
    if len(shape) != grad.ndim:
        raise ValueError(
            f"input_shape must have as many dimensions as grad_output ({grad.ndim}), "
            f"got input_shape={shape}"
        )
    batched = check_input(shape, nd, "input_shape", channels_last)
    spatial = range(grad.ndim - nd - 1, grad.ndim - 1) if channels_last else range(
        grad.ndim - nd, grad.ndim
    )
    if any(shape[a] != grad.shape[a] for a in range(grad.ndim) if a not in spatial):
        raise ValueError(
            f"grad_output {grad.shape} and input_shape {shape} must agree on the batch and "
            "channel dimensions"
        )
    return grad, shape, batched, check_out(out, shape, grad.dtype, grad, *inputs)


def check_out(out: Any, shape: tuple[int, ...], dtype: np.dtype, *inputs: Any) -> Any:
    """A backward pass's ``out=``: None, or a writeable C-contiguous ndarray of the input's
    shape and the gradient's dtype that shares no memory with the other arguments."""
    if out is None:
        return None
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be None or a numpy.ndarray, got {_describe(out)}")
    if out.shape != tuple(shape):
        raise ValueError(f"out must have the input's shape {tuple(shape)}, got shape {out.shape}")
    if out.dtype != dtype:
        raise TypeError(f"out must have the dtype of grad_output ({dtype}), got dtype {out.dtype}")
    if not out.flags.c_contiguous:
        raise ValueError("out must be C-contiguous, got an array with strides "
                         f"{out.strides}")
    if not out.flags.writeable:
        raise ValueError("out must be writeable, got a read-only array")
    for arr in inputs:
        if isinstance(arr, np.ndarray) and np.may_share_memory(out, arr):
            raise ValueError("out must not overlap an input of the call (grad_output, "
                             "indices or x), but it shares memory with one")
    return out


def check_grad_shape(grad: np.ndarray, expected: tuple[int, ...], name: str = "grad_output"):
    """grad_output must have exactly the shape the forward pass produced."""
    if tuple(grad.shape) != tuple(expected):
        raise ValueError(
            f"{name} must have the shape of the forward output {tuple(expected)}, "
            f"got shape {tuple(grad.shape)}"
        )


def check_divisor_override(value: Any) -> int:
    """None (0 returned: no override) or a non-zero int (PyTorch allows negatives)."""
    if value is None:
        return 0
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"divisor_override must be None or an int, got {_describe(value)}")
    if int(value) == 0:
        raise ValueError("divisor_override must be non-zero (or None), got 0")
    return int(value)


def check_norm_type(value: Any) -> float:
    """Lp pooling exponent: a finite real number > 0."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"norm_type must be a real number, got {_describe(value)}")
    p = float(value)
    if not np.isfinite(p) or p <= 0:
        raise ValueError(
            f"norm_type must be a finite number > 0, got {p!r} (for the max of |x|, use "
            "max pooling on abs(x))"
        )
    return p


def check_adaptive_output_size(
    value: Any, in_spatial: tuple[int, ...], name: str = "output_size"
) -> tuple[int, ...]:
    """Adaptive output size: int or per-dim ints >= 0 (0 gives an empty output, as in
    PyTorch); ``None`` entries keep the input size."""
    nd = len(in_spatial)
    if value is None:
        raise TypeError(f"{name} must be an int or a tuple of {nd} ints or None, got None")
    if isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, (str, bytes)):
        items = list(value)
        if len(items) != nd:
            raise ValueError(
                f"{name} must be an int or a tuple of {nd} ints (or None), "
                f"got a sequence of length {len(items)}: {tuple(items)!r}"
            )
    else:
        items = [value] * nd
    sizes = tuple(
        in_spatial[j] if v is None else _as_int(v, name) for j, v in enumerate(items)
    )
    if any(s < 0 for s in sizes):
        raise ValueError(f"{name} must be >= 0 in every dimension, got {tuple(items)!r}")
    return sizes


def check_index_array(idx: Any, shape: tuple[int, ...], name: str = "indices",
                      like: str = "x") -> np.ndarray:
    """An integer index array of the shape of ``like`` (named in the message), as int64."""
    arr = as_array(idx, name)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array, got dtype {arr.dtype}")
    if tuple(arr.shape) != tuple(shape):
        raise ValueError(f"{name} must have the shape of {like} {tuple(shape)}, got {arr.shape}")
    return arr.astype(np.int64, copy=False)


def index_range_error(name: str, plane: int, shape: tuple[int, ...]) -> ValueError:
    """The error for an index outside its ``(n, c)`` plane."""
    return ValueError(
        f"{name} must lie in [0, {plane}) (the flattened spatial plane of the output "
        f"{tuple(shape)}); got values outside that range"
    )
