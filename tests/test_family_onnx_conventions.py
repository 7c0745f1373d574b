"""The ONNX conventions across the pooling family: padding forms, dilation, index layouts.

Average pooling: padding pairs match PyTorch's zero F.pad then an unpadded pool; dilated
windows match the ONNX-spec loop oracle (tests/onnx_spec.py) and ONNX AveragePool-19
through poolkit.onnx; the dilated backward is the exact adjoint of the forward.
Max unpooling: asymmetric pads and ONNX's global / column-major indices.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from onnx.reference import ReferenceEvaluator

import poolkit as pk
import poolkit.onnx as pkonnx
from onnx_spec import make_model, spec_pool


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_avg_padding_pairs_match_torch_zero_pad(nd):
    rng = np.random.default_rng(20 + nd)
    pool = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[nd]
    fn = {1: pk.avg_pool1d, 2: pk.avg_pool2d, 3: pk.avg_pool3d}[nd]
    for _ in range(20):
        kernel = tuple(int(v) for v in rng.integers(2, 4, nd))
        stride = tuple(int(v) for v in rng.integers(1, 3, nd))
        size = tuple(int(v) for v in rng.integers(4, 8 if nd < 3 else 6, nd))
        pads = tuple((int(rng.integers(0, k)), int(rng.integers(0, k))) for k in kernel)
        x = rng.standard_normal((2, 3, *size))
        torch_pad = [v for pair in reversed(pads) for v in pair]
        want = pool(F.pad(torch.tensor(x), torch_pad), kernel, stride).numpy()
        np.testing.assert_allclose(fn(x, kernel, stride, pads), want, rtol=1e-12)


def test_avg_same_and_valid():
    x = np.random.default_rng(1).standard_normal((2, 3, 7, 6)).astype(np.float32)
    assert pk.avg_pool2d(x, 3, 2, "same").shape == (2, 3, 4, 3)
    np.testing.assert_array_equal(pk.avg_pool2d(x, 3, 2, "valid"), pk.avg_pool2d(x, 3, 2))
    # same_lower with k=2, s=1: one pad at the start, i.e. the pair ((1, 0), (1, 0))
    np.testing.assert_array_equal(
        pk.avg_pool2d(x, 2, 1, "same_lower", count_include_pad=False),
        pk.avg_pool2d(x, 2, 1, ((1, 0), (1, 0)), count_include_pad=False),
    )
    assert "padding='same'" in repr(pk.AvgPool2d(3, padding="same"))
    with pytest.raises(ValueError, match="padding too large"):
        pk.avg_pool2d(x, 2, 2, ((0, 3), (0, 0)))


@pytest.mark.parametrize("count_include_pad", [False, True])
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_dilated_avg_matches_spec_oracle_and_adjoint(count_include_pad, ceil_mode):
    rng = np.random.default_rng(3 + 2 * count_include_pad + ceil_mode)
    for _ in range(15):
        nd = int(rng.integers(1, 4))
        kernel = [int(v) for v in rng.integers(1, 4, nd)]
        stride = [int(v) for v in rng.integers(1, 3, nd)]
        dilation = [int(v) for v in rng.integers(1, 4, nd)]
        size = [int(v) for v in rng.integers(5, 9 if nd < 3 else 7, nd)]
        pads = [int(rng.integers(0, k // 2 + 1)) for k in kernel]
        if any(n + 2 * p < d * (k - 1) + 1 for n, p, d, k in zip(size, pads, dilation, kernel)):
            continue  # empty output: rejected (tested elsewhere)
        x = rng.standard_normal((2, 2, *size))
        y = {1: pk.avg_pool1d, 2: pk.avg_pool2d, 3: pk.avg_pool3d}[nd](
            x, kernel, stride, pads, ceil_mode, count_include_pad, dilation=dilation
        )
        attrs = {"kernel_shape": kernel, "strides": stride, "dilations": dilation,
                 "pads": pads + pads, "count_include_pad": int(count_include_pad)}
        want, _ = spec_pool("AveragePool", x, attrs, y.shape)
        np.testing.assert_allclose(y, want, rtol=1e-12)
        g = rng.standard_normal(y.shape)
        back = {1: pk.avg_pool1d_backward, 2: pk.avg_pool2d_backward,
                3: pk.avg_pool3d_backward}[nd](
            g, x.shape, kernel, stride, pads, ceil_mode, count_include_pad, dilation=dilation
        )
        np.testing.assert_allclose(np.vdot(y, g), np.vdot(x, back), rtol=1e-10)


def test_dilated_avg_matches_onnx_average_pool_19_and_layer():
    x = np.random.default_rng(5).standard_normal((2, 3, 9, 8)).astype(np.float32)
    y = pk.avg_pool2d(x, 3, 1, ((2, 1), (0, 2)), count_include_pad=False, dilation=(2, 3))
    model = make_model("AveragePool", 19, x.shape, kernel_shape=[3, 3], strides=[1, 1],
                       dilations=[2, 3], pads=[2, 0, 1, 2])
    onnx_y = ReferenceEvaluator(model, new_ops=pkonnx.OPS).run(None, {"x": x})[0]
    np.testing.assert_allclose(y, onnx_y, rtol=1e-6)
    layer = pk.AvgPool2d(3, 1, ((2, 1), (0, 2)), count_include_pad=False, dilation=(2, 3))
    assert "dilation=(2, 3)" in repr(layer)
    np.testing.assert_array_equal(layer(x), y)
    assert layer.backward(np.ones_like(y)).shape == x.shape
    # channels-last and unbatched layouts agree with the channels-first batched result
    cl = pk.avg_pool2d(np.moveaxis(x, 1, -1), 3, 1, ((2, 1), (0, 2)), count_include_pad=False,
                       channels_last=True, dilation=(2, 3))
    np.testing.assert_allclose(np.moveaxis(cl, -1, 1), y, rtol=1e-6)
    np.testing.assert_allclose(
        pk.avg_pool2d(x[0], 3, 1, ((2, 1), (0, 2)), count_include_pad=False, dilation=(2, 3)),
        y[0], rtol=1e-6,
    )
    with pytest.raises(ValueError, match="dilation must be >= 1"):
        pk.avg_pool2d(x, 3, dilation=0)


@pytest.mark.parametrize("channels_last", [False, True])
def test_unpool_accepts_global_column_major_indices_and_pad_pairs(channels_last):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 8, 7, 3) if channels_last else (2, 3, 8, 7))
    pads = ((1, 0), (0, 1))
    kw = dict(channels_last=channels_last)
    y, plane = pk.max_pool2d(x, 3, 2, pads, return_indices=True, **kw)
    _, glob = pk.max_pool2d(x, 3, 2, pads, return_indices=True, index_format="global",
                            storage_order=1, **kw)
    # default size (n - 1) * s - (p_begin + p_end) + k = (8, 6); output_size gives (8, 7)
    small = pk.max_unpool2d(y, np.zeros_like(plane), 3, 2, pads, **kw)
    assert (small.shape[1:3] if channels_last else small.shape[2:]) == (8, 6)
    want = pk.max_unpool2d(y, plane, 3, 2, pads, output_size=(8, 7), **kw)
    assert want.shape == x.shape
    np.testing.assert_array_equal(want[want != 0], x[want != 0])  # maxima back in place
    got = pk.max_unpool2d(y, glob, 3, 2, pads, output_size=(8, 7), index_format="global",
                          storage_order=1, **kw)
    np.testing.assert_array_equal(got, want)
    g = rng.standard_normal(x.shape)
    np.testing.assert_array_equal(
        pk.max_unpool2d_backward(g, glob, y.shape, 3, 2, pads, index_format="global",
                                 storage_order=1, **kw),
        pk.max_unpool2d_backward(g, plane, y.shape, 3, 2, pads, **kw),
    )
    layer = pk.MaxUnpool2d(3, 2, pads, index_format="global", storage_order=1, **kw)
    assert "padding=((1, 0), (0, 1))" in repr(layer) and "index_format='global'" in repr(layer)
    np.testing.assert_array_equal(layer(y, glob, output_size=(8, 7)), want)


def test_unpool_padding_and_index_errors():
    y = np.ones((1, 1, 2, 2))
    idx = np.zeros((1, 1, 2, 2), dtype=np.int64)
    with pytest.raises(ValueError, match="ints or \\(begin, end\\) pairs"):
        pk.max_unpool2d(y, idx, 2, padding="same")
    with pytest.raises(ValueError, match="another plane"):
        pk.max_unpool2d(np.ones((1, 2, 2, 2)), np.full((1, 2, 2, 2), 3), 2,
                        index_format="global")


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_lp_pool_padding_and_dilation_follow_onnx_lp_pool(nd):
    rng = np.random.default_rng(30 + nd)
    fn = {1: pk.lp_pool1d, 2: pk.lp_pool2d, 3: pk.lp_pool3d}[nd]
    back = {1: pk.lp_pool1d_backward, 2: pk.lp_pool2d_backward, 3: pk.lp_pool3d_backward}[nd]
    for _ in range(8):
        kernel = [int(v) for v in rng.integers(1, 4, nd)]
        stride = [int(v) for v in rng.integers(1, 3, nd)]
        dilation = [int(v) for v in rng.integers(1, 3, nd)]
        size = [int(v) for v in rng.integers(5, 8 if nd < 3 else 6, nd)]
        pads = tuple((int(rng.integers(0, k)), int(rng.integers(0, k))) for k in kernel)
        if any(n + b + e < d * (k - 1) + 1
               for n, (b, e), d, k in zip(size, pads, dilation, kernel)):
            continue
        norm = int(rng.integers(1, 4))
        x = rng.standard_normal((2, 2, *size))
        try:
            y = fn(x, norm, kernel, stride, padding=pads, dilation=dilation)
        except ValueError as exc:  # a window of padding only
            assert "padding too large" in str(exc)
            continue
        attrs = {"kernel_shape": kernel, "strides": stride, "dilations": dilation,
                 "pads": [b for b, _ in pads] + [e for _, e in pads], "p": norm}
        want, _ = spec_pool("LpPool", x, attrs, y.shape)
        np.testing.assert_allclose(y, want, rtol=1e-10)
        # gradient: central finite differences on a few coordinates
        g = rng.standard_normal(y.shape)
        dx = back(g, x, norm, kernel, stride, padding=pads, dilation=dilation)
        for flat in rng.choice(x.size, 4, replace=False):
            e = np.zeros(x.size)
            e[flat] = 1e-6
            e = e.reshape(x.shape)
            num = (np.vdot(fn(x + e, norm, kernel, stride, padding=pads, dilation=dilation), g)
                   - np.vdot(fn(x - e, norm, kernel, stride, padding=pads, dilation=dilation),
                             g)) / 2e-6
            assert abs(num - dx.reshape(-1)[flat]) <= 1e-5 * max(1.0, abs(num))
    layer = pk.LPPool2d(2, 3, 2, padding="same", dilation=2)
    assert "padding='same'" in repr(layer) and "dilation=2" in repr(layer)
    x = rng.standard_normal((1, 2, 7, 7))
    np.testing.assert_allclose(layer(x), pk.lp_pool2d(x, 2, 3, 2, padding="same", dilation=2))
    assert layer.backward(np.ones((1, 2, 4, 4))).shape == x.shape
