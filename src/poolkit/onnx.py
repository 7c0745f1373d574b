"""ONNX pooling operators on poolkit, for :class:`onnx.reference.ReferenceEvaluator`.

>>> import numpy as np, onnx.helper as oh
>>> from onnx import TensorProto
>>> from onnx.reference import ReferenceEvaluator
>>> import poolkit.onnx
>>> node = oh.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2], strides=[2, 2])
>>> F, I = TensorProto.FLOAT, TensorProto.INT64
>>> io = [oh.make_tensor_value_info(n, t, None) for n, t in (("x", F), ("y", F), ("i", I))]
>>> model = oh.make_model(oh.make_graph([node], "g", io[:1], io[1:]),
...                       opset_imports=[oh.make_opsetid("", 22)])
>>> sess = ReferenceEvaluator(model, new_ops=poolkit.onnx.OPS)
>>> x = np.arange(32, dtype=np.float32).reshape(2, 1, 4, 4)
>>> y, i = sess.run(None, {"x": x})
>>> y[1, 0]
array([[21., 23.],
       [29., 31.]], dtype=float32)
>>> i[1, 0]  # ONNX Indices: flattened over the whole (N, C, H, W) input
array([[21, 23],
       [29, 31]])

:data:`OPS` holds ``MaxPool`` (with its optional ``Indices`` output), ``AveragePool``,
``LpPool``, ``GlobalMaxPool``, ``GlobalAveragePool``, ``GlobalLpPool`` and ``MaxUnpool``.
Each node is read against the schema of the model's opset (so attribute defaults and
which attributes exist follow that version), and the opset-specific rules apply:
dilations only from MaxPool-10 / AveragePool-19 / LpPool-18, ``ceil_mode`` only from
MaxPool-10 / AveragePool-10 / LpPool-18, ``p`` a float in LpPool-1 / GlobalLpPool-1, and
the ceil_mode rule that drops a last window starting in the right padding only from
opset 22 (as ONNX's own shape inference does). Where onnx.reference's operators
disagree with the specification, these follow the specification (see docs/onnx.md).

This is the only poolkit module that imports ``onnx`` (``pip install poolkit[onnx]``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx.defs
from onnx.reference.op_run import OpRun

from . import _args, _indices
from ._geometry import Geometry, PaddingSpec
from ._ops import avg_pool, global_pool, lp_pool, max_pool, unpool

__all__ = [
    "OPS",
    "AveragePool",
    "GlobalAveragePool",
    "GlobalLpPool",
    "GlobalMaxPool",
    "LpPool",
    "MaxPool",
    "MaxUnpool",
    "onnx_geometry",
]

_AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def onnx_geometry(
    op: str,
    in_size: tuple[int, ...],
    kernel: tuple[int, ...],
    strides: tuple[int, ...],
    dilations: tuple[int, ...],
    pads: tuple[int, ...],
    auto_pad: str,
    ceil_mode: bool,
    version: int,
) -> Geometry:
    """Windows of an ONNX pooling node, by the rules of its operator version.

    ``pads`` is ONNX's flat ``[x1_begin, x2_begin, ..., x1_end, x2_end, ...]``. With
    ``auto_pad`` SAME_UPPER/SAME_LOWER the output size is ``ceil(L / s)`` and the total pad
    ``max(0, (out - 1) * s + d * (k - 1) + 1 - L)`` is split with the odd pad at the end
    (UPPER) or the start (LOWER); VALID means no padding. Explicit pads give
    ``floor((L + pb + pe - d * (k - 1) - 1) / s) + 1`` windows, or ``ceil(...)`` with
    ``ceil_mode``; from opset 22 a last ceil window that would start in the right padding
    is dropped (earlier versions keep it).

    Examples
    --------
    >>> g = onnx_geometry("MaxPool", (7,), (3,), (2,), (1,), (0, 0), "SAME_LOWER", False, 22)
    >>> g.pad_begin, g.pad_end, g.out_size
    ((1,), (1,), (4,))
    """
    nd = len(kernel)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        mode = "same" if auto_pad == "SAME_UPPER" else "same_lower"
        begin, end = PaddingSpec(mode, (), (), False).resolve(in_size, kernel, strides,
                                                               dilations)
    elif auto_pad == "VALID":
        begin = end = (0,) * nd
    else:
        begin, end = tuple(pads[:nd]), tuple(pads[nd:])
    # SAME and VALID fix the output size themselves; ceil_mode applies to explicit pads,
    # and from opset 22 the last ceil window is dropped if it starts in the right padding
    explicit = auto_pad not in ("SAME_UPPER", "SAME_LOWER", "VALID")
    geom = Geometry.build(tuple(in_size), tuple(kernel), tuple(strides), begin, end,
                          tuple(dilations), ceil_mode and explicit,
                          "one" if version >= 22 else "keep")
    for j, n_out in enumerate(geom.out_size):
        if n_out < 1:
            raise _args.bad_attribute(
                op,
                "kernel_shape, strides, dilations and pads",
                f"such that the output is not empty along spatial axis {j} (input size "
                f"{in_size[j]}, kernel {kernel[j]}, stride {strides[j]}, dilation "
                f"{dilations[j]}, pads ({begin[j]}, {end[j]}))",
                n_out,
            )
    return geom


class _PoolingOp(OpRun):
    """Base of the poolkit operators: reads the node against its opset's schema."""

    op_domain = ""

    def __init__(self, onnx_node, run_params, schema=None):
        opset = run_params["opsets"].get(onnx_node.domain or "", onnx.defs.onnx_opset_version())
        if schema is None:
            schema = onnx.defs.get_schema(onnx_node.op_type, opset, onnx_node.domain or "")
        self.version = schema.since_version
        unknown = sorted({a.name for a in onnx_node.attribute} - set(schema.attributes))
        if unknown:
            raise _args.bad_attribute(
                f"{onnx_node.op_type}-{self.version}",
                "the set of attributes",
                f"a subset of {sorted(schema.attributes)}",
                unknown,
            )
        super().__init__(onnx_node, run_params, schema)

    @property
    def op_name(self) -> str:
        return f"{self.onnx_node.op_type}-{self.version}"

    def _input(self, x: Any, float_only: bool = True) -> np.ndarray:
        arr = np.asarray(x)
        allowed = _args.FLOAT_DTYPES if float_only else _args.MAX_POOL_DTYPES
        _args.check_dtype(arr, f"{self.op_name} input X", allowed)
        if arr.ndim < 3:
            raise _args.bad_attribute(
                self.op_name, "input X", "at least 3-D (N, C, D1, ...)", arr.shape
            )
        if arr.shape[1] == 0 or any(s == 0 for s in arr.shape[2:]):
            raise _args.bad_attribute(
                self.op_name, "input X", "non-empty in its channel and spatial dims", arr.shape
            )
        return arr

    def _sizes(
        self, x: np.ndarray, kernel_shape: Any, strides: Any, dilations: Any, pads: Any
    ) -> tuple[tuple[int, ...], ...]:
        """Validated kernel, strides, dilations and flat pads (ONNX defaults filled in)."""
        op = self.op_name
        if kernel_shape is None:
            raise _args.bad_attribute(op, "kernel_shape", "given", None)
        kernel = tuple(int(k) for k in kernel_shape)
        nd = len(kernel)
        if x.ndim != nd + 2:
            raise _args.bad_attribute(
                op, "input X", f"{nd + 2}-D to match kernel_shape {kernel}", x.shape
            )

        def per_dim(value: Any, name: str, count: int, default: int, low: int) -> tuple:
            if value is None:
                return (default,) * count
            vals = tuple(int(v) for v in value)
            if len(vals) != count or any(v < low for v in vals):
                raise _args.bad_attribute(op, name, f"{count} ints >= {low}", list(value))
            return vals

        return (
            per_dim(kernel, "kernel_shape", nd, 1, 1),
            per_dim(strides, "strides", nd, 1, 1),
            per_dim(dilations, "dilations", nd, 1, 1),
            per_dim(pads, "pads", 2 * nd, 0, 0),
        )

    def _window_geometry(self, x: np.ndarray, attrs: dict[str, Any]) -> Geometry:
        """The node's windows on ``x``, from its attributes (absent ones are None)."""
        op = self.op_name
        kernel, stride, dil, flat_pads = self._sizes(
            x, attrs.get("kernel_shape"), attrs.get("strides"), attrs.get("dilations"),
            attrs.get("pads"),
        )
        auto_pad = attrs.get("auto_pad")
        mode = _text(auto_pad) if auto_pad else "NOTSET"  # "" means NOTSET too
        if mode not in _AUTO_PADS:
            raise _args.bad_attribute(op, "auto_pad", f"one of {_AUTO_PADS}", mode)
        if mode != "NOTSET" and any(flat_pads):
            raise _args.bad_attribute(
                op, "pads", f"absent or zero when auto_pad is {mode}", list(flat_pads)
            )
        return onnx_geometry(
            op,
            x.shape[2:],
            kernel,
            stride,
            dil,
            flat_pads,
            mode,
            bool(attrs.get("ceil_mode")),
            self.version,
        )


class MaxPool(_PoolingOp):
    """ONNX MaxPool (opsets 1 to 22) with its optional ``Indices`` output.

    Indices are flattened over the whole input tensor (batch and channel included), the
    spatial plane row-major (``storage_order=0``) or column-major (1). Ties go to the
    first maximum in window order, NaN propagates, padding never wins; a window with no
    input element (possible with large pads or dilations) gives ``-inf`` (the integer
    dtype's minimum) and index -1.
    """

    def _run(self, x, **attrs):
        arr = self._input(x, float_only=False)
        geom = self._window_geometry(arr, attrs)
        order = int(attrs.get("storage_order") or 0)
        if order not in (0, 1):
            raise _args.bad_attribute(self.op_name, "storage_order", "0 or 1", order)
        want = len(self.output) > 1 and self.output[1] != ""
        nd = len(geom.kernel)
        out, idx = max_pool.forward_on(arr, geom, True, False, want)
        if not want:
            return (out,)
        return out, _indices.from_plane(idx, arr.shape, nd, True, False, "global", order)


class AveragePool(_PoolingOp):
    """ONNX AveragePool (opsets 1 to 22).

    Divisor: the number of window taps inside the input (``count_include_pad=0``, the
    default) or inside the padded input (1; taps in a ceil_mode overhang past the end
    padding never count). Dilations from opset 19. A window whose divisor is 0 gives NaN.
    """

    def _run(self, x, **attrs):
        arr = self._input(x)
        geom = self._window_geometry(arr, attrs)
        include = int(attrs.get("count_include_pad") or 0)
        if include not in (0, 1):
            raise _args.bad_attribute(self.op_name, "count_include_pad", "0 or 1", include)
        return (avg_pool.forward_on(arr, geom, True, False, bool(include)),)


def _p_value(op: str, p: Any, version: int) -> float:
    value = float(p) if p is not None else 2.0
    if version >= 2 and value != int(value):
        raise _args.bad_attribute(op, "p", "an int", p)
    if not value > 0:
        raise _args.bad_attribute(op, "p", "> 0", p)
    return value


class LpPool(_PoolingOp):
    """ONNX LpPool (opsets 1 to 22): ``(sum over the window of |x|**p) ** (1/p)``.

    Padding contributes 0. ``p`` is a float in LpPool-1 and an int from LpPool-2;
    dilations and ceil_mode from LpPool-18.
    """

    def _run(self, x, **attrs):
        arr = self._input(x)
        geom = self._window_geometry(arr, attrs)
        power = _p_value(self.op_name, attrs.get("p"), self.version)
        return (lp_pool.forward_on(arr, geom, True, False, power),)


class GlobalMaxPool(_PoolingOp):
    """ONNX GlobalMaxPool: the max over all spatial axes of each (n, c), any rank >= 3."""

    def _run(self, x):
        arr = self._input(x)
        spatial = arr.shape[2:]
        nd = len(spatial)
        geom = Geometry(spatial, spatial, spatial, (0,) * nd, (0,) * nd, (1,) * nd, (1,) * nd)
        out, _ = max_pool.forward_on(arr, geom, True, False, False)
        return (out,)


class GlobalAveragePool(_PoolingOp):
    """ONNX GlobalAveragePool: the mean over all spatial axes of each (n, c)."""

    def _run(self, x):
        arr = self._input(x)
        return (global_pool.global_avg_pool(arr),)


class GlobalLpPool(_PoolingOp):
    """ONNX GlobalLpPool (opsets 1 to 22): ``(sum of |x|**p over the spatial axes) ** (1/p)``.

    Not implemented by onnx.reference itself; ``p`` is a float in opset 1, an int from 2.
    """

    def _run(self, x, p=None):
        arr = self._input(x)
        power = _p_value(self.op_name, p, self.version)
        return (global_pool.global_lp_pool(arr, power),)


class MaxUnpool(_PoolingOp):
    """ONNX MaxUnpool (opsets 9 to 22): scatter ``X`` into zeros at the indices ``I``.

    ``I`` holds MaxPool's global indices into the *output* tensor (row-major, batch and
    channel included). The output shape is ``output_shape`` when given (``pads`` are
    then ignored), else ``(in - 1) * stride - (pad_begin + pad_end) + kernel`` per axis.
    """

    def _run(self, x, indices, output_shape=None, kernel_shape=None, pads=None, strides=None):
        op = self.op_name
        arr = self._input(x)
        idx = np.asarray(indices)
        if idx.dtype.kind not in "iu":
            raise _args.bad_attribute(op, "input I", "an integer tensor", idx.dtype)
        if idx.shape != arr.shape:
            raise _args.bad_attribute(op, "input I", f"shaped like X {arr.shape}", idx.shape)
        if output_shape is not None:
            shape = tuple(int(v) for v in np.asarray(output_shape).ravel())
            if len(shape) != arr.ndim or any(v < 1 for v in shape):
                raise _args.bad_attribute(
                    op, "output_shape", f"{arr.ndim} positive sizes", list(shape)
                )
        else:
            kernel, stride, _, flat = self._sizes(arr, kernel_shape, strides, None, pads)
            nd = len(kernel)
            shape = arr.shape[:2] + tuple(
                (n - 1) * s - (pb + pe) + k
                for n, s, pb, pe, k in zip(arr.shape[2:], stride, flat[:nd], flat[nd:], kernel)
            )
            if any(v < 1 for v in shape):
                raise _args.bad_attribute(op, "the inferred output shape", "positive", shape)
        size = int(np.prod(shape))
        flat_idx = idx.reshape(1, -1).astype(np.int64, copy=False)
        if flat_idx.size and (flat_idx.min() < 0 or flat_idx.max() >= size):
            raise _args.bad_indices(
                f"of {op} must lie in [0, {size}) (the flattened output of shape "
                f"{shape}); got values in [{int(flat_idx.min())}, {int(flat_idx.max())}]"
            )
        # global indices may cross (n, c) planes: the whole tensor is one plane here
        flat = unpool.scatter_on(arr.reshape(1, -1), flat_idx, (1, size), 1, False)
        return (flat.reshape(shape),)


#: The operators to pass as ``ReferenceEvaluator(model, new_ops=OPS)``.
OPS: list[type[OpRun]] = [
    MaxPool,
    AveragePool,
    LpPool,
    GlobalMaxPool,
    GlobalAveragePool,
    GlobalLpPool,
    MaxUnpool,
]
