"""The engine and the geometry rule shared by every family (docs/architecture.md)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx.reference import ReferenceEvaluator

import poolkit as pk
import poolkit.onnx as pkonnx
from onnx_spec import make_model
from poolkit import _engine
from poolkit._geometry import pooled_size

RNG = np.random.default_rng(3)


@pytest.mark.parametrize(
    "call",
    [
        lambda x: pk.adaptive_avg_pool2d(x, (8, 8)),  # the uniform sweep
        lambda x: pk.adaptive_avg_pool2d(x, 1),  # the plane mean
        lambda x: pk.global_avg_pool(x),
        lambda x: pk.max_pool2d(x, 3, 2, 1, return_indices=True),
        lambda x: pk.max_pool2d_backward(np.ones((4, 8, 16, 16), np.float32),
                                         pk.max_pool2d(x, 2, return_indices=True)[1], x.shape),
    ],
)
def test_serial_threshold_is_read_at_call_time(monkeypatch, call):
    """Every op takes its serial/parallel decision from _engine.SERIAL_WORK when called:
    forcing either side gives the same bits."""
    x = RNG.standard_normal((4, 8, 32, 32)).astype(np.float32)
    results = []
    for threshold in (0, 1 << 62):
        monkeypatch.setattr(_engine, "SERIAL_WORK", threshold)
        _engine.plans.clear()
        results.append(call(x))
    for a, b in zip(np.atleast_1d(results[0]), np.atleast_1d(results[1])):
        np.testing.assert_array_equal(a, b)


def test_onnx_global_average_pool_is_the_plane_mean():
    x = RNG.standard_normal((3, 16, 13, 17)).astype(np.float32)
    model = make_model("GlobalAveragePool", 22, x.shape)
    got = ReferenceEvaluator(model, new_ops=pkonnx.OPS).run(None, {"x": x})[0]
    np.testing.assert_array_equal(got.view(np.uint32), pk.global_avg_pool(x).view(np.uint32))


@pytest.mark.parametrize(
    "late, expected",
    [("all", 2), ("one", 4), ("keep", 5)],
)
def test_late_ceil_windows(late, expected):
    """L=3, k=1, s=2, pads (0, 5) with ceil_mode: poolkit drops every window starting in the
    right padding, ONNX from opset 22 only the last one, ONNX before 22 none."""
    assert pooled_size(3, 1, 2, 0, 5, 1, True, late) == expected
    assert pooled_size(3, 1, 2, 0, 5, 1, False, late) == 4


def test_uint16_comparable_round_trip():
    u = np.array([0, 1, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF], np.uint16)
    c = _engine.comparable(u)
    assert c.dtype == np.int16 and (np.diff(c.astype(np.int64)) > 0).all()
    np.testing.assert_array_equal(_engine.restore(c.copy(), u.dtype), u)
