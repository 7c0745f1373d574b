"""The channels-last pixel kernels (``_kernels/max_cl.py``) against the loop reference.

Bit for bit, values and int64 plane indices: ties, NaN with distinct payloads, -0.0
next to +0.0, +-inf, channel counts around the vector length and the 4-vector blocks
(1..70), padding, ceil_mode, dilation, 1-D/2-D/3-D, serial and parallel drivers, with
and without streaming (non-temporal stores, as on calls larger than the cache),
float32 and float64, through the plan's runner and through the public API.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import poolkit as pk
from _family import forced_serial_work, forced_streaming
from poolkit import _engine
from poolkit import _reference as ref
from poolkit._ops import max_select
from test_max_rows import _bits, _special


def _runner(x, kernel, stride, padding, dilation, ceil_mode, want, serial, stream=False):
    """Values (and indices) from the plan's runner, serial or parallel whatever the size;
    ``stream``: non-temporal stores into cache-line-aligned outputs."""
    nd = len(kernel)
    lead = (1,) * (3 - nd)
    out_sp = tuple(
        ref.window_count(n, k, s, p, p, d, ceil_mode)
        for n, k, s, p, d in zip(x.shape[1:-1], kernel, stride, padding, dilation)
    )
    in5 = (x.shape[0],) + lead + x.shape[1:]
    out5 = (x.shape[0],) + lead + out_sp + (x.shape[-1],)
    kp = _engine.kernel_table(kernel, stride, padding, dilation)
    run = max_select.forward_runner(
        in5, out5, x.dtype, kp, x.dtype.type(-np.inf), want, True, math.prod(out5),
        math.prod(out5[:3])
    )
    assert isinstance(run, max_select._Pixels)
    out = _engine.new_array(out5, x.dtype, aligned=stream)
    out.fill(7.0)
    idx = np.zeros((1,) * 5, np.int64)
    if want:
        idx = _engine.new_array(out5, np.int64, aligned=stream)
        idx.fill(7)
    with forced_serial_work(serial):
        run(x.reshape(in5), out, idx, stream)
    shape = (x.shape[0],) + out_sp + (x.shape[-1],)
    return out.reshape(shape), idx.reshape(shape) if want else None


@st.composite
def _case(draw):
    nd = draw(st.sampled_from([1, 2, 2, 3]))
    dtype = draw(st.sampled_from([np.float32, np.float32, np.float64]))
    kernel, stride, padding, dilation, size = [], [], [], [], []
    for _ in range(nd):
        k = draw(st.integers(1, 4))
        s = draw(st.integers(1, 3))
        d = draw(st.sampled_from([1, 1, 2]))
        p = draw(st.integers(0, k // 2))
        lo = max(1, d * (k - 1) + 1 - 2 * p)
        size.append(draw(st.integers(lo, lo + (6 if nd == 3 else 9))))
        kernel.append(k), stride.append(s), padding.append(p), dilation.append(d)
    chan = draw(st.integers(1, 70))
    batch = draw(st.integers(1, 2))
    return ((batch, *size, chan), tuple(kernel), tuple(stride), tuple(padding),
            tuple(dilation), draw(st.booleans()), dtype, draw(st.integers(0, 2**32 - 1)))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_case())
def test_pixel_kernels_match_the_reference(case):
    shape, kernel, stride, padding, dilation, ceil_mode, dtype, seed = case
    x = _special(np.random.default_rng(seed), shape, dtype)
    ry, ri = ref.max_pool(x, kernel, stride, padding, dilation, ceil_mode, True)
    for serial in (True, False):
        for stream in (False, True):
            y, i = _runner(x, kernel, stride, padding, dilation, ceil_mode, True, serial, stream)
            np.testing.assert_array_equal(_bits(y), _bits(ry))
            np.testing.assert_array_equal(i, ri)
            y, _ = _runner(x, kernel, stride, padding, dilation, ceil_mode, False, serial,
                           stream)
            np.testing.assert_array_equal(_bits(y), _bits(ry))
    for streaming in (False, True):
        with forced_streaming(streaming):
            y, i = pk.max_pool(x, kernel, stride, padding, dilation, ceil_mode, True,
                               channels_last=True)
        np.testing.assert_array_equal(_bits(y), _bits(ry))
        np.testing.assert_array_equal(i, ri)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_channel_count_around_the_blocks(dtype):
    rng = np.random.default_rng(0)
    for chan in range(1, 71):
        x = _special(rng, (1, 5, 6, chan), dtype)
        for k, s, p in [(2, 2, 0), (3, 2, 1)]:
            args = ((k, k), (s, s), (p, p), (1, 1), False)
            ry, ri = ref.max_pool(x, *args, True)
            for serial in (True, False):
                y, i = _runner(x, *args, True, serial)
                np.testing.assert_array_equal(_bits(y), _bits(ry))
                np.testing.assert_array_equal(i, ri)
                y, _ = _runner(x, *args, False, serial)
                np.testing.assert_array_equal(_bits(y), _bits(ry))


def test_non_contiguous_views_are_copied_for_the_pixel_kernels():
    rng = np.random.default_rng(1)
    base = _special(rng, (2, 9, 11, 10), np.float32)
    for x in [base[:, :, :, ::2], base[:, ::2], base[..., ::-1]]:
        ry, ri = ref.max_pool(x, (3, 3), (2, 2), (1, 1), (1, 1), False, True)
        y, i = pk.max_pool2d(x, 3, 2, 1, return_indices=True, channels_last=True)
        np.testing.assert_array_equal(_bits(y), _bits(ry))
        np.testing.assert_array_equal(i, ri)


@pytest.mark.parametrize(
    "dtype", ["float16", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
              "uint64"])
def test_other_dtypes_take_the_pixel_kernels(dtype):
    assert max_select.pixel_kernel_ok((1, 1, 4, 4, 3), (1, 1, 2, 2, 3), True)
    rng = np.random.default_rng(2)
    if np.dtype(dtype).kind == "f":
        pool = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0], dtype=dtype)
    else:
        info = np.iinfo(dtype)
        pool = np.array([info.min, info.max, 0, 1, info.min + 1, info.max - 1], dtype=dtype)
    for chan in (1, 5, 8, 13, 37):
        x = rng.choice(pool, size=(2, 7, 9, chan))
        for k, s, p, d, ceil in [(2, 2, 0, 1, False), (3, 2, 1, 1, True), (3, 1, 1, 2, False)]:
            args = ((k, k), (s, s), (p, p), (d, d), ceil)
            ry, ri = ref.max_pool(x, *args, True)
            y, i = pk.max_pool(x, *args, return_indices=True, channels_last=True)
            np.testing.assert_array_equal(_bits(y), _bits(ry))
            np.testing.assert_array_equal(i, ri)
            y = pk.max_pool(x, *args, channels_last=True)
            np.testing.assert_array_equal(_bits(y), _bits(ry))
