"""``out=`` on every backward pass (functions and layers): NumPy's convention.

A preallocated C-contiguous array of the input's shape and the gradient's dtype is fully
overwritten (whatever it held) and returned, with the same bits as a fresh result; a
wrong shape, dtype or layout, a read-only array, or one that overlaps an input is a
clear ValueError/TypeError, raised before anything is written.
"""

from __future__ import annotations

import numpy as np
import pytest

import poolkit as pk

RNG = np.random.default_rng(7)
X = RNG.standard_normal((2, 3, 7, 6)).astype(np.float32)
X3 = RNG.standard_normal((2, 3, 4, 5, 6)).astype(np.float32)


def _case(name):
    """(call(out) -> gradient, input shape, dtype) for one backward pass."""
    if name == "max_pool2d":
        y, idx = pk.max_pool2d(X, 3, 2, 1, return_indices=True)
        g = RNG.standard_normal(y.shape).astype(np.float32)
        return lambda out=None: pk.max_pool2d_backward(g, idx, X.shape, out=out), g
    if name == "max_pool":
        y, idx = pk.max_pool(X3, (2, 2, 3), return_indices=True)
        g = RNG.standard_normal(y.shape).astype(np.float32)
        return lambda out=None: pk.max_pool_backward(g, idx, X3.shape, out=out), g
    if name == "max_pool2d_cl":
        xc = np.ascontiguousarray(X.transpose(0, 2, 3, 1))
        y, idx = pk.max_pool2d(xc, 2, channels_last=True, return_indices=True)
        g = RNG.standard_normal(y.shape).astype(np.float32)
        return (lambda out=None: pk.max_pool2d_backward(g, idx, xc.shape, channels_last=True,
                                                        out=out)), g
    if name == "avg_pool2d":
        g = RNG.standard_normal(pk.avg_pool2d(X, 3, 2, 1).shape).astype(np.float32)
        return lambda out=None: pk.avg_pool2d_backward(g, X.shape, 3, 2, 1, out=out), g
    if name == "avg_pool2d_dilated":
        g = RNG.standard_normal(pk.avg_pool2d(X, 2, dilation=2).shape).astype(np.float32)
        return (lambda out=None: pk.avg_pool2d_backward(g, X.shape, 2, dilation=2,
                                                        out=out)), g
    if name == "lp_pool2d":
        g = RNG.standard_normal(pk.lp_pool2d(X, 2, 2).shape).astype(np.float32)
        return lambda out=None: pk.lp_pool2d_backward(g, X, 2, 2, out=out), g
    if name == "adaptive_avg_pool2d":
        g = RNG.standard_normal((2, 3, 3, 4)).astype(np.float32)
        return lambda out=None: pk.adaptive_avg_pool2d_backward(g, X.shape, out=out), g
    if name == "adaptive_max_pool2d":
        y, idx = pk.adaptive_max_pool2d(X, (3, 4), return_indices=True)
        g = RNG.standard_normal(y.shape).astype(np.float32)
        return lambda out=None: pk.adaptive_max_pool2d_backward(g, idx, X.shape, out=out), g
    if name == "fractional_max_pool2d":
        y, idx = pk.fractional_max_pool2d(X, 2, output_size=(3, 3), return_indices=True,
                                          rng=np.random.default_rng(0))
        g = RNG.standard_normal(y.shape).astype(np.float32)
        return (lambda out=None: pk.fractional_max_pool2d_backward(g, idx, X.shape,
                                                                   out=out)), g
    if name == "global_avg_pool":
        g = RNG.standard_normal((2, 3)).astype(np.float32)
        return lambda out=None: pk.global_avg_pool_backward(g, X.shape, out=out), g
    if name == "global_max_pool":
        y, idx = pk.global_max_pool(X, return_indices=True)
        g = RNG.standard_normal(y.shape).astype(np.float32)
        return lambda out=None: pk.global_max_pool_backward(g, idx, X.shape, out=out), g
    if name == "global_lp_pool":
        g = RNG.standard_normal((2, 3, 1, 1)).astype(np.float32)
        return lambda out=None: pk.global_lp_pool_backward(g, X, 3.0, out=out), g
    if name == "max_unpool2d":
        y, idx = pk.max_pool2d(X, 2, return_indices=True)
        g = RNG.standard_normal(X[..., :6, :].shape).astype(np.float32)
        return lambda out=None: pk.max_unpool2d_backward(g, idx, y.shape, 2, out=out), g
    raise AssertionError(name)


CASES = [
    "max_pool2d", "max_pool", "max_pool2d_cl", "avg_pool2d", "avg_pool2d_dilated",
    "lp_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d", "fractional_max_pool2d",
    "global_avg_pool", "global_max_pool", "global_lp_pool", "max_unpool2d",
]


@pytest.mark.parametrize("name", CASES)
def test_out_is_filled_and_returned(name):
    call, _ = _case(name)
    fresh = call()
    out = np.full(fresh.shape, np.nan, dtype=fresh.dtype)  # garbage must not survive
    got = call(out=out)
    assert got is out
    np.testing.assert_array_equal(out.view(np.uint32), fresh.view(np.uint32))


@pytest.mark.parametrize("name", CASES)
def test_bad_out_is_rejected_before_writing(name):
    call, _ = _case(name)
    shape = call().shape
    sentinel = np.float32(1234.5)
    bad = {
        "shape": (np.full(shape[:-1] + (shape[-1] + 1,), sentinel, np.float32), ValueError,
                  "shape"),
        "dtype": (np.full(shape, sentinel, np.float64), TypeError, "dtype"),
        "layout": (np.full(shape[::-1], sentinel, np.float32).T, ValueError, "C-contiguous"),
        "read-only": (np.full(shape, sentinel, np.float32), ValueError, "writeable"),
        "list": ([[0.0]], TypeError, "numpy.ndarray"),
    }
    bad["read-only"][0].flags.writeable = False
    for out, error, text in bad.values():
        with pytest.raises(error, match=f"out must .*{text}"):
            call(out=out)
        if isinstance(out, np.ndarray):
            assert (out == sentinel).all()


def test_out_overlapping_an_input_is_rejected():
    y, idx = pk.max_pool2d(X, 2, return_indices=True)
    buf = np.ones(y.size + X.size, np.float32)
    g = buf[: y.size].reshape(y.shape)
    out = buf[y.size // 2 : y.size // 2 + X.size].reshape(X.shape)  # shares g's tail
    with pytest.raises(ValueError, match="out must not overlap"):
        pk.max_pool2d_backward(g, idx, X.shape, out=out)
    assert (buf == 1.0).all()  # nothing was written
    grad = np.ones((2, 3, 3, 3), np.float32)
    with pytest.raises(ValueError, match="out must not overlap"):
        pk.avg_pool2d_backward(grad, grad.shape, 1, out=grad)
    with pytest.raises(ValueError, match="out must not overlap"):
        pk.lp_pool2d_backward(np.ones((2, 3, 3, 3), np.float32), X, 2, 2, out=X)


@pytest.mark.parametrize(
    "layer, x, extra",
    [
        (pk.MaxPool2d(3, 2, 1), X, ()),
        (pk.AvgPool2d(2), X, ()),
        (pk.LPPool2d(2, 2), X, ()),
        (pk.AdaptiveAvgPool2d(3), X, ()),
        (pk.AdaptiveMaxPool2d(3), X, ()),
        (pk.FractionalMaxPool2d(2, output_size=3, rng=np.random.default_rng(1)), X, ()),
        (pk.GlobalAvgPool(), X, ()),
        (pk.GlobalMaxPool(), X, ()),
        (pk.GlobalLpPool(2.0), X, ()),
        (pk.MaxPool3d(2), X3, ()),
    ],
)
def test_layer_backward_out(layer, x, extra):
    y = layer(x, *extra)
    g = np.ones_like(y)
    fresh = layer.backward(g)
    out = np.full(x.shape, np.nan, np.float32)
    assert layer.backward(g, out=out) is out
    np.testing.assert_array_equal(out, fresh)
    with pytest.raises(ValueError, match="out must have the input's shape"):
        layer.backward(g, out=np.empty(x.shape[:-1] + (1,), np.float32))


def test_unpool_layer_backward_out():
    y, idx = pk.max_pool2d(X, 2, return_indices=True)
    layer = pk.MaxUnpool2d(2)
    u = layer(y, idx)
    fresh = layer.backward(np.ones_like(u))
    out = np.full(y.shape, np.nan, np.float32)
    assert layer.backward(np.ones_like(u), out=out) is out
    np.testing.assert_array_equal(out, fresh)


def test_index_shape_errors_name_what_they_compare_with():
    """Regression: the backward passes compare indices with grad_output, not with x."""
    g = np.ones((1, 1, 2, 2), np.float32)
    bad = np.zeros((1, 1, 3, 3), np.int64)
    with pytest.raises(ValueError, match=r"indices must have the shape of grad_output"):
        pk.adaptive_max_pool2d_backward(g, bad, (1, 1, 4, 4))
    with pytest.raises(ValueError, match=r"indices must have the shape of grad_output"):
        pk.global_max_pool_backward(np.ones((1, 1)), bad, (1, 1, 4, 4))
    with pytest.raises(ValueError, match=r"indices must have the shape of the forward x"):
        pk.max_unpool2d_backward(np.ones((1, 1, 4, 4)), bad, (1, 1, 2, 2), 2)
    with pytest.raises(ValueError, match=r"indices must have the shape of x"):
        pk.max_unpool2d(np.ones((1, 1, 2, 2)), bad, 2)
