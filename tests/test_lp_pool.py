"""Lp pooling: differential tests against PyTorch 2.13 CPU (tight tolerance), reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import poolkit as pk
from _family import check_gradient, raises_both, t
from poolkit import _reference as ref

F = torch.nn.functional
N_CONFIGS = 48
# Same steps as PyTorch (x**p, average, * prod(k), **(1/p)); elementwise pow may differ
# by an ulp between NumPy and PyTorch, so values agree within a few ulp, not bit for bit.
RTOL = {np.float16: 4e-3, np.float32: 2e-6, np.float64: 1e-14}


def test_random_configs_match_torch_on_nonnegative_inputs():
    rng = np.random.default_rng(77)
    compared = 0
    for i in range(N_CONFIGS):
        nd = 1 + i % 3
        dtype = [np.float32, np.float64, np.float16][(i // 3) % 3]
        if nd == 3 and dtype == np.float16:
            dtype = np.float32  # no CPU float16 avg_pool3d in PyTorch
        p = [1.0, 2.0, 3.0, 1.5, 4.0, 0.5][i % 6]
        kernel = tuple(int(k) for k in rng.integers(1, 4, nd))
        stride = None if i % 4 == 0 else tuple(int(s) for s in rng.integers(1, 4, nd))
        ceil = bool(rng.integers(0, 2))
        size = tuple(int(k + rng.integers(0, 6)) for k in kernel)
        x = (np.abs(rng.standard_normal((2, 3) + size)) + 0.1).astype(dtype)
        tx = t(x, grad=True)
        if nd == 1:  # PyTorch's lp_pool1d wants plain ints
            kernel = kernel[0]
            stride = None if stride is None else stride[0]
        expected = getattr(F, f"lp_pool{nd}d")(tx, p, kernel, stride, ceil)
        layer = getattr(pk, f"LPPool{nd}d")(p, kernel, stride, ceil)
        got = layer(x)
        assert got.dtype == x.dtype and got.shape == tuple(expected.shape)
        np.testing.assert_allclose(got, expected.detach().numpy(), rtol=RTOL[dtype])
        if dtype != np.float16:  # PyTorch's float16 gradient is itself rounded per step
            g = rng.standard_normal(got.shape).astype(dtype)
            expected.backward(t(g))
            np.testing.assert_allclose(
                layer.backward(g), tx.grad.numpy(), rtol=1e-4 if dtype == np.float32 else 1e-10,
                atol=1e-5 if dtype == np.float32 else 1e-12,
            )
        compared += 1
    assert compared == N_CONFIGS


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_matches_reference_including_negative_inputs(nd):
    rng = np.random.default_rng(nd)
    x = rng.standard_normal((2, 2) + (7, 6, 5)[:nd])
    for p, ceil in ((2.0, False), (3.0, True), (1.0, True)):
        kernel, stride = (3, 2, 2)[:nd], (2, 2, 1)[:nd]
        got = getattr(pk, f"lp_pool{nd}d")(x, p, kernel, stride, ceil)
        np.testing.assert_allclose(got, ref.lp_pool(x, p, kernel, stride, ceil), rtol=1e-13)


def test_channels_last_and_unbatched_agree_with_channels_first():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 3, 7, 6))
    xc = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    y = pk.lp_pool2d(x, 3.0, 3, 2, True)
    yc = pk.lp_pool2d(xc, 3.0, 3, 2, True, channels_last=True)
    np.testing.assert_array_equal(np.moveaxis(yc, -1, 1), y)
    g = rng.standard_normal(y.shape)
    dx = pk.lp_pool2d_backward(g, x, 3.0, 3, 2, True)
    dxc = pk.lp_pool2d_backward(np.ascontiguousarray(np.moveaxis(g, 1, -1)), xc, 3.0, 3, 2,
                                True, channels_last=True)
    np.testing.assert_array_equal(np.moveaxis(dxc, -1, 1), dx)
    np.testing.assert_array_equal(pk.lp_pool2d_backward(g[0], x[0], 3.0, 3, 2, True), dx[0])


def test_negative_inputs_use_absolute_values_unlike_torch():
    x = np.array([[[-3.0, 4.0, -1.0, -1.0]]])
    np.testing.assert_allclose(pk.lp_pool1d(x, 3.0, 2), [[[np.cbrt(91.0), np.cbrt(2.0)]]])
    # PyTorch raises the signed value: (-1)^3 + (-1)^3 < 0 -> NaN from the odd root
    assert np.isnan(F.lp_pool1d(t(x), 3.0, 2).numpy()[0, 0, 1])


def test_finite_difference_gradient_and_zero_window():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 2, 7, 5))
    check_gradient(
        lambda a: pk.lp_pool2d(a, 3.0, 2, 2, True),
        lambda g: pk.lp_pool2d_backward(g, x, 3.0, 2, 2, True),
        x,
        rng,
    )
    zero = np.zeros((1, 1, 4))
    np.testing.assert_array_equal(pk.lp_pool1d_backward(np.ones((1, 1, 2)), zero, 2.0, 2), zero)


def test_rejections():
    x = np.ones((1, 2, 6, 6), np.float32)
    tx = t(x)
    raises_both(lambda: pk.lp_pool2d(x, 2.0, 0), lambda: F.lp_pool2d(tx, 2.0, 0))
    raises_both(lambda: pk.lp_pool2d(x, 2.0, 7), lambda: F.lp_pool2d(tx, 2.0, 7))
    raises_both(lambda: pk.lp_pool2d(x, 2.0, 2, 0), lambda: F.lp_pool2d(tx, 2.0, 2, 0))
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="norm_type"):
            pk.lp_pool2d(x, bad, 2)
    with pytest.raises(TypeError, match="norm_type"):
        pk.LPPool2d("2", 2)
    with pytest.raises(TypeError, match="dtypes"):
        pk.lp_pool2d(x.astype(np.int32), 2.0, 2)
    with pytest.raises(RuntimeError, match="before forward"):
        pk.LPPool1d(2.0, 2).backward(np.ones((1, 1, 1)))
    assert repr(pk.LPPool2d(2, 3, stride=2)) == (
        "LPPool2d(norm_type=2, kernel_size=3, stride=2, ceil_mode=False)"
    )


@settings(max_examples=30, deadline=None)
@given(p=st.floats(0.5, 6.0), values=st.lists(st.floats(0.0, 10.0), min_size=4, max_size=12))
def test_property_lp_of_single_window_is_the_vector_norm(p, values):
    x = np.array(values).reshape(1, 1, -1)
    got = pk.lp_pool1d(x, p, len(values))
    expected = np.sum(np.abs(x) ** p) ** (1.0 / p)
    np.testing.assert_allclose(got.ravel(), [expected], rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("norm", [1.0, 1.5, 2.0, 3.0, 0.5])
def test_local_factor_in_place_is_the_where_formula(norm):
    """The gradient's ``sign(x) |x|^(p-1)`` factor, built in place with copysign, has the
    bits of ``where(|x| > 0, sign(x) * |x|**(p-1), 0)``: zeros of both signs, NaN (0),
    +-inf, subnormals, huge values (overflow to inf) and negatives."""
    from poolkit._ops.lp_pool import _local

    x = np.array([0.0, -0.0, np.nan, -np.nan, np.inf, -np.inf, 5e-324, -5e-324, 1e308,
                  -1e308, 2.5, -2.5, 1.0, -1.0, 1e-300, -3e-7])
    ax = np.abs(x)
    with np.errstate(all="ignore"):
        want = np.where(ax > 0, np.sign(x) * ax ** (norm - 1.0), 0.0)
        got = _local(x, norm)
        again = _local(x, norm, ax)
    np.testing.assert_array_equal(got.view(np.uint64), want.view(np.uint64))
    np.testing.assert_array_equal(again.view(np.uint64), want.view(np.uint64))
