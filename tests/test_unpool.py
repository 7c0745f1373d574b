"""Max unpooling: differential tests against PyTorch 2.13 CPU, reference, duplicates, errors."""

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


def _unique_per_plane(idx: np.ndarray, nd: int) -> bool:
    flat = idx.reshape(-1, int(np.prod(idx.shape[-nd:])))
    return all(len(np.unique(row)) == row.size for row in flat)


def _single_writer_slots(idx: np.ndarray, out_shape: tuple[int, ...], nd: int) -> np.ndarray:
    """Mask of output slots written by exactly one input element."""
    planes = idx.reshape(-1, int(np.prod(idx.shape[-nd:])))
    plane = int(np.prod(out_shape[-nd:]))
    counts = np.stack([np.bincount(row, minlength=plane) for row in planes])
    return (counts == 1).reshape(out_shape) | (counts == 0).reshape(out_shape)


def test_random_configs_match_torch():
    """Round trip max_pool -> unpool against PyTorch.

    PyTorch's CPU unpooling runs in parallel over all input elements, so which of
    several duplicates wins depends on its thread chunking; poolkit always keeps the
    last (the reference). Slots with a single writer, and every gradient where the
    indices are unique, must equal PyTorch exactly; duplicates follow the reference.
    """
    rng = np.random.default_rng(1234)
    grads_compared = 0
    for i in range(N_CONFIGS):
        nd = 1 + i % 3
        dtype = [np.float32, np.float64, np.float16][(i // 3) % 3]
        kernel = tuple(int(k) for k in rng.integers(1, 4, nd))
        stride = tuple(int(s) for s in rng.integers(1, 4, nd))
        padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
        size = tuple(int(k + rng.integers(0, 6)) for k in kernel)
        batched = i % 5 != 0
        shape = ((2, 3) if batched else (3,)) + size
        x = random_input(rng, shape, np.float32)
        pooled, tidx = getattr(F, f"max_pool{nd}d")(
            t(x), kernel, stride, padding, return_indices=True
        )
        values = random_input(rng, tuple(pooled.shape), dtype, nan=i % 9 == 0)
        out_size = size if i % 2 else None
        tv = t(values, grad=True)
        try:
            expected = getattr(F, f"max_unpool{nd}d")(tv, tidx, kernel, stride, padding,
                                                      output_size=out_size)
        except RuntimeError:  # an index beyond the default output size
            with pytest.raises(ValueError, match="indices"):
                getattr(pk, f"max_unpool{nd}d")(values, tidx.numpy(), kernel, stride, padding,
                                                out_size)
            continue
        layer = getattr(pk, f"MaxUnpool{nd}d")(kernel, stride, padding)
        if expected.numel() == 0:  # PyTorch returns an empty plane; poolkit rejects it
            with pytest.raises(ValueError, match="output size"):
                layer(values, tidx.numpy(), out_size)
            continue
        got = layer(values, tidx.numpy(), out_size)
        single = _single_writer_slots(tidx.numpy(), got.shape, nd)
        assert_same(got[single], expected.detach().numpy()[single])
        assert_same(got, ref.max_unpool(values, tidx.numpy(), got.shape[-nd:]))
        g = random_input(rng, got.shape, dtype)
        expected.backward(t(g))
        dx = layer.backward(g)
        if _unique_per_plane(tidx.numpy(), nd):
            assert_same(dx, tv.grad.numpy())
            grads_compared += 1
        else:
            assert_same(dx, ref.max_unpool_backward(g, tidx.numpy(), nd))
    assert grads_compared >= 10


@pytest.mark.parametrize("dtype", [np.float16, np.int8, np.uint8, np.int64])
def test_matches_reference_and_channels_last(dtype):
    rng = np.random.default_rng(2)
    x = random_input(rng, (2, 3, 3, 4), dtype)
    idx = rng.integers(0, 7 * 9, size=x.shape)  # random, with duplicates
    got = pk.max_unpool2d(x, idx, 3, 2, output_size=(7, 9))
    assert_same(got, ref.max_unpool(x, idx, (7, 9)))
    cl = pk.max_unpool2d(channels_last(x), channels_last(idx), 3, 2, output_size=(7, 9),
                         channels_last=True)
    assert_same(np.ascontiguousarray(from_channels_last(cl)), got)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int8])
def test_channels_last_pixel_kernels_match_reference(dtype):
    """Channels-last unpooling and its backward run on (N, pixels, C) with the channels
    side by side: the reference's bits (the last duplicate wins, only the winner gets the
    gradient), 1-D to 3-D, unbatched, strided inputs, and the same error for an index
    out of range."""
    rng = np.random.default_rng(np.dtype(dtype).itemsize + 5)
    for spatial, out_spatial, lead in (((3, 4), (7, 9), (2, 5)), ((6,), (13,), (3, 17)),
                                       ((2, 3, 2), (4, 6, 5), (1, 9)), ((3, 4), (7, 9), (8,))):
        nd = len(spatial)
        x = random_input(rng, lead + spatial, dtype)
        idx = rng.integers(0, int(np.prod(out_spatial)), size=x.shape)  # duplicates
        k = (2,) * nd
        fn = getattr(pk, f"max_unpool{nd}d")
        bwd = getattr(pk, f"max_unpool{nd}d_backward")
        batched = len(lead) == 2
        want = ref.max_unpool(x if batched else x[None], idx if batched else idx[None],
                              out_spatial)
        want = want if batched else want[0]
        xc, ic = (np.ascontiguousarray(np.moveaxis(a, -nd - 1, -1)) for a in (x, idx))
        for xa in (xc, np.repeat(xc, 2, axis=-1)[..., ::2]):
            got = fn(xa, ic, k, output_size=out_spatial, channels_last=True)
            assert_same(np.ascontiguousarray(np.moveaxis(got, -1, -nd - 1)), want)
        if np.dtype(dtype).kind != "f":
            continue
        g = random_input(rng, want.shape, dtype)
        want_dx = ref.max_unpool_backward(g if batched else g[None],
                                          idx if batched else idx[None], nd)
        want_dx = want_dx if batched else want_dx[0]
        gc = np.ascontiguousarray(np.moveaxis(g, -nd - 1, -1))
        dx = bwd(gc, ic, xc.shape, k, channels_last=True)
        assert_same(np.ascontiguousarray(np.moveaxis(dx, -1, -nd - 1)), want_dx)
        out = np.full_like(xc, 7)
        assert bwd(gc, ic, xc.shape, k, channels_last=True, out=out) is out
        assert_same(out, dx)
    bad = np.zeros((1, 2, 2, 3), np.int64)
    bad[0, 1, 1, 2] = 99
    with pytest.raises(ValueError, match="indices"):
        pk.max_unpool2d(np.ones((1, 2, 2, 3), np.float32), bad, 2, channels_last=True)
    with pytest.raises(ValueError, match="indices"):
        pk.max_unpool2d_backward(np.ones((1, 4, 4, 3), np.float32), bad, (1, 2, 2, 3), 2,
                                 channels_last=True)


def test_duplicates_last_wins_and_gradient_goes_to_winner():
    x = np.array([[[1.0, 2.0, 3.0, 4.0]]])
    idx = np.array([[[1, 1, 3, 3]]])
    out = pk.max_unpool1d(x, idx, 2)
    np.testing.assert_array_equal(out, [[[0, 2, 0, 4, 0, 0, 0, 0]]])
    g = np.arange(8.0).reshape(1, 1, 8)
    dx = pk.max_unpool1d_backward(g, idx, x.shape, 2)
    np.testing.assert_array_equal(dx, [[[0, 1, 0, 3]]])  # PyTorch gives [[1, 1, 3, 3]]


def test_finite_difference_gradient():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 2, 3, 3))
    idx = np.stack([rng.permutation(36)[:9] for _ in range(4)]).reshape(x.shape)
    check_gradient(
        lambda a: pk.max_unpool2d(a, idx, 2),
        lambda g: pk.max_unpool2d_backward(g, idx, x.shape, 2),
        x,
        rng,
    )


def test_rejections_match_torch():
    x = np.ones((1, 1, 2, 2), np.float32)
    idx = np.zeros((1, 1, 2, 2), np.int64)
    tx, ti = t(x), t(idx)
    raises_both(lambda: pk.max_unpool2d(x, idx + 16, 2), lambda: F.max_unpool2d(tx, ti + 16, 2))
    raises_both(lambda: pk.max_unpool2d(x, idx - 1, 2), lambda: F.max_unpool2d(tx, ti - 1, 2))
    for size in [(6, 4), (2, 4), (4,), (1, 1, 4, 5, 6)]:
        raises_both(
            lambda s=size: pk.max_unpool2d(x, idx, 2, output_size=s),
            lambda s=size: F.max_unpool2d(tx, ti, 2, output_size=s),
        )
    assert pk.max_unpool2d(x, idx, 2, output_size=(1, 1, 5, 3)).shape == (1, 1, 5, 3)
    assert F.max_unpool2d(tx, ti, 2, output_size=(1, 1, 5, 3)).shape == (1, 1, 5, 3)
    raises_both(lambda: pk.max_unpool2d(x, idx[..., :1], 2),
                lambda: F.max_unpool2d(tx, ti[..., :1], 2))


def test_error_messages():
    x = np.ones((1, 1, 2, 2))
    idx = np.zeros((1, 1, 2, 2), np.int64)
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 16\)"):
        pk.max_unpool2d(x, idx + 16, 2)
    with pytest.raises(TypeError, match="indices"):
        pk.max_unpool2d(x, idx.astype(float), 2)
    with pytest.raises(ValueError, match="output_size"):
        pk.max_unpool2d(x, idx, 2, output_size=(9, 9))
    with pytest.raises(ValueError, match="padding"):
        pk.max_unpool2d(x, idx, 2, padding=-1)
    with pytest.raises(ValueError, match="grad_output"):
        pk.max_unpool2d_backward(np.ones((1, 1, 9, 9)), idx, x.shape, 2)
    with pytest.raises(ValueError, match="grad_output"):
        pk.max_unpool2d_backward(np.ones((1, 2, 4, 4)), idx, x.shape, 2)
    with pytest.raises(ValueError, match="indices"):
        pk.max_unpool2d_backward(np.ones((1, 1, 4, 4)), idx + 16, x.shape, 2)
    with pytest.raises(RuntimeError, match="before forward"):
        pk.MaxUnpool2d(2).backward(np.ones((1, 1, 4, 4)))
    assert repr(pk.MaxUnpool3d(2, stride=(1, 2, 2))) == (
        "MaxUnpool3d(kernel_size=2, stride=(1, 2, 2), padding=0)"
    )


@settings(max_examples=30, deadline=None)
@given(length=st.integers(2, 30), kernel=st.integers(1, 4), data=st.data())
def test_property_unpool_inverts_max_pool_on_the_maxima(length, kernel, data):
    if kernel > length:
        return
    values = data.draw(st.lists(st.integers(-5, 5), min_size=length, max_size=length))
    x = np.array(values, dtype=np.float64).reshape(1, 1, length)
    y, idx = pk.max_pool1d(x, kernel, return_indices=True)
    back = pk.max_unpool1d(y, idx, kernel, output_size=(length,))
    np.testing.assert_array_equal(back.ravel()[idx.ravel()], x.ravel()[idx.ravel()])
    assert np.count_nonzero(back) <= np.count_nonzero(x)
