"""Compiled index kernels on ``(planes, elements)`` arrays: scatter and winner-gather.

Used by max unpooling (scatter forward, winner-gather backward) and fractional max
pooling's forward (windows at per-plane offsets). Range kernels over planes (``t0 <=
plane < t1``, run by :func:`poolkit._engine.run_tasks`); within a plane, elements are
visited in row-major order, so results are deterministic. Out-of-range indices are
reported through ``bad[plane]`` instead of raising.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .adaptive import window_argmax


@njit(cache=True, nogil=True)
def scatter_set(src, idx, dst, bad, t0, t1):
    """``dst[p, idx[p, i]] = src[p, i]`` in order of ``i`` (the last write wins)."""
    size = dst.shape[1]
    for p in range(t0, t1):
        for i in range(src.shape[1]):
            j = idx[p, i]
            if j < 0 or j >= size:
                bad[p] = 1
                continue
            dst[p, j] = src[p, i]


@njit(cache=True, nogil=True)
def unpool_backward(grad, idx, dx, bad, t0, t1):
    """``dx[p, i] = grad[p, idx[p, i]]`` if element ``i`` won its output slot, else 0.

    The forward (:func:`scatter_set`) keeps the last write to a slot, so only the last
    element (in row-major order) pointing at a slot receives that slot's gradient.
    """
    size = grad.shape[1]
    for p in range(t0, t1):
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


@njit(cache=True, nogil=True)
def scatter_set_pixels(src, idx, dst, bad, t0, t1):
    """:func:`scatter_set` for channels-last arrays: ``src``/``idx`` ``(N, Q, C)``,
    ``dst`` ``(N, P, C)``, tasks = batch items. Every channel is its own plane and the
    pixels are taken in order, so each plane's writes keep their order (the last wins)."""
    size, n_chan = dst.shape[1], dst.shape[2]
    for n in range(t0, t1):
        for i in range(src.shape[1]):
            for c in range(n_chan):
                j = idx[n, i, c]
                if j < 0 or j >= size:
                    bad[n] = 1
                    continue
                dst[n, j, c] = src[n, i, c]


@njit(cache=True, nogil=True)
def unpool_backward_pixels(grad, idx, dx, bad, t0, t1):
    """:func:`unpool_backward` for channels-last arrays: ``grad`` ``(N, P, C)``,
    ``idx``/``dx`` ``(N, Q, C)``, tasks = batch items."""
    size, n_chan = grad.shape[1], grad.shape[2]
    winner = np.empty((size, n_chan), dtype=np.int64)
    for n in range(t0, t1):
        winner[:] = -1
        for i in range(dx.shape[1]):
            for c in range(n_chan):
                j = idx[n, i, c]
                if j < 0 or j >= size:
                    bad[n] = 1
                    continue
                winner[j, c] = i
        for i in range(dx.shape[1]):
            for c in range(n_chan):
                j = idx[n, i, c]
                if 0 <= j < size and winner[j, c] == i:
                    dx[n, i, c] = grad[n, j, c]
                else:
                    dx[n, i, c] = 0


@njit(cache=True, nogil=True)
def fractional_max_forward(x, out, idx, starts_d, starts_h, starts_w, pool, t0, t1):
    """Max over windows of size ``pool`` starting at per-plane offsets.

    ``x``/``out``/``idx`` are 5-D ``(N, C, D, H, W)`` views; ``starts_*`` are
    ``(N*C, out_*)`` window starts; tasks ``t0 <= task < t1`` of ``N * C * out_d``.
    First maximum wins ties (strict ``>``), the last NaN wins; indices are flat per
    plane.
    """
    n_chan = x.shape[1]
    out_d, out_h, out_w = out.shape[2], out.shape[3], out.shape[4]
    kd, kh, kw = pool[0], pool[1], pool[2]
    for task in range(t0, t1):
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
