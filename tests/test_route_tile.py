"""The 2x2 tile routing of the channels-last max backward (``_kernels/route_tile.py``)
against the loop reference and against the scatter it stands in for, bit for bit.

Tile-shaped indices (a k == s == 2 forward, even and odd sizes, unbatched, channel
counts around the vector width) take the tile kernel; every other index set on the
same shapes (overlapping windows, arbitrary and duplicated indices, -1, indices outside
the plane or beyond int32) falls back to the scatter, late or early, serial and split,
into ``out=`` holding garbage, with the scatter's errors.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import poolkit as pk
from _family import assert_same, forced_serial_work, random_input
from poolkit import _reference as ref
from poolkit._ops import argmax

DTYPES = (np.float32, np.float64)


_KERNELS = ("tile1_pixels_range", "tile2_pixels_range", "tile3_pixels_range",
            "k3s2_pixels_range")
_TILES = _KERNELS[:3]


class _Spy:
    """Replaces ``argmax._tile``: runs the real kernels (once per part of a split call)
    and keeps each call's ``fail`` flag; :meth:`results` says, per call of the given
    kernels, whether the kernel routed the whole gradient."""

    def __init__(self, real):
        """``real``: the kernel module (``argmax._tile``) whose kernels it runs."""
        self.flags: dict[int, tuple[str, np.ndarray]] = {}
        for name in _KERNELS:
            setattr(self, name, self._spying(name, getattr(real, name)))

    def _spying(self, name, kernel):
        def run(grad, idx, dx, fail, t0, t1):
            self.flags[id(fail)] = (name, fail)
            kernel(grad, idx, dx, fail, t0, t1)
        return run

    def results(self, names=_TILES) -> list[bool]:
        return [not fail[0] for name, fail in self.flags.values() if name in names]


@contextmanager
def _spying():
    """A :class:`_Spy` in place of ``argmax._tile`` for the block (a fixture cannot serve
    the hypothesis tests: it would not be reset between examples)."""
    real = argmax._tile
    spy = _Spy(real)
    argmax._tile = spy
    try:
        yield spy
    finally:
        argmax._tile = real


@pytest.fixture
def spy():
    with _spying() as s:
        yield s


@pytest.fixture(params=["probe", "kernel"])
def check(request, monkeypatch):
    """Who turns non-tile indices away: the NumPy probe of one output pixel, before the
    tile kernel is compiled or run, or (probe passed by force) the kernel's own check."""
    if request.param == "kernel":
        monkeypatch.setattr(argmax, "_tile_shaped_probe", lambda idx, views: True)
    return request.param


def _turned_away(spy, check) -> bool:
    """The tile kernel did not route the call: it failed, or the probe skipped it."""
    tried = spy.results()
    return tried[-1] is False if check == "kernel" else True not in tried


def _specials(rng, shape, dtype):
    g = random_input(rng, shape, dtype, nan=True)
    flat = g.reshape(-1)
    picks = rng.integers(0, flat.size, size=max(1, flat.size // 5))
    flat[picks] = rng.choice(np.array([np.inf, -np.inf, -0.0, 0.0], dtype), size=picks.size)
    return g


def _expected(g, idx, shape):
    with np.errstate(invalid="ignore"):  # inf + -inf where duplicates meet
        return ref.max_pool_backward(g, idx, shape, 2, channels_last=True)


def _backward(g, idx, shape, out_fill=None):
    out = None if out_fill is None else np.full(shape, out_fill, g.dtype)
    got = pk.max_pool2d_backward(g, idx, shape, channels_last=True, out=out)
    if out is not None:
        assert got is out
    return got


@st.composite
def _tile_case(draw):
    nd = draw(st.integers(1, 3))
    pooled = draw(st.lists(st.integers(1, 6 if nd < 3 else 3), min_size=nd, max_size=nd))
    return dict(
        nd=nd, batch=draw(st.sampled_from([None, 1, 2, 3])),
        size=tuple(2 * o + draw(st.integers(0, 1)) for o in pooled),
        channels=draw(st.sampled_from([1, 3, 4, 7, 8, 9, 16, 17, 33])),
        dtype=draw(st.sampled_from(DTYPES)), serial=draw(st.booleans()),
        garbage=draw(st.booleans()), seed=draw(st.integers(0, 2**32 - 1)),
    )


def _case_arrays(rng, case):
    """``(shape, x, out)`` of a hypothesis case: the input's shape (batched or not,
    channels last), an input with ties and NaN, and ``out`` full of NaN or None."""
    lead = () if case["batch"] is None else (case["batch"],)
    shape = lead + case["size"] + (case["channels"],)
    x = random_input(rng, shape, case["dtype"], ties=True, nan=True)
    out = np.full(shape, np.nan, case["dtype"]) if case["garbage"] else None
    return shape, x, out


_POOL = {1: (pk.max_pool1d, pk.max_pool1d_backward), 2: (pk.max_pool2d, pk.max_pool2d_backward),
         3: (pk.max_pool3d, pk.max_pool3d_backward)}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_tile_case())
def test_tile_shaped_indices_take_the_tile_kernel(case):
    """A k2s2 forward's indices (1-D, 2-D and 3-D), ties and NaN in x, specials in the
    gradient: routed by the tile kernel, the reference's bits, every element of ``out``
    written."""
    rng = np.random.default_rng(case["seed"])
    nd = case["nd"]
    forward, backward = _POOL[nd]
    shape, x, out = _case_arrays(rng, case)
    _, idx = forward(x, 2, 2, return_indices=True, channels_last=True)
    g = _specials(rng, idx.shape, case["dtype"])
    with _spying() as spy, forced_serial_work(case["serial"]):
        got = backward(g, idx, shape, channels_last=True, out=out)
    assert spy.results() == [True]
    if out is not None:
        assert got is out
    with np.errstate(invalid="ignore"):
        want = ref.max_pool_backward(g, idx, shape, nd, channels_last=True)
    assert_same(got, want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("serial", [True, False])
def test_other_indices_on_tile_shapes_fall_back_to_the_scatter(spy, check, dtype, serial):
    """Overlapping windows (k3s2p1 on even sizes: the same output shape as k2s2), and
    arbitrary plane indices with duplicates and -1: the tile kernel gives up, the
    scatter routes them, the reference's bits into garbage."""
    rng = np.random.default_rng(7)
    for shape in ((2, 14, 14, 16), (1, 8, 10, 3), (3, 6, 7, 9)):
        x = random_input(rng, shape, dtype, ties=True)
        _, overlapping = pk.max_pool2d(x, 3, 2, 1, return_indices=True, channels_last=True)
        arbitrary = rng.integers(-1, shape[1] * shape[2], size=overlapping.shape)
        for idx in (overlapping, arbitrary):
            g = _specials(rng, idx.shape, dtype)
            with forced_serial_work(serial):
                got = _backward(g, idx, shape, 7.0)
            assert _turned_away(spy, check)
            assert_same(got, _expected(g, idx, shape))


@pytest.mark.parametrize("serial", [True, False])
def test_one_stray_index_at_the_very_end_falls_back(spy, serial):
    """A tile that fails on the last pixel's last channel, after every other tile was
    written: the scatter still overwrites all of ``out``."""
    rng = np.random.default_rng(1)
    shape = (2, 9, 8, 11)
    x = random_input(rng, shape, np.float32)
    _, idx = pk.max_pool2d(x, 2, 2, return_indices=True, channels_last=True)
    idx[-1, -1, -1, -1] = 0  # a pixel of the first tile, far from its own
    g = _specials(rng, idx.shape, np.float32)
    with forced_serial_work(serial):
        got = _backward(g, idx, shape, np.nan)
    assert spy.results()[-1] is False
    assert_same(got, _expected(g, idx, shape))


@pytest.mark.parametrize("bad", [8 * 10, -2, (1 << 32) + 3, 1 << 40])
def test_bad_indices_are_rejected_as_the_scatter_rejects_them(spy, bad):
    """Outside the plane, below -1, or equal to a tile pixel in their low 32 bits: the
    tile kernel does not take them for a pixel, the scatter raises its error."""
    shape = (2, 8, 10, 5)
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    _, idx = pk.max_pool2d(x, 2, 2, return_indices=True, channels_last=True)
    idx[1, 3, 4, 2] = bad if bad != (1 << 32) + 3 else (1 << 32) + int(idx[1, 3, 4, 2])
    g = np.ones(idx.shape, np.float32)
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 80\)"):
        pk.max_pool2d_backward(g, idx, shape, channels_last=True)
    assert spy.results() == [False]


def test_shapes_that_are_not_tiles_do_not_try(spy):
    """A third extra row or column, channels first, float16: no tile."""
    rng = np.random.default_rng(4)
    cases = [((1, 7, 4, 3), (2, 2)), ((1, 4, 7, 3), (2, 2))]
    for shape, (oh, ow) in cases:
        idx = np.zeros((1, oh, ow, shape[-1]), np.int64)
        g = np.ones(idx.shape, np.float32)
        pk.max_pool2d_backward(g, idx, shape, channels_last=True)
    x = random_input(rng, (2, 3, 8, 8), np.float32)
    y, idx = pk.max_pool2d(x, 2, 2, return_indices=True)
    pk.max_pool2d_backward(np.ones_like(y), idx, x.shape)
    xh = np.ascontiguousarray(np.moveaxis(x, 1, -1)).astype(np.float16)
    y, idx = pk.max_pool2d(xh, 2, 2, return_indices=True, channels_last=True)
    pk.max_pool2d_backward(np.ones_like(y), idx, xh.shape, channels_last=True)
    x1 = random_input(rng, (2, 8, 3), np.float32)
    y, idx = pk.max_pool1d(x1, 2, 1, return_indices=True, channels_last=True)
    pk.max_pool1d_backward(np.ones_like(y), idx, x1.shape, channels_last=True)
    assert spy.results() == []


def test_tile_routing_matches_torch(spy):
    """A k2s2 backward, channels last, against PyTorch's kernel on channels_last tensors."""
    import torch

    rng = np.random.default_rng(5)
    bwd = torch.ops.aten.max_pool2d_with_indices_backward
    for shape in ((4, 14, 14, 64), (2, 9, 11, 20)):
        x = random_input(rng, shape, np.float32, ties=True, nan=True)
        _, idx = pk.max_pool2d(x, 2, 2, return_indices=True, channels_last=True)
        g = _specials(rng, idx.shape, np.float32)
        tx = torch.from_numpy(np.moveaxis(x, -1, 1))
        want = bwd(torch.from_numpy(np.moveaxis(g, -1, 1)), tx, [2, 2], [2, 2], [0, 0], [1, 1],
                   False, torch.from_numpy(np.moveaxis(idx, -1, 1))).numpy()
        assert_same(np.moveaxis(_backward(g, idx, shape), -1, 1), want)
    assert spy.results() == [True, True]


def test_strided_views_take_the_tile_kernel(spy):
    """Gradient and indices as strided views (copied once, then tiled)."""
    rng = np.random.default_rng(6)
    shape = (2, 10, 9, 12)
    x = random_input(rng, shape, np.float64, ties=True)
    _, idx = pk.max_pool2d(x, 2, 2, return_indices=True, channels_last=True)
    g_full = _specials(rng, idx.shape[:-1] + (2 * idx.shape[-1],), np.float64)
    i_full = np.repeat(idx, 2, axis=-1)
    g, i = g_full[..., ::2], i_full[..., ::2]
    assert_same(_backward(g, i, shape, np.nan), _expected(np.ascontiguousarray(g), idx, shape))
    assert spy.results() == [True]


@pytest.mark.parametrize("nd", [1, 3])
def test_overlapping_windows_in_1d_and_3d_fall_back(spy, check, nd):
    """k3s2p1 indices on the shapes of k2s2 tiles, 1-D and 3-D: the scatter's bits."""
    rng = np.random.default_rng(8 + nd)
    forward, backward = _POOL[nd]
    shape = (2, 12, 5) if nd == 1 else (2, 6, 4, 8, 9)
    x = random_input(rng, shape, np.float32, ties=True)
    _, idx = forward(x, 3, 2, 1, return_indices=True, channels_last=True)
    g = _specials(rng, idx.shape, np.float32)
    got = backward(g, idx, shape, channels_last=True, out=np.full(shape, np.nan, np.float32))
    assert _turned_away(spy, check)
    with np.errstate(invalid="ignore"):
        assert_same(got, ref.max_pool_backward(g, idx, shape, nd, channels_last=True))


def test_3d_tiles_match_torch(spy):
    """A 2x2x2 backward, channels last, against PyTorch's 3-D kernel."""
    import torch

    rng = np.random.default_rng(9)
    bwd = torch.ops.aten.max_pool3d_with_indices_backward
    shape = (2, 9, 8, 11, 16)  # (N, D, H, W, C), odd D and W
    x = random_input(rng, shape, np.float64, ties=True, nan=True)
    _, idx = pk.max_pool3d(x, 2, 2, return_indices=True, channels_last=True)
    g = _specials(rng, idx.shape, np.float64)
    tx = torch.from_numpy(np.moveaxis(x, -1, 1))
    want = bwd(torch.from_numpy(np.moveaxis(g, -1, 1)), tx, [2, 2, 2], [2, 2, 2], [0, 0, 0],
               [1, 1, 1], False, torch.from_numpy(np.moveaxis(idx, -1, 1))).numpy()
    got = pk.max_pool3d_backward(g, idx, shape, channels_last=True)
    assert_same(np.moveaxis(got, -1, 1), want)
    assert spy.results() == [True]



@st.composite
def _k3s2_case(draw):
    out_h, out_w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    return dict(
        batch=draw(st.sampled_from([None, 1, 2, 3])),
        size=(2 * out_h - draw(st.integers(0, 1)), 2 * out_w - draw(st.integers(0, 1))),
        channels=draw(st.sampled_from([1, 3, 4, 7, 8, 9, 16, 17, 33])),
        dtype=draw(st.sampled_from(DTYPES)), serial=draw(st.booleans()),
        garbage=draw(st.booleans()), seed=draw(st.integers(0, 2**32 - 1)),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_k3s2_case())
def test_k3s2p1_indices_take_the_k3s2_kernel(case):
    """A k3s2p1 forward's indices, even and odd sizes (the windows reach past the
    border), ties and NaN in x, specials in the gradient: routed by the k3s2 kernel (the
    tile kernel, tried first on even sizes, gives up), the reference's bits."""
    rng = np.random.default_rng(case["seed"])
    shape, x, out = _case_arrays(rng, case)
    _, idx = pk.max_pool2d(x, 3, 2, 1, return_indices=True, channels_last=True)
    g = _specials(rng, idx.shape, case["dtype"])
    with _spying() as spy, forced_serial_work(case["serial"]):
        got = pk.max_pool2d_backward(g, idx, shape, channels_last=True, out=out)
    # the last kernel tried routed it all: the k3s2 kernel, or the tile kernel where
    # every index happens to lie in its output's tile too (tiny inputs)
    tried = spy.results(_KERNELS)
    assert tried[-1] is True and tried.count(True) == 1
    if out is not None:
        assert got is out
    assert_same(got, _expected(g, idx, shape))


@pytest.mark.parametrize("serial", [True, False])
def test_indices_outside_the_3x3_window_fall_back(spy, serial):
    """On k3s2p1 shapes: arbitrary indices with -1; one index on the pixel just left of
    a left-edge window (the previous row's last pixel, which the window's flat range
    would wrap onto); one on a pixel two rows away: the scatter's bits and errors."""
    rng = np.random.default_rng(11)
    shape = (2, 11, 12, 9)
    x = random_input(rng, shape, np.float32, ties=True)
    _, idx = pk.max_pool2d(x, 3, 2, 1, return_indices=True, channels_last=True)
    wrapped = idx.copy()
    wrapped[1, 2, 0, 4] = 4 * 12 - 1  # window of (2, 0) centers on (4, 0): (3, 11) is not in it
    far = idx.copy()
    far[0, 3, 3, 0] = (6 + 2) * 12 + 6
    arbitrary = rng.integers(-1, 11 * 12, size=idx.shape)
    for case in (wrapped, far, arbitrary):
        g = _specials(rng, case.shape, np.float32)
        with forced_serial_work(serial):
            got = _backward(g, case, shape, np.nan)
        assert spy.results(("k3s2_pixels_range",))[-1] is False
        assert_same(got, _expected(g, case, shape))
    bad = idx.copy()
    bad[1, 5, 5, 8] = 11 * 12
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 132\)"):
        pk.max_pool2d_backward(np.ones(bad.shape, np.float32), bad, shape, channels_last=True)


def test_k3s2_routing_matches_torch(spy):
    """A k3s2p1 backward, channels last, against PyTorch's kernel: even and odd sizes."""
    import torch

    rng = np.random.default_rng(12)
    bwd = torch.ops.aten.max_pool2d_with_indices_backward
    for shape in ((2, 56, 56, 64), (3, 13, 10, 20)):
        x = random_input(rng, shape, np.float32, ties=True, nan=True)
        _, idx = pk.max_pool2d(x, 3, 2, 1, return_indices=True, channels_last=True)
        g = _specials(rng, idx.shape, np.float32)
        tx = torch.from_numpy(np.moveaxis(x, -1, 1))
        want = bwd(torch.from_numpy(np.moveaxis(g, -1, 1)), tx, [3, 3], [2, 2], [1, 1], [1, 1],
                   False, torch.from_numpy(np.moveaxis(idx, -1, 1))).numpy()
        assert_same(np.moveaxis(_backward(g, idx, shape), -1, 1), want)
    assert spy.results(("k3s2_pixels_range",)) == [True, True]



def test_the_probe_reads_one_output_pixel():
    """The probe's verdict on k2s2 and k3s2p1 indices of the same output shape, 1-D to
    3-D; a negative or far index in the probed pixel turns the call away too."""
    rng = np.random.default_rng(13)
    for nd, shape in ((1, (2, 12, 9)), (2, (2, 8, 10, 9)), (3, (1, 4, 6, 8, 9))):
        forward = _POOL[nd][0]
        x = random_input(rng, shape, np.float32)
        _, tiled = forward(x, 2, 2, return_indices=True, channels_last=True)
        views = argmax._tile_view(tiled.shape, shape, nd, True, np.dtype(np.float32))
        assert argmax._tile_shaped_probe(tiled, views)
        _, overlapping = forward(x, 3, 2, 1, return_indices=True, channels_last=True)
        assert overlapping.shape == tiled.shape
        assert not argmax._tile_shaped_probe(overlapping, views)
        for bad in (-1, (1 << 40) + int(tiled.flat[0])):
            probe = tiled.copy()
            probe.reshape(views[0])[0, 0, 0, 1, 3] = bad
            assert not argmax._tile_shaped_probe(probe, views)
