"""Every average-pooling kernel path, serial and parallel, bit for bit against the reference.

The paths: the vector row kernels (``poolkit._kernels.avg_rows``: float32/float64,
C-contiguous, any column stride), the phase buffer (``poolkit._kernels.avg_pool``:
everything else channels-first), the channels-last kernel (vectorised over C) and the
backward; each runs as a serial task range or in parallel (``_engine.SERIAL_WORK``
forced either way here), at 1 and 2 threads, with and without streaming (non-temporal
stores, as on calls larger than the cache). Inputs carry -0.0, NaN, +-inf and huge
values (float32 sums overflow to inf; float16 results overflow to inf through the
divisor override).
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import poolkit as pk
from _family import assert_same, forced_serial_work, forced_streaming
from poolkit import _reference as ref
from test_avg_pool import _special_input as _special


def _quiet(fn, *args, **kw):
    with np.errstate(over="ignore", invalid="ignore"):
        return fn(*args, **kw)


@contextmanager
def _mode(parallel: bool, threads: int):
    """Force the call onto this thread or onto the thread pool, at a thread count."""
    before = pk.get_num_threads()
    pk.set_num_threads(min(threads, pk._threads._limit()))
    try:
        with forced_serial_work(not parallel):
            yield
    finally:
        pk.set_num_threads(before)


_MODES = [(False, 1), (True, 1), (True, 2)]


def _layout(x: np.ndarray, name: str, nd: int):
    """(array given to poolkit, channels_last flag) for a channels-first ``x``."""
    if name in ("cl", "cl strided"):
        y = np.ascontiguousarray(np.moveaxis(x, -nd - 1, -1))
        if name == "cl strided":
            wide = np.zeros(y.shape[:-1] + (2 * y.shape[-1],), y.dtype)
            wide[..., ::2] = y
            y = wide[..., ::2]
        return y, True
    if name == "strided":
        wide = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)
        wide[..., ::2] = x
        return wide[..., ::2], False
    return x, False


def _to_first(y: np.ndarray, cl: bool, nd: int) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(y, -1, -nd - 1)) if cl else y


@settings(max_examples=150, deadline=None)
@given(
    nd=st.integers(1, 3),
    dtype=st.sampled_from([np.float16, np.float32, np.float64]),
    layout=st.sampled_from(["contiguous", "strided", "cl", "cl strided"]),
    batched=st.booleans(),
    mode=st.sampled_from(_MODES),
    streaming=st.booleans(),
    data=st.data(),
)
def test_forward_and_backward_paths_match_reference(nd, dtype, layout, batched, mode,
                                                    streaming, data):
    kernel = tuple(data.draw(st.integers(1, 4)) for _ in range(nd))
    stride = tuple(data.draw(st.sampled_from([1, 2, 2, 3])) for _ in range(nd))
    padding = tuple(data.draw(st.integers(0, k // 2)) for k in kernel)
    lead = tuple(data.draw(st.integers(max(1, k - 2 * p), k + 5))
                 for k, p in zip(kernel[:-1], padding[:-1]))
    width = data.draw(st.integers(max(1, kernel[-1] - 2 * padding[-1]), 70 if nd < 3 else 20))
    n_chan = data.draw(st.sampled_from([1, 2, 3, 7, 16, 17, 33] if "cl" in layout else [1, 3]))
    ceil, cip = data.draw(st.booleans()), data.draw(st.booleans())
    div = data.draw(st.sampled_from([None, None, 1, 3])) if nd > 1 else None
    shape = ((2,) if batched else ()) + (n_chan,) + lead + (width,)
    x = _special(np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))), shape, dtype)
    args = (kernel, stride, padding, ceil, cip) + ((div,) if nd > 1 else ())
    expected = _quiet(ref.avg_pool, x if batched else x[None], *args)
    expected = expected if batched else expected[0]
    arr, cl = _layout(x, layout, nd)
    fwd = getattr(pk, f"avg_pool{nd}d")
    bwd = getattr(pk, f"avg_pool{nd}d_backward")
    with _mode(*mode), forced_streaming(streaming):  # as a call larger than the cache
        got = _quiet(fwd, arr, *args, channels_last=cl)
    assert_same(_to_first(got, cl, nd), expected)
    # backward of a finite gradient (the reference scatters in output order)
    g = np.random.default_rng(1).standard_normal(expected.shape).astype(dtype)
    g_ref = _quiet(ref.avg_pool_backward, g if batched else g[None],
                   x.shape if batched else (1,) + x.shape, *args)
    g_ref = g_ref if batched else g_ref[0]
    g_arr = np.ascontiguousarray(np.moveaxis(g, -nd - 1, -1)) if cl else g
    in_shape = arr.shape
    with _mode(*mode):
        dx = _quiet(bwd, g_arr, in_shape, *args, channels_last=cl)
    assert_same(_to_first(dx, cl, nd), g_ref)


@pytest.mark.parametrize("mode", _MODES)
def test_float16_overflow_to_inf_and_signed_zero(mode):
    """float16 windows whose opmath average leaves the float16 range become inf; a window
    of -0.0 averages to +0.0 (the sum starts from +0.0); in every layout and mode."""
    x = np.full((1, 19, 6, 37), 60000.0, np.float16)
    x[0, :, :, ::5] = -0.0
    x[0, 3] = -0.0
    args = ((2, 3), (2, 2), (1, 1), True, True, 1)
    expected = _quiet(ref.avg_pool, x, *args)
    assert np.isinf(expected).any() and (expected == 0).any()
    for layout in ("contiguous", "strided", "cl", "cl strided"):
        arr, cl = _layout(x, layout, 2)
        with _mode(*mode):
            got = _quiet(pk.avg_pool2d, arr, *args, channels_last=cl)
        assert_same(_to_first(got, cl, 2), expected)
        assert not np.signbit(_to_first(got, cl, 2)[0, 3]).any()


def test_same_bits_at_one_and_two_threads_channels_last():
    x = _special(np.random.default_rng(5), (3, 14, 14, 64), np.float32)
    results = []
    for mode in _MODES:
        with _mode(*mode):
            results.append(pk.avg_pool2d(x, 3, 2, 1, channels_last=True))
    for y in results[1:]:
        assert_same(y, results[0])


def test_small_call_stays_serial(monkeypatch):
    """A tiny call runs on the calling thread: the thread pool is never asked."""
    calls = []
    real = pk._threads.ThreadPool.run
    monkeypatch.setattr(pk._threads.ThreadPool, "run",
                        lambda self, *a: calls.append(1) or real(self, *a))
    x = np.ones((1, 1, 4, 4), np.float32)
    assert_same(pk.avg_pool2d(x, 2), np.ones((1, 1, 2, 2), np.float32))
    assert not calls
    pk.avg_pool2d(np.ones((8, 64, 64, 64), np.float32), 2)  # large: the pool runs it
    assert calls


def test_first_call_compiles_only_its_row_kernel(tmp_path):
    """In a fresh numba cache a small call compiles only the row kernel it runs (no other
    row kernel, no kernel of the phase-buffer module, no parallel wrapper)."""
    code = (
        "import sys, numpy as np, poolkit as pk\n"
        "from poolkit._kernels import avg_rows as k\n"
        "pk.avg_pool2d(np.ones((1, 1, 4, 4), np.float32), 2)\n"
        "print(sorted(n for n in dir(k) if n.startswith('avg_')"
        " and getattr(k, n).signatures), 'poolkit._kernels.avg_pool' in sys.modules)\n"
    )
    env = {"NUMBA_CACHE_DIR": str(tmp_path), "PATH": "", "PYTHONPATH": ":".join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=120, check=True).stdout
    assert out.strip() == "['avg_k2s2'] False"


@pytest.mark.parametrize("mode", _MODES)
def test_short_2x2_rows_fixed_width_blocks(mode):
    """Rows of <= 16 interior 2x2 outputs go through fixed 8/16-wide blocks that write
    past the row (rewritten later) and read past it (inside the array): every width,
    height, padding and ceil_mode, the last rows of each task and of the whole array."""
    rng = np.random.default_rng(77)
    for width in range(2, 36):
        for height in (2, 3, 5, 8):
            x = _special(rng, (2, 3, height, width), np.float32)
            for pad in ((0, 0), (1, 0), (0, 1), (1, 1)):
                for ceil in (False, True):
                    args = ((2, 2), (2, 2), pad, ceil, bool(width % 2))
                    with _mode(*mode):
                        got = _quiet(pk.avg_pool2d, x, *args)
                    assert_same(got, _quiet(ref.avg_pool, x, *args)), (width, height, pad)


def _row_cases():
    """(kernel, stride, padding) along W for the vector row kernels: k2s2 and k3s2 (their
    own kernels), any width at stride 2 and at stride 1, and strides above 2 (the gather
    kernel ``avg_sn``)."""
    return [(2, 2, 0), (2, 2, 1), (3, 2, 0), (3, 2, 1), (1, 2, 0), (4, 2, 2), (5, 2, 1),
            (1, 1, 0), (2, 1, 1), (3, 1, 1), (5, 1, 2),
            (3, 3, 0), (3, 3, 1), (4, 4, 2), (2, 3, 1), (5, 4, 2), (1, 3, 0), (8, 8, 0)]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_channels_last_backward_pixel_and_strided_paths(dtype):
    """A C-contiguous channels-last gradient takes the pixel kernels (deltas once, then
    each input pixel sums its windows' deltas in output order, channels side by side); a
    strided one the moved-axis kernel: both give the reference's bits, 1-D to 3-D, with
    NaN, inf and -0.0 in the gradient, every divisor rule, and into ``out=``."""
    rng = np.random.default_rng(np.dtype(dtype).itemsize + 77)
    cases = [((2, 9, 11, 13), (3, 3), (2, 2), (1, 1), False, True, None),
             ((1, 17, 7, 7), (2, 2), (2, 2), (0, 0), True, True, None),
             ((2, 8, 9, 10), (3, 3), (1, 1), (1, 1), True, False, 3),
             ((3, 5, 12), (5,), (3,), (2,), True, False),
             ((2, 3, 5, 4, 6), (3, 2, 3), (2, 1, 2), (1, 0, 1), False, False, None)]
    for shape, *args in cases:
        nd = len(args[0])
        y_shape = getattr(pk, f"avg_pool{nd}d")(np.zeros(shape, dtype), *args).shape
        g = _special(rng, y_shape, dtype)
        expected = _quiet(ref.avg_pool_backward, g, shape, *args)
        bwd = getattr(pk, f"avg_pool{nd}d_backward")
        cl_shape = np.moveaxis(np.zeros(shape), 1, -1).shape
        gc = np.ascontiguousarray(np.moveaxis(g, 1, -1))
        strided = np.repeat(gc, 2, axis=-1)[..., ::2]
        for grad in (gc, strided):
            got = _quiet(bwd, grad, cl_shape, *args, channels_last=True)
            assert_same(np.ascontiguousarray(np.moveaxis(got, -1, 1)), expected)
        out = np.full(cl_shape, 5, dtype)
        assert _quiet(bwd, gc, cl_shape, *args, channels_last=True, out=out) is out
        assert_same(np.ascontiguousarray(np.moveaxis(out, -1, 1)), expected)


def test_float16_through_the_float32_kernels_keeps_the_float16_bits():
    """float16 averages run on the float32 plan and are rounded once, in the plan itself,
    so the public functions and ``forward_on`` (ONNX) take the same route: the
    reference's bits, with NaN stored as 0x7E00 whatever its sign (the float16 loops'
    ``float_to_half``), overflow to inf, subnormal results, NaN, -0.0 and inf inputs,
    every divisor rule, both layouts."""
    from poolkit._ops import avg_pool

    rng = np.random.default_rng(16)
    cases = [((2, 9, 11, 13), (3, 3), (2, 2), (1, 1), False, True, None),
             ((1, 8, 7, 40), (2, 2), (2, 2), (0, 0), False, True, 1),
             ((3, 5, 6, 9), (5, 3), (3, 1), (2, 1), True, False, 3),
             ((2, 3, 5, 4, 6), (3, 2, 3), (2, 1, 2), (1, 0, 1), True, False, None)]
    for i, (shape, *args) in enumerate(cases):
        nd = len(args[0])
        x = (rng.standard_normal(shape) * (3e4 if i % 2 else 1)).clip(-6e4, 6e4)
        x = x.astype(np.float16)
        flat = x.reshape(-1)
        flat[::9], flat[::13], flat[::17], flat[::19] = -0.0, np.nan, np.inf, 6e-8
        flat[::23] = -np.inf
        want = _quiet(ref.avg_pool, x, *args)
        nan = np.isnan(want)
        assert nan.any()  # the NaN rule is exercised
        for cl in (False, True):
            arr = np.ascontiguousarray(np.moveaxis(x, 1, -1)) if cl else x
            p = avg_pool.AvgPoolParams.parse(nd, *args, cl, 1)
            geom = p.geometry(arr.shape[1:-1] if cl else arr.shape[2:])
            on_geometry = _quiet(avg_pool.forward_on, arr, geom, True, cl,
                                 p.count_include_pad, p.divisor_override or 0)
            for got in (_quiet(getattr(pk, f"avg_pool{nd}d"), arr, *args, channels_last=cl),
                        on_geometry):
                got = np.ascontiguousarray(np.moveaxis(got, -1, 1)) if cl else got
                np.testing.assert_array_equal(np.isnan(got), nan)
                np.testing.assert_array_equal(got[~nan].view(np.uint16),
                                              want[~nan].view(np.uint16))
                assert (got[nan].view(np.uint16) == 0x7E00).all()
    # a float32 average past float16's range rounds to inf silently, as in the loops
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        big = pk.avg_pool2d(np.full((1, 1, 4, 4), 6e4, np.float16), 2, divisor_override=1)
    assert np.isposinf(big).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_kernels_widths_around_the_vector_length(dtype):
    """Output rows of 1 to 3 vectors and a bit (8 float32 / 4 float64 lanes, groups of 4
    vectors): every interior/edge split, the masked loads of the array's last rows, one-
    vector rows grouped four at a time (their window row counts change at the padded
    edges), ceil_mode overhangs, both divisor rules and an override."""
    rng = np.random.default_rng(3 + np.dtype(dtype).itemsize)
    for kw, sw, pw in _row_cases():
        for width in sorted({max(kw - 2 * pw, 1), *range(kw, kw + 12), 31, 33, 63, 66, 71}):
            x = _special(rng, (2, 3, 7, width), dtype)
            for kh, sh, ph in ((1, 1, 0), (2, 2, 1), (3, 2, 1)):
                for ceil, cip, div in ((False, True, None), (True, False, None), (True, True, 3)):
                    args = ((kh, kw), (sh, sw), (ph, pw), ceil, cip, div)
                    got = _quiet(pk.avg_pool2d, x, *args)
                    assert_same(got, _quiet(ref.avg_pool, x, *args)), (kw, sw, pw, width, kh)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_kernels_1d_3d_unbatched_and_integers(dtype):
    """1-D and 3-D pooling, unbatched inputs and integer inputs (pooled in float64) through
    the row kernels, against the reference."""
    rng = np.random.default_rng(11)
    for kw, sw, pw in _row_cases():
        for width in (kw + 1, 9, 17, 40):
            x1 = _special(rng, (2, 3, width), dtype)
            for ceil, cip in ((False, True), (True, False)):
                args = ((kw,), (sw,), (pw,), ceil, cip)
                assert_same(_quiet(pk.avg_pool1d, x1, *args), _quiet(ref.avg_pool, x1, *args))
                assert_same(_quiet(pk.avg_pool1d, x1[0], *args),
                            _quiet(ref.avg_pool, x1[:1], *args)[0])
            x3 = _special(rng, (1, 2, 5, 4, width), dtype)
            args = ((3, 2, kw), (2, 1, sw), (1, 1, pw), True, False, None)
            assert_same(_quiet(pk.avg_pool3d, x3, *args), _quiet(ref.avg_pool, x3, *args))
    xi = rng.integers(-1000, 1000, (2, 3, 9, 21)).astype(np.int32)
    got = pk.avg_pool2d(xi, 3, 2, 1)
    assert got.dtype == np.float64
    assert_same(got, ref.avg_pool(xi, (3, 3), (2, 2), (1, 1)))


@pytest.mark.parametrize("stream", [0, 1])
@pytest.mark.parametrize("kw, sw, pw", _row_cases())
def test_row_kernels_chunks_write_only_their_rows(kw, sw, pw, stream):
    """Any range of output rows (a thread's chunk) writes exactly its rows: a vector that
    would spill past the range is stored masked, and the chunks together give the whole
    call's bits."""
    from poolkit._kernels import avg_rows
    from poolkit._ops import avg_pool

    rng = np.random.default_rng(kw * 10 + sw)
    x = _special(rng, (2, 2, 5, 13), np.float32)
    args = ((2, kw), (2, sw), (1, pw), True, False, None)
    expected = _quiet(ref.avg_pool, x, *args)
    p = avg_pool.AvgPoolParams.parse(2, *args, False, 1)
    geom = p.geometry(x.shape[2:])
    name, rows, geo, divs, n_rows = avg_pool._plan(geom, x.shape, x.dtype, True, False,
                                                   False, 0, False).rows
    kernel = getattr(avg_rows, name)
    out_w = expected.shape[-1]
    for cut in range(n_rows + 1):
        out = np.full(expected.shape, np.nan, np.float32).reshape(-1)
        with np.errstate(all="ignore"):
            kernel(x.reshape(-1), out, divs, rows, geo, stream, 0, cut)
        assert np.isnan(out[cut * out_w:]).all()
        with np.errstate(all="ignore"):
            kernel(x.reshape(-1), out, divs, rows, geo, stream, cut, n_rows)
        assert_same(out.reshape(expected.shape), expected)


def _cl_kernel_of(x_cl, nd, args):
    """Name of the channels-last kernel the plan of ``avg_pool{nd}d(x_cl, *args)`` runs."""
    from poolkit._ops import avg_pool

    p = avg_pool.AvgPoolParams.parse(nd, *args, *(None,) * (6 - len(args)), True, 1)
    geom = p.geometry(x_cl.shape[-nd - 1:-1])
    return avg_pool._plan(geom, x_cl.shape, x_cl.dtype, x_cl.ndim == nd + 2, True,
                          p.count_include_pad, p.divisor_override, False).cl[0]


def _tiny_input(rng, shape, dtype):
    """Special values plus sums in the subnormal range (where a reciprocal would round
    differently from a division by anything but a power of two)."""
    x = _special(rng, shape, dtype)
    tiny = np.finfo(dtype).smallest_subnormal
    pick = rng.random(shape)
    x[pick < 0.3] = (rng.integers(-40, 40, shape) * tiny)[pick < 0.3]
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", _MODES)
def test_channels_last_power_of_two_divisors_multiply(dtype, mode):
    """Every divisor a power of two (k=2 windows, 1x1, overrides 1, 2, -8, 16): the
    reciprocal kernel, bit for bit against the reference's division, including
    subnormal quotients, overflow, NaN, +-inf and -0.0; mixed divisors take the dividing
    kernel. Channel counts around the vector width and its 8-vector blocks."""
    rng = np.random.default_rng(21 + np.dtype(dtype).itemsize)
    cases = [  # kernel, stride, padding, ceil_mode, count_include_pad, divisor, times
        ((2, 2), (2, 2), (0, 0), False, True, None, True),
        ((2, 2), (1, 2), (1, 0), False, True, None, True),  # padding counts: all 4
        ((2, 2), (2, 2), (1, 1), True, False, None, True),  # 1, 2 and 4: powers of two
        ((1, 1), (2, 2), (0, 0), False, True, None, True),
        ((3, 3), (2, 2), (1, 1), False, True, 1, True),
        ((3, 2), (2, 2), (1, 1), True, False, -8, True),
        ((2, 4), (2, 3), (1, 2), True, True, 16, True),
        ((2, 2), (2, 2), (1, 1), True, False, 3, False),
        ((3, 3), (2, 2), (1, 1), False, True, None, False),  # 9
    ]
    for chan in (1, 7, 8, 9, 17, 33, 65):
        x = _tiny_input(rng, (2, chan, 7, 9), dtype)
        arr, _ = _layout(x, "cl", 2)
        for kernel, stride, pad, ceil, cip, div, times in cases:
            args = (kernel, stride, pad, ceil, cip, div)
            expected = _quiet(ref.avg_pool, x, *args)
            if chan == 7:
                name = _cl_kernel_of(arr, 2, args)
                assert name == ("avg_cl_times" if times else "avg_cl"), args
            for layout in ("cl", "cl strided"):
                arr, _ = _layout(x, layout, 2)
                with _mode(*mode):
                    got = _quiet(pk.avg_pool2d, arr, *args, channels_last=True)
                assert_same(_to_first(got, True, 2), expected), (chan, args, layout)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_channels_last_reciprocal_kernel_1d_3d_unbatched(dtype):
    """1-D and 3-D windows of power-of-two sizes, unbatched, through the reciprocal
    kernel."""
    rng = np.random.default_rng(5)
    x1 = _tiny_input(rng, (2, 9, 11), dtype)
    args1 = ((4,), (3,), (2,), False, True)
    assert _cl_kernel_of(np.moveaxis(x1, 1, -1), 1, args1) == "avg_cl_times"
    got = _quiet(pk.avg_pool1d, np.ascontiguousarray(np.moveaxis(x1, 1, -1)), *args1,
                 channels_last=True)
    assert_same(_to_first(got, True, 1), _quiet(ref.avg_pool, x1, *args1))
    x3 = _tiny_input(rng, (1, 17, 4, 5, 6), dtype)
    args3 = ((2, 2, 2), (2, 1, 2), (1, 0, 1), False, True, None)
    arr = np.ascontiguousarray(np.moveaxis(x3[0], 0, -1))
    assert _cl_kernel_of(arr, 3, args3) == "avg_cl_times"
    got = _quiet(pk.avg_pool3d, arr, *args3, channels_last=True)
    assert_same(np.moveaxis(got, -1, 0), _quiet(ref.avg_pool, x3, *args3)[0])
