"""The NCHW row kernels (:mod:`poolkit._kernels.max_scan`) against the loop reference.

Rows wide enough for several vector blocks (plain interior blocks, masked border and
tail blocks), W stride 1, 2 and larger (the gather kernels), any window, padding,
dilation and ceil_mode, 1-D to 3-D, every dtype, values full of ties, NaN, +-0.0,
+-inf and integer extremes, with and without indices, contiguous and strided: values
bit for bit and indices equal to :func:`poolkit._reference.max_pool`; narrow rows split
over the threads at every task boundary (a partial last vector is stored whole only
where the same part's next row overwrites its extra lanes).
"""

from __future__ import annotations

import numpy as np
import pytest

import poolkit as pk
from _family import forced_serial_work
from _torch_oracle import assert_bits_equal
from poolkit import _engine
from poolkit import _reference as ref
from poolkit._ops import max_select

SPECIALS = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 2.0, -2.0])


def _values(rng, shape, dtype, kind):
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        pool = np.array([info.min, info.max, 0, 1, 2, info.min + 1, info.max - 1],
                        dtype=dtype)
        if kind == "normal":
            return rng.integers(info.min, info.max, size=shape, dtype=dtype,
                                endpoint=True)
        return rng.choice(pool, size=shape)
    if kind == "specials":
        return rng.choice(SPECIALS, size=shape).astype(dtype)
    if kind == "ties":
        return rng.integers(-1, 2, size=shape).astype(dtype)
    if kind == "neg_inf":  # whole windows of -inf: the first element inside wins
        return np.where(rng.random(shape) < 0.9, -np.inf, 0.0).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def _case(seed, last_strides=(1, 3)):
    rng = np.random.default_rng(seed)
    nd = int(rng.integers(1, 4))
    kernel = tuple(int(k) for k in rng.integers(1, 4, nd))
    stride = tuple(int(s) for s in rng.integers(1, 3, nd - 1)) + (
        int(rng.integers(*last_strides)),)
    dilation = tuple(int(d) for d in rng.integers(1, 3, nd))
    padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
    spatial = [int(rng.integers(1, 4)) for _ in range(nd - 1)]
    spatial = [max(s, dilation[j] * (kernel[j] - 1) + 1 - 2 * padding[j])
               for j, s in enumerate(spatial)]
    need = dilation[-1] * (kernel[-1] - 1) + 1 - 2 * padding[-1]
    spatial.append(max(need, 1) + int(rng.integers(0, 40)))
    return rng, kernel, stride, padding, dilation, bool(rng.integers(0, 2)), tuple(spatial)


def _check(x, kernel, stride, padding, dilation, ceil_mode):
    try:
        y, idx = pk.max_pool(x, kernel, stride, padding, dilation, ceil_mode,
                             return_indices=True)
    except ValueError:
        assert 0 in ref.max_pool(x, kernel, stride, padding, dilation, ceil_mode)[0].shape
        return
    y_ref, idx_ref = ref.max_pool(x, kernel, stride, padding, dilation, ceil_mode)
    assert_bits_equal(y, y_ref, "values")
    np.testing.assert_array_equal(idx, idx_ref)
    y_only = pk.max_pool(x, kernel, stride, padding, dilation, ceil_mode)
    assert_bits_equal(y_only, y_ref, "values only")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["normal", "specials", "ties", "neg_inf"])
@pytest.mark.parametrize("seed", range(12))
def test_float_rows_match_reference(seed, kind, dtype):
    rng, kernel, stride, padding, dilation, ceil_mode, spatial = _case(seed)
    _check(_values(rng, (2, 2) + spatial, dtype, kind), kernel, stride, padding,
           dilation, ceil_mode)


@pytest.mark.parametrize(
    "dtype", ["float16", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
              "uint64"])
@pytest.mark.parametrize("seed", range(6))
def test_other_dtypes_match_reference(seed, dtype):
    rng, kernel, stride, padding, dilation, ceil_mode, spatial = _case(100 + seed)
    kind = ("normal", "specials", "ties")[seed % 3]
    _check(_values(rng, (2, 2) + spatial, dtype, kind), kernel, stride, padding,
           dilation, ceil_mode)


@pytest.mark.parametrize(
    "dtype", ["float32", "float64", "float16", "int8", "int16", "uint16", "int64"])
@pytest.mark.parametrize("seed", range(8))
def test_any_w_stride_rows_match_reference(seed, dtype):
    """W strides 3 to 6: the gather kernels (``values_sn``, ``indices_sn``)."""
    rng, kernel, stride, padding, dilation, ceil_mode, spatial = _case(200 + seed, (3, 7))
    kind = ("normal", "specials", "ties", "neg_inf")[seed % 4]
    if np.dtype(dtype).kind in "iu" and kind == "neg_inf":
        kind = "specials"
    _check(_values(rng, (2, 2) + spatial, dtype, kind), kernel, stride, padding,
           dilation, ceil_mode)


@pytest.mark.parametrize("dtype", ["float32", "float16", "int32"])
def test_strided_views_match_reference(dtype):
    rng = np.random.default_rng(7)
    base = _values(rng, (2, 3, 9, 70), dtype, "specials")
    for x in (base[:, ::2, :, ::2], base[..., 1:], np.flip(base, -1)):
        _check(x, (3, 3), (2, 2), (1, 1), (1, 1), False)
        _check(x, (2, 2), (1, 1), (0, 1), (1, 2), True)
        _check(x, (4, 5), (2, 3), (1, 2), (1, 1), True)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "shape,k,s,p,ceil",
    [((2, 3, 14, 14), 2, 2, 0, False), ((1, 2, 11, 45), 3, 2, 1, False),
     ((1, 2, 9, 33), 3, 2, 1, True), ((2, 1, 7, 40), 3, 1, 1, False),
     ((1, 1, 5, 17), 2, 1, 0, True)],
)
def test_index_rows_common_windows(shape, k, s, p, ceil, dtype):
    rng = np.random.default_rng(sum(shape) + k)
    x = _values(rng, shape, dtype, "specials")
    y, idx = pk.max_pool2d(x, k, s, p, ceil_mode=ceil, return_indices=True)
    y_ref, idx_ref = ref.max_pool(x, (k, k), (s, s), (p, p), (1, 1), ceil)
    assert_bits_equal(y, y_ref, "values")
    np.testing.assert_array_equal(idx, idx_ref)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "int64", "uint8"])
def test_narrow_rows_split_over_threads_match_reference(threads, dtype):
    """Output rows of 1 to 17 elements (partial vectors, stored whole into the next
    row where that row belongs to the same part), indices and values, every call split
    into ``threads`` parts: no part overwrites another's outputs."""
    rng = np.random.default_rng(threads)
    old = pk.get_num_threads()
    pk.set_num_threads(threads)
    try:
        with forced_serial_work(False):
            for width in (2, 3, 5, 8, 9, 14, 15, 17, 18, 31, 34):
                for rows in (1, 2, 5):
                    x = _values(rng, (2, 3, rows, width), dtype, "specials")
                    _check(x, (1, 2), (1, 2), (0, 0), (1, 1), False)
                    _check(x, (1, 3), (1, 2), (0, 1), (1, 1), True)
                    _check(x, (2, 3), (1, 3), (0, 1), (1, 1), False)
                    _check(x, (1, 2), (1, 1), (0, 0), (1, 1), False)
    finally:
        pk.set_num_threads(old)


def test_plans_pick_the_scan_rows():
    kp = _engine.kernel_table((3, 3), (2, 2), (1, 1), (1, 1))
    in5, out5 = (1, 2, 1, 9, 9), (1, 2, 1, 5, 5)
    assert max_select.scan_kernel_ok(in5, out5, kp, False)
    assert not max_select.scan_kernel_ok(in5, out5, kp, True)  # channels last
    kp3 = _engine.kernel_table((3, 3), (3, 3), (1, 1), (1, 1))
    assert max_select.scan_kernel_ok(in5, (1, 2, 1, 3, 3), kp3, False)  # W stride 3
    run = max_select.forward_runner(in5, (1, 2, 1, 3, 3), np.dtype(np.float32), kp3,
                                    -np.inf, True, False, 1, 6)
    assert run.name == "indices_sn"  # one gather kernel for every W stride above 2


@pytest.mark.parametrize("seed", range(20))
def test_window_table_lists_the_rows_inside_in_scan_order(seed):
    """The plan's window table (plain NumPy) against a loop over the window rows."""
    from poolkit._kernels.max_scan import window_table

    rng = np.random.default_rng(seed)
    k, s, d = rng.integers(1, 4, 2), rng.integers(1, 3, 2), rng.integers(1, 3, 2)
    p = [int(rng.integers(0, kk // 2 + 1)) for kk in k]
    in_d, in_h, in_w = (int(v) for v in rng.integers(1, 7, 3))
    out_d = int(rng.integers(1, 5))
    out_h = int(rng.integers(1, 5))
    kp = np.array([[k[0], k[1], 1], [s[0], s[1], 1], [p[0], p[1], 0], [d[0], d[1], 1]])
    table, counts = window_table((1, 1, in_d, in_h, in_w), (1, 1, out_d, out_h, 1), kp)
    per_row = k[0] * k[1]
    for od in range(out_d):
        for oh in range(out_h):
            want = [(z * in_h + y) * in_w
                    for z in (od * s[0] - p[0] + a * d[0] for a in range(k[0]))
                    for y in (oh * s[1] - p[1] + b * d[1] for b in range(k[1]))
                    if 0 <= z < in_d and 0 <= y < in_h]
            t = od * out_h + oh
            assert counts[t] == len(want)
            assert table[t * per_row: t * per_row + len(want)].tolist() == want
