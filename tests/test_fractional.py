"""Fractional max pooling: differential tests against PyTorch 2.13 CPU given its samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import poolkit as pk
from _family import assert_same, check_gradient, raises_both, random_input, t
from poolkit import _reference as ref
from poolkit._geometry import interval_starts

F = torch.nn.functional
N_CONFIGS = 60


def test_random_configs_match_torch_given_samples():
    """Values, indices and layer gradients identical to PyTorch with the same samples."""
    rng = np.random.default_rng(99)
    compared = 0
    for i in range(N_CONFIGS):
        nd = 2 + i % 2
        dtype = [np.float32, np.float64, np.float16][(i // 2) % 3]
        kernel = tuple(int(k) for k in rng.integers(1, 4, nd))
        size = tuple(int(k + 1 + rng.integers(0, 9)) for k in kernel)
        slack = 0 if nd == 2 else 1
        out = tuple(int(rng.integers(1, s - k + 2 - slack)) for s, k in zip(size, kernel))
        batched = i % 5 != 0
        shape = ((2, 3) if batched else (3,)) + size
        x = random_input(rng, shape, dtype, ties=i % 3 == 0, nan=i % 7 == 0)
        u = rng.random((2 if batched else 1, 3, nd)).astype(dtype)
        tx = t(x, grad=True)
        expected, tidx = getattr(F, f"fractional_max_pool{nd}d")(
            tx, kernel, output_size=out, return_indices=True, _random_samples=t(u)
        )
        layer = getattr(pk, f"FractionalMaxPool{nd}d")(
            kernel, output_size=out, return_indices=True, random_samples=u
        )
        got, idx = layer(x)
        assert_same(got, expected.detach().numpy())
        assert_same(idx, tidx.numpy())
        g = random_input(rng, got.shape, dtype)
        expected.backward(t(g))
        assert_same(layer.backward(g), tx.grad.numpy())
        compared += 1
    assert compared == N_CONFIGS


@pytest.mark.parametrize("nd", [2, 3])
def test_matches_reference_with_ratio_and_integers(nd):
    rng = np.random.default_rng(nd)
    for dtype in (np.float32, np.float16, np.int32):
        x = random_input(rng, (2, 2) + (9, 8, 7)[:nd], dtype, ties=True)
        sample_dtype = dtype if np.dtype(dtype).kind == "f" else np.float64
        u = rng.random((2, 2, nd)).astype(sample_dtype)
        y, idx = getattr(pk, f"fractional_max_pool{nd}d")(
            x, 2, output_ratio=0.5, return_indices=True, random_samples=u
        )
        out = tuple(int(s * 0.5) for s in x.shape[2:])
        ry, ridx = ref.fractional_max_pool(x, (2,) * nd, out, u)
        assert_same(y, ry)
        assert_same(idx, ridx)


def test_rng_reproducible_and_samples_in_range():
    x = np.random.default_rng(0).standard_normal((2, 3, 12, 12))
    a = pk.fractional_max_pool2d(x, 2, output_size=5, rng=np.random.default_rng(42))
    b = pk.fractional_max_pool2d(x, 2, output_size=5, rng=np.random.default_rng(42))
    assert_same(a, b)
    layer = pk.FractionalMaxPool2d(3, output_ratio=(0.5, 0.75), rng=np.random.default_rng(1))
    assert layer(x).shape == (2, 3, 6, 9)
    half = pk.fractional_max_pool2d(x.astype(np.float16), 2, output_size=4,
                                    rng=np.random.default_rng(3))
    assert half.dtype == np.float16


def test_finite_difference_gradient():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 2, 9, 8))
    u = rng.random((1, 2, 2))
    _, idx = pk.fractional_max_pool2d(x, 3, output_size=4, return_indices=True,
                                      random_samples=u)
    check_gradient(
        lambda a: pk.fractional_max_pool2d(a, 3, output_size=4, random_samples=u),
        lambda g: pk.fractional_max_pool2d_backward(g, idx, x.shape),
        x,
        rng,
    )


def test_rejections_match_torch():
    x = np.zeros((1, 2, 8, 8), np.float32)
    tx = t(x)
    u = np.full((1, 2, 2), 0.5, np.float32)
    cases = [
        dict(kernel_size=2, output_size=8),  # too large
        dict(kernel_size=2),  # neither size nor ratio
    ]
    for kw in cases:
        raises_both(
            lambda kw=kw: pk.fractional_max_pool2d(x, random_samples=u, **kw),
            lambda kw=kw: F.fractional_max_pool2d(tx, _random_samples=t(u), **kw),
        )
    raises_both(  # samples of another dtype
        lambda: pk.fractional_max_pool2d(x, 2, output_size=3, random_samples=u.astype(float)),
        lambda: F.fractional_max_pool2d(tx, 2, output_size=3, _random_samples=t(u.astype(float))),
    )
    x3 = np.zeros((1, 1, 6, 6, 6), np.float32)
    raises_both(  # 3-D needs output + kernel - 1 < input
        lambda: pk.fractional_max_pool3d(x3, 2, output_size=5, rng=np.random.default_rng(0)),
        lambda: F.fractional_max_pool3d(t(x3), 2, output_size=5),
    )


def test_error_messages():
    x = np.zeros((1, 2, 8, 8))
    with pytest.raises(ValueError, match="random_samples"):
        pk.fractional_max_pool2d(x, 2, output_size=3, random_samples=np.full((1, 2, 2), 1.0))
    with pytest.raises(ValueError, match="random_samples"):
        pk.fractional_max_pool2d(x, 2, output_size=3, random_samples=np.zeros((1, 2, 3)))
    with pytest.raises(ValueError, match="output_ratio"):
        pk.fractional_max_pool2d(x, 2, output_ratio=1.5)
    with pytest.raises(ValueError, match="kernel_size"):  # PyTorch accepts 0 (empty windows)
        pk.fractional_max_pool2d(x, 0, output_size=3)
    with pytest.raises(TypeError, match="rng"):
        pk.fractional_max_pool2d(x, 2, output_size=3, rng=42)
    with pytest.raises(ValueError, match="exactly one"):
        pk.FractionalMaxPool2d(2, output_size=3, output_ratio=0.5)
    with pytest.raises(RuntimeError, match="before forward"):
        pk.FractionalMaxPool2d(2, output_size=3).backward(np.ones((1, 2, 3, 3)))
    assert repr(pk.FractionalMaxPool3d(2, output_ratio=0.5)) == (
        "FractionalMaxPool3d(kernel_size=(2, 2, 2), output_ratio=(0.5, 0.5, 0.5))"
    )


@settings(max_examples=40, deadline=None)
@given(
    length=st.integers(2, 40),
    pool=st.integers(1, 4),
    data=st.data(),
)
def test_property_intervals_stay_inside_and_increase(length, pool, data):
    if pool >= length:
        return
    n_out = data.draw(st.integers(1, length - pool + 1))
    u = np.array([data.draw(st.floats(0.0, 0.999))], dtype=np.float32)
    starts = interval_starts(u, length, n_out, pool)[0]
    assert starts[-1] == length - pool
    assert (starts >= 0).all() and (starts + pool <= length).all()
    assert (np.diff(starts) >= 0).all()
    assert list(starts) == ref.fractional_starts(u[0], length, n_out, pool)
