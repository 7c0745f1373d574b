"""Shared helpers for differential tests against PyTorch (the test-only oracle)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)

TORCH_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}


def to_channels_first(x: np.ndarray, nd: int, channels_last: bool) -> np.ndarray:
    """The NCHW-equivalent of a poolkit input (what PyTorch's functions take)."""
    return np.moveaxis(x, -1, -nd - 1) if channels_last else x


def from_channels_first(y: np.ndarray, nd: int, channels_last: bool) -> np.ndarray:
    return np.moveaxis(y, -nd - 1, -1) if channels_last else y


def torch_max_pool(x_cf: np.ndarray, nd: int, grad_cf: np.ndarray | None, **kw):
    """Run PyTorch max pooling (with indices) and, if ``grad_cf`` is given, its backward.

    Returns ``(values, indices, grad_input or None)`` as NumPy arrays in NCHW layout.
    """
    xt = torch.from_numpy(np.ascontiguousarray(x_cf))
    floating = xt.is_floating_point()
    if grad_cf is not None and floating:
        xt.requires_grad_(True)
    y, idx = TORCH_MAX_POOL[nd](xt, return_indices=True, **kw)
    grad = None
    if grad_cf is not None and floating:
        y.backward(torch.from_numpy(np.ascontiguousarray(grad_cf)))
        grad = xt.grad.numpy()
    return y.detach().numpy(), idx.numpy(), grad


def bits(a: np.ndarray) -> np.ndarray:
    """Exact bit patterns (so -0.0 != 0.0 and NaN payloads count)."""
    a = np.ascontiguousarray(a)
    return a.view(f"u{a.dtype.itemsize}") if a.dtype.kind == "f" else a


def assert_bits_equal(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    same = bits(actual) == bits(expected)
    if actual.dtype.kind == "f":
        same |= np.isnan(actual) & np.isnan(expected)
    if not same.all():
        where = np.argwhere(~same)[:5]
        detail = [(tuple(w), actual[tuple(w)], expected[tuple(w)]) for w in where]
        raise AssertionError(f"{what}: {(~same).sum()} elements differ, e.g. {detail}")
