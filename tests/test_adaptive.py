"""Adaptive and global pooling: differential tests against PyTorch 2.13 CPU and references."""

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
from poolkit._ops.adaptive import uniform as _uniform

F = torch.nn.functional
N_CONFIGS = 60


def _torch_size(out_size, nd):
    return out_size[0] if nd == 1 else out_size


def _run(layer, arr, cl):
    return layer(channels_last(arr) if cl else arr)


def _back(layer, g, cl):
    return _cf(layer.backward(channels_last(g) if cl else g), cl)


def _cf(y, cl):
    return np.ascontiguousarray(from_channels_last(y)) if cl else y


def test_random_configs_match_torch():
    """Adaptive avg and max: values, indices and layer gradients against PyTorch."""
    rng = np.random.default_rng(404)
    stats = {"avg": 0, "max": 0}
    for i in range(N_CONFIGS):
        nd = 1 + i % 3
        dtype = [np.float32, np.float64, np.float16][(i // 3) % 3]
        if nd == 3 and dtype == np.float16:
            dtype = np.float64
        size = tuple(int(s) for s in rng.integers(1, 12, nd))
        out = tuple(int(rng.integers(1, s + 3)) for s in size)
        if nd > 1 and i % 4 == 0:
            out = (None,) + out[1:]
        batched = i % 5 != 0
        shape = ((2, 3) if batched else (3,)) + size
        x = random_input(rng, shape, dtype, ties=i % 3 == 0, nan=i % 8 == 0)
        all_ones = all(o == 1 for o in out)
        # channels-last in float32 only: every layout x dtype pair is a separate numba compile
        cl = batched and dtype == np.float32 and i % 3 == 0

        # average
        tx = t(x, grad=True)
        expected = getattr(F, f"adaptive_avg_pool{nd}d")(tx, _torch_size(out, nd))
        layer = getattr(pk, f"AdaptiveAvgPool{nd}d")(_torch_size(out, nd), channels_last=cl)
        got = _cf(_run(layer, x, cl), cl)
        if all_ones and x.size > 1:  # PyTorch uses mean(): a different summation order
            tol = {np.float16: 1e-3, np.float32: 1e-6, np.float64: 1e-14}[dtype]
            np.testing.assert_allclose(got, expected.detach().numpy(), rtol=tol, atol=tol)
        else:
            assert_same(got, expected.detach().numpy())
        g = random_input(rng, expected.shape, dtype)
        expected.backward(t(g))
        assert_same(_back(layer, g, cl), tx.grad.numpy())
        stats["avg"] += 1
        # max
        tx = t(x, grad=True)
        expected, tidx = getattr(F, f"adaptive_max_pool{nd}d")(
            tx, _torch_size(out, nd), return_indices=True
        )
        layer = getattr(pk, f"AdaptiveMaxPool{nd}d")(
            _torch_size(out, nd), return_indices=True, channels_last=cl
        )
        got, idx = _run(layer, x, cl)
        assert_same(_cf(got, cl), expected.detach().numpy())
        assert_same(_cf(idx, cl), tidx.numpy())
        expected.backward(t(g))
        assert_same(_back(layer, g, cl), tx.grad.numpy())
        stats["max"] += 1
    assert stats == {"avg": N_CONFIGS, "max": N_CONFIGS}


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.int16])
def test_matches_reference(nd, dtype):
    rng = np.random.default_rng(nd + 7)
    x = random_input(rng, (2, 2) + (7, 5, 6)[:nd], dtype, ties=True)
    out = (3, 4, 2)[:nd]
    y, idx = getattr(pk, f"adaptive_max_pool{nd}d")(x, out, return_indices=True)
    ry, ridx = ref.adaptive_max_pool(x, out)
    assert_same(y, ry)
    assert_same(idx, ridx)
    if np.dtype(dtype).kind == "f":
        assert_same(getattr(pk, f"adaptive_avg_pool{nd}d")(x, out), ref.adaptive_avg_pool(x, out))
        # all-1 sizes and global pooling: the plane summed in order, one division (mean())
        flat = x.reshape(x.shape[0], x.shape[1], -1)
        expected = ref.adaptive_avg_pool(flat, (1,)).reshape(x.shape[:2])
        ones = getattr(pk, f"adaptive_avg_pool{nd}d")(x, (1,) * nd)
        assert_same(ones.reshape(x.shape[:2]), expected)
        assert_same(pk.global_avg_pool(x, keepdims=False), expected)


@pytest.mark.parametrize(
    "values",
    [[-0.0, 0.0], [0.0, -0.0], [1.0, np.nan, 3.0, np.nan], [2.0, 5.0, 5.0, 1.0, 5.0],
     [-np.inf, -np.inf], list(range(9)) + [np.nan] + list(range(9))],
)
@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_argmax_ties_signed_zeros_and_nan_match_torch(values, dtype):
    """First maximum wins (-0 and +0 tie), the last NaN wins: bits and index as PyTorch."""
    x = np.array(values, dtype=dtype).reshape(1, 1, -1)
    y, idx = pk.adaptive_max_pool1d(x, 1, return_indices=True)
    ty, tidx = F.adaptive_max_pool1d(t(x), 1, return_indices=True)
    assert_same(y, ty.numpy())
    assert_same(idx, tidx.numpy())
    u = np.zeros((1, 1, 2), dtype)
    fy, fidx = pk.fractional_max_pool2d(x[None], (1, x.shape[-1]), output_size=1,
                                        return_indices=True, random_samples=u)
    assert_same(fidx.ravel(), idx.ravel())
    assert_same(fy.ravel(), y.ravel())


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
@pytest.mark.parametrize("in_w,out_w", [(40, 3), (9, 4), (17, 1)])
def test_kernel_paths_match_reference(in_w, out_w, dtype):
    """Flat narrow-window, streamed wide-window and strided (channels-last) paths, with a
    partial block of channels (9 = 8 + 1), all give the reference's sums bit for bit."""
    rng = np.random.default_rng(in_w)
    x = random_input(rng, (2, 9, 5, in_w), dtype)
    out = (2, out_w)
    expected = ref.adaptive_avg_pool(x, out)
    assert_same(pk.adaptive_avg_pool2d(x, out), expected)
    if dtype == np.float32:  # each layout x dtype pair is one more numba compile
        got_cl = pk.adaptive_avg_pool2d(channels_last(x), out, channels_last=True)
        assert_same(np.ascontiguousarray(from_channels_last(got_cl)), expected)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_channels_last_pixel_kernel_matches_reference(dtype):
    """C-contiguous channels-last inputs take the pixel kernel (channels side by side);
    strided ones the 5-D kernel: both give the reference's bits, 1-D to 3-D, unbatched,
    channel counts around the vector width, NaN and -0.0 in the windows."""
    from poolkit._kernels import adaptive as kernels

    rng = np.random.default_rng(np.dtype(dtype).itemsize)
    cases = [((2, 9, 5, 40), (2, 3)), ((2, 1, 7, 7), (5, 5)), ((1, 17, 6, 13), (4, 4)),
             ((2, 8, 56, 56), (7, 7)), ((2, 3, 4, 5, 6), (3, 2, 4)), ((4, 10), (3,)),
             ((33, 6, 7), (4, 5)), ((2, 65, 9), (4,))]
    for shape, out in cases:
        nd = len(out)
        x = random_input(rng, shape, dtype)
        x.reshape(-1)[::7] = np.nan
        x.reshape(-1)[3::11] = -0.0
        batched = len(shape) == nd + 2
        expected = ref.adaptive_avg_pool(x if batched else x[None], out)
        expected = expected if batched else expected[0]
        fn = getattr(pk, f"adaptive_avg_pool{nd}d")
        cl = np.ascontiguousarray(np.moveaxis(x, -nd - 1, -1))
        wide = np.repeat(cl, 2, axis=-1)[..., ::2]  # strided channels: the 5-D kernel
        for arr in (cl, wide):
            got = np.moveaxis(fn(arr, out, channels_last=True), -1, -nd - 1)
            assert_same(np.ascontiguousarray(got), expected)
    assert kernels.adaptive_avg_pixels.signatures  # the contiguous cases ran it


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int8, np.uint16,
                                   np.int64])
def test_channels_last_max_pixel_kernel_matches_reference(dtype):
    """Adaptive max of C-contiguous channels-last inputs (the pixel kernel) and of strided
    ones (the 5-D kernel): values and plane indices of the reference, ties (the first
    wins), NaN (the last wins), -0.0 against +0.0, integer extremes."""
    from poolkit._kernels import adaptive as kernels

    rng = np.random.default_rng(np.dtype(dtype).itemsize + 40)
    cases = [((2, 9, 5, 40), (2, 3)), ((3, 17, 7, 7), (5, 5)), ((1, 8, 1, 13), (1, 4)),
             ((2, 3, 4, 5, 6), (3, 2, 4)), ((4, 10), (3,)), ((5, 6, 7), (4, 4))]
    for shape, out in cases:
        nd = len(out)
        if np.dtype(dtype).kind == "f":
            x = (np.round(rng.standard_normal(shape) * 2) / 2).astype(dtype)
            x.reshape(-1)[::7] = np.nan
            x.reshape(-1)[::11] = -0.0
        else:
            info = np.iinfo(dtype)
            x = rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
            x.reshape(-1)[::5] = info.max
        batched = len(shape) == nd + 2
        ry, ri = ref.adaptive_max_pool(x if batched else x[None], out)
        ry, ri = (ry, ri) if batched else (ry[0], ri[0])
        fn = getattr(pk, f"adaptive_max_pool{nd}d")
        cl = np.ascontiguousarray(np.moveaxis(x, -nd - 1, -1))
        for arr in (cl, np.repeat(cl, 2, axis=-1)[..., ::2]):
            y, i = fn(arr, out, return_indices=True, channels_last=True)
            assert_same(np.ascontiguousarray(np.moveaxis(y, -1, -nd - 1)), ry)
            assert_same(np.ascontiguousarray(np.moveaxis(i, -1, -nd - 1)), ri)
    assert kernels.adaptive_max_pixels.signatures


def test_none_keeps_input_size_and_windows():
    x = np.arange(2 * 5 * 7, dtype=np.float64).reshape(2, 5, 7)
    y = pk.adaptive_avg_pool2d(x, (None, 3))
    assert y.shape == (2, 5, 3)
    assert ref.adaptive_bounds(1, 7, 3) == (2, 5)
    np.testing.assert_array_equal(y[0, :, 1], x[0, :, 2:5].mean(axis=1))


def test_finite_difference_gradients():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 7, 9))
    check_gradient(
        lambda a: pk.adaptive_avg_pool2d(a, (3, 4)),
        lambda g: pk.adaptive_avg_pool2d_backward(g, x.shape),
        x,
        rng,
    )
    _, idx = pk.adaptive_max_pool2d(x, (3, 4), return_indices=True)
    check_gradient(
        lambda a: pk.adaptive_max_pool2d(a, (3, 4)),
        lambda g: pk.adaptive_max_pool2d_backward(g, idx, x.shape),
        x,
        rng,
    )
    check_gradient(
        lambda a: pk.global_lp_pool(a, 3.0),
        lambda g: pk.global_lp_pool_backward(g, x, 3.0),
        x,
        rng,
    )


@pytest.mark.parametrize("cl", [False, True])
def test_global_pools_match_torch_and_onnx_definitions(cl):
    rng = np.random.default_rng(8)
    x = random_input(rng, (2, 3, 4, 5, 3), np.float32, ties=True)
    xin = channels_last(x) if cl else x
    tx = t(x, grad=True)
    expected = F.adaptive_avg_pool3d(tx, 1)
    got = pk.global_avg_pool(xin, channels_last=cl)
    got_cf = np.ascontiguousarray(from_channels_last(got)) if cl else got
    np.testing.assert_allclose(got_cf, expected.detach().numpy(), rtol=1e-6)
    g = random_input(rng, (2, 3), np.float32)
    expected.backward(t(g.reshape(2, 3, 1, 1, 1)))
    dx = pk.global_avg_pool_backward(g, xin.shape, channels_last=cl)
    assert_same(np.ascontiguousarray(from_channels_last(dx)) if cl else dx, tx.grad.numpy())
    tx.grad = None
    mx, tidx = F.adaptive_max_pool3d(tx, 1, return_indices=True)
    y, idx = pk.global_max_pool(xin, keepdims=False, return_indices=True, channels_last=cl)
    assert_same(y, mx.detach().numpy().reshape(2, 3))
    assert_same(idx, tidx.numpy().reshape(2, 3))
    mx.backward(t(g.reshape(2, 3, 1, 1, 1)))
    dx = pk.global_max_pool_backward(g, idx, xin.shape, channels_last=cl)
    assert_same(np.ascontiguousarray(from_channels_last(dx)) if cl else dx, tx.grad.numpy())
    lp = pk.global_lp_pool(xin, 2.0, keepdims=False, channels_last=cl)
    np.testing.assert_allclose(lp, np.sqrt((x.astype(np.float64) ** 2).sum(axis=(2, 3, 4))),
                               rtol=1e-6)


def test_global_layers():
    x = np.arange(8.0).reshape(1, 2, 2, 2)
    for layer in (pk.GlobalAvgPool(), pk.GlobalMaxPool(), pk.GlobalLpPool(1.0)):
        with pytest.raises(RuntimeError, match="before forward"):
            layer.backward(np.ones((1, 2, 1, 1)))
        y = layer(x)
        assert y.shape == (1, 2, 1, 1)
        assert layer.backward(np.ones_like(y)).shape == x.shape
    assert repr(pk.GlobalLpPool(3, keepdims=False)) == "GlobalLpPool(p=3, keepdims=False)"
    np.testing.assert_array_equal(pk.GlobalLpPool(1.0)(x).ravel(), [6.0, 22.0])


def test_layers_repr_and_backward_before_forward():
    assert repr(pk.AdaptiveAvgPool2d((None, 7))) == "AdaptiveAvgPool2d(output_size=(None, 7))"
    assert repr(pk.AdaptiveMaxPool1d(3, return_indices=True)) == (
        "AdaptiveMaxPool1d(output_size=3, return_indices=True)"
    )
    for layer in (pk.AdaptiveAvgPool3d(2), pk.AdaptiveMaxPool3d(2)):
        with pytest.raises(RuntimeError, match="before forward"):
            layer.backward(np.ones((1, 1, 2, 2, 2)))


def test_rejections_match_torch():
    x = np.zeros((1, 2, 6, 6), np.float32)
    tx = t(x)
    for size in [0, (3, 0)]:  # PyTorch returns an empty output
        assert pk.adaptive_avg_pool2d(x, size).shape == F.adaptive_avg_pool2d(tx, size).shape
        assert pk.adaptive_max_pool2d(x, size).shape == F.adaptive_max_pool2d(tx, size).shape
    for size in [(2, 2, 2), -1, (3, -2)]:
        raises_both(
            lambda s=size: pk.adaptive_avg_pool2d(x, s),
            lambda s=size: F.adaptive_avg_pool2d(tx, s),
        )
        raises_both(
            lambda s=size: pk.adaptive_max_pool2d(x, s),
            lambda s=size: F.adaptive_max_pool2d(tx, s),
        )
    raises_both(
        lambda: pk.adaptive_avg_pool2d(np.zeros((1, 2, 0, 4)), 2),
        lambda: F.adaptive_avg_pool2d(torch.zeros(1, 2, 0, 4), 2),
    )
    raises_both(lambda: pk.adaptive_avg_pool2d(x[0, 0, 0], 2),
                lambda: F.adaptive_avg_pool2d(tx[0, 0, 0], 2))


def test_error_messages():
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(ValueError, match="output_size"):
        pk.adaptive_avg_pool2d(x, (2, -1))
    with pytest.raises(TypeError, match="output_size"):
        pk.adaptive_max_pool2d(x, 2.5)
    with pytest.raises(TypeError, match="dtypes"):
        pk.adaptive_avg_pool2d(x.astype(np.int32), 2)
    with pytest.raises(ValueError, match="indices"):
        pk.adaptive_max_pool2d_backward(np.ones((1, 1, 2, 2)), np.full((1, 1, 2, 2), 16),
                                        x.shape)
    with pytest.raises(ValueError, match="grad_output"):
        pk.adaptive_avg_pool2d_backward(np.ones((1, 2, 2, 2)), x.shape)
    with pytest.raises(ValueError, match="batched"):
        pk.global_avg_pool(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="grad_output"):
        pk.global_avg_pool_backward(np.ones((1, 2)), x.shape)
    with pytest.raises(ValueError, match="norm_type"):
        pk.global_lp_pool(x, 0.0)


@settings(max_examples=30, deadline=None)
@given(length=st.integers(1, 30), n_out=st.integers(1, 30))
def test_property_adaptive_windows_cover_input(length, n_out):
    """Windows are non-empty, ordered, and together cover every input position."""
    x = np.arange(length, dtype=np.float64).reshape(1, 1, length)
    _, idx = pk.adaptive_max_pool1d(x, n_out, return_indices=True)
    bounds = [ref.adaptive_bounds(o, length, n_out) for o in range(n_out)]
    assert all(a < b for a, b in bounds)
    assert bounds[0][0] == 0 and bounds[-1][1] == length
    assert all(bounds[i][1] >= bounds[i + 1][0] for i in range(n_out - 1))
    np.testing.assert_array_equal(idx.ravel(), [b - 1 for _, b in bounds])


# --------------------------------------------------------------------------------------
# All-1 sizes and global average: the 16-lane plane mean (``_kernels/_lanes.py``)

_PLANE_SIZES = (1, 7, 15, 16, 17, 31, 32, 33, 47, 49, 64, 196, 257)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_plane_mean_matches_reference_around_lane_boundaries(dtype):
    """Every plane size around multiples of 16, with NaN, +-inf, -0 and ties: bit for bit
    the reference order (lane sums, pairwise fold, in-order rest, one division)."""
    rng = np.random.default_rng(1600)
    for n in _PLANE_SIZES:
        x = random_input(rng, (3, 5, n), dtype, ties=n % 2 == 0, nan=n % 3 == 0)
        x[0, 1] = -0.0  # an all -0 plane: the sum starts at +0, as PyTorch's
        x[1, 2, n // 2] = np.inf
        x[2, 3, :: max(1, n // 3)] = -np.inf
        expected = ref.adaptive_avg_pool(x, (1,))
        assert_same(pk.adaptive_avg_pool1d(x, 1), expected)
        assert_same(pk.global_avg_pool(x), expected)
    assert not np.signbit(pk.global_avg_pool(np.full((1, 1, 40), -0.0, dtype)))[0, 0, 0]


def test_plane_mean_same_in_every_layout():
    """Channels-last, strided and unbatched inputs give the bits of the contiguous one."""
    rng = np.random.default_rng(1601)
    x = random_input(rng, (2, 6, 9, 11), np.float32, ties=True, nan=True)
    expected = pk.adaptive_avg_pool2d(x, 1)
    assert_same(expected, ref.adaptive_avg_pool(x, (1, 1)))
    cl = channels_last(x)
    assert_same(from_channels_last(pk.adaptive_avg_pool2d(cl, 1, channels_last=True)), expected)
    assert_same(
        pk.global_avg_pool(cl, keepdims=False, channels_last=True), expected.reshape(2, 6)
    )
    wide = np.zeros((4, 6, 9, 22), np.float32)
    wide[::2, :, :, ::2] = x
    assert_same(pk.adaptive_avg_pool2d(wide[::2, :, :, ::2], (1, 1)), expected)
    assert_same(pk.adaptive_avg_pool2d(x[1], 1), expected[1])
    assert_same(pk.global_avg_pool(x[:, ::-1]), expected[:, ::-1])


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_plane_mean_contiguous_shortcuts(dtype):
    """C-contiguous arrays skip the moved-axis views: channels last with one channel or
    one pixel per plane, channels first, and a channels-first declaration of NHWC memory
    (and the reverse) all give the reference's bits, for channel counts around the
    vector width."""
    rng = np.random.default_rng(1602)
    for shape in [(2, 1, 1, 5), (2, 3, 4, 1), (1, 1, 1, 1), (3, 7, 7, 9), (2, 4, 4, 17),
                  (1, 5, 3, 65)]:
        x = random_input(rng, shape, dtype, ties=True, nan=True)  # (N, H, W, C)
        first = np.moveaxis(x, -1, 1)
        expected = ref.adaptive_avg_pool(first, (1, 1)).reshape(shape[0], shape[-1])
        assert_same(pk.global_avg_pool(x, keepdims=False, channels_last=True), expected)
        assert_same(pk.global_avg_pool(first, keepdims=False), expected)  # NHWC memory
        nchw = np.ascontiguousarray(first)
        assert_same(pk.global_avg_pool(nchw, keepdims=False), expected)
        assert_same(pk.global_avg_pool(np.moveaxis(nchw, 1, -1), keepdims=False,
                                       channels_last=True), expected)


def test_plane_mean_is_order_not_row_major():
    """The lane order is a real, documented choice: on a plane where row-major order
    rounds differently, poolkit follows the lane order (and stays within rounding)."""
    x = np.zeros((1, 1, 17), np.float32)
    x[0, 0, 0] = 1.0
    x[0, 0, 1:16] = 2.0**-24  # row-major: each tiny add to 1.0 rounds away
    lanes = pk.global_avg_pool(x, keepdims=False)[0, 0]
    row_major = np.float32(0)
    for v in x.ravel():
        row_major = np.float32(row_major + v)
    assert lanes == ref.plane_mean(x.ravel())
    assert lanes != np.float32(row_major / np.float32(17))
    np.testing.assert_allclose(lanes, x.astype(np.float64).mean(), rtol=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    planes=st.integers(1, 9),
    size=st.integers(1, 70),
    dtype=st.sampled_from([np.float16, np.float32, np.float64]),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_plane_mean_matches_reference(planes, size, dtype, seed):
    rng = np.random.default_rng(seed)
    x = random_input(rng, (planes, 1, size), dtype, ties=seed % 2 == 0, nan=seed % 5 == 0)
    assert_same(pk.global_avg_pool(x), ref.adaptive_avg_pool(x, (1,)))


def test_lane_total_widens_every_float16_pattern_exactly():
    """The vector widening of float16 bits (integer ops, no F16C) against NumPy, for all
    65,536 patterns: lane 0 of a row holds the pattern, the other lanes +0.0, so the
    total is value + 0."""
    from numba import njit

    from poolkit._kernels._lanes import lane_total

    @njit
    def first_lane_sums(rows, out):
        for i in range(rows.shape[0]):
            out[i] = lane_total(rows[i], 16)

    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    rows = np.zeros((bits.size, 16), np.uint16)
    rows[:, 0] = bits
    got = np.empty(bits.size, np.float32)
    first_lane_sums(rows, got)
    with np.errstate(invalid="ignore"):  # signalling NaNs
        expected = np.float32(0) + bits.view(np.float16).astype(np.float32)  # -0 -> +0
    np.testing.assert_array_equal(got, expected)  # NaN positions must match too
    assert not np.signbit(got[bits == 0x8000]).any()


def test_plane_mean_runs_without_f16c(tmp_path):
    """Regression: LLVM's fpext from half needs F16C and otherwise calls a helper that
    numba does not provide (the process crashed). Compile for a generic x86-64 CPU in a
    fresh process and cache, and check float16 and float32 against the reference."""
    import os
    import subprocess
    import sys

    code = (
        "import numpy as np, poolkit as pk\n"
        "from poolkit import _reference as ref\n"
        "for dt in (np.float16, np.float32):\n"
        "    x = np.random.default_rng(0).standard_normal((2, 3, 77)).astype(dt)\n"
        "    x[0, 0, :5] = [np.inf, -0.0, 6e-8, np.nan, 65504]\n"
        "    assert np.array_equal(pk.global_avg_pool(x), ref.adaptive_avg_pool(x, (1,)),\n"
        "                          equal_nan=True), dt\n"
        "print('ok')\n"
    )
    env = dict(os.environ, NUMBA_CPU_NAME="generic", NUMBA_CACHE_DIR=str(tmp_path))
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


# -- uniform windows (in % out == 0): the flat sweep of adaptive_avg_uniform --

_UNIFORM_KERNELS = [(kh, kw) for kh in (1, 2, 3, 4) for kw in (1, 2, 3, 4) if (kh, kw) != (1, 1)]


def _special_values(x, rng):
    """NaN, +-inf, -0 planes/values and subnormals (the divisions by 2 round there)."""
    flat = x.reshape(-1)
    tiny = np.finfo(x.dtype).smallest_subnormal
    pick = rng.integers(0, flat.size, size=max(4, flat.size // 8))
    flat[pick[0::4]] = np.nan
    flat[pick[1::4]] = np.inf
    flat[pick[2::4]] = -np.inf
    flat[pick[3::4]] = -0.0
    if x.ndim >= 4:
        x[0, 1] = -0.0  # a whole plane of -0: every sum starts at +0.0, as PyTorch's
    tail = flat[-min(flat.size, 40):]
    tail[:] = tiny * rng.integers(-7, 8, size=tail.size)
    return x


@pytest.mark.parametrize("kh,kw", _UNIFORM_KERNELS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_uniform_windows_2d_match_reference_and_torch(kh, kw, dtype):
    """Every uniform kernel up to 4x4 on odd and even output sizes, with NaN, +-inf, -0
    and subnormal sums: bit for bit the reference and PyTorch, batched and unbatched."""
    rng = np.random.default_rng(100 * kh + kw)
    for oh, ow in ((7, 7), (3, 5), (1, 2), (4, 9), (2, 17)):
        x = random_input(rng, (2, 3, oh * kh, ow * kw), dtype, ties=ow % 2 == 0)
        assert _uniform(x, x.shape[2:], (oh, ow), False)  # the sweep takes it
        x = _special_values(x, rng)
        expected = ref.adaptive_avg_pool(x, (oh, ow))
        assert_same(pk.adaptive_avg_pool2d(x, (oh, ow)), expected)
        assert_same(expected, F.adaptive_avg_pool2d(t(x), (oh, ow)).numpy())
        assert_same(pk.adaptive_avg_pool2d(x[1], (oh, ow)), expected[1])


def test_uniform_windows_subnormal_quotients_divide_one_length_at_a_time():
    """A 3x2 window summing to 4 * smallest subnormal: ``/ 3 / 2`` rounds twice (to 1,
    then the tie 0.5 to even: +0), unlike one division by 6 (0.67 rounds to 1)."""
    s = np.finfo(np.float32).smallest_subnormal
    x = np.zeros((1, 1, 6, 4), np.float32)
    x[0, 0, 0, 0] = 4 * s
    y = pk.adaptive_avg_pool2d(x, (2, 2))
    two_steps = np.float32(np.float32(4 * s) / np.float32(3)) / np.float32(2)
    assert y[0, 0, 0, 0] == two_steps == 0
    assert np.float32(4 * s) / np.float32(6) == s
    assert_same(y, F.adaptive_avg_pool2d(t(x), (2, 2)).numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_uniform_windows_1d_and_3d_match_reference_and_torch(dtype):
    rng = np.random.default_rng(77)
    for size, out in (((8,), (4,)), ((21,), (7,)), ((12,), (3,)), ((34,), (17,))):
        x = _special_values(random_input(rng, (3, 4) + size, dtype), rng)
        assert_same(pk.adaptive_avg_pool1d(x, out), ref.adaptive_avg_pool(x, out))
        assert_same(pk.adaptive_avg_pool1d(x, out), F.adaptive_avg_pool1d(t(x), out).numpy())
    for size, out in (((4, 6, 8), (2, 3, 4)), ((2, 14, 14), (1, 7, 7)), ((6, 5, 9), (3, 5, 3)),
                      ((4, 4, 4), (2, 2, 2)), ((3, 8, 2), (3, 2, 1))):
        x = _special_values(random_input(rng, (2, 3) + size, dtype, ties=True), rng)
        assert_same(pk.adaptive_avg_pool3d(x, out), ref.adaptive_avg_pool(x, out))
        assert_same(pk.adaptive_avg_pool3d(x, out), F.adaptive_avg_pool3d(t(x), out).numpy())


@pytest.mark.parametrize("n_tasks", [1, 2, 5, 1000])
def test_uniform_kernel_serial_and_parallel_runs_agree(n_tasks):
    """The same bits however the super-rows are split into tasks (including runs that
    start mid-plane and empty runs)."""
    from poolkit._kernels import adaptive as kernels

    rng = np.random.default_rng(n_tasks)
    x = random_input(rng, (3, 5, 2, 12, 10), np.float32, nan=True)
    dims = np.array((2, 12, 10, 1, 6, 5), np.int64)
    n_rows = 3 * 5 * 6  # super-rows (plane, od, oh)
    for per_block in (1, 4, 1 << 20):
        out = np.empty((3, 5, 1, 6, 5), np.float32)
        for part in range(n_tasks):  # the engine's contiguous parts, some empty
            kernels.adaptive_avg_uniform(x.reshape(-1), out.reshape(-1), dims, per_block,
                                         part * n_rows // n_tasks, (part + 1) * n_rows // n_tasks)
        assert_same(out, ref.adaptive_avg_pool(x, (1, 6, 5)))
    big = random_input(rng, (16, 64, 14, 14), np.float32)  # past SERIAL_WORK: parallel
    assert_same(pk.adaptive_avg_pool2d(big, 7), F.adaptive_avg_pool2d(t(big), 7).numpy())


def test_uniform_shapes_outside_the_sweep_still_match():
    """float16, channels-last, strided inputs and windows wider than 4 or deeper than 4
    rows take the other kernels: same bits as the reference."""
    rng = np.random.default_rng(5)
    x = random_input(rng, (2, 3, 8, 10), np.float16, nan=True)
    assert not _uniform(x, (8, 10), (4, 5), False)
    assert_same(pk.adaptive_avg_pool2d(x, (4, 5)), ref.adaptive_avg_pool(x, (4, 5)))
    x = random_input(rng, (2, 3, 8, 10), np.float32, nan=True)
    expected = ref.adaptive_avg_pool(x, (4, 5))
    assert not _uniform(channels_last(x), (8, 10), (4, 5), True)
    assert not _uniform(x[:, :, :, ::-1], (8, 10), (4, 5), False)
    got = pk.adaptive_avg_pool2d(channels_last(x), (4, 5), channels_last=True)
    assert_same(np.ascontiguousarray(from_channels_last(got)), expected)
    assert_same(pk.adaptive_avg_pool2d(x[:, :, :, ::-1], (4, 5)),
                ref.adaptive_avg_pool(np.ascontiguousarray(x[:, :, :, ::-1]), (4, 5)))
    for size, out in (((10, 20), (2, 2)), ((20, 3), (4, 3))):  # kw = 10; kh = 5
        x = random_input(rng, (2, 3) + size, np.float32)
        assert not _uniform(x, size, out, False)
        assert_same(pk.adaptive_avg_pool2d(x, out), ref.adaptive_avg_pool(x, out))


@settings(max_examples=50, deadline=None)
@given(
    oh=st.integers(1, 5),
    ow=st.integers(1, 40),
    kh=st.integers(1, 3),
    kw=st.integers(1, 4),
    planes=st.integers(1, 7),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_uniform_windows_match_reference(oh, ow, kh, kw, planes, dtype, seed):
    """Output rows around the 8/16-lane vector widths (ow up to 40) of every uniform
    kernel: bit for bit the reference."""
    rng = np.random.default_rng(seed)
    x = random_input(rng, (planes, oh * kh, ow * kw), dtype, ties=seed % 2 == 0,
                     nan=seed % 5 == 0)
    assert_same(pk.adaptive_avg_pool2d(x, (oh, ow)), ref.adaptive_avg_pool(x, (oh, ow)))
