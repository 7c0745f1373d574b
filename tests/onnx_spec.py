"""A slow pooling oracle written from the ONNX operator specification (test helper).

Output sizes come from ONNX's own shape inference (``onnx.shape_inference``, the
normative formulas); pads from the auto_pad rules of the spec text; values from plain
loops over the windows. Shares no code with poolkit.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import onnx
import onnx.helper as oh
import onnx.shape_inference
from onnx import TensorProto

DTYPE = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE,
         np.dtype(np.float16): TensorProto.FLOAT16, np.dtype(np.int8): TensorProto.INT8,
         np.dtype(np.uint8): TensorProto.UINT8}


def make_model(op, opset, x_shape, dtype=np.float32, outputs=("y",), extra_inputs=(), **attrs):
    """One-node model ``op(x, *extra_inputs) -> outputs``."""
    elem = DTYPE[np.dtype(dtype)]
    inputs = [oh.make_tensor_value_info("x", elem, list(x_shape))]
    inputs += [oh.make_tensor_value_info(n, TensorProto.INT64, None) for n in extra_inputs]
    outs = [oh.make_tensor_value_info(o, TensorProto.INT64 if o == "i" else elem, None)
            for o in outputs]
    node = oh.make_node(op, ["x", *extra_inputs], list(outputs), **attrs)
    graph = oh.make_graph([node], "g", inputs, outs)
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)])


def inferred_shape(model) -> tuple[int, ...]:
    """Output shape by ONNX shape inference (strict)."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    return tuple(d.dim_value for d in inferred.graph.output[0].type.tensor_type.shape.dim)


def spec_out_size(op, version, attrs, in_size):
    """Output spatial sizes by the formulas of the spec text (-> ``None`` if one is < 1).

    SAME: ``ceil(L / s)``; VALID: ``floor((L - ext) / s) + 1``; explicit pads:
    ``floor`` or ``ceil`` of ``(L + pads - ext) / s + 1``; from opset 22 a last ceil window
    starting in the right padding is ignored.
    """
    nd = len(attrs["kernel_shape"])
    strides = attrs.get("strides", [1] * nd)
    dil = attrs.get("dilations", [1] * nd)
    pads = attrs.get("pads", [0] * 2 * nd)
    auto_pad = attrs.get("auto_pad", "NOTSET")
    out = []
    for j in range(nd):
        ext = (attrs["kernel_shape"][j] - 1) * dil[j] + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            n = math.ceil(in_size[j] / strides[j])
        elif auto_pad == "VALID":
            n = math.floor((in_size[j] - ext) / strides[j]) + 1
        else:
            ratio = (in_size[j] + pads[j] + pads[nd + j] - ext) / strides[j] + 1
            n = math.ceil(ratio) if attrs.get("ceil_mode", 0) else math.floor(ratio)
            if (attrs.get("ceil_mode", 0) and version >= 22
                    and (n - 1) * strides[j] >= in_size[j] + pads[j]):
                n -= 1
        out.append(n)
    return None if min(out) < 1 else tuple(out)


def spec_pads(attrs, in_size, out_size):
    """(begin, end) pads per dim from the spec's auto_pad / pads rules."""
    nd = len(attrs["kernel_shape"])
    strides = attrs.get("strides", [1] * nd)
    dil = attrs.get("dilations", [1] * nd)
    auto_pad = attrs.get("auto_pad", "NOTSET")
    pads = attrs.get("pads", [0] * 2 * nd)
    result = []
    for j in range(nd):
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            total = (out_size[j] - 1) * strides[j] + (attrs["kernel_shape"][j] - 1) * dil[j] + 1
            total = max(0, total - in_size[j])
            odd = total - total // 2
            result.append((total // 2, odd) if auto_pad == "SAME_UPPER" else (odd, total // 2))
        elif auto_pad == "VALID":
            result.append((0, 0))
        else:
            result.append((pads[j], pads[nd + j]))
    return result


def spec_pool(op, x, attrs, out_shape, storage_order=0):
    """Loop oracle for MaxPool (values, global indices), AveragePool and LpPool."""
    nd = x.ndim - 2
    kernel = attrs["kernel_shape"]
    strides = attrs.get("strides", [1] * nd)
    dil = attrs.get("dilations", [1] * nd)
    in_size = x.shape[2:]
    out_size = out_shape[2:]
    pads = spec_pads(attrs, in_size, out_size)
    y = np.zeros(out_shape, dtype=np.float64)
    idx = np.full(out_shape, -1, dtype=np.int64)
    plane = math.prod(in_size)
    for n, c in itertools.product(range(x.shape[0]), range(x.shape[1])):
        for o in itertools.product(*(range(s) for s in out_size)):
            taps = [[o[j] * strides[j] - pads[j][0] + t * dil[j] for t in range(kernel[j])]
                    for j in range(nd)]
            inside = [[q for q in taps[j] if 0 <= q < in_size[j]] for j in range(nd)]
            padded = [[q for q in taps[j] if -pads[j][0] <= q < in_size[j] + pads[j][1]]
                      for j in range(nd)]
            vals = [(x[(n, c, *pos)], pos) for pos in itertools.product(*inside)]
            if op == "MaxPool":
                best = None
                for v, pos in vals:
                    if best is None or v > best[0] or np.isnan(v):
                        best = (v, pos)
                if best is None:
                    y[(n, c, *o)] = -np.inf
                    continue
                y[(n, c, *o)] = best[0]
                order = "C" if storage_order == 0 else "F"
                within = np.ravel_multi_index(best[1], in_size, order=order)
                idx[(n, c, *o)] = (n * x.shape[1] + c) * plane + within
            elif op == "AveragePool":
                total = sum(float(v) for v, _ in vals)
                count = (math.prod(len(p) for p in padded) if attrs.get("count_include_pad", 0)
                         else len(vals))
                y[(n, c, *o)] = total / count if count else np.nan
            else:  # LpPool
                p = attrs.get("p", 2)
                y[(n, c, *o)] = sum(abs(float(v)) ** p for v, _ in vals) ** (1.0 / p)
    return y, idx


def conv_model(channels: int = 8, classes: int = 10, seed: int = 7):
    """Conv -> Relu -> MaxPool(k3 s2 p1) -> AveragePool(k2 s2) -> GlobalAveragePool ->
    Flatten -> Gemm, opset 22, input ``(N, 3, H, W)`` float32."""
    import onnx.numpy_helper as onh

    rng = np.random.default_rng(seed)
    inits = [
        onh.from_array(rng.standard_normal((channels, 3, 3, 3)).astype(np.float32) * 0.3, "w"),
        onh.from_array(rng.standard_normal(channels).astype(np.float32) * 0.1, "b"),
        onh.from_array(rng.standard_normal((classes, channels)).astype(np.float32) * 0.3, "gw"),
        onh.from_array(rng.standard_normal(classes).astype(np.float32) * 0.1, "gb"),
    ]
    nodes = [
        oh.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        oh.make_node("Relu", ["c"], ["r"]),
        oh.make_node("MaxPool", ["r"], ["m"], kernel_shape=[3, 3], strides=[2, 2],
                     pads=[1, 1, 1, 1]),
        oh.make_node("AveragePool", ["m"], ["a"], kernel_shape=[2, 2], strides=[2, 2]),
        oh.make_node("GlobalAveragePool", ["a"], ["g"]),
        oh.make_node("Flatten", ["g"], ["f"]),
        oh.make_node("Gemm", ["f", "gw", "gb"], ["y"], transB=1),
    ]
    graph = oh.make_graph(
        nodes,
        "convnet",
        [oh.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, None, None])],
        [oh.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 22)])
