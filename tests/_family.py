"""Shared helpers for the pooling-family tests (average, Lp, adaptive, fractional, unpool)."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

from _torch_oracle import assert_bits_equal
from poolkit import _engine

FLOATS = (np.float16, np.float32, np.float64)


@contextmanager
def forced_serial_work(serial: bool):
    """Every call inside runs on the calling thread (``serial``) or splits its tasks over
    poolkit's threads whatever its size: ``_engine.SERIAL_WORK`` set to the extreme."""
    old = _engine.SERIAL_WORK
    _engine.SERIAL_WORK = 1 << 62 if serial else 0
    try:
        yield
    finally:
        _engine.SERIAL_WORK = old


@contextmanager
def forced_streaming(streaming: bool = True):
    """Every call inside that can stream (output runs of whole vectors,
    ``_engine.streamable_bytes``) streams past the cache (non-temporal stores, aligned
    outputs) as a call larger than the cache does (``streaming``), or none does:
    ``_engine.STREAM_BYTES`` set to the extreme."""
    old = _engine.STREAM_BYTES
    _engine.STREAM_BYTES = -1 if streaming else 1 << 62
    try:
        yield
    finally:
        _engine.STREAM_BYTES = old


def assert_same(actual: np.ndarray, expected: np.ndarray) -> None:
    """Bit-for-bit equal values (NaN where NaN), same shape and dtype."""
    assert_bits_equal(np.asarray(actual), np.asarray(expected), "values")


def random_input(rng, shape, dtype, ties: bool = False, nan: bool = False) -> np.ndarray:
    """Random array; ``ties`` draws from a few values, ``nan`` sprinkles NaNs."""
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        info = np.iinfo(dtype)
        return rng.integers(max(info.min, -50), min(info.max, 50), size=shape).astype(dtype)
    if ties:
        x = rng.integers(-3, 4, size=shape) / 2.0
    else:
        x = rng.standard_normal(shape)
    x = x.astype(dtype)
    if nan and x.size:
        x.flat[rng.integers(0, x.size, size=max(1, x.size // 10))] = np.nan
    return x


def channels_last(x: np.ndarray) -> np.ndarray:
    """Contiguous channels-last copy of a batched channels-first array."""
    return np.ascontiguousarray(np.moveaxis(x, 1, -1))


def from_channels_last(x: np.ndarray) -> np.ndarray:
    """Channels-first view of a batched channels-last array."""
    return np.moveaxis(x, -1, 1)


def t(x: np.ndarray, grad: bool = False) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(x))
    return tensor.requires_grad_(True) if grad else tensor


def raises_both(pk_call, torch_call, pk_error=(ValueError, TypeError)) -> None:
    """poolkit raises ValueError/TypeError exactly where PyTorch raises anything."""
    try:
        torch_call()
    except Exception:  # any PyTorch rejection counts
        torch_failed = True
    else:
        torch_failed = False
    try:
        pk_call()
    except pk_error:
        pk_failed = True
    else:
        pk_failed = False
    assert torch_failed and pk_failed, (torch_failed, pk_failed)


def check_gradient(f, grad_fn, x: np.ndarray, rng, eps: float = 1e-6, rtol: float = 1e-6):
    """Central finite difference of ``<g, f(x)>`` along random directions (float64)
    against ``<grad_fn(g), v>``."""
    g = rng.standard_normal(np.shape(f(x)))
    dx = grad_fn(g)
    for _ in range(3):
        v = rng.standard_normal(x.shape)
        fd = (np.sum(g * f(x + eps * v)) - np.sum(g * f(x - eps * v))) / (2 * eps)
        analytic = np.sum(dx * v)
        assert abs(fd - analytic) <= rtol * max(1.0, abs(analytic)) + 1e-7, (fd, analytic)
