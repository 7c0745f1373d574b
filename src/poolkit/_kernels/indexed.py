"""Compiled index kernels on ``(planes, elements)`` arrays: scatter-add, scatter, gather.

Used by the backward passes of adaptive and fractional max pooling (scatter-add of
gradients at argmax indices) and by max unpooling (scatter forward, gather backward).
Parallel over planes; within a plane, elements are visited in row-major order, so
results are deterministic. Out-of-range indices are reported through ``bad[plane]``
instead of raising.
"""

from __future__ import annotations

from numba import njit, prange

from ._scalar import accumulate


@njit(parallel=True, cache=True, nogil=True)
def scatter_add(src, idx, dst, bad):
    """``dst[p, idx[p, i]] += src[p, i]`` in order of ``i``; ``dst`` starts zeroed."""
    size = dst.shape[1]
    for p in prange(src.shape[0]):
        for i in range(src.shape[1]):
            j = idx[p, i]
            if j < 0 or j >= size:
                bad[p] = 1
                continue
            dst[p, j] = accumulate(dst[p, j], src[p, i])


@njit(parallel=True, cache=True, nogil=True)
def scatter_set(src, idx, dst, bad):
    """``dst[p, idx[p, i]] = src[p, i]`` in order of ``i`` (the last write wins)."""
    size = dst.shape[1]
    for p in prange(src.shape[0]):
        for i in range(src.shape[1]):
            j = idx[p, i]
            if j < 0 or j >= size:
                bad[p] = 1
                continue
            dst[p, j] = src[p, i]


@njit(parallel=True, cache=True, nogil=True)
def gather(src, idx, dst, bad):
    """``dst[p, i] = src[p, idx[p, i]]``."""
    size = src.shape[1]
    for p in prange(dst.shape[0]):
        for i in range(dst.shape[1]):
            j = idx[p, i]
            if j < 0 or j >= size:
                bad[p] = 1
                dst[p, i] = 0
                continue
            dst[p, i] = src[p, j]
