"""Unsigned integers (uint16, the common microscopy dtype, uint32, uint64) wherever signed
integers are accepted: max pooling and its indices, adaptive, fractional and global max
pooling, unpooling, and average pooling (computed in float64), all against the loop
reference (PyTorch has no kernels for most of them).

uint16 needs care: inside the kernels float16 travels as uint16 bits, so real uint16
data is pooled as int16 with the sign bit flipped (order-preserving) and flipped back.
The extremes (0, 2**15 - 1, 2**15, the maximum) are where a wrong mapping shows.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import poolkit as pk
from poolkit import _reference as ref

UNSIGNED = ["uint16", "uint32", "uint64"]


def _data(dtype: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Random values with many ties and every extreme, including the sign-bit boundary."""
    info = np.iinfo(dtype)
    rng = np.random.default_rng(seed)
    special = np.array([0, 1, info.max // 2, info.max // 2 + 1, info.max - 1, info.max],
                       dtype=dtype)
    pick = rng.integers(0, 3, size=shape)
    x = np.where(pick == 0, rng.choice(special, size=shape),
                 rng.integers(0, info.max, size=shape, dtype=dtype, endpoint=True))
    return x.astype(dtype)


def _same(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a, b)


@settings(max_examples=20, deadline=None)
@given(
    dtype=st.sampled_from(UNSIGNED),
    nd=st.integers(1, 3),
    k=st.integers(1, 3),
    s=st.integers(1, 3),
    p=st.integers(0, 1),
    d=st.integers(1, 2),
    ceil=st.booleans(),
    cl=st.booleans(),
    batched=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_max_pool_against_reference(dtype, nd, k, s, p, d, ceil, cl, batched, seed):
    p = min(p, k // 2)
    spatial = (5, 6, 7)[-nd:] if nd > 1 else (9,)
    shape = ((2,) if batched else ()) + ((3,) + spatial if not cl else spatial + (3,))
    x = _data(dtype, shape, seed)
    kw = dict(stride=s, padding=p, dilation=d, ceil_mode=ceil, channels_last=cl)
    try:
        got, idx = pk.max_pool(x, (k,) * nd, return_indices=True, **kw)
    except ValueError:
        return  # an empty output: the same rule as every other dtype
    want, want_idx = ref.max_pool(x if batched else x[None], (k,) * nd, (s,) * nd, (p,) * nd,
                                  (d,) * nd, ceil, cl)
    if not batched:
        want, want_idx = want[0], want_idx[0]
    _same(got, want)
    _same(idx, want_idx)
    # the gradient routes to the same winners as any other dtype
    g = np.ones(got.shape, np.float32)
    dx = pk.max_pool_backward(g, idx, x.shape, channels_last=cl, spatial_dims=nd)
    want_dx = ref.max_pool_backward(g if batched else g[None], want_idx if batched
                                    else want_idx[None], (x if batched else x[None]).shape,
                                    nd, cl)
    _same(dx, want_dx if batched else want_dx[0])


@pytest.mark.parametrize("dtype", UNSIGNED)
def test_strided_views_and_fixed_ranks(dtype):
    x = _data(dtype, (2, 3, 12, 14), 1)[:, ::2, 1::2, ::-1]
    for fn, k in ((pk.max_pool2d, 3), (pk.max_pool1d, 2)):
        xin = x if fn is pk.max_pool2d else x[:, :, 0]
        got, idx = fn(xin, k, stride=2, padding=1, return_indices=True)
        nd = 2 if fn is pk.max_pool2d else 1
        want, want_idx = ref.max_pool(xin, (k,) * nd, (2,) * nd, (1,) * nd, (1,) * nd)
        _same(got, want)
        _same(idx, want_idx)
    y3 = pk.max_pool3d(x[:, :, None], (1, 2, 2))
    _same(y3, ref.max_pool(x[:, :, None], (1, 2, 2), (1, 2, 2), (0,) * 3, (1,) * 3)[0])
    # more than 3 spatial dims: the any-rank kernel
    x4 = _data(dtype, (1, 2, 3, 4, 3, 4), 2)
    _same(pk.max_pool(x4, (2, 2, 2, 2)),
          ref.max_pool(x4, (2,) * 4, (2,) * 4, (0,) * 4, (1,) * 4)[0])


@pytest.mark.parametrize("dtype", UNSIGNED)
@pytest.mark.parametrize("cl", [False, True])
def test_adaptive_and_global_max(dtype, cl):
    x = _data(dtype, (2, 3, 7, 9), 3)
    xin = np.ascontiguousarray(np.moveaxis(x, 1, -1)) if cl else x
    got, idx = pk.adaptive_max_pool2d(xin, (3, 4), return_indices=True, channels_last=cl)
    want, want_idx = ref.adaptive_max_pool(x, (3, 4))
    if cl:
        want, want_idx = np.moveaxis(want, 1, -1), np.moveaxis(want_idx, 1, -1)
    _same(got, want)
    _same(idx, want_idx)
    gmax, gidx = pk.global_max_pool(xin, keepdims=False, return_indices=True,
                                    channels_last=cl)
    planes = x.reshape(2, 3, -1)
    _same(gmax, planes.max(axis=-1))
    _same(gidx, planes.argmax(axis=-1))


@pytest.mark.parametrize("dtype", UNSIGNED)
def test_fractional_max(dtype):
    x = _data(dtype, (2, 3, 9, 8), 4)
    samples = np.random.default_rng(0).random((2, 3, 2))
    got, idx = pk.fractional_max_pool2d(x, 2, output_size=(4, 3), return_indices=True,
                                        random_samples=samples)
    want, want_idx = ref.fractional_max_pool(x, (2, 2), (4, 3), samples)
    _same(got, want)
    _same(idx, want_idx)


@pytest.mark.parametrize("dtype", UNSIGNED)
def test_unpool_round_trip(dtype):
    x = _data(dtype, (2, 3, 6, 8), 5)
    y, idx = pk.max_pool2d(x, 2, return_indices=True)
    up = pk.max_unpool2d(y, idx, 2)
    _same(up, ref.max_unpool(y, idx, (6, 8)))
    assert up.dtype == np.dtype(dtype)


@pytest.mark.parametrize("dtype", UNSIGNED)
def test_average_in_float64(dtype):
    x = _data(dtype, (2, 3, 7, 6), 6)
    got = pk.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
    assert got.dtype == np.float64
    want = ref.avg_pool(x.astype(np.float64), (3, 3), (2, 2), (1, 1), False, False)
    _same(got, want)


def test_uint16_is_not_read_as_float16_bits():
    # 0x7C01.. are NaN bit patterns and 0x8000.. negative ones as float16
    x = np.array([0x7C00, 0x7C01, 0x8000, 0xFFFF, 0x0001, 0x7FFF], np.uint16).reshape(1, 1, 6)
    y, idx = pk.max_pool1d(x, 2, return_indices=True)
    _same(y, np.array([[[0x7C01, 0xFFFF, 0x7FFF]]], np.uint16))
    _same(idx, np.array([[[1, 3, 5]]]))
    # empty windows (dilation over padding) give the dtype minimum, 0
    e = pk.max_pool1d(np.full((1, 1, 2), 7, np.uint16), 2, padding=((3, 0),), dilation=3)
    assert e.dtype == np.uint16 and e.min() >= 0
