"""Compiled index kernels on ``(planes, elements)`` arrays: scatter-add, scatter, gather.

Used by the backward passes of adaptive and fractional max pooling (scatter-add of
gradients at argmax indices) and by max unpooling (scatter forward, winner-gather
backward); fractional max pooling's forward lives here too (windows at per-plane
offsets).
Parallel over planes; within a plane, elements are visited in row-major order, so
results are deterministic. Out-of-range indices are reported through ``bad[plane]``
instead of raising.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._scalar import accumulate
from .adaptive import window_argmax


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
def unpool_backward(grad, idx, dx, bad):
    """``dx[p, i] = grad[p, idx[p, i]]`` if element ``i`` won its output slot, else 0.

    The forward (:func:`scatter_set`) keeps the last write to a slot, so only the last
    element (in row-major order) pointing at a slot receives that slot's gradient.
    """
    size = grad.shape[1]
    for p in prange(dx.shape[0]):
        winner = np.full(size, -1, dtype=np.int64)
        for i in range(dx.shape[1]):
            j = idx[p, i]
            if j < 0 or j >= size:
                bad[p] = 1
                continue
            winner[j] = i
        for i in range(dx.shape[1]):
            j = idx[p, i]
            if 0 <= j < size and winner[j] == i:
                dx[p, i] = grad[p, j]
            else:
                dx[p, i] = 0


@njit(parallel=True, cache=True, nogil=True)
def fractional_max_forward(x, out, idx, starts_d, starts_h, starts_w, pool):
    """Max over windows of size ``pool`` starting at per-plane offsets.

    ``x``/``out``/``idx`` are 5-D ``(N, C, D, H, W)`` views; ``starts_*`` are
    ``(N*C, out_*)`` window starts. First maximum wins ties (strict ``>``), the last
    NaN wins; indices are flat per plane.
    """
    n_batch, n_chan = x.shape[0], x.shape[1]
    out_d, out_h, out_w = out.shape[2], out.shape[3], out.shape[4]
    kd, kh, kw = pool[0], pool[1], pool[2]
    for task in prange(n_batch * n_chan * out_d):
        plane = task // out_d
        n = plane // n_chan
        c = plane % n_chan
        od = task % out_d
        z0 = starts_d[plane, od]
        for oh in range(out_h):
            y0 = starts_h[plane, oh]
            for ow in range(out_w):
                x0 = starts_w[plane, ow]
                best, best_at = window_argmax(
                    x, n, c, z0, z0 + kd, y0, y0 + kh, x0, x0 + kw
                )
                out[n, c, od, oh, ow] = best
                idx[n, c, od, oh, ow] = best_at
