"""The gradient router and the channels-last plane mean (``_kernels/route.py``) against
``poolkit._reference``, bit for bit: channels-last and channels-first max backward with
ties, duplicated and empty (-1) indices, ``out=`` holding garbage, serial and parallel
splits, both ways of zeroing ``dx`` (whole blocks first, or the watermark), a property
test of arbitrary indices and real backward passes against PyTorch's kernel; the
channels-last global average in every memory order, odd channel counts around the vector
width, strided views, float16/32/64, NaN, inf and signed zeros."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import poolkit as pk
from _family import assert_same, forced_serial_work, random_input
from poolkit import _engine
from poolkit import _reference as ref
from poolkit._ops import argmax

CHANNELS = (1, 7, 8, 9, 15, 16, 17, 33)
FLOATS = (np.float16, np.float32, np.float64)


@pytest.fixture(params=["serial", "parallel"])
def split(request, monkeypatch):
    """Run the kernels on this thread, or through the parallel split (threshold 0)."""
    if request.param == "parallel":
        monkeypatch.setattr(_engine, "SERIAL_WORK", 0)
    return request.param


@pytest.fixture(params=["zero first", "watermark"])
def zeroing(request, monkeypatch):
    """Both ways the router zeroes dx: each task's block whole before its adds, or row by
    row just ahead of them (every block counts as too large)."""
    if request.param == "watermark":
        monkeypatch.setattr(argmax, "ZERO_FIRST_BYTES", -1)
    return request.param


def _indices(rng, shape_out, plane, duplicates: bool):
    """Plane indices for outputs of ``shape_out``: arbitrary, in any order, with -1
    (empty windows) sprinkled in; ``duplicates`` draws them from a few values so that
    many outputs of one plane meet at one element."""
    high = min(plane, 3) if duplicates else plane
    idx = rng.integers(0, high, size=shape_out)
    idx[rng.random(shape_out) < 0.1] = -1
    return idx.astype(np.int64)


def _grad(rng, shape, dtype):
    g = rng.standard_normal(shape).astype(dtype)
    g.flat[:: 7] = -0.0  # signed zeros reaching dx
    return g


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_channels_last_backward_matches_reference(channels, dtype, split, zeroing):
    rng = np.random.default_rng(channels * 31 + np.dtype(dtype).itemsize)
    for n_batch, (h, w), duplicates in (((2, (5, 7), True)), ((1, (6, 4), False)),
                                        ((3, (3, 3), True))):
        shape = (n_batch, h, w, channels)
        out_shape = (n_batch, 3, 2, channels)
        idx = _indices(rng, out_shape, h * w, duplicates)
        g = _grad(rng, out_shape, dtype)
        expected = ref.max_pool_backward(g, idx, shape, 2, channels_last=True)
        assert_same(pk.max_pool2d_backward(g, idx, shape, channels_last=True), expected)
        garbage = np.full(shape, np.nan, dtype)
        got = pk.max_pool2d_backward(g, idx, shape, channels_last=True, out=garbage)
        assert got is garbage
        assert_same(got, expected)
        # the same gradient channels first: the NCHW kernel gives the same bits
        to_first = (0, 3, 1, 2)
        got_cf = pk.max_pool2d_backward(np.ascontiguousarray(g.transpose(to_first)),
                                        np.ascontiguousarray(idx.transpose(to_first)),
                                        (n_batch, channels, h, w))
        assert_same(got_cf, np.ascontiguousarray(expected.transpose(to_first)))


@pytest.mark.parametrize("dtype", FLOATS)
def test_channels_first_backward_matches_reference(dtype, split, zeroing):
    rng = np.random.default_rng(5)
    for shape, out_shape, duplicates in (((2, 3, 9, 11), (2, 3, 4, 5), True),
                                         ((1, 2, 70, 70), (1, 2, 40, 40), False),
                                         ((3, 1, 2, 2), (3, 1, 3, 3), True)):
        plane = shape[2] * shape[3]
        idx = _indices(rng, out_shape, plane, duplicates)
        g = _grad(rng, out_shape, dtype)
        expected = ref.max_pool_backward(g, idx, shape, 2)
        assert_same(pk.max_pool2d_backward(g, idx, shape), expected)
        garbage = np.full(shape, 7, dtype)
        assert_same(pk.max_pool2d_backward(g, idx, shape, out=garbage), expected)


def test_large_plane_crosses_the_zeroing_watermark(split, zeroing):
    """Indices jumping back and forth over a plane much longer than a zeroing step: every
    element is zeroed before its first add and none after it (channels first and last)."""
    rng = np.random.default_rng(9)
    plane = 9000
    order = rng.permutation(plane)[:3000]
    idx = np.concatenate([order, order[::-1], [plane - 1, 0, -1]]).astype(np.int64)
    for dtype in (np.float32, np.float16):
        g = _grad(rng, idx.shape, dtype)
        expected = ref.max_pool_backward(g[None, None], idx[None, None], (1, 1, plane), 1)
        assert_same(pk.max_pool1d_backward(g[None, None], idx[None, None], (1, 1, plane),
                                           out=np.ones((1, 1, plane), dtype)), expected)
        cl = (1, plane, 3)
        g3 = np.stack([g, g[::-1], g], axis=-1)[None]
        i3 = np.stack([idx, idx[::-1], np.roll(idx, 5)], axis=-1)[None]
        expected = ref.max_pool_backward(g3, i3, cl, 1, channels_last=True)
        assert_same(pk.max_pool1d_backward(g3, i3, cl, channels_last=True,
                                           out=np.ones(cl, dtype)), expected)


def test_channels_last_backward_of_real_pooling_matches_reference(split, zeroing):
    """Overlapping windows of a real forward pass, strided views in, unbatched too."""
    rng = np.random.default_rng(3)
    x = random_input(rng, (2, 11, 9, 17), np.float32, ties=True)[:, ::-1, :, ::2]
    y, idx = pk.max_pool2d(x, 3, 2, 1, return_indices=True, channels_last=True)
    g = _grad(rng, y.shape, np.float32)
    g_view = np.zeros(g.shape + (2,), np.float32)[..., 0]
    g_view[...] = g
    expected = ref.max_pool_backward(g, idx, x.shape, 2, channels_last=True)
    assert_same(pk.max_pool2d_backward(g_view, idx, x.shape, channels_last=True), expected)
    assert_same(pk.max_pool2d_backward(g[1], idx[1], x.shape[1:], channels_last=True),
                expected[1])


@pytest.mark.parametrize("channels_last", [False, True])
def test_bad_indices_are_rejected(channels_last, split, zeroing):
    shape = (2, 4, 5, 3) if channels_last else (2, 3, 4, 5)
    out_shape = (2, 2, 2, 3) if channels_last else (2, 3, 2, 2)
    g = np.ones(out_shape, np.float32)
    for bad in (20, -2, 1 << 40):
        idx = np.zeros(out_shape, np.int64)
        idx[1, 1, 0, -1] = bad
        with pytest.raises(ValueError, match=r"indices must lie in \[0, 20\)"):
            pk.max_pool2d_backward(g, idx, shape, channels_last=channels_last)
    idx = np.full(out_shape, -1, np.int64)
    assert not pk.max_pool2d_backward(g, idx, shape, channels_last=channels_last).any()


@st.composite
def _routing_case(draw):
    """A max backward of arbitrary plane indices: either layout, 1-D or 2-D, duplicates
    and -1 mixed in, any float dtype, the zeroing mode and the split."""
    nd = draw(st.integers(1, 2))
    spatial = tuple(draw(st.lists(st.integers(1, 13), min_size=nd, max_size=nd)))
    pooled = tuple(draw(st.lists(st.integers(1, 7), min_size=nd, max_size=nd)))
    lead = (draw(st.integers(1, 3)), draw(st.integers(1, 10)))
    return dict(
        nd=nd, spatial=spatial, pooled=pooled, lead=lead,
        channels_last=draw(st.booleans()), dtype=draw(st.sampled_from(FLOATS)),
        zero_first=draw(st.booleans()), serial=draw(st.booleans()),
        duplicates=draw(st.booleans()), seed=draw(st.integers(0, 2**32 - 1)),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_routing_case())
def test_routing_property_matches_reference(case):
    """Any plane indices, any layout, both zeroing modes, serial and split: the router
    adds what the loop reference adds, in the same order (same bits), into garbage."""
    rng = np.random.default_rng(case["seed"])
    n, c = case["lead"]
    nd, cl = case["nd"], case["channels_last"]
    shape = (n, *case["spatial"], c) if cl else (n, c, *case["spatial"])
    out_shape = (n, *case["pooled"], c) if cl else (n, c, *case["pooled"])
    idx = _indices(rng, out_shape, int(np.prod(case["spatial"])), case["duplicates"])
    g = _grad(rng, out_shape, case["dtype"])
    backward = pk.max_pool1d_backward if nd == 1 else pk.max_pool2d_backward
    expected = ref.max_pool_backward(g, idx, shape, nd, channels_last=cl)
    old = argmax.ZERO_FIRST_BYTES
    argmax.ZERO_FIRST_BYTES = old if case["zero_first"] else -1
    try:
        with forced_serial_work(case["serial"]):
            got = backward(g, idx, shape, channels_last=cl,
                           out=np.full(shape, np.nan, case["dtype"]))
    finally:
        argmax.ZERO_FIRST_BYTES = old
    assert_same(got, expected)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("geometry", [(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 1, 0)])
def test_real_backward_matches_torch_bits(dtype, geometry, zeroing, split):
    """Backward of real forward passes against PyTorch's own kernel, bit for bit, both
    layouts: ties, NaN, +-inf and signed zeros in x and in the gradient, odd widths,
    strided gradient views, overlapping and disjoint windows."""
    import torch

    k, s, p = geometry
    rng = np.random.default_rng(k * 10 + s + np.dtype(dtype).itemsize)
    bwd = torch.ops.aten.max_pool2d_with_indices_backward
    for shape in ((2, 5, 9, 13), (1, 8, 16, 16), (3, 17, 7, 1), (1, 3, 1, 6)):
        if (shape[2] + 2 * p < k) or (shape[3] + 2 * p < k):
            continue
        x = _specials(rng, shape, dtype)
        y, idx = pk.max_pool2d(x, k, s, p, return_indices=True)
        g_full = _specials(rng, y.shape[:-1] + (2 * y.shape[-1],), dtype)
        g = g_full[..., ::2]  # a strided view
        tx, tg = torch.from_numpy(x), torch.from_numpy(np.ascontiguousarray(g))
        want = bwd(tg, tx, [k, k], [s, s], [p, p], [1, 1], False,
                   torch.from_numpy(idx)).numpy()
        assert_same(pk.max_pool2d_backward(g, idx, shape), want)
        xc = np.ascontiguousarray(np.moveaxis(x, 1, -1))
        _, idx_c = pk.max_pool2d(xc, k, s, p, return_indices=True, channels_last=True)
        got = pk.max_pool2d_backward(np.moveaxis(g, 1, -1), idx_c, xc.shape,
                                     channels_last=True, out=np.full(xc.shape, 5, dtype))
        assert_same(np.moveaxis(got, -1, 1), want)


def _specials(rng, shape, dtype):
    x = random_input(rng, shape, dtype, ties=True, nan=True)
    flat = x.reshape(-1)
    picks = rng.integers(0, flat.size, size=max(1, flat.size // 20))
    flat[picks] = rng.choice(np.array([np.inf, -np.inf, -0.0, 0.0], dtype), size=picks.size)
    return x


@pytest.mark.parametrize("channels", CHANNELS + (300,))
@pytest.mark.parametrize("dtype", FLOATS)
def test_channels_last_global_average_matches_reference(channels, dtype, split):
    rng = np.random.default_rng(channels + 100 * np.dtype(dtype).itemsize)
    for spatial in ((7, 7), (1, 1), (5, 40), (17,), (2, 3, 4)):
        x = _specials(rng, (2, channels) + spatial, dtype)
        expected = ref.adaptive_avg_pool(x, (1,) * len(spatial))
        nhwc = np.ascontiguousarray(np.moveaxis(x, 1, -1))
        got = pk.global_avg_pool(nhwc, channels_last=True)
        assert_same(np.moveaxis(got, -1, 1), expected)
        # an NHWC array declared channels first (a channels_last tensor's view)
        assert_same(pk.global_avg_pool(np.moveaxis(nhwc, -1, 1)), expected)


@pytest.mark.parametrize("dtype", FLOATS)
def test_global_average_strided_views_match_reference(dtype, split):
    rng = np.random.default_rng(11)
    x = _specials(rng, (3, 18, 6, 10), dtype)
    for view in (x[:, ::2], x[:, :, ::-1, ::3], x[::2, 1:]):
        expected = ref.adaptive_avg_pool(np.ascontiguousarray(view), (1, 1))
        assert_same(pk.global_avg_pool(view), expected)
        nhwc = np.moveaxis(view, 1, -1)  # strided channels-last view
        assert_same(np.moveaxis(pk.global_avg_pool(nhwc, channels_last=True), -1, 1),
                    expected)
        assert_same(pk.adaptive_avg_pool2d(nhwc, 1, channels_last=True),
                    np.moveaxis(expected, 1, -1))


def test_channels_last_global_average_is_order_not_row_major():
    """The channels-last kernel keeps the 16-lane order per channel (where row-major
    order would round differently), in both of its walks (short and long rows)."""
    for channels in (3, 400):
        x = np.zeros((1, 17, channels), np.float32)
        x[0, 0] = 1.0
        x[0, 1:16] = 2.0**-24
        got = pk.global_avg_pool(x, channels_last=True, keepdims=False)[0]
        assert (got == ref.plane_mean(x[0, :, 0])).all()
        assert (got != np.float32(1.0 / 17)).all()


@pytest.mark.parametrize("threads", [2, 3, 4])
@pytest.mark.parametrize("dtype", FLOATS)
def test_channels_last_split_of_few_items_matches_reference(threads, dtype, zeroing,
                                                            monkeypatch):
    """Fewer batch items than tasks: each item's rows are split between tasks, each of
    which reads all of the item's outputs and adds those in its rows (the one-check path
    for an output wholly inside, the per-channel checks for one that straddles); every
    split adds in output order, so the bits are the reference's."""
    monkeypatch.setattr(_engine, "SERIAL_WORK", 0)
    monkeypatch.setattr(argmax, "get_num_threads", lambda: threads)
    assert argmax._row_parts(1, 10**6) == threads
    rng = np.random.default_rng(threads * 7 + np.dtype(dtype).itemsize)
    for n_batch, channels, duplicates in ((1, 64, False), (1, 33, True), (2, 100, False),
                                          (1, 8, True), (3, 48, False)):
        shape = (n_batch, 9, 7, channels)
        out_shape = (n_batch, 4, 5, channels)
        idx = _indices(rng, out_shape, 63, duplicates)
        g = _grad(rng, out_shape, dtype)
        expected = ref.max_pool_backward(g, idx, shape, 2, channels_last=True)
        got = pk.max_pool2d_backward(g, idx, shape, channels_last=True,
                                     out=np.full(shape, np.nan, dtype))
        assert_same(got, expected)
