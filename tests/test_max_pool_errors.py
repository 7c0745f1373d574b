"""Every bad call raises ValueError/TypeError naming the argument (never a leaked
IndexError or numba error), with the expectation and what arrived."""

from __future__ import annotations

import re

import numpy as np
import pytest

import poolkit as pk

X = np.zeros((1, 2, 6, 6), dtype=np.float32)


@pytest.mark.parametrize(
    "kwargs, exc, names",
    [
        (dict(kernel_size=0), ValueError, ["kernel_size", ">= 1", "(0, 0)"]),
        (dict(kernel_size=-2), ValueError, ["kernel_size", ">= 1"]),
        (dict(kernel_size=2.0), TypeError, ["kernel_size", "int", "2.0"]),
        (dict(kernel_size=True), TypeError, ["kernel_size", "bool"]),
        (dict(kernel_size="2"), TypeError, ["kernel_size", "'2'"]),
        (dict(kernel_size=(2, 2, 2)), ValueError, ["kernel_size", "2 ints", "length 3"]),
        (dict(kernel_size=()), ValueError, ["kernel_size", "length 0"]),
        (dict(kernel_size=2, stride=0), ValueError, ["stride", ">= 1"]),
        (dict(kernel_size=2, stride=(1, 1, 1)), ValueError, ["stride", "length 3"]),
        (dict(kernel_size=2, stride=1.5), TypeError, ["stride", "1.5"]),
        (dict(kernel_size=2, dilation=0), ValueError, ["dilation", ">= 1"]),
        (dict(kernel_size=2, dilation=(1,) * 3), ValueError, ["dilation", "length 3"]),
        (dict(kernel_size=2, padding=-1), ValueError, ["padding", "non-negative", "-1"]),
        (dict(kernel_size=3, padding=2), ValueError, ["padding", "half of kernel_size", "(2, 2)"]),
        (dict(kernel_size=2, padding=(0, 0, 0)), ValueError, ["padding", "length 3"]),
        (dict(kernel_size=2, padding=0.5), TypeError, ["padding"]),
        (dict(kernel_size=7), ValueError, ["output size", "(6, 6)", "(0, 0)"]),
        (dict(kernel_size=3, dilation=3), ValueError, ["output size"]),
        (dict(kernel_size=2, ceil_mode="yes"), TypeError, ["ceil_mode", "bool"]),
        (dict(kernel_size=2, return_indices=1), TypeError, ["return_indices", "bool"]),
        (dict(kernel_size=2, channels_last=None), TypeError, ["channels_last", "bool"]),
    ],
)
def test_bad_options(kwargs, exc, names):
    with pytest.raises(exc) as info:
        pk.max_pool2d(X, **kwargs)
    for name in names:
        assert name in str(info.value), (name, str(info.value))
    # the layer validates the same options at construction
    if "kernel_size" in kwargs and names[0] != "output size":
        with pytest.raises(exc, match=re.escape(names[0])):
            pk.MaxPool2d(**kwargs)


@pytest.mark.parametrize(
    "x, exc, names",
    [
        (np.zeros((6, 6)), ValueError, ["x", "3 (unbatched) or 4 (batched)", "(6, 6)"]),
        (np.zeros((1, 1, 1, 6, 6)), ValueError, ["x", "dimensions", "(1, 1, 1, 6, 6)"]),
        (np.zeros((1, 1, 0, 6)), ValueError, ["x", "non-empty spatial"]),
        (np.zeros((1, 0, 6, 6)), ValueError, ["x", "at least one channel"]),
        (np.zeros((1, 1, 4, 4), dtype=bool), TypeError, ["x", "dtype", "bool"]),
        (np.zeros((1, 1, 4, 4), dtype=np.complex64), TypeError, ["x", "complex64"]),
        (np.zeros((1, 1, 4, 4), dtype=object), TypeError, ["x", "object"]),
        (np.zeros((1, 1, 4, 4), np.longdouble), TypeError, ["x", np.dtype(np.longdouble).name]),
        (np.full((1, 1, 4, 4), "a"), TypeError, ["x", "dtype"]),
        ("abc", TypeError, ["x", "array-like"]),
        ([[[1, 2], [3]]], ValueError, ["x", "ragged"]),
    ],
)
def test_bad_inputs(x, exc, names):
    with pytest.raises(exc) as info:
        pk.max_pool2d(x, 2)
    for name in names:
        assert name in str(info.value), (name, str(info.value))


def test_general_max_pool_needs_a_kernel_tuple():
    with pytest.raises(TypeError, match="kernel_size"):
        pk.max_pool(X, 2)
    with pytest.raises(ValueError, match="kernel_size"):
        pk.max_pool(X, ())


def _forward():
    x = np.arange(36.0).reshape(1, 1, 6, 6)
    y, idx = pk.max_pool2d(x, 2, return_indices=True)
    return x, y, idx


@pytest.mark.parametrize(
    "mutate, exc, names",
    [
        (lambda x, y, i: (y[..., :2], i, x.shape), ValueError, ["indices", "shape"]),
        (lambda x, y, i: (y, i.astype(np.float64), x.shape), TypeError, ["indices", "integer"]),
        (lambda x, y, i: (y, i + 100, x.shape), ValueError, ["indices", "[0, 36)"]),
        (lambda x, y, i: (y, i - 10, x.shape), ValueError, ["indices", "range"]),
        (lambda x, y, i: (y.astype(np.int32), i, x.shape), TypeError, ["grad_output", "int32"]),
        (lambda x, y, i: (y, i, (1, 6, 6)), ValueError, ["input_shape", "dimensions"]),
        (lambda x, y, i: (y, i, (1, 2, 6, 6)), ValueError, ["input_shape", "channel"]),
        (lambda x, y, i: (y, i, (1, 1, 0, 6)), ValueError, ["input_shape", "non-empty"]),
        (lambda x, y, i: (y, i, (1, 1, -6, 6)), ValueError, ["input_shape", ">= 0"]),
        (lambda x, y, i: (y, i, "shape"), TypeError, ["input_shape"]),
        (lambda x, y, i: (y, i, (1, 1, 6.0, 6)), TypeError, ["input_shape"]),
        (lambda x, y, i: ([[1, 2], [3]], i, x.shape), ValueError, ["grad_output", "ragged"]),
    ],
)
def test_bad_backward_calls(mutate, exc, names):
    grad, idx, shape = mutate(*_forward())
    with pytest.raises(exc) as info:
        pk.max_pool2d_backward(grad, idx, shape)
    for name in names:
        assert name in str(info.value), (name, str(info.value))


def test_general_backward_spatial_dims_validated():
    x, y, idx = _forward()
    with pytest.raises(ValueError, match="spatial_dims"):
        pk.max_pool_backward(y, idx, x.shape, spatial_dims=0)
    with pytest.raises(ValueError, match="input_shape"):
        pk.max_pool_backward(y[0, 0], idx[0, 0], (6, 6))
    np.testing.assert_array_equal(
        pk.max_pool_backward(y, idx, x.shape), pk.max_pool2d_backward(y, idx, x.shape)
    )


def test_layer_backward_before_forward():
    with pytest.raises(RuntimeError, match="before forward"):
        pk.MaxPool2d(2).backward(np.zeros((1, 1, 1, 1)))


def test_layer_is_reusable_across_batch_sizes_and_has_a_repr():
    layer = pk.MaxPool2d((3, 2), stride=2, padding=1, return_indices=True)
    assert repr(layer) == (
        "MaxPool2d(kernel_size=(3, 2), stride=2, padding=1, dilation=1, ceil_mode=False, "
        "return_indices=True)"
    )
    for n in (1, 4, 2):
        x = np.random.default_rng(n).standard_normal((n, 3, 7, 7))
        y, idx = layer(x)
        np.testing.assert_array_equal(layer.forward(x)[0], pk.max_pool2d(x, (3, 2), 2, 1))
        dx = layer.backward(np.ones_like(y))
        assert dx.shape == x.shape
        np.testing.assert_array_equal(dx, pk.max_pool2d_backward(np.ones_like(y), idx, x.shape))
    with pytest.raises(ValueError, match=r"grad_output .* forward output \(2, 3, 4, 4\)"):
        layer.backward(np.ones((1, 3, 4, 4)))
