"""poolkit.onnx: ONNX pooling operators for onnx.reference.ReferenceEvaluator.

Every random attribute combination is checked three ways: poolkit's result against a
slow oracle written from the ONNX spec text (tests/onnx_spec.py: exact shape, values,
global indices), and against onnx.reference's own operator. Where onnx.reference
disagrees, the combination must fall in one of the listed, documented deviations
(docs/onnx.md); an unexplained disagreement fails the test.
"""

from __future__ import annotations

import collections
import itertools
import math
import warnings

import numpy as np
import pytest
from onnx.reference import ReferenceEvaluator

import poolkit.onnx as pkonnx
from onnx_spec import conv_model, inferred_shape, make_model, spec_out_size, spec_pool

OPSETS = {
    "MaxPool": [8, 10, 12, 22],
    "AveragePool": [7, 10, 11, 19, 22],
    "LpPool": [2, 11, 18, 22],
}


def _has(op: str, opset: int, feature: str) -> bool:
    first = {
        ("MaxPool", "dilations"): 10,
        ("MaxPool", "ceil_mode"): 10,
        ("MaxPool", "storage_order"): 8,
        ("AveragePool", "dilations"): 19,
        ("AveragePool", "ceil_mode"): 10,
        ("AveragePool", "count_include_pad"): 7,
        ("LpPool", "dilations"): 18,
        ("LpPool", "ceil_mode"): 18,
    }.get((op, feature))
    return first is not None and opset >= first


def random_case(rng: np.random.Generator, op: str):
    """A random (opset, attributes, spatial size, outputs) combination for ``op``."""
    opset = int(rng.choice(OPSETS[op]))
    nd = int(rng.integers(1, 4))
    kernel = [int(rng.integers(1, 4)) for _ in range(nd)]
    attrs: dict = {"kernel_shape": kernel}
    if rng.random() < 0.7:
        attrs["strides"] = [int(rng.integers(1, 4)) for _ in range(nd)]
    if _has(op, opset, "dilations") and rng.random() < 0.5:
        attrs["dilations"] = [int(rng.integers(1, 3)) for _ in range(nd)]
    auto_pad = str(rng.choice(["NOTSET", "NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]))
    if auto_pad != "NOTSET":
        attrs["auto_pad"] = auto_pad
    elif rng.random() < 0.7:
        attrs["pads"] = [int(rng.integers(0, k)) for k in kernel] * 1 + [
            int(rng.integers(0, k)) for k in kernel
        ]
    if _has(op, opset, "ceil_mode") and rng.random() < 0.5:
        attrs["ceil_mode"] = 1
    if _has(op, opset, "count_include_pad") and rng.random() < 0.5:
        attrs["count_include_pad"] = 1
    if _has(op, opset, "storage_order") and rng.random() < 0.5:
        attrs["storage_order"] = 1
    if op == "LpPool":
        attrs["p"] = int(rng.integers(1, 4))
    top = 8 if nd < 3 else 5
    size = [int(rng.integers(3, top)) for _ in range(nd)]
    outputs = ("y", "i") if op == "MaxPool" and opset >= 8 and rng.random() < 0.5 else ("y",)
    return opset, attrs, size, outputs


def _dims(attrs: dict, size: list[int]):
    nd = len(size)
    return (
        attrs["kernel_shape"],
        attrs.get("strides", [1] * nd),
        attrs.get("dilations", [1] * nd),
        attrs.get("pads", [0] * 2 * nd),
    )


def known_deviations(op: str, opset: int, attrs: dict, size: list[int], outputs) -> set[str]:
    """The documented onnx.reference deviations this combination may trigger."""
    nd = len(size)
    kernel, strides, dil, pads = _dims(attrs, size)
    auto_pad = attrs.get("auto_pad", "NOTSET")
    ceil = attrs.get("ceil_mode", 0)
    found = set()
    if auto_pad != "NOTSET" and ceil:
        found.add("auto_pad with ceil_mode")
    if auto_pad == "NOTSET" and ceil and opset < 22:
        for j in range(nd):
            ext = (kernel[j] - 1) * dil[j] + 1
            n = math.ceil((size[j] + pads[j] + pads[nd + j] - ext) / strides[j] + 1)
            if (n - 1) * strides[j] >= size[j] + pads[j]:
                found.add("ceil_mode drops the last window before opset 22")
    if auto_pad.startswith("SAME"):
        for j in range(nd):
            ext = (kernel[j] - 1) * dil[j] + 1
            if (math.ceil(size[j] / strides[j]) - 1) * strides[j] + ext < size[j]:
                found.add("SAME total pad below 0 not clamped")
    stride_one_path = all(s == 1 for s in strides) and all(d == 1 for d in dil)
    if op == "MaxPool" and stride_one_path:
        if len(outputs) > 1:
            found.add("MaxPool Indices with unit strides and dilations")
        if nd != 2 and (any(pads) or auto_pad.startswith("SAME")):
            found.add("MaxPool padding with unit strides and dilations outside 2-D")
    if op == "MaxPool" and not stride_one_path and auto_pad == "SAME_LOWER":
        found.add("MaxPool SAME_LOWER with strides or dilations")
    if op in ("AveragePool", "LpPool") and auto_pad != "NOTSET" and max(dil) > 1:
        found.add("auto_pad sizes ignore dilations (AveragePool, LpPool)")
    if op in ("AveragePool", "LpPool") and auto_pad == "NOTSET" and ceil:
        for j in range(nd):
            ext = (kernel[j] - 1) * dil[j] + 1
            n = math.ceil((size[j] + pads[j] + pads[nd + j] - ext) / strides[j] + 1)
            if (n - 1) * strides[j] >= size[j] + pads[j]:
                n -= 1
            if ((n - 1) * strides[j] + ext - size[j] - pads[j] - pads[nd + j]) // 2 > 0:
                found.add("ceil_mode overhang shifts windows (AveragePool, LpPool)")
    if op == "LpPool" and auto_pad == "NOTSET" and ceil:
        out = spec_out_size(op, opset, attrs, size)
        for j in range(nd):
            ext = (kernel[j] - 1) * dil[j] + 1
            if (out[j] - 1) * strides[j] + ext > size[j] + pads[j] + pads[nd + j]:
                found.add("LpPool rescales windows overhanging the end padding")
    return found


def _run(model, feeds, new_ops=None):
    return ReferenceEvaluator(model, new_ops=new_ops).run(None, feeds)


def _agree(ours, ref) -> bool:
    return len(ref) == len(ours) and all(
        a.shape == b.shape and np.allclose(a, b, rtol=1e-5, atol=1e-5) for a, b in zip(ours, ref)
    )


TALLIES: dict[str, collections.Counter] = {}


@pytest.mark.parametrize("op", list(OPSETS))
def test_differential_random_attributes(op):
    """poolkit == spec oracle on every case; == onnx.reference except listed deviations."""
    rng = np.random.default_rng({"MaxPool": 11, "AveragePool": 12, "LpPool": 13}[op])
    tally = TALLIES.setdefault(op, collections.Counter())
    cases = 0
    while cases < 200:
        opset, attrs, size, outputs = random_case(rng, op)
        expected_size = spec_out_size(op, opset, attrs, size)
        if expected_size is None:  # the spec formulas give an empty output: invalid node
            continue
        cases += 1
        shape = [2, 2, *size]
        x = rng.standard_normal(shape).astype(np.float32)
        model = make_model(op, opset, shape, outputs=outputs, **attrs)
        ours = _run(model, {"x": x}, pkonnx.OPS)
        out_shape = (2, 2, *expected_size)
        want, want_idx = spec_pool(op, x, attrs, out_shape, attrs.get("storage_order", 0))
        assert ours[0].shape == out_shape, (opset, attrs, size)
        np.testing.assert_allclose(ours[0], want, rtol=1e-5, atol=1e-6, equal_nan=True)
        if len(outputs) > 1:
            np.testing.assert_array_equal(ours[1], want_idx)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref = _run(model, {"x": x})
            agree = _agree(ours, ref)
        except Exception:  # onnx.reference raising is a deviation like any other
            agree = False
        tally["cases"] += 1
        if agree:
            tally["agree with onnx.reference"] += 1
            continue
        tally["deviate (explained below)"] += 1
        reasons = known_deviations(op, opset, attrs, size, outputs)
        assert reasons, f"unexplained disagreement with onnx.reference: {opset} {attrs} {size}"
        for reason in reasons:
            tally[reason] += 1
    print(f"\n{op}: {dict(tally)}")
    # the differential test must mostly compare equal, or it tests nothing
    assert tally["agree with onnx.reference"] >= tally["cases"] // 2


def test_output_shapes_follow_spec_text_and_shape_inference():
    """Shapes: spec text == ONNX shape inference, except its two documented corners."""
    rng = np.random.default_rng(5)
    corners = collections.Counter()
    for _ in range(400):
        op = str(rng.choice(list(OPSETS)))
        opset, attrs, size, _ = random_case(rng, op)
        model = make_model(op, opset, [1, 1, *size], **attrs)
        text = spec_out_size(op, opset, attrs, size)
        inferred = inferred_shape(model)[2:]
        if text is None:
            with pytest.raises(ValueError, match="output is not empty"):
                _run(model, {"x": np.ones([1, 1, *size], np.float32)}, pkonnx.OPS)
            corners["spec text: empty output (rejected)"] += 1
            continue
        if tuple(inferred) != text:
            # with auto_pad, shape inference applies ceil_mode to its pad-based formula,
            # where the spec text gives ceil(L / s) (SAME) and ceil((L - ext + 1) / s) (VALID)
            assert attrs.get("auto_pad", "NOTSET") != "NOTSET" and attrs.get("ceil_mode"), (
                op, opset, attrs, size, inferred, text
            )
            corners["auto_pad + ceil_mode: shape inference differs"] += 1
        got = _run(model, {"x": np.ones([1, 1, *size], np.float32)}, pkonnx.OPS)[0]
        assert got.shape[2:] == text
    print(f"\nshape corners: {dict(corners)}")


def test_explicit_deviations_from_onnx_reference():
    """Each listed deviation, shown on one example: poolkit follows the spec."""
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 4, 3)).astype(np.float32)
    # GlobalMaxPool on a 5-D input: reference reduces axes (3, 4) instead of (2, 3, 4)
    model = make_model("GlobalMaxPool", 22, x.shape)
    ours = _run(model, {"x": x}, pkonnx.OPS)[0]
    np.testing.assert_array_equal(ours, x.max(axis=(2, 3, 4), keepdims=True))
    assert _run(model, {"x": x})[0].shape != ours.shape
    # ... and on a 3-D input it reduces the channel axis
    x3 = x[:, :, :, 0, 0]
    model = make_model("GlobalMaxPool", 22, x3.shape)
    np.testing.assert_array_equal(
        _run(model, {"x": x3}, pkonnx.OPS)[0], x3.max(axis=2, keepdims=True)
    )
    assert not np.array_equal(_run(model, {"x": x3})[0], x3.max(axis=2, keepdims=True))
    # MaxPool SAME_LOWER with stride 2: reference uses floor(L/s) outputs and upper pads
    x2 = x[:, :, :, :, 0]
    model = make_model("MaxPool", 22, x2.shape, kernel_shape=[3, 3], strides=[2, 2],
                       auto_pad="SAME_LOWER")
    ours = _run(model, {"x": x2}, pkonnx.OPS)[0]
    assert ours.shape == (2, 3, 3, 2)
    ref = _run(model, {"x": x2})[0]
    assert ref.shape != ours.shape
    # MaxPool-22 ceil_mode: a window starting in the right padding is dropped, earlier
    # opsets keep it (the spec and shape inference); the reference always drops it
    x1 = np.arange(4, dtype=np.float32).reshape(1, 1, 4)
    for opset, n_out in ((12, 3), (22, 2)):
        model = make_model("MaxPool", opset, x1.shape, kernel_shape=[2], strides=[3],
                           pads=[1, 1], ceil_mode=1)
        assert inferred_shape(model)[2] == n_out
        ours = _run(model, {"x": x1}, pkonnx.OPS)[0]
        assert ours.shape[2] == n_out
        assert _run(model, {"x": x1})[0].shape[2] == 2
    np.testing.assert_array_equal(
        _run(make_model("MaxPool", 12, x1.shape, kernel_shape=[2], strides=[3], pads=[1, 1],
                        ceil_mode=1), {"x": x1}, pkonnx.OPS)[0].ravel(),
        [0.0, 3.0, -np.inf],  # the kept window lies past the input: no element, -inf
    )
    # LpPool, ceil_mode: the reference averages the taps of a window overhanging the end
    # padding and multiplies by the full kernel size, inflating that window
    xl = np.ones((1, 1, 4), dtype=np.float32)
    model = make_model("LpPool", 22, xl.shape, kernel_shape=[3], strides=[2], ceil_mode=1, p=2)
    np.testing.assert_allclose(
        _run(model, {"x": xl}, pkonnx.OPS)[0].ravel(), [np.sqrt(3), np.sqrt(2)], rtol=1e-6
    )
    np.testing.assert_allclose(_run(model, {"x": xl})[0].ravel(), [np.sqrt(3)] * 2, rtol=1e-6)
    # AveragePool/MaxPool ignore NaN in the reference (NaN-padding trick); NaN propagates
    xn = np.array([[[1.0, np.nan, 3.0, 4.0]]], dtype=np.float32)
    for op in ("AveragePool", "MaxPool"):
        model = make_model(op, 22, xn.shape, kernel_shape=[2], strides=[1])
        ours = _run(model, {"x": xn}, pkonnx.OPS)[0].ravel()
        assert np.isnan(ours[:2]).all() and not np.isnan(ours[2])
        assert not np.isnan(_run(model, {"x": xn})[0]).all()


def test_max_unpool_output_shape_indices_address_the_output():
    """MaxUnpool with output_shape: indices address the output tensor (spec)."""
    x = np.random.default_rng(1).standard_normal((2, 2, 5, 5)).astype(np.float32)
    pool = make_model("MaxPool", 22, x.shape, outputs=("y", "i"), kernel_shape=[2, 2],
                      strides=[2, 2])
    y, idx = _run(pool, {"x": x}, pkonnx.OPS)
    model = make_model("MaxUnpool", 22, y.shape, extra_inputs=("i", "s"), kernel_shape=[2, 2],
                       strides=[2, 2])
    feeds = {"x": y, "i": idx, "s": np.array(x.shape, dtype=np.int64)}
    ours = _run(model, feeds, pkonnx.OPS)[0]
    expected = np.zeros_like(x)
    expected.reshape(-1)[idx.ravel()] = y.ravel()
    np.testing.assert_array_equal(ours, expected)
    # every pooled maximum lands where it came from
    np.testing.assert_array_equal(ours.reshape(-1)[idx.ravel()], x.reshape(-1)[idx.ravel()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ref = _run(model, feeds)[0]
            assert not np.array_equal(ref, expected)
        except IndexError:
            pass  # the reference scatters into the 4x4 inferred shape and overflows
    # without output_shape: the inferred shape, same as the reference
    model = make_model("MaxUnpool", 11, y.shape, extra_inputs=("i",), kernel_shape=[2, 2],
                       strides=[2, 2])
    x4 = x[:, :, :4, :4].copy()
    y4, i4 = _run(pool, {"x": x4}, pkonnx.OPS)
    np.testing.assert_array_equal(
        _run(model, {"x": y4, "i": i4}, pkonnx.OPS)[0], _run(model, {"x": y4, "i": i4})[0]
    )


@pytest.mark.parametrize("opset", [1, 2, 22])
def test_global_lp_pool(opset):
    """GlobalLpPool (absent from onnx.reference) against the formula; p float in opset 1."""
    x = np.random.default_rng(opset).standard_normal((2, 3, 4, 5)).astype(np.float64)
    p = 3.0 if opset == 1 else 3
    model = make_model("GlobalLpPool", opset, x.shape, dtype=np.float64, p=p)
    got = _run(model, {"x": x}, pkonnx.OPS)[0]
    want = (np.abs(x) ** 3).sum(axis=(2, 3), keepdims=True) ** (1 / 3)
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("shape", [(2, 3, 7), (2, 3, 6, 5), (1, 2, 3, 4, 5)])
def test_global_average_and_max_pool_match_reference(shape):
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    model = make_model("GlobalAveragePool", 22, shape)
    np.testing.assert_allclose(
        _run(model, {"x": x}, pkonnx.OPS)[0], _run(model, {"x": x})[0], rtol=1e-6
    )
    model = make_model("GlobalMaxPool", 22, shape)
    got = _run(model, {"x": x}, pkonnx.OPS)[0]
    np.testing.assert_array_equal(got, x.max(axis=tuple(range(2, x.ndim)), keepdims=True))
    if len(shape) == 4:  # the one rank where the reference is right
        np.testing.assert_array_equal(got, _run(model, {"x": x})[0])


@pytest.mark.parametrize("dtype", [np.float16, np.float64, np.int8, np.uint8])
def test_max_pool_dtypes(dtype):
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((2, 2, 6, 6)) * 20).astype(dtype)
    model = make_model("MaxPool", 22, x.shape, dtype=dtype, outputs=("y", "i"),
                       kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    ours = _run(model, {"x": x}, pkonnx.OPS)
    ref = _run(model, {"x": x})
    assert ours[0].dtype == dtype
    np.testing.assert_array_equal(ours[0], ref[0])
    np.testing.assert_array_equal(ours[1], ref[1])


def test_storage_order_column_major_matches_reference():
    x = np.random.default_rng(6).standard_normal((2, 3, 6, 5)).astype(np.float32)
    model = make_model("MaxPool", 12, x.shape, outputs=("y", "i"), kernel_shape=[2, 3],
                       strides=[2, 2], storage_order=1)
    ours = _run(model, {"x": x}, pkonnx.OPS)
    ref = _run(model, {"x": x})
    np.testing.assert_array_equal(ours[1], ref[1])
    h, w = np.unravel_index(ours[1] % 30, (6, 5), order="F")
    assert (h < 6).all() and (w < 5).all()


def test_opset_versions_change_defaults_and_attributes():
    x = np.ones((1, 1, 4, 4), dtype=np.float32)
    # AveragePool-11 has no dilations attribute: the node is invalid at that opset
    model = make_model("AveragePool", 11, x.shape, kernel_shape=[2, 2], dilations=[2, 2])
    with pytest.raises(ValueError, match="set of attributes"):
        _run(model, {"x": x}, pkonnx.OPS)
    # LpPool-1 takes a float p; from LpPool-2 p must be an int
    model = make_model("LpPool", 1, x.shape, kernel_shape=[2, 2], p=1.5)
    got = _run(model, {"x": x}, pkonnx.OPS)[0]
    np.testing.assert_allclose(got, np.full((1, 1, 3, 3), 4 ** (1 / 1.5)), rtol=1e-6)
    # count_include_pad defaults to 0 (pads do not count)
    model = make_model("AveragePool", 22, x.shape, kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    np.testing.assert_allclose(_run(model, {"x": x}, pkonnx.OPS)[0], 1.0)
    model = make_model("AveragePool", 22, x.shape, kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                       count_include_pad=1)
    assert _run(model, {"x": x}, pkonnx.OPS)[0][0, 0, 0, 0] == pytest.approx(4 / 9)


@pytest.mark.parametrize(
    ("op", "attrs", "match"),
    [
        ("MaxPool", {"kernel_shape": [2, 2], "pads": [1, 1]}, "pads must be"),
        ("MaxPool", {"kernel_shape": [2, 2], "strides": [0, 1]}, "strides must be"),
        ("MaxPool", {"kernel_shape": [2, 2], "auto_pad": "SAME"}, "auto_pad must be"),
        ("MaxPool", {"kernel_shape": [2, 2], "storage_order": 2}, "storage_order must be"),
        ("MaxPool", {"kernel_shape": [9, 2]}, "output is not empty"),
        ("MaxPool", {"kernel_shape": [2]}, "3-D to match"),
        ("MaxPool", {"kernel_shape": [2, 2], "auto_pad": "VALID", "pads": [1, 0, 0, 0]},
         "absent or zero"),
        ("AveragePool", {"kernel_shape": [2, 2], "count_include_pad": 3},
         "count_include_pad must be"),
        ("LpPool", {"kernel_shape": [2, 2], "p": 0}, "p must be"),
    ],
)
def test_invalid_nodes_raise_value_error(op, attrs, match):
    x = np.ones((1, 1, 4, 4), dtype=np.float32)
    model = make_model(op, 22, x.shape, **attrs)
    with pytest.raises(ValueError, match=match):
        _run(model, {"x": x}, pkonnx.OPS)


def test_max_unpool_rejects_bad_indices():
    model = make_model("MaxUnpool", 22, (1, 1, 2, 2), extra_inputs=("i",), kernel_shape=[2, 2],
                       strides=[2, 2])
    x = np.ones((1, 1, 2, 2), dtype=np.float32)
    with pytest.raises(ValueError, match=r"must lie in \[0, 16\)"):
        _run(model, {"x": x, "i": np.full((1, 1, 2, 2), 16, dtype=np.int64)}, pkonnx.OPS)
    with pytest.raises(ValueError, match="shaped like X"):
        _run(model, {"x": x, "i": np.zeros((1, 1, 2), dtype=np.int64)}, pkonnx.OPS)


def test_ops_are_the_seven_operators():
    assert sorted(c.__name__ for c in pkonnx.OPS) == sorted(
        ["MaxPool", "AveragePool", "LpPool", "GlobalMaxPool", "GlobalAveragePool",
         "GlobalLpPool", "MaxUnpool"]
    )
    assert all(c.op_domain == "" for c in pkonnx.OPS)


def test_conv_model_same_output_with_and_without_poolkit():
    model = conv_model()
    x = np.random.default_rng(8).standard_normal((2, 3, 16, 16)).astype(np.float32)
    plain = ReferenceEvaluator(model).run(None, {"x": x})[0]
    fast = ReferenceEvaluator(model, new_ops=pkonnx.OPS).run(None, {"x": x})[0]
    assert fast.shape == (2, 10)
    np.testing.assert_allclose(fast, plain, rtol=1e-5, atol=1e-6)


def test_onnx_geometry_is_exported():
    geom = pkonnx.onnx_geometry("MaxPool", (7,), (3,), (2,), (1,), (0, 0), "SAME_LOWER", False, 22)
    assert (geom.pad_begin, geom.pad_end, geom.out_size) == ((1,), (1,), (4,))
    assert list(itertools.chain(geom.kernel)) == [3]


def test_max_unpool_differential_without_output_shape():
    """MaxPool -> MaxUnpool (inferred shape) on random configs: poolkit == onnx.reference."""
    rng = np.random.default_rng(21)
    agree = 0
    for _ in range(40):
        nd = int(rng.integers(1, 4))
        kernel = [int(v) for v in rng.integers(1, 4, nd)]
        strides = [int(v) for v in rng.integers(1, 4, nd)]
        pads = [int(rng.integers(0, k)) for k in kernel] + [int(rng.integers(0, k)) for k in kernel]
        size = [int(v) for v in rng.integers(3, 7 if nd < 3 else 5, nd)]
        x = rng.standard_normal((2, 2, *size)).astype(np.float32)
        attrs = {"kernel_shape": kernel, "strides": strides, "pads": pads}
        if any(n + b + e < k for n, b, e, k in zip(size, pads[:nd], pads[nd:], kernel)):
            continue
        pool = make_model("MaxPool", 22, x.shape, outputs=("y", "i"), **attrs)
        y, idx = _run(pool, {"x": x}, pkonnx.OPS)
        if (idx < 0).any():
            continue
        # the inferred shape may be smaller than x: keep indices that fit it
        unpool = make_model("MaxUnpool", 22, y.shape, extra_inputs=("i",), **attrs)
        inferred = [(n - 1) * s - (b + e) + k
                    for n, s, b, e, k in zip(y.shape[2:], strides, pads[:nd], pads[nd:], kernel)]
        if inferred != size:
            continue
        ours = _run(unpool, {"x": y, "i": idx}, pkonnx.OPS)[0]
        ref = _run(unpool, {"x": y, "i": idx})[0]
        np.testing.assert_array_equal(ours, ref)
        agree += 1
    assert agree >= 10
    print(f"\nMaxUnpool: {agree} configurations agree with onnx.reference")
