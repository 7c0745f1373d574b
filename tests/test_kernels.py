"""Fast max pooling kernels: every path against the loop reference, bit for bit.

Paths covered: the NCHW row engine's k=2/s=2 and k=3/s=2 passes (one and two window
rows per pass), its generic pass (any stride/dilation), its border windows, windows
with no input element; the channels-last kernel; serial and parallel drivers; every
dtype, with and without indices; the backward in both layouts (overlapping windows,
run-to-run and thread-count determinism); the thread setting; the argument caches;
and the benchmark module.
"""

from __future__ import annotations

import io
import math
from contextlib import redirect_stdout

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import poolkit as pk
from poolkit import _engine
from poolkit import _reference as ref

DTYPES = ["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8"]
FLOATS = ["float16", "float32", "float64"]


def _bits(a: np.ndarray) -> np.ndarray:
    """Byte view for bit-exact comparison (NaN payloads and signed zeros included)."""
    return np.ascontiguousarray(a).view(np.uint8)


def _data(rng: np.random.Generator, shape, dtype: str, special: bool = True) -> np.ndarray:
    """Small integers (many ties), plus NaN, +-inf, -0.0 for floating dtypes."""
    x = rng.integers(-3, 4, size=shape)
    if dtype == "uint8":
        x = x + 3
    x = x.astype(dtype)
    if special and dtype in FLOATS:
        u = rng.random(shape)
        x[u < 0.05] = np.nan
        x[(u >= 0.05) & (u < 0.1)] = -np.inf
        x[(u >= 0.1) & (u < 0.13)] = np.inf
        x[(u >= 0.13) & (u < 0.18)] = -0.0
    return x


def _check_forward(x, kernel, stride, padding, dilation, ceil_mode=False, channels_last=False):
    """poolkit forward (with and without indices) == reference, bit for bit."""
    nd = len(kernel)
    ry, ri = ref.max_pool(x, kernel, stride, padding, dilation, ceil_mode, channels_last)
    y, i = pk.max_pool(
        x, kernel, stride, padding, dilation, ceil_mode, True, channels_last=channels_last
    )
    assert y.dtype == x.dtype and i.dtype == np.int64
    assert y.shape == ry.shape
    np.testing.assert_array_equal(_bits(y), _bits(ry))
    np.testing.assert_array_equal(i, ri)
    y2 = pk.max_pool(x, kernel, stride, padding, dilation, ceil_mode, False, channels_last)
    np.testing.assert_array_equal(_bits(y2), _bits(ry))
    if nd <= 3:  # the fixed-rank entry points take the same path
        fn = getattr(pk, f"max_pool{nd}d")
        y3 = fn(x, kernel, stride, padding, dilation, ceil_mode, channels_last=channels_last)
        np.testing.assert_array_equal(_bits(y3), _bits(ry))
    return y, i


def _check_backward(x, y, i, nd, channels_last, rng):
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float32)
    g = rng.standard_normal(y.shape).astype(dtype)
    dx = pk.max_pool_backward(g, i, x.shape, channels_last=channels_last, spatial_dims=nd)
    rdx = ref.max_pool_backward(g, i, x.shape, nd, channels_last)
    assert dx.dtype == dtype and dx.shape == x.shape
    np.testing.assert_array_equal(_bits(dx), _bits(rdx))


# (kernel, stride, padding, dilation, ceil_mode): each row targets one path of the engine
PATHS_2D = [
    ((2, 2), (2, 2), (0, 0), (1, 1), False),  # k2 pass, two rows per pass
    ((2, 2), (2, 2), (1, 1), (1, 1), False),  # k2 pass + border windows
    ((2, 2), (2, 2), (0, 0), (1, 1), True),  # ceil_mode: overhanging last window
    ((3, 3), (2, 2), (1, 1), (1, 1), False),  # k3 pass: 2 + 1 rows, border rows/cols
    ((3, 3), (2, 2), (0, 0), (1, 1), True),  # k3 pass, ceil_mode
    ((1, 3), (1, 2), (0, 1), (1, 1), False),  # k3 pass, one row per pass only
    ((3, 2), (1, 2), (1, 0), (2, 1), False),  # k2 along W, dilated rows
    ((3, 3), (1, 1), (1, 1), (1, 1), False),  # generic, stride 1
    ((4, 3), (3, 3), (2, 1), (1, 1), False),  # generic, stride 3
    ((3, 3), (2, 2), (1, 1), (2, 2), False),  # generic: dilation along W
    ((2, 2), (1, 1), (1, 1), (2, 2), False),  # windows with no input element: -inf, -1
    ((5, 5), (2, 3), (2, 2), (1, 1), True),  # wide generic, ceil_mode
]


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("path", PATHS_2D)
def test_2d_paths_float32(path, channels_last):
    rng = np.random.default_rng(1)
    kernel, stride, padding, dilation, ceil_mode = path
    for shape in [(2, 3, 9, 11), (1, 2, 1, 7), (2, 1, 6, 40)]:
        x = _data(rng, shape, "float32")
        if channels_last:
            x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
        if any(
            math.floor((sz + 2 * p - d * (k - 1) - 1) / s) + 1 < 1
            for sz, k, s, p, d in zip(shape[2:], kernel, stride, padding, dilation)
        ):
            continue
        y, i = _check_forward(x, kernel, stride, padding, dilation, ceil_mode, channels_last)
        _check_backward(x, y, i, 2, channels_last, rng)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_every_dtype_on_the_specialised_paths(dtype, channels_last):
    rng = np.random.default_rng(2)
    x = _data(rng, (2, 3, 10, 13), dtype)
    if channels_last:
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    for kernel, stride, padding in [(2, 2, 0), (3, 2, 1), (3, 1, 1)]:
        args = ((kernel,) * 2, (stride,) * 2, (padding,) * 2, (1, 1))
        y, i = _check_forward(x, *args, channels_last=channels_last)
        _check_backward(x, y, i, 2, channels_last, rng)


@pytest.mark.parametrize("channels_last", [False, True])
def test_1d_and_3d_use_the_same_engine(channels_last):
    rng = np.random.default_rng(3)
    cases = [
        ((3, 4, 37), (3,), (2,), (1,), (1,)),
        ((3, 4, 36), (2,), (2,), (0,), (1,)),
        ((2, 3, 29), (4,), (1,), (2,), (3,)),
        ((2, 3, 5, 6, 7), (2, 2, 2), (2, 2, 2), (0, 0, 0), (1, 1, 1)),
        ((2, 2, 5, 7, 9), (3, 3, 3), (2, 2, 2), (1, 1, 1), (1, 1, 1)),
        ((1, 2, 4, 5, 6), (2, 3, 2), (1, 2, 1), (1, 1, 0), (2, 1, 1)),
    ]
    for shape, kernel, stride, padding, dilation in cases:
        x = _data(rng, shape, "float32")
        if channels_last:
            x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
        y, i = _check_forward(x, kernel, stride, padding, dilation, channels_last=channels_last)
        _check_backward(x, y, i, len(kernel), channels_last, rng)


@pytest.mark.parametrize("dtype", ["float32", "float16", "int16"])
def test_long_rows_take_the_direct_path(dtype):
    """Rows with >= 256 interior outputs and one pass write straight into the output."""
    rng = np.random.default_rng(9)
    for shape, kernel, stride, padding in [
        ((2, 2, 700), (3,), (2,), (1,)),  # 1-D k3: one window row
        ((2, 2, 701), (2,), (2,), (0,)),  # 1-D k2
        ((1, 2, 4, 613), (2, 2), (2, 2), (0, 0)),  # 2-D k2: two rows in one pass
        ((1, 2, 3, 530), (2, 3), (2, 2), (1, 1)),  # 2-D k3 along W, border rows
    ]:
        x = _data(rng, shape, dtype)
        dil = (1,) * len(kernel)
        y, i = _check_forward(x, kernel, stride, padding, dil)
        _check_backward(x, y, i, len(kernel), False, rng)


def test_unbatched_and_non_contiguous_inputs():
    rng = np.random.default_rng(4)
    base = _data(rng, (4, 6, 14, 18), "float32")
    views = [
        base[1],  # unbatched (C, H, W)
        base[:, :, ::2, ::2],  # strided rows and columns
        base[:, :, :, ::-1],  # negative stride
        np.swapaxes(base, 2, 3),  # transposed plane
    ]
    for x in views:
        for k, s, p in [(2, 2, 0), (3, 2, 1), (3, 1, 1)]:
            _check_forward(x, (k, k), (s, s), (p, p), (1, 1))
    cl = np.moveaxis(base, 1, -1)[:, ::2]  # channels-last view, not contiguous
    _check_forward(cl, (3, 3), (2, 2), (1, 1), (1, 1), channels_last=True)
    _check_forward(cl[0], (2, 2), (2, 2), (0, 0), (1, 1), channels_last=True)


def test_inputs_are_not_mutated():
    rng = np.random.default_rng(5)
    x = _data(rng, (2, 3, 9, 9), "float32")
    keep = x.copy()
    y, i = pk.max_pool2d(x, 3, 2, 1, return_indices=True)
    g = np.ones_like(y)
    i_keep = i.copy()
    pk.max_pool2d_backward(g, i, x.shape)
    np.testing.assert_array_equal(_bits(x), _bits(keep))
    np.testing.assert_array_equal(i, i_keep)


@pytest.mark.parametrize("channels_last", [False, True])
def test_parallel_driver_matches_serial(monkeypatch, channels_last):
    """Big enough for the parallel kernels; then force the serial ones: same bits."""
    rng = np.random.default_rng(6)
    x = _data(rng, (4, 8, 33, 47), "float32")
    if channels_last:
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    results = []
    for serial_work in [_engine.SERIAL_WORK, 1 << 62]:
        monkeypatch.setattr(_engine, "SERIAL_WORK", serial_work)
        _engine.plans.clear()
        y, i = _check_forward(x, (3, 3), (2, 2), (1, 1), (1, 1), channels_last=channels_last)
        dx = pk.max_pool2d_backward(np.ones_like(y), i, x.shape, channels_last=channels_last)
        results.append((y, i, dx))
    _engine.plans.clear()
    (y0, i0, d0), (y1, i1, d1) = results
    np.testing.assert_array_equal(_bits(y0), _bits(y1))
    np.testing.assert_array_equal(i0, i1)
    np.testing.assert_array_equal(_bits(d0), _bits(d1))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("channels_last", [False, True])
def test_backward_is_bit_identical_run_to_run_and_across_threads(dtype, channels_last):
    """Overlapping windows (k3 s1) send many gradients to one input: fixed order."""
    rng = np.random.default_rng(7)
    x = rng.integers(0, 2, size=(3, 20, 31, 29)).astype(dtype)  # many ties
    if channels_last:
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    y, i = pk.max_pool2d(x, 3, 1, 1, return_indices=True, channels_last=channels_last)
    g = rng.standard_normal(y.shape).astype(dtype)
    expected = ref.max_pool_backward(g, i, x.shape, 2, channels_last)
    before = pk.get_num_threads()
    try:
        for threads in sorted({1, before}):
            pk.set_num_threads(threads)
            for _ in range(3):
                dx = pk.max_pool2d_backward(g, i, x.shape, channels_last=channels_last)
                np.testing.assert_array_equal(_bits(dx), _bits(expected))
    finally:
        pk.set_num_threads(before)


def test_backward_skips_minus_one_and_rejects_bad_indices():
    x = np.zeros((1, 1, 1, 1), dtype=np.float32)
    y, i = pk.max_pool2d(x, 2, 1, 1, dilation=2, return_indices=True)
    assert (i == -1).all() and np.isneginf(y).all()
    dx = pk.max_pool2d_backward(np.ones_like(y), i, x.shape)
    np.testing.assert_array_equal(dx, np.zeros_like(x))
    bad = np.full((1, 1, 1, 1), 1, dtype=np.int64)
    with pytest.raises(ValueError, match="indices must lie in"):
        pk.max_pool2d_backward(np.ones((1, 1, 1, 1), np.float32), bad, x.shape)
    with pytest.raises(ValueError, match="indices must lie in"):
        pk.max_pool2d_backward(
            np.ones((1, 1, 1, 1), np.float32), bad - 3, x.shape, channels_last=True
        )


def test_empty_batch():
    x = np.zeros((0, 3, 8, 8), dtype=np.float32)
    y, i = pk.max_pool2d(x, 2, return_indices=True)
    assert y.shape == (0, 3, 4, 4) and i.shape == (0, 3, 4, 4)
    assert pk.max_pool2d_backward(y, i, x.shape).shape == x.shape


# ------------------------------------------------------------------------------------
# hypothesis: random geometry that lands on every path, data full of ties/NaN/inf
# ------------------------------------------------------------------------------------

_VALUES = st.sampled_from([0.0, 1.0, -1.0, 2.0, -0.0, np.nan, np.inf, -np.inf])


@st.composite
def _pool_case(draw):
    nd = draw(st.integers(1, 3))
    kernel = tuple(draw(st.sampled_from([1, 2, 3, 4])) for _ in range(nd))
    # stride 2 with k 2/3 is the specialised pass; bias towards it
    stride = tuple(draw(st.sampled_from([2, 2, 1, 3])) for _ in range(nd))
    dilation = tuple(draw(st.sampled_from([1, 1, 1, 2])) for _ in range(nd))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    ceil_mode = draw(st.booleans())
    spatial = tuple(draw(st.integers(1, 9 if nd < 3 else 6)) for _ in range(nd))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), *spatial)
    channels_last = draw(st.booleans())
    dtype = draw(st.sampled_from(["float32", "float16", "float64"]))
    values = draw(st.lists(_VALUES, min_size=math.prod(shape), max_size=math.prod(shape)))
    return shape, kernel, stride, padding, dilation, ceil_mode, channels_last, dtype, values


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_pool_case())
def test_property_matches_reference(case):
    shape, kernel, stride, padding, dilation, ceil_mode, channels_last, dtype, values = case
    x = np.array(values, dtype=dtype).reshape(shape)
    out = [
        math.floor((sz + 2 * p - d * (k - 1) - 1 + ((s - 1) if ceil_mode else 0)) / s) + 1
        for sz, k, s, p, d in zip(shape[2:], kernel, stride, padding, dilation)
    ]
    if min(out) < 1:
        with pytest.raises(ValueError, match="output size"):
            pk.max_pool(x, kernel, stride, padding, dilation, ceil_mode)
        return
    if channels_last:
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    y, i = _check_forward(x, kernel, stride, padding, dilation, ceil_mode, channels_last)
    _check_backward(x, y, i, len(kernel), channels_last, np.random.default_rng(0))


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 40),
    st.sampled_from([(2, 0), (3, 0), (3, 1)]),
    st.sampled_from(["float32", "int8", "uint8", "int64"]),
    st.integers(0, 2**32 - 1),
)
def test_property_row_lengths_around_the_vector_width(width, kp, dtype, seed):
    """W from 1 to 40 crosses the 16-lane padding of the row buffers at every offset."""
    k, p = kp
    if width + 2 * p < k:
        return
    x = _data(np.random.default_rng(seed), (1, 2, 5, width), dtype)
    _check_forward(x, (k, k), (2, 2), (p, p), (1, 1))


# ------------------------------------------------------------------------------------
# threads, caches, benchmark
# ------------------------------------------------------------------------------------


def test_thread_setting_roundtrip_and_errors():
    import numba

    before = pk.get_num_threads()
    limit = numba.config.NUMBA_NUM_THREADS
    try:
        pk.set_num_threads(1)
        assert pk.get_num_threads() == 1
        pk.set_num_threads(limit)
        assert pk.get_num_threads() == limit
    finally:
        pk.set_num_threads(before)
    with pytest.raises(ValueError, match="NUMBA_NUM_THREADS"):
        pk.set_num_threads(limit + 1)
    with pytest.raises(ValueError, match="between 1"):
        pk.set_num_threads(0)
    with pytest.raises(TypeError, match="n must be an int"):
        pk.set_num_threads(True)
    with pytest.raises(TypeError, match="n must be an int"):
        pk.set_num_threads(2.0)


def test_numba_num_threads_environment_is_honoured():
    """NUMBA_NUM_THREADS caps the pool: a fresh process with 1 thread cannot go to 2."""
    import os
    import subprocess
    import sys

    code = (
        "import numpy as np, poolkit as pk\n"
        "assert pk.get_num_threads() == 1\n"
        "try:\n"
        "    pk.set_num_threads(2)\n"
        "except ValueError as e:\n"
        "    assert 'NUMBA_NUM_THREADS=1' in str(e)\n"
        "else:\n"
        "    raise SystemExit('set_num_threads(2) accepted')\n"
        "x = np.arange(64.0 * 64 * 9).reshape(1, 9, 64, 64)\n"
        "assert pk.max_pool2d(x, 2).shape == (1, 9, 32, 32)\n"
        "print('ok')\n"
    )
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
    env = dict(os.environ, NUMBA_NUM_THREADS="1")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"


def test_cached_options_keep_bool_and_int_apart():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    pk.max_pool2d(x, 2, ceil_mode=False)  # cached with a real bool
    with pytest.raises(TypeError, match="ceil_mode must be a bool"):
        pk.max_pool2d(x, 2, ceil_mode=0)
    pk.max_pool2d(x, 2, stride=1)
    with pytest.raises(TypeError, match="stride must be an int"):
        pk.max_pool2d(x, 2, stride=True)
    with pytest.raises(TypeError, match="kernel_size must be an int"):
        pk.max_pool2d(x, (2, 2.0))
    _, i = pk.max_pool2d(x, 2, return_indices=True)
    assert i is not None


def test_cached_plans_follow_shape_and_dtype():
    x = np.arange(36.0).reshape(1, 1, 6, 6)
    a = pk.max_pool2d(x, 2)
    b = pk.max_pool2d(x.astype(np.float32), 2)
    c = pk.max_pool2d(x[:, :, :4, :4], 2)
    assert a.dtype == np.float64 and b.dtype == np.float32
    assert a.shape == b.shape == (1, 1, 3, 3) and c.shape == (1, 1, 2, 2)
    with pytest.raises(ValueError, match="output size"):
        pk.max_pool2d(x[:, :, :1, :1], 2)


def test_kernel_table_is_read_only():
    table = _engine.kernel_table((3, 3), (2, 2), (1, 1), (1, 1))
    assert table.shape == (4, 3) and not table.flags.writeable
    assert table[:, 0].tolist() == [1, 1, 0, 1]


def test_bench_im2col_baseline_is_correct_on_finite_data():
    from poolkit.bench import im2col_max_pool, scatter_backward

    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 3, 11, 9)).astype(np.float32)
    for k, s, p in [(2, 2, 0), (3, 2, 1)]:
        y, i = im2col_max_pool(x, k, s, p)
        ry, ri = ref.max_pool(x, (k, k), (s, s), (p, p), (1, 1))
        np.testing.assert_array_equal(y, ry)
        np.testing.assert_array_equal(i, ri)
        g = rng.standard_normal(y.shape).astype(np.float32)
        np.testing.assert_allclose(
            scatter_backward(g, i, x.shape), ref.max_pool_backward(g, ri, x.shape, 2), rtol=1e-6
        )


def test_bench_quick_prints_the_table():
    from poolkit.bench import main

    buf = io.StringIO()
    before = pk.get_num_threads()
    try:
        with redirect_stdout(buf):
            assert main(["--quick", "--no-torch", "--repeat", "1", "--threads", "1"]) == 0
    finally:
        pk.set_num_threads(before)
    text = buf.getvalue()
    assert "memcpy bandwidth" in text
    for label in ["k2s2 fwd+idx", "k3s2p1 backward", "1-D k3s2p1", "3-D k2s2", "(1,1,4,4)"]:
        assert label in text
    assert "peak memory" in text


def test_import_leaves_numba_unloaded_until_the_first_call():
    """``import poolkit`` (family modules included) does not import numba; the first call
    that needs a kernel loads it, for max pooling and for the family alike."""
    import os
    import subprocess
    import sys

    code = (
        "import sys, numpy as np, poolkit as pk\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'numba')\n"
        "assert not loaded, loaded\n"
        "pk.max_pool2d(np.zeros((1, 1, 4, 4), np.float32), 2)\n"
        "assert 'numba' in sys.modules\n"
        "print(pk.avg_pool2d(np.ones((1, 1, 4, 4), np.float32), 2).sum())\n"
    )
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
    env = dict(os.environ)
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "4.0"
