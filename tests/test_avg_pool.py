"""Average pooling: differential tests against PyTorch 2.13 CPU, the reference, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import poolkit as pk
from _family import (
    assert_same,
    channels_last,
    check_gradient,
    from_channels_last,
    raises_both,
    random_input,
    t,
)
from poolkit import _reference as ref

F = torch.nn.functional
N_CONFIGS = 72


def _config(rng, nd):
    kernel = tuple(int(k) for k in rng.integers(1, 5, nd))
    stride = tuple(int(s) for s in rng.integers(1, 4, nd))
    padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
    size = tuple(int(max(k, 1) + rng.integers(0, 9)) for k in kernel)
    return kernel, stride, padding, size


def _torch_avg(nd, x, kernel, stride, padding, ceil, cip, div):
    fn = getattr(F, f"avg_pool{nd}d")
    if nd == 1:
        return fn(x, kernel, stride, padding, ceil, cip)
    return fn(x, kernel, stride, padding, ceil, cip, div)


def test_random_configs_match_torch_values_and_gradients():
    """Seeded random configurations: values and layer gradients bit-identical to PyTorch."""
    rng = np.random.default_rng(20261121)
    compared = 0
    for i in range(N_CONFIGS):
        nd = 1 + i % 3
        dtype = [np.float32, np.float64, np.float16][(i // 3) % 3]
        if nd == 3 and dtype == np.float16:
            dtype = np.float32  # PyTorch has no CPU float16 avg_pool3d
        kernel, stride, padding, size = _config(rng, nd)
        ceil = bool(rng.integers(0, 2))
        cip = bool(rng.integers(0, 2))
        div = int(rng.integers(1, 7)) if nd > 1 and rng.integers(0, 4) == 0 else None
        batched = bool(rng.integers(0, 4))
        shape = ((2, 3) if batched else (3,)) + size
        x = random_input(rng, shape, dtype, ties=i % 4 == 0, nan=i % 7 == 0)
        # channels-last in float32 only: every layout x dtype pair is a separate numba compile
        layout_cl = batched and nd > 1 and dtype == np.float32 and i % 2 == 0
        layer = getattr(pk, f"AvgPool{nd}d")(
            kernel, stride, padding, ceil, cip, div, channels_last=layout_cl
        )
        tx = t(x, grad=True)
        try:
            expected = _torch_avg(nd, tx, kernel, stride, padding, ceil, cip, div)
        except RuntimeError:
            with pytest.raises(ValueError):
                layer(channels_last(x) if layout_cl else x)
            continue
        got = layer(channels_last(x) if layout_cl else x)
        got_cf = from_channels_last(got) if layout_cl else got
        assert_same(np.ascontiguousarray(got_cf), expected.detach().numpy())
        g = random_input(rng, expected.shape, dtype)
        expected.backward(t(g))
        dx = layer.backward(channels_last(g) if layout_cl else g)
        dx_cf = from_channels_last(dx) if layout_cl else dx
        assert_same(np.ascontiguousarray(dx_cf), tx.grad.numpy())
        compared += 1
    assert compared >= N_CONFIGS * 0.9


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int32, np.uint8])
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_matches_reference(nd, dtype):
    rng = np.random.default_rng(nd * 100 + np.dtype(dtype).num)
    kernel = (3, 2, 3)[:nd]
    stride = (2, 1, 2)[:nd]
    padding = (1, 1, 0)[:nd]
    x = random_input(rng, (2, 2) + (5, 4, 6)[:nd], dtype, ties=True)
    for ceil, cip, div in ((False, True, None), (True, False, None), (True, True, 5)):
        y = getattr(pk, f"avg_pool{nd}d")(x, kernel, stride, padding, ceil, cip, div)
        assert_same(y, ref.avg_pool(x, kernel, stride, padding, ceil, cip, div))
        if x.dtype.kind == "f":
            g = random_input(rng, y.shape, dtype)
            dx = getattr(pk, f"avg_pool{nd}d_backward")(
                g, x.shape, kernel, stride, padding, ceil, cip, div
            )
            expected = ref.avg_pool_backward(g, x.shape, kernel, stride, padding, ceil, cip, div)
            assert_same(dx, expected)


def test_integer_input_gives_float64_average():
    x = np.array([[[1, 2, 4, 7]]], dtype=np.int64)
    y = pk.avg_pool1d(x, 2)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, [[[1.5, 5.5]]])


def test_channels_last_and_strided_views_match_contiguous():
    rng = np.random.default_rng(5)
    x = random_input(rng, (2, 3, 9, 10), np.float32)
    base = pk.avg_pool2d(x, 3, 2, 1, ceil_mode=True)
    assert_same(pk.avg_pool2d(x[:, :, ::1, :], 3, 2, 1, ceil_mode=True), base)
    wide = np.zeros((2, 3, 9, 20), np.float32)
    wide[..., ::2] = x
    assert_same(pk.avg_pool2d(wide[..., ::2], 3, 2, 1, ceil_mode=True), base)
    cl = pk.avg_pool2d(channels_last(x), 3, 2, 1, ceil_mode=True, channels_last=True)
    assert_same(np.ascontiguousarray(from_channels_last(cl)), base)


def test_input_not_mutated_and_batch_zero():
    x = np.ones((0, 2, 4, 4), np.float32)
    assert pk.avg_pool2d(x, 2).shape == (0, 2, 2, 2)
    y = np.arange(16.0).reshape(1, 1, 4, 4)
    before = y.copy()
    pk.avg_pool2d(y, 3, 1, 1)
    assert_same(y, before)


def test_finite_difference_gradient():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 2, 7, 6))
    opts = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
    check_gradient(
        lambda a: pk.avg_pool2d(a, **opts),
        lambda g: pk.avg_pool2d_backward(g, x.shape, **opts),
        x,
        rng,
    )


def test_rejections_match_torch():
    x = np.zeros((1, 2, 6, 6), np.float32)
    tx = t(x)
    cases = [
        dict(kernel_size=2, padding=2),  # padding > kernel/2
        dict(kernel_size=0),
        dict(kernel_size=2, stride=0),
        dict(kernel_size=7),  # output size < 1
        dict(kernel_size=2, divisor_override=0),
        dict(kernel_size=(2, 2, 2)),
    ]
    for kw in cases:
        raises_both(lambda kw=kw: pk.avg_pool2d(x, **kw), lambda kw=kw: F.avg_pool2d(tx, **kw))
    raises_both(lambda: pk.avg_pool2d(x[0, 0], 2), lambda: F.avg_pool2d(tx[0, 0], 2))
    raises_both(
        lambda: pk.avg_pool2d(np.zeros((1, 0, 4, 4)), 2),
        lambda: F.avg_pool2d(torch.zeros(1, 0, 4, 4), 2),
    )


def test_error_messages_name_the_argument():
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(ValueError, match="padding"):
        pk.avg_pool2d(x, 2, padding=2)
    with pytest.raises(TypeError, match="ceil_mode"):
        pk.avg_pool2d(x, 2, ceil_mode=1)
    with pytest.raises(TypeError, match="divisor_override"):
        pk.avg_pool2d(x, 2, divisor_override=2.5)
    with pytest.raises(ValueError, match="divisor_override"):
        pk.avg_pool2d(x, 2, divisor_override=0)
    with pytest.raises(TypeError, match="dtypes"):
        pk.avg_pool2d(x.astype(bool), 2)
    with pytest.raises(ValueError, match="grad_output"):
        pk.avg_pool2d_backward(np.zeros((1, 1, 3, 3)), x.shape, 2)
    with pytest.raises(TypeError, match="input_shape"):
        pk.avg_pool2d_backward(np.zeros((1, 1, 2, 2)), 16, 2)
    with pytest.raises(RuntimeError, match="before forward"):
        pk.AvgPool2d(2).backward(np.zeros((1, 1, 2, 2)))


def test_layer_repr_and_call():
    layer = pk.AvgPool2d(3, stride=2, padding=1, count_include_pad=False, divisor_override=4)
    assert repr(layer) == (
        "AvgPool2d(kernel_size=3, stride=2, padding=1, ceil_mode=False, "
        "count_include_pad=False, divisor_override=4)"
    )
    x = np.ones((1, 1, 4, 4))
    assert_same(layer(x), layer.forward(x))


@settings(max_examples=30, deadline=None)
@given(
    size=st.integers(1, 9),
    kernel=st.integers(1, 4),
    stride=st.integers(1, 3),
    data=st.data(),
)
def test_property_constant_input_averages_to_itself(size, kernel, stride, data):
    """Without padding in the divisor, the average of a constant is that constant."""
    if kernel > size:
        return
    pad = data.draw(st.integers(0, kernel // 2))
    ceil = data.draw(st.booleans())
    x = np.full((1, 2, size), 1.25)
    y = pk.avg_pool1d(x, kernel, stride, pad, ceil, count_include_pad=False)
    np.testing.assert_array_equal(y, np.full_like(y, 1.25))
    assert y.shape[-1] == ref.window_count(size, kernel, stride, pad, pad, 1, ceil)
