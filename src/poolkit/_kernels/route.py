"""Compiled gradient routing of the max-like backward passes, and the channels-last
plane mean (numba, cached on disk).

**Routing** (docs/semantics.md §6): each output gradient is added to the input element
its plane index names, outputs in row-major order per ``(n, c)`` plane. A task owns
whole ``(n, c)`` planes of ``dx`` (channels first: one plane; channels last: one batch
item and a block of channels), so the order of the adds per element never depends on
the split. ``dx`` is zeroed by the kernel itself, so each element is written while it
is in cache, zeros and gradients in one pass over memory, for any index order: a task
whose block of ``dx`` fits in cache (``zero_first``, chosen by the caller) zeroes it
whole and then adds, a larger one zeroes each row just ahead of the first add that
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
from ._scalar import accumulate, unsigned
from .avg_pool import divide, from_opmath, opmath_zero, to_opmath

#: Elements (channels first) a watermark step zeroes past the index that reached it.
_AHEAD_ELEMENTS = 2048

#: Rows (channels last) a watermark step zeroes past the index that reached it.
_AHEAD_ROWS = 64

#: Outputs (channels first) whose index range a watermark step takes at once.
_CHUNK = 64


@njit(cache=True, nogil=True, inline="always")
def _zero_run(row, start, stop):
    """``row[start:stop] = 0`` (a vectorised store loop)."""
    zero = row.dtype.type(0)
    for j in range(start, stop):
        row[j] = zero


@njit(cache=True, nogil=True, inline="always")
def _index_range(irow, start, stop, lo, hi):
    """``(min(lo, irow[start:stop]), max(hi, irow[start:stop]))`` (a vector reduction)."""
    for o in range(start, stop):
        i = irow[o]
        lo = min(lo, i)
        hi = max(hi, i)
    return lo, hi


@njit(cache=True, nogil=True)
def route_planes_range(grad, idx, dx, bad, zero_first, t0, t1):
    """Planes ``t0 <= p < t1``: ``dx[p, idx[p, o]] += grad[p, o]`` for ``o`` in order.

    ``grad``/``idx`` are ``(P, n_out)``, ``dx`` is ``(P, plane)``, any content on entry
    (see the module docstring). Sets ``bad[p]`` for an index outside ``[0, plane)``
    other than -1.

    ``zero_first`` (a plane that fits in cache): zero the plane, then add with one
    range check per add. Else the watermark, in chunks of ``_CHUNK`` outputs: the range
    of a chunk's indices (one vector pass) moves it once and, when every index lies in
    the plane, lets the adds run unchecked; a chunk holding -1 or a bad index takes the
    checked loop. The adds keep their order either way.
    """
    plane = dx.shape[1]
    n_out = unsigned(grad.shape[1])
    chunk = unsigned(_CHUNK)
    for p in range(t0, t1):
        drow = dx[p]
        grow = grad[p]
        irow = idx[p]
        if zero_first:
            _zero_run(drow, 0, unsigned(plane))
            for o in range(n_out):
                i = irow[o]
                u = unsigned(i)
                if u < unsigned(plane):
                    drow[u] = accumulate(drow[u], grow[o])
                elif i != -1:
                    bad[p] = 1
            continue
        zeroed = 0
        for c0 in range(unsigned(0), n_out, chunk):
            c1 = min(c0 + chunk, n_out)
            lo, hi = _index_range(irow, c0, c1, plane, -1)
            if lo < 0 or hi >= plane:  # -1 (empty windows) or bad indices: checked
                for o in range(c0, c1):
                    i = irow[o]
                    if i < 0 or i >= plane:
                        if i != -1:
                            bad[p] = 1
                        continue
                    if i >= zeroed:
                        stop = min(plane, i + _AHEAD_ELEMENTS)
                        _zero_run(drow, unsigned(zeroed), unsigned(stop))
                        zeroed = stop
                    u = unsigned(i)
                    drow[u] = accumulate(drow[u], grow[o])
                continue
            if hi >= zeroed:
                stop = min(plane, hi + _AHEAD_ELEMENTS)
                _zero_run(drow, unsigned(zeroed), unsigned(stop))
                zeroed = stop
            for o in range(c0, c1):
                u = unsigned(irow[o])
                drow[u] = accumulate(drow[u], grow[o])
        if zeroed < plane:
            _zero_run(drow, unsigned(zeroed), unsigned(plane))


@njit(cache=True, nogil=True, inline="always")
def _add_checked(flat, grow, irow, r0, span, plane, n_chan):
    """``flat[irow[c] * n_chan + c] += grow[c]`` for the indices in rows
    ``[r0, r0 + span)``; True if some index is outside ``[0, plane)`` and not -1."""
    bad = False
    for c in range(n_chan):
        i = irow[c]
        if unsigned(i - r0) < span:
            at = unsigned(i) * n_chan + c
            flat[at] = accumulate(flat[at], grow[c])
        elif i != -1 and unsigned(i) >= unsigned(plane):
            bad = True
    return bad


@njit(cache=True, nogil=True)
def route_pixels_range(grad, idx, dx, bad, n_parts, zero_first, t0, t1):
    """Channels-last routing for tasks ``t0 <= task < t1``.

    ``grad``/``idx`` are ``(N, n_out, C)``, ``dx`` is ``(N, plane, C)``, any content on
    entry. Task ``n * n_parts + j`` owns the rows
    ``[j * plane // n_parts, (j + 1) * plane // n_parts)`` of ``dx[n]``, all channels:
    it reads every output of item ``n`` in order and adds those whose index falls in
    its rows (each channel at its own column: the channels of one output never meet).
    Memory is walked in order, whole rows at a time. Sets ``bad[task]`` for an index
    outside ``[0, plane)`` other than -1.

    ``zero_first`` (a task's rows fit in cache): zero them, then add with one range
    check per add. Else the watermark: per output pixel, the range of its channels'
    indices (one vector pass) moves it once; a pixel whose indices all lie in the
    task's rows adds unchecked, one wholly outside them is skipped, the rest take the
    checked loop.
    """
    plane = dx.shape[1]
    n_chan = unsigned(dx.shape[2])
    n_out = grad.shape[1]
    for task in range(t0, t1):
        n = task // n_parts
        part = task % n_parts
        r0 = part * plane // n_parts
        r1 = (part + 1) * plane // n_parts
        span = unsigned(r1 - r0)
        gn = grad[n]
        in_ = idx[n]
        flat = dx[n].reshape(plane * dx.shape[2])  # rows r0 .. r1 are one contiguous run
        if zero_first:
            _zero_run(flat, unsigned(r0) * n_chan, unsigned(r1) * n_chan)
            for o in range(n_out):
                if _add_checked(flat, gn[o], in_[o], r0, span, plane, n_chan):
                    bad[task] = 1
            continue
        flag = False
        zeroed = r0
        for o in range(n_out):
            grow = gn[o]
            irow = in_[o]
            lo, hi = _index_range(irow, unsigned(0), n_chan, plane, -1)
            if hi < r0 or lo >= r1:  # no index in this task's rows
                flag |= (hi >= plane) | (lo < -1)
                continue
            if hi >= zeroed:
                stop = min(r1, hi + _AHEAD_ROWS)
                _zero_run(flat, unsigned(zeroed) * n_chan, unsigned(stop) * n_chan)
                zeroed = stop
            if lo >= r0 and hi < r1:
                for c in range(n_chan):
                    at = unsigned(irow[c]) * n_chan + c
                    flat[at] = accumulate(flat[at], grow[c])
            else:
                flag |= _add_checked(flat, grow, irow, r0, span, plane, n_chan)
        if zeroed < r1:
            _zero_run(flat, unsigned(zeroed) * n_chan, unsigned(r1) * n_chan)
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
