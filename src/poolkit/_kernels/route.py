"""Compiled gradient routing of the max-like backward passes, and the channels-last
plane mean (numba, cached on disk).

**Routing** (docs/semantics.md §6): each output gradient is added to the input element
its plane index names, outputs in row-major order per ``(n, c)`` plane. A task owns a
block of ``dx`` (channels first: one plane; channels last: one batch item, or a block of
its rows) and reads the outputs in order, so the order of the adds per element never
depends on the split. ``dx`` is zeroed by the kernel itself, so each element is written
while it is in cache, zeros and gradients in one pass over memory, for any index order:
a task whose block of ``dx`` fits in cache (``zero_first``, chosen by the caller) zeroes
it whole and then adds, a larger one zeroes each row just ahead of the first add that
reaches it (a *watermark*: every row below it is zeroed, and an index at or above it
zeroes up to a short distance past itself). Index -1 (an empty window) adds nothing; any
other index outside the plane sets the task's flag in ``bad`` (never raised here).

**Plane mean, channels last**: the mean of each ``(n, c)`` plane of an ``(N, P, C)``
array in the 16-lane order of :mod:`._lanes` (element ``i`` of a plane into lane
``i % 16``, each lane from +0.0, lanes folded pairwise, one division), the same bits as
:func:`.adaptive.plane_mean_range` on the same plane laid out contiguously. The lanes of
a block of channels sit side by side, so every add is a vector add across channels and
each channel keeps its own order.

Every kernel is a serial function over a range of tasks, ``(..., t0, t1)``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._lanes import LANES
from ._scalar import accumulate
from .avg_pool import divide, from_opmath, opmath_zero, to_opmath

#: Elements (channels first) a watermark step zeroes past the index that reached it.
_AHEAD_ELEMENTS = 2048

#: Rows (channels last) a watermark step zeroes past the index that reached it.
_AHEAD_ROWS = 64

@njit(cache=True, nogil=True, inline="always")
def _zero_run(row, start, stop):
    """``row[start:stop] = 0`` (a vectorised store loop)."""
    zero = row.dtype.type(0)
    for j in range(start, stop):
        row[j] = zero


@njit(cache=True, nogil=True)
def route_planes_range(grad, idx, dx, bad, zero_first, t0, t1):
    """Planes ``t0 <= p < t1``: ``dx[p, idx[p, o]] += grad[p, o]`` for ``o`` in order.

    ``grad``/``idx`` are ``(P, n_out)``, ``dx`` is ``(P, plane)``, any content on entry
    (see the module docstring): with ``zero_first`` (a plane that fits in cache) each
    plane is zeroed whole before its adds, else by the watermark. Sets ``bad[p]`` for
    an index outside ``[0, plane)`` other than -1.
    """
    plane = np.uint64(dx.shape[1])
    n_out = np.uint64(grad.shape[1])
    ahead = np.uint64(_AHEAD_ELEMENTS)
    for p in range(t0, t1):
        drow = dx[p]
        grow = grad[p]
        irow = idx[p]
        if zero_first:  # one check per add
            _zero_run(drow, 0, plane)
            for o in range(n_out):
                i = irow[o]
                u = np.uint64(i)
                if u < plane:
                    drow[u] = accumulate(drow[u], grow[o])
                elif i != -1:
                    bad[p] = 1
            continue
        zeroed = np.uint64(0)
        for o in range(n_out):
            i = irow[o]
            u = np.uint64(i)
            if u >= plane:
                if i != -1:
                    bad[p] = 1
                continue
            if u >= zeroed:
                stop = min(plane, u + ahead)
                _zero_run(drow, zeroed, stop)
                zeroed = stop
            drow[u] = accumulate(drow[u], grow[o])
        if zeroed < plane:
            _zero_run(drow, zeroed, plane)


@njit(cache=True, nogil=True)
def route_pixels_range(grad, idx, dx, bad, n_parts, zero_first, t0, t1):
    """Channels-last routing for tasks ``t0 <= task < t1``.

    ``grad``/``idx`` are ``(N, n_out, C)``, ``dx`` is ``(N, plane, C)``, any content on
    entry: with ``zero_first`` (a task's rows fit in cache) the rows are zeroed whole
    before the adds, else by the watermark. Task ``n * n_parts + j`` owns the rows
    ``[j * plane // n_parts, (j + 1) * plane // n_parts)`` of ``dx[n]``, all channels:
    it reads every output of item ``n`` in order and adds those whose index falls in
    its rows (each channel at its own column: the channels of one output never meet).
    Memory is walked in order, whole rows at a time. One check of the smallest and
    largest index of all an output's channels sends it one of three ways: all in the
    task's rows (every output when a task owns a whole item), adds without a branch;
    all in the plane but none in the task's rows, skipped; else a check per channel.
    Sets ``bad[task]`` for an index outside ``[0, plane)`` other than -1.
    """
    plane = np.uint64(dx.shape[1])
    n_chan = np.uint64(dx.shape[2])
    n_out = np.uint64(grad.shape[1])
    ahead = np.uint64(_AHEAD_ROWS)
    for task in range(t0, t1):
        n = task // n_parts
        part = task % n_parts
        r0 = np.uint64(part * dx.shape[1] // n_parts)
        r1 = np.uint64((part + 1) * dx.shape[1] // n_parts)
        span = r1 - r0
        gn = grad[n]
        in_ = idx[n]
        dn = dx[n]
        flat = dn.reshape(dn.size)  # rows r0 .. r1 are one contiguous run
        flag = False
        zeroed = r0
        if zero_first:
            _zero_run(flat, r0 * n_chan, r1 * n_chan)
            zeroed = r1
        for o in range(n_out):
            grow = gn[o]
            irow = in_[o]
            lo = np.uint64(-1)  # the output's smallest and largest index (-1: huge)
            hi = np.uint64(0)
            for c in range(n_chan):
                u = np.uint64(irow[c])
                lo = min(lo, u)
                hi = max(hi, u)
            if hi < r0 or (lo >= r1 and hi < plane):
                continue  # every index in the plane, none in the task's rows
            if lo >= r0 and hi < r1:  # every channel adds inside the task's rows
                if hi >= zeroed:
                    stop = min(r1, hi + ahead)
                    _zero_run(flat, zeroed * n_chan, stop * n_chan)
                    zeroed = stop
                for c in range(n_chan):
                    at = np.uint64(irow[c]) * n_chan + c
                    flat[at] = accumulate(flat[at], grow[c])
                continue
            for c in range(n_chan):
                i = irow[c]
                u = np.uint64(i)
                if u - r0 >= span:  # not in this task's rows (or not in the plane)
                    flag |= (u >= plane) & (i != -1)
                    continue
                if u >= zeroed:
                    stop = min(r1, u + ahead)
                    _zero_run(flat, zeroed * n_chan, stop * n_chan)
                    zeroed = stop
                at = u * n_chan + c
                flat[at] = accumulate(flat[at], grow[c])
        if zeroed < r1:
            _zero_run(flat, zeroed * n_chan, r1 * n_chan)
        if flag:
            bad[task] = 1


@njit(cache=True, nogil=True)
def plane_mean_pixels_range(x, out, block, by_lane, t0, t1):
    """Channels-last plane means for tasks ``t0 <= task < t1`` (one batch item and one
    block of ``block`` channels each): ``x`` is ``(N, P, C)`` C-contiguous (float16 as
    bits), ``out`` the flat ``(N * C,)`` means in ``x``'s dtype, in the lane order of
    :mod:`._lanes` per channel (see the module docstring).

    ``by_lane``: fill one lane at a time (rows ``l, l + 16, ...``; one lane row stays in
    L1, for long rows), else walk the rows in order, each into its lane (all 16 lanes
    of the block stay in L1, for short rows). Same adds in the same order either way.
    """
    size = np.uint64(x.shape[1])
    n_chan = x.shape[2]
    n_blocks = (n_chan + block - 1) // block
    like = x[0, 0, 0]
    zero = opmath_zero(like)
    lanes = np.full((LANES, block), zero)
    n_lanes = np.uint64(LANES)
    for task in range(t0, t1):
        n = task // n_blocks
        c0 = (task % n_blocks) * block
        width = np.uint64(min(c0 + block, n_chan) - c0)
        cb = np.uint64(c0)
        xn = x[n]
        for k in range(n_lanes):
            lane = lanes[k]
            for c in range(width):
                lane[c] = zero
            if by_lane:
                for i in range(k, size, n_lanes):
                    row = xn[i]
                    for c in range(width):
                        lane[c] += to_opmath(row[cb + c])
        if not by_lane:
            for i in range(size):
                lane = lanes[i % n_lanes]
                row = xn[i]
                for c in range(width):
                    lane[c] += to_opmath(row[cb + c])
        half = LANES // 2
        while half >= 1:
            for k in range(half):
                low = lanes[k]
                high = lanes[k + half]
                for c in range(width):
                    low[c] += high[c]
            half //= 2
        total = lanes[0]
        base = np.uint64(n * n_chan + c0)
        for c in range(width):
            out[base + c] = from_opmath(divide(total[c], size), like)

