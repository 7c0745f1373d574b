"""ONNX/TensorFlow padding forms and index layouts on max pooling.

Padding: per-dim (begin, end) pairs, "valid", "same" (SAME_UPPER), "same_lower", checked
against the loop reference (which takes asymmetric pads) and against PyTorch (F.pad with
-inf, then an unpadded pool). Indices: "plane"/"global" and storage_order 0/1, checked
against a direct computation, round-tripped through the backward pass.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import poolkit as pk
from poolkit import _reference


def tf_same_pads(length, kernel, stride, dilation, lower):
    """TensorFlow's SAME rule, written independently of poolkit."""
    out = math.ceil(length / stride)
    extent = (kernel - 1) * dilation + 1
    total = max((out - 1) * stride + extent - length, 0)
    small = total // 2
    return (total - small, small) if lower else (small, total - small)


def resolve(padding, size, kernel, stride, dilation):
    nd = len(size)
    if padding == "valid":
        return (0,) * nd, (0,) * nd
    if padding in ("same", "same_lower"):
        pairs = [
            tf_same_pads(size[j], kernel[j], stride[j], dilation[j], padding == "same_lower")
            for j in range(nd)
        ]
    else:
        pairs = padding
    return tuple(b for b, _ in pairs), tuple(e for _, e in pairs)


def covers(size, kernel, stride, dilation, pad_begin, pad_end, ceil_mode):
    """True if every window holds an input element (reference count of windows)."""
    for j in range(len(size)):
        n = _reference.window_count(
            size[j], kernel[j], stride[j], pad_begin[j], pad_end[j], dilation[j], ceil_mode
        )
        if n < 1:
            return False
        for i in range(n):
            taps = [i * stride[j] - pad_begin[j] + t * dilation[j] for t in range(kernel[j])]
            if not any(0 <= q < size[j] for q in taps):
                return False
    return True


def random_padding(rng, nd, kernel):
    choice = rng.integers(0, 4)
    if choice == 0:
        return str(rng.choice(["valid", "same", "same_lower"]))
    top = [2 * k + 1 for k in kernel]  # well beyond PyTorch's kernel // 2
    return tuple((int(rng.integers(0, t)), int(rng.integers(0, t))) for t in top)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_padding_forms_match_reference(nd):
    rng = np.random.default_rng(nd)
    checked = rejected = 0
    while checked < 60:
        kernel = tuple(int(v) for v in rng.integers(1, 4, nd))
        stride = tuple(int(v) for v in rng.integers(1, 4, nd))
        dilation = tuple(int(v) for v in rng.integers(1, 3, nd))
        size = tuple(int(v) for v in rng.integers(1, 8 if nd < 3 else 5, nd))
        ceil_mode = bool(rng.integers(0, 2))
        channels_last = bool(rng.integers(0, 2))
        padding = random_padding(rng, nd, kernel)
        pb, pe = resolve(padding, size, kernel, stride, dilation)
        shape = (2, *size, 3) if channels_last else (2, 3, *size)
        x = rng.standard_normal(shape).astype(np.float32)
        call = dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dilation,
                    ceil_mode=ceil_mode, channels_last=channels_last)
        if not covers(size, kernel, stride, dilation, pb, pe, ceil_mode):
            with pytest.raises(ValueError, match=r"padding too large|output size must be"):
                pk.max_pool(x, **call)
            rejected += 1
            continue
        checked += 1
        y, idx = pk.max_pool(x, **call, return_indices=True)
        want, want_idx = _reference.max_pool(
            x, kernel, stride, pb, dilation, ceil_mode, channels_last, pad_end=pe
        )
        np.testing.assert_array_equal(y, want)
        np.testing.assert_array_equal(idx, want_idx)
        if padding in ("same", "same_lower"):
            spatial = y.shape[1:-1] if channels_last else y.shape[2:]
            assert spatial == tuple(math.ceil(s / t) for s, t in zip(size, stride))
    assert rejected > 0  # the generator does reach the too-large region


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_asymmetric_padding_matches_torch_pad_then_pool(nd):
    """(begin, end) pairs == F.pad(x, -inf) then PyTorch pooling without padding."""
    rng = np.random.default_rng(10 + nd)
    pool = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[nd]
    for _ in range(25):
        kernel = tuple(int(v) for v in rng.integers(2, 4, nd))
        stride = tuple(int(v) for v in rng.integers(1, 3, nd))
        size = tuple(int(v) for v in rng.integers(4, 9 if nd < 3 else 6, nd))
        pads = tuple((int(rng.integers(0, k)), int(rng.integers(0, k))) for k in kernel)
        x = rng.standard_normal((2, 3, *size)).astype(np.float64)
        torch_pad = [v for pair in reversed(pads) for v in pair]
        xt = torch.tensor(x, requires_grad=True)
        padded = F.pad(xt, torch_pad, value=-math.inf)
        yt, it = pool(padded, kernel, stride, return_indices=True)
        y, idx = pk.max_pool(x, kernel, stride, pads, return_indices=True)
        np.testing.assert_array_equal(y, yt.detach().numpy())
        # torch indices address the padded plane: map them back to the unpadded one
        coords = np.unravel_index(it.numpy(), padded.shape[2:])
        coords = tuple(c - p[0] for c, p in zip(coords, pads))
        np.testing.assert_array_equal(idx, np.ravel_multi_index(coords, size))
        grad = rng.standard_normal(y.shape)
        yt.backward(torch.tensor(grad))
        dx = pk.max_pool_backward(grad, idx, x.shape)
        np.testing.assert_array_equal(dx, xt.grad.numpy())


def test_same_matches_torch_padding_same_for_stride_one():
    """With stride 1 and an odd kernel, "same" is PyTorch's symmetric k // 2 padding."""
    x = np.random.default_rng(2).standard_normal((2, 3, 9, 7)).astype(np.float32)
    y = pk.max_pool2d(x, 3, stride=1, padding="same")
    want = F.max_pool2d(torch.tensor(x), 3, stride=1, padding=1).numpy()
    np.testing.assert_array_equal(y, want)


@settings(max_examples=60, deadline=None)
@given(
    length=st.integers(1, 40),
    kernel=st.integers(1, 6),
    stride=st.integers(1, 6),
    dilation=st.integers(1, 3),
    lower=st.booleans(),
)
def test_same_output_size_is_ceil_of_length_over_stride(length, kernel, stride, dilation, lower):
    x = np.arange(length, dtype=np.float64).reshape(1, 1, length)
    mode = "same_lower" if lower else "same"
    pb, pe = tf_same_pads(length, kernel, stride, dilation, lower)
    if not covers((length,), (kernel,), (stride,), (dilation,), (pb,), (pe,), False):
        with pytest.raises(ValueError, match="padding too large"):
            pk.max_pool1d(x, kernel, stride, mode, dilation)
        return
    y = pk.max_pool1d(x, kernel, stride, mode, dilation)
    assert y.shape[-1] == math.ceil(length / stride)
    assert abs(pb - pe) <= 1 and (pb >= pe if lower else pe >= pb)


def test_valid_is_zero_padding_and_integer_padding_keeps_pytorch_limit():
    x = np.random.default_rng(3).standard_normal((1, 2, 7, 7))
    np.testing.assert_array_equal(pk.max_pool2d(x, 3, 2, "valid"), pk.max_pool2d(x, 3, 2, 0))
    with pytest.raises(ValueError, match="at most half of kernel_size"):
        pk.max_pool2d(x, 3, 2, 2)
    # the same amount as a (begin, end) pair is fine: every window still has input
    assert pk.max_pool2d(x, 3, 2, ((2, 2), (2, 2))).shape == (1, 2, 5, 5)
    # ints and pairs may mix; a single pair applies to every dim
    np.testing.assert_array_equal(
        pk.max_pool2d(x, 3, 2, ((1, 2), 1)), pk.max_pool2d(x, 3, 2, ((1, 2), (1, 1)))
    )
    np.testing.assert_array_equal(
        pk.max_pool2d(x, 3, 2, ((1, 2),)), pk.max_pool2d(x, 3, 2, ((1, 2), (1, 2)))
    )
    assert pk.max_pool2d(x, 3, 2, "SAME_UPPER").shape == pk.max_pool2d(x, 3, 2, "same").shape


@pytest.mark.parametrize(
    ("padding", "error", "match"),
    [
        ("full", ValueError, "one of 'valid', 'same', 'same_lower'"),
        (((1, 2, 3), (0, 0)), ValueError, r"\(begin, end\) pairs or ints"),
        (((1, 2), (0, 0), (0, 0)), ValueError, "one entry per spatial dimension"),
        (((-1, 2), (0, 0)), ValueError, "non-negative"),
        (((1.5, 2), (0, 0)), TypeError, "must be an int"),
        (((0, 4), (0, 0)), ValueError, "padding too large"),
        (((5, 0), (0, 0)), ValueError, "padding too large"),
    ],
)
def test_padding_errors(padding, error, match):
    x = np.zeros((1, 1, 6, 6))
    with pytest.raises(error, match=match):
        pk.max_pool2d(x, 2, 2, padding)


def test_layer_accepts_padding_forms_and_reprs_them():
    layer = pk.MaxPool2d(3, stride=2, padding=((0, 2), (1, 1)))
    assert "padding=((0, 2), (1, 1))" in repr(layer)
    assert "padding='same'" in repr(pk.MaxPool2d(3, padding="same"))
    x = np.random.default_rng(4).standard_normal((2, 3, 8, 8)).astype(np.float32)
    y = layer(x)
    np.testing.assert_array_equal(y, pk.max_pool2d(x, 3, 2, ((0, 2), (1, 1))))
    assert layer.backward(np.ones_like(y)).shape == x.shape


# ---------------------------------------------------------------------------- indices


def expected_indices(plane_idx, x_shape, nd, channels_last, index_format, storage_order):
    """Direct computation of the other layouts from plane row-major indices."""
    batched = len(x_shape) == nd + 2
    spatial = x_shape[-nd - 1:-1] if channels_last else x_shape[-nd:]
    out = np.empty_like(plane_idx)
    for pos in np.ndindex(plane_idx.shape):
        i = plane_idx[pos]
        if i < 0:
            out[pos] = -1
            continue
        coords = np.unravel_index(i, spatial)
        within = np.ravel_multi_index(coords, spatial, order="F" if storage_order else "C")
        if index_format == "plane":
            out[pos] = within
            continue
        n = pos[0] if batched else 0
        if channels_last:
            c = pos[-1]
            x_full = (n, *(coords[::-1] if storage_order else coords), c)
            dims = ((x_shape[0],) if batched else (1,)) + (
                spatial[::-1] if storage_order else spatial) + (x_shape[-1],)
        else:
            c = pos[1] if batched else pos[0]
            x_full = (n, c, *(coords[::-1] if storage_order else coords))
            dims = ((x_shape[0],) if batched else (1,)) + (x_shape[-nd - 1],) + (
                spatial[::-1] if storage_order else spatial)
        out[pos] = np.ravel_multi_index(x_full, dims)
    return out


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("batched", [False, True])
def test_index_formats_and_backward_round_trip(nd, channels_last, batched):
    rng = np.random.default_rng(nd * 4 + channels_last * 2 + batched)
    spatial = (5, 4, 3)[:nd]
    shape = spatial + (3,) if channels_last else (3,) + spatial
    if batched:
        shape = (2,) + shape
    x = rng.standard_normal(shape).astype(np.float32)
    kw = dict(kernel_size=(2,) * nd, stride=(2,) * nd, padding=((1, 0),) * nd,
              channels_last=channels_last, return_indices=True)
    y, plane = pk.max_pool(x, **kw)
    grad = rng.standard_normal(y.shape).astype(np.float32)
    dx_plane = pk.max_pool_backward(grad, plane, x.shape, channels_last, spatial_dims=nd)
    for index_format in ("plane", "global"):
        for order in (0, 1):
            y2, idx = pk.max_pool(x, **kw, index_format=index_format, storage_order=order)
            np.testing.assert_array_equal(y2, y)
            np.testing.assert_array_equal(
                idx, expected_indices(plane, x.shape, nd, channels_last, index_format, order)
            )
            if index_format == "global" and order == 0:  # row-major global indices address x
                np.testing.assert_array_equal(x.reshape(-1)[idx], y)
            dx = pk.max_pool_backward(grad, idx, x.shape, channels_last, spatial_dims=nd,
                                      index_format=index_format, storage_order=order)
            np.testing.assert_array_equal(dx, dx_plane)


def test_global_indices_match_onnx_layout_and_fixed_rank_backward():
    x = np.random.default_rng(9).standard_normal((2, 3, 6, 5)).astype(np.float32)
    y, idx = pk.max_pool2d(x, 2, 2, return_indices=True, index_format="global")
    np.testing.assert_array_equal(x.reshape(-1)[idx], y)
    layer = pk.MaxPool2d(2, 2, return_indices=True, index_format="global", storage_order=1)
    _, idx2 = layer(x)
    assert "index_format='global'" in repr(layer) and "storage_order=1" in repr(layer)
    dx = pk.max_pool2d_backward(np.ones_like(y), idx2, x.shape, index_format="global",
                                storage_order=1)
    np.testing.assert_array_equal(dx, layer.backward(np.ones_like(y)))
    np.testing.assert_array_equal(dx, pk.max_pool2d_backward(np.ones_like(y), *_plane(x)))


def _plane(x):
    _, idx = pk.max_pool2d(x, 2, 2, return_indices=True)
    return idx, x.shape


def test_bad_index_layouts_are_rejected():
    x = np.random.default_rng(1).standard_normal((2, 2, 4, 4))
    y, idx = pk.max_pool2d(x, 2, 2, return_indices=True, index_format="global")
    g = np.ones_like(y)
    with pytest.raises(ValueError, match="index_format must be 'plane' or 'global'"):
        pk.max_pool2d(x, 2, index_format="flat")
    with pytest.raises(TypeError, match="index_format must be a str"):
        pk.max_pool2d(x, 2, index_format=1)
    with pytest.raises(ValueError, match="storage_order must be 0"):
        pk.max_pool2d(x, 2, storage_order=2)
    with pytest.raises(ValueError, match="another plane"):
        pk.max_pool2d_backward(g, idx[::-1].copy(), x.shape, index_format="global")
    with pytest.raises(ValueError, match=r"must lie in \[0, 64\)"):
        pk.max_pool2d_backward(g, idx + 64, x.shape, index_format="global")
    with pytest.raises(ValueError, match=r"must lie in \[0, 16\)"):
        pk.max_pool2d_backward(g, idx, x.shape, storage_order=1)
    with pytest.raises(ValueError, match="must be >= 0 or -1"):
        pk.max_pool2d_backward(g, idx - 100, x.shape, index_format="global")


@settings(max_examples=40, deadline=None)
@given(
    nd=st.integers(1, 3),
    sizes=st.lists(st.integers(1, 6), min_size=3, max_size=3),
    kernel=st.integers(1, 3),
    batched=st.booleans(),
    channels_last=st.booleans(),
    storage_order=st.integers(0, 1),
    seed=st.integers(0, 2**16),
)
def test_global_indices_address_the_input_property(
    nd, sizes, kernel, batched, channels_last, storage_order, seed
):
    """Row-major global indices pick y out of x.ravel(); every layout round-trips."""
    spatial = tuple(sizes[:nd])
    k = tuple(min(kernel, s) for s in spatial)
    shape = (spatial + (2,) if channels_last else (2,) + spatial)
    shape = (3,) + shape if batched else shape
    x = np.random.default_rng(seed).standard_normal(shape)
    kw = dict(kernel_size=k, stride=1, padding="same", channels_last=channels_last,
              return_indices=True)
    y, glob = pk.max_pool(x, index_format="global", **kw)
    np.testing.assert_array_equal(x.reshape(-1)[glob], y)
    _, plane = pk.max_pool(x, **kw)
    _, other = pk.max_pool(x, index_format="global", storage_order=storage_order, **kw)
    g = np.ones_like(y)
    np.testing.assert_array_equal(
        pk.max_pool_backward(g, other, x.shape, channels_last, nd, "global", storage_order),
        pk.max_pool_backward(g, plane, x.shape, channels_last, nd),
    )
