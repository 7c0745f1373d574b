"""The NCHW values row kernels (``_kernels/max_rows.py``) against the loop reference.

Bit for bit: ties, NaN with distinct payloads (the last NaN in scan order wins), -0.0
next to +0.0 (the first in scan order wins), +-inf, widths around the vector length,
padding, ceil_mode, dilation, both strides along W, serial and parallel drivers (every
chunk boundary: partial vectors are stored whole only where later rows of the same
chunk overwrite their tail), with and without streaming (non-temporal stores, as on
calls larger than the cache), 1-D and 2-D, float32 and float64; and the
selection rules
(which plans take the row kernels, and that the others keep working).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import poolkit as pk
from _family import forced_serial_work, forced_streaming
from poolkit import _engine, _threads
from poolkit import _reference as ref
from poolkit._ops import max_select

_UINT = {np.dtype(np.float32): np.uint32, np.dtype(np.float64): np.uint64}


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint8)


def _special(rng: np.random.Generator, shape, dtype) -> np.ndarray:
    """Many ties, NaNs with distinct payloads and signs, -0.0 and +0.0, +-inf."""
    x = rng.integers(-3, 3, size=shape).astype(dtype)
    u = rng.random(shape)
    x[u < 0.08] = np.nan
    x[(u >= 0.08) & (u < 0.14)] = -0.0
    x[(u >= 0.14) & (u < 0.2)] = 0.0
    x[(u >= 0.2) & (u < 0.24)] = -np.inf
    x[(u >= 0.24) & (u < 0.27)] = np.inf
    bits = x.view(_UINT[np.dtype(dtype)])
    nan = np.isnan(x)
    payload = rng.integers(1, 1 << 20, size=int(nan.sum())).astype(bits.dtype)
    sign = rng.integers(0, 2, size=int(nan.sum())).astype(bits.dtype)
    shift = bits.dtype.type(8 * bits.itemsize - 1)
    bits[nan] = bits[nan] | payload | (sign << shift)
    return x


def _runner_result(x, kernel, stride, padding, dilation, ceil_mode, serial, stream=False):
    """Run the plan's runner directly (serial or parallel, whatever the size; ``stream``:
    non-temporal stores into a cache-line-aligned output)."""
    nd = len(kernel)
    lead = (1,) * (3 - nd)
    out_sp = tuple(
        ref.window_count(n, k, s, p, p, d, ceil_mode)
        for n, k, s, p, d in zip(x.shape[2:], kernel, stride, padding, dilation)
    )
    in5 = x.shape[:2] + lead + x.shape[2:]
    out5 = x.shape[:2] + lead + out_sp
    kp = _engine.kernel_table(kernel, stride, padding, dilation)
    fill = x.dtype.type(-np.inf)
    run = max_select.forward_runner(
        in5, out5, x.dtype, kp, fill, False, False, math.prod(out5), math.prod(out5[:4]),
    )
    assert isinstance(run, max_select._Rows)
    out = _engine.new_array(out5, x.dtype, aligned=stream)
    out.fill(7.0)
    with forced_serial_work(serial):
        run(x.reshape(in5), out, np.zeros((1,) * 5, np.int64), stream)
    return out.reshape(x.shape[:2] + out_sp)


@st.composite
def _case(draw):
    nd = draw(st.sampled_from([1, 2, 2, 2]))
    dtype = draw(st.sampled_from([np.float32, np.float32, np.float64]))
    kernel, stride, padding, dilation, size = [], [], [], [], []
    for axis in range(nd):
        last = axis == nd - 1
        k = draw(st.integers(1, 5 if last else 4))
        s = draw(st.sampled_from([1, 2, 2])) if last else draw(st.integers(1, 3))
        d = draw(st.sampled_from([1, 1, 2]))
        p = draw(st.integers(0, k // 2))
        lo = max(1, d * (k - 1) + 1 - 2 * p)
        n = draw(st.integers(lo, 70 if last else 9))
        kernel.append(k), stride.append(s), padding.append(p), dilation.append(d)
        size.append(n)
    ceil_mode = draw(st.booleans())
    batch = draw(st.integers(1, 3))
    chan = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    return (batch, chan, *size), tuple(kernel), tuple(stride), tuple(padding), tuple(
        dilation), ceil_mode, dtype, seed


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_case())
def test_row_kernels_match_the_reference(case):
    shape, kernel, stride, padding, dilation, ceil_mode, dtype, seed = case
    x = _special(np.random.default_rng(seed), shape, dtype)
    ry, _ = ref.max_pool(x, kernel, stride, padding, dilation, ceil_mode, False)
    for serial in (True, False):
        for stream in (False, True):
            y = _runner_result(x, kernel, stride, padding, dilation, ceil_mode, serial, stream)
            np.testing.assert_array_equal(_bits(y), _bits(ry))
    y = pk.max_pool(x, kernel, stride, padding, dilation, ceil_mode)
    np.testing.assert_array_equal(_bits(y), _bits(ry))
    with forced_streaming():
        y = pk.max_pool(x, kernel, stride, padding, dilation, ceil_mode)
    np.testing.assert_array_equal(_bits(y), _bits(ry))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2])
def test_widths_around_the_vector_length(dtype, threads):
    """Every width 1..70 on the k2s2 / k3s2p1 / k3s1 paths, serial and parallel."""
    rng = np.random.default_rng(0)
    old = pk.get_num_threads()
    pk.set_num_threads(min(threads, _threads._limit()))
    try:
        for width in range(1, 71):
            x = _special(rng, (1, 3, 5, width), dtype)
            for k, s, p, ceil_mode in [(2, 2, 0, False), (2, 2, 0, True), (3, 2, 1, False),
                                       (3, 2, 1, True), (3, 1, 1, False)]:
                if width + 2 * p < k:
                    continue
                args = ((k, k), (s, s), (p, p), (1, 1), ceil_mode)
                ry, _ = ref.max_pool(x, *args, False)
                for serial in (True, False):
                    y = _runner_result(x, *args, serial)
                    np.testing.assert_array_equal(_bits(y), _bits(ry))
    finally:
        pk.set_num_threads(old)


def test_minus_zero_and_nan_order_in_one_window():
    """The cases a vector max gets wrong: the first of -0.0/+0.0, the last NaN."""
    nan_a = np.array([0x7FC00001], np.uint32).view(np.float32)[0]
    nan_b = np.array([0xFFC00002], np.uint32).view(np.float32)[0]
    rows = [
        ([[-1.0, -0.0], [0.0, -1.0]], -0.0),  # row-major: -0.0 first (column-major: +0.0)
        ([[-1.0, 0.0], [-0.0, -1.0]], 0.0),
        ([[nan_a, 1.0], [nan_b, 2.0]], nan_b),  # the last NaN in row-major order
        ([[1.0, nan_b], [nan_a, 2.0]], nan_a),  # (column-major order would end on nan_b)
    ]
    for window, expect in rows:
        x = np.tile(np.array(window, np.float32), (1, 1, 3, 17))  # 6 x 34: every lane
        y = pk.max_pool2d(x, 2, 2)
        assert (y.view(np.uint32) == np.float32(expect).view(np.uint32)).all()


def test_strided_and_non_contiguous_inputs_use_the_window_engine():
    rng = np.random.default_rng(3)
    base = _special(rng, (3, 4, 20, 41), np.float32)
    for x in [base[:, :, ::2], base[:, :, :, ::2], base[:, :, :, ::-1], base[1:, ::2]]:
        for k, s, p in [(2, 2, 0), (3, 2, 1), (3, 1, 1)]:
            ry, _ = ref.max_pool(x, (k, k), (s, s), (p, p), (1, 1), False, False)
            y = pk.max_pool2d(x, k, s, p)
            np.testing.assert_array_equal(_bits(y), _bits(ry))


def test_which_plans_take_the_row_kernels():
    kp2 = _engine.kernel_table((2, 2), (2, 2), (0, 0), (1, 1))
    kp3 = _engine.kernel_table((3, 3), (2, 2), (1, 1), (1, 1))
    kp3s3 = _engine.kernel_table((3, 3), (3, 3), (1, 1), (1, 1))
    in5, out5 = (1, 2, 1, 8, 8), (1, 2, 1, 4, 4)
    f32 = np.dtype(np.float32)
    assert max_select.row_kernel_name(in5, out5, f32, kp2, False, False) == "rows_k2s2"
    assert max_select.row_kernel_name(in5, out5, f32, kp3, False, False) == "rows_k3s2"
    assert max_select.row_kernel_name(in5, out5, f32, kp3s3, False, False) is None
    assert max_select.row_kernel_name(in5, out5, f32, kp2, True, False) is None  # indices
    for dtype in ["float16", "int8", "int32", "int64", "uint8"]:
        assert max_select.row_kernel_name(in5, out5, np.dtype(dtype), kp2, False, False) is None
    kp3d = _engine.kernel_table((2, 2, 2), (2, 2, 2), (0, 0, 0), (1, 1, 1))
    assert max_select.row_kernel_name((1, 2, 4, 8, 8), (1, 2, 2, 4, 4), f32, kp3d, False,
                                      False) is None


@pytest.mark.parametrize("dtype", ["float16", "int8", "int16", "int32", "int64", "uint8"])
def test_other_dtypes_keep_the_window_engine(dtype):
    rng = np.random.default_rng(4)
    x = rng.integers(-3, 4, size=(2, 3, 9, 21))
    if dtype == "uint8":
        x = x + 3
    x = x.astype(dtype)
    for k, s, p in [(2, 2, 0), (3, 2, 1)]:
        ry, _ = ref.max_pool(x, (k, k), (s, s), (p, p), (1, 1), False, False)
        np.testing.assert_array_equal(_bits(pk.max_pool2d(x, k, s, p)), _bits(ry))


@pytest.mark.parametrize(
    "shape,kernel,stride,padding",
    [
        ((1, 1, 3, 2), (4, 2), (3, 2), (2, 0)),  # k2 along W, window rows shared: reuse
        ((2, 3, 11, 9), (3, 2), (2, 2), (1, 0)),  # k2 along W, kh=3/sh=2: reuse
        ((2, 3, 12, 19), (5, 3), (2, 2), (2, 1)),  # k3 along W, kh=5/sh=2 (loop path)
        ((1, 2, 9, 40), (1, 3), (2, 2), (0, 1)),  # k3 along W, one row: no reuse
    ],
)
def test_shared_window_rows_with_every_row_kernel(shape, kernel, stride, padding):
    """A window row shared with the next output row: its reduction is kept and reused,
    whichever of the straight-line and loop paths computed it."""
    x = _special(np.random.default_rng(5), shape, np.float32)
    args = (kernel, stride, padding, (1, 1), False)
    ry, _ = ref.max_pool(x, *args, False)
    for serial in (True, False):
        np.testing.assert_array_equal(_bits(_runner_result(x, *args, serial)), _bits(ry))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_uniform_k2s2_blocks(dtype):
    """k2s2 without padding on planes of whole 2x2 blocks and rows of at most one vector:
    the uniform loop (output row r = input rows 2r, 2r + 1), every width, serial and
    parallel (chunk ends: masked stores and loads at the array end)."""
    rng = np.random.default_rng(6)
    for width in range(2, 19, 2):
        for shape in [(1, 1, 2, width), (2, 3, 6, width), (3, 5, 14, width)]:
            x = _special(rng, shape, dtype)
            args = ((2, 2), (2, 2), (0, 0), (1, 1), False)
            ry, _ = ref.max_pool(x, *args, False)
            for serial in (True, False):
                y = _runner_result(x, *args, serial)
                np.testing.assert_array_equal(_bits(y), _bits(ry))


def test_a_failed_scratch_allocation_raises_memory_error():
    """The kernels allocate their scratch row themselves (numba's runtime allocator, no
    NumPy code compiled): one that cannot be had raises MemoryError, output untouched."""
    from poolkit._kernels import max_rows

    x = np.arange(2 * 8 * 16, dtype=np.float32).reshape(2, 8, 16)
    out = np.full((2, 4, 8), 7.0, np.float32)
    rows, geo, scr_len = max_rows.tables(8, 16, 4, 8, 3, 2, 1, 1, 3, 2, 1, 1, np.float32)
    with pytest.raises(MemoryError):
        max_rows.rows_k3s2(x, out, rows, geo, 2**60, 0, 0, 8)
    assert (out == 7.0).all()
    max_rows.rows_k3s2(x, out, rows, geo, scr_len, 0, 0, 8)
    want = ref.max_pool(x[np.newaxis], (3, 3), (2, 2), (1, 1), (1, 1), False)[0][0]
    np.testing.assert_array_equal(out, want)
