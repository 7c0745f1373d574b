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
