"""Compiled max pooling kernels (numba, cached on disk): the window engine.

The window engine serves what the vector kernels (``max_rows``, ``max_scan``, ``max_cl``)
do not take: NCHW plans with a W stride above 2 and planes of 2**31 elements or more,
and more than 3 spatial dims (:func:`max_pool_forward_nd`). It is plain numba over 1-D, 2-D and
3-D pooling, kept small so that it compiles in seconds: the callers hand 5-D views, either
``(N, C, D, H, W)`` (channels first, "NCHW") or ``(N, D, H, W, C)`` (channels last),
with unit leading spatial axes for lower ranks. Geometry comes as an int64 table
``kp`` of shape ``(4, 3)``: rows kernel, stride, pad_begin, dilation; columns D, H, W.

Every kernel is a serial function over a range of tasks (``*_range``, ``t0 <= task <
t1``); the engine runs it on this thread for tiny problems and splits the tasks over
poolkit's threads otherwise (:func:`poolkit._engine.run_tasks`). Tasks never share
output elements, so results do not depend on the thread count.

Semantics (shared by every path, docs/semantics.md §4): the window is scanned in
row-major order; a later element wins only if it is strictly greater or NaN (the first
maximum wins ties, the last NaN wins); padding never wins; a window with no element
inside the input yields ``fill`` and index -1. float16 travels as its uint16 bits and
is compared through :func:`order_key`.

Kernels are pure: they read their inputs and write only the output arrays given to
them. The backward (gradient routing) lives in :mod:`.route`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._scalar import is_nan, order_key

# --------------------------------------------------------------------------------------
# forward, channels first: one task = one output row (n, c, od, oh)
# --------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _interior(size, k, s, p, d, n_out):
    """Output positions ``[lo, hi)`` whose whole window lies inside ``[0, size)``."""
    lo = (p + s - 1) // s
    num = size - 1 + p - (k - 1) * d
    hi = num // s + 1 if num >= 0 else 0
    if hi > n_out:
        hi = n_out
    if lo > n_out:
        lo = n_out
    if hi < lo:
        hi = lo
    return lo, hi


@njit(cache=True, nogil=True)
def window_rows(kp, in_d, in_h, od, oh, rows):
    """The window rows of output row ``(od, oh)`` that lie inside the input.

    Writes their plane row numbers ``z * in_h + y`` to ``rows`` in scan order and
    returns how many there are (``kp``: the geometry table of the module docstring).
    """
    n_rows = 0
    z0 = od * kp[1, 0] - kp[2, 0]
    y0 = oh * kp[1, 1] - kp[2, 1]
    for a in range(kp[0, 0]):
        z = z0 + a * kp[3, 0]
        if z < 0 or z >= in_d:
            continue
        for b in range(kp[0, 1]):
            y = y0 + b * kp[3, 1]
            if y < 0 or y >= in_h:
                continue
            rows[n_rows] = z * in_h + y
            n_rows += 1
    return n_rows


@njit(cache=True, nogil=True)
def _wins(v, best):
    """Does ``v`` replace ``best`` in a scan? (strictly greater, or NaN; no branches)."""
    return (order_key(v) > order_key(best)) | is_nan(v)


@njit(cache=True, nogil=True)
def _border_columns(in_w, kw, sw, pw, dw, lo, n_in, out_w):
    """The border output columns (outside ``[lo, lo + n_in)``): an int64 ``(4, n)`` table.

    Column ``j`` holds the output column ``ow``, its first window column ``x0`` and the
    window columns ``e_lo <= e < e_hi`` inside ``[0, in_w)``. Computed once per call,
    not per row (the integer divisions would otherwise dominate the border windows).
    """
    n_border = out_w - n_in
    cols = np.empty((4, n_border), dtype=np.int64)
    for j in range(n_border):
        ow = j if j < lo else j + n_in
        x0 = ow * sw - pw
        cols[0, j] = ow
        cols[1, j] = x0
        cols[2, j] = 0 if x0 >= 0 else (-x0 + dw - 1) // dw
        cols[3, j] = min(kw, (in_w - 1 - x0) // dw + 1) if x0 <= in_w - 1 else 0
    return cols


@njit(cache=True, nogil=True)
def _border_row(x, out, idx, n, c, od, oh, zs, ys, n_rows, cols, dw, fill, want):
    """The windows of output row ``(n, c, od, oh)`` that cross the W border.

    ``cols`` comes from :func:`_border_columns`; ``zs``/``ys`` list the ``n_rows``
    window rows inside the input. Each window is scanned in row-major order over its
    elements inside the input; with none the result is ``(fill, -1)``.
    """
    in_h, in_w = x.shape[3], x.shape[4]
    for j in range(cols.shape[1]):  # (no view per window: index arrays, not slices)
        x0, e_lo, e_hi = cols[1, j], cols[2, j], cols[3, j]
        best = fill
        bi = -1
        if n_rows > 0 and e_lo < e_hi:
            best = x[n, c, zs[0], ys[0], x0 + e_lo * dw]
            bi = (zs[0] * in_h + ys[0]) * in_w + x0 + e_lo * dw
            for i in range(n_rows):
                base = (zs[i] * in_h + ys[i]) * in_w
                for e in range(e_lo, e_hi):
                    xx = x0 + e * dw
                    v = x[n, c, zs[i], ys[i], xx]
                    t = _wins(v, best)
                    best = v if t else best
                    bi = base + xx if t else bi
        out[n, c, od, oh, cols[0, j]] = best
        if want:
            idx[n, c, od, oh, cols[0, j]] = bi


#: Vector width the padded row buffers are rounded up to (AVX-512: 16 float32 lanes).
#: Running every pass over a multiple of it leaves no scalar remainder loop, whose
#: data-dependent branches would cost as much as the whole vectorised row.
_LANES = 16


@njit(cache=True, nogil=True)
def _step(v, i, m, mi):
    """One scan step: ``(v, i)`` replaces the running ``(m, mi)`` if it wins."""
    t = _wins(v, m)
    return (v if t else m), (i if t else mi)


@njit(cache=True, nogil=True)
def forward_nchw_range(x, out, idx, kp, fill, want, t0, t1):
    """Forward for output rows ``t0 <= task < t1`` of a channels-first 5-D view.

    ``task`` enumerates ``(n, c, od, oh)`` in row-major order. The window rows inside
    the input are listed first (:func:`window_rows`). Border columns (windows that
    cross the W border) go through :func:`_border_row`. The interior columns are
    computed in padded row buffers: each window row is phase-split by the W stride
    (``ph[q, k] = row[start + k*sw + q]``), after which every window column is a
    unit-stride run, and one branch-free vector pass per window element folds it into
    the running maximum ``acc``/``acci``. ``idx`` is only written if ``want``.
    """
    n_chan, in_d, in_h, in_w = x.shape[1], x.shape[2], x.shape[3], x.shape[4]
    out_d, out_h, out_w = out.shape[2], out.shape[3], out.shape[4]
    kw, sw, pw, dw = kp[0, 2], kp[1, 2], kp[2, 2], kp[3, 2]
    lo, hi = _interior(in_w, kw, sw, pw, dw, out_w)
    start = lo * sw - pw  # first input column of the first interior window
    n_in = hi - lo
    n_pad = (n_in + _LANES - 1) // _LANES * _LANES
    n_col = n_pad + ((kw - 1) * dw) // sw + 1  # phase-split columns per window row
    n_avail = in_w - start
    ph = np.empty((sw, n_col), dtype=x.dtype)
    acc = np.empty(n_pad, dtype=x.dtype)
    acci = np.empty(n_pad, dtype=np.int64)
    rows = np.empty((3, kp[0, 0] * kp[0, 1]), dtype=np.int64)  # plane row, z, y
    zs, ys = rows[1], rows[2]
    cols = _border_columns(in_w, kw, sw, pw, dw, lo, n_in, out_w)
    for task in range(t0, t1):
        oh = task % out_h
        r = task // out_h
        od = r % out_d
        r //= out_d
        c = r % n_chan
        n = r // n_chan
        n_rows = window_rows(kp, in_d, in_h, od, oh, rows[0])
        for i in range(n_rows):
            zs[i], ys[i] = divmod(rows[0, i], in_h)
        _border_row(x, out, idx, n, c, od, oh, zs, ys, n_rows, cols, dw, fill, want)
        if n_in == 0:
            continue
        if n_rows == 0:  # no window row inside the input: fill, index -1
            for ow in range(n_in):
                out[n, c, od, oh, np.uint64(lo + ow)] = fill
                if want:
                    idx[n, c, od, oh, np.uint64(lo + ow)] = -1
            continue
        for i in range(n_rows):
            z, y = zs[i], ys[i]
            for q in range(sw):  # phase-split the window row

                for k in range(min(n_col, (n_avail - q + sw - 1) // sw)):
                    ph[q, k] = x[n, c, z, y, np.uint64(start + k * sw + q)]
            ba = rows[0, i] * in_w + start
            for e in range(kw):
                q = (e * dw) % sw
                sh = (e * dw) // sw
                o = ba + e * dw
                if i == 0 and e == 0:
                    for ow in range(n_pad):
                        acc[ow] = ph[q, ow + sh]
                        acci[ow] = o + ow * sw
                else:
                    for ow in range(n_pad):
                        m, mi = _step(ph[q, ow + sh], o + ow * sw, acc[ow], acci[ow])
                        acc[ow] = m
                        acci[ow] = mi
        for ow in range(n_in):
            out[n, c, od, oh, np.uint64(lo + ow)] = acc[ow]
        if want:
            for ow in range(n_in):
                idx[n, c, od, oh, np.uint64(lo + ow)] = acci[ow]


# --------------------------------------------------------------------------------------
# forward, channels last: one task = one output row (n, od, oh); inner loop over C
# --------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def forward_nhwc_range(x, out, idx, kp, fill, want, t0, t1):
    """Forward for output rows ``t0 <= task < t1`` of a channels-last 5-D view.

    ``x`` is ``(N, D, H, W, C)``; ``task`` enumerates ``(n, od, oh)``. For each output
    pixel the window is scanned in row-major order and every window element updates all
    channels at once: the contiguous C axis is the vectorised inner loop (branch-free
    selects). The running maximum lives in ``out`` itself, the running index in an
    int64 scratch vector copied into ``idx`` once per pixel. No array views are made in
    the loops (a view costs reference counting).
    """
    in_d, in_h, in_w, n_chan = x.shape[1], x.shape[2], x.shape[3], x.shape[4]
    out_d, out_h, out_w = out.shape[1], out.shape[2], out.shape[3]
    kw, sw, pw, dw = kp[0, 2], kp[1, 2], kp[2, 2], kp[3, 2]
    acci = np.empty(n_chan, dtype=np.int64)
    rows = np.empty(kp[0, 0] * kp[0, 1], dtype=np.int64)
    for task in range(t0, t1):
        oh = task % out_h
        r = task // out_h
        od = r % out_d
        n = r // out_d
        n_rows = window_rows(kp, in_d, in_h, od, oh, rows)
        for ow in range(out_w):
            x0 = ow * sw - pw
            first = True
            for i in range(n_rows):
                z, y = divmod(rows[i], in_h)
                for e in range(kw):
                    xx = x0 + e * dw
                    if xx < 0 or xx >= in_w:
                        continue
                    k = rows[i] * in_w + xx
                    if first:
                        for c in range(n_chan):
                            out[n, od, oh, ow, c] = x[n, z, y, xx, c]
                            acci[c] = k
                        first = False
                        continue
                    for c in range(n_chan):
                        v = x[n, z, y, xx, c]
                        bv = out[n, od, oh, ow, c]
                        bi = acci[c]
                        t = _wins(v, bv)
                        out[n, od, oh, ow, c] = v if t else bv
                        acci[c] = k if t else bi
            if first:  # no window element inside the input: fill, index -1
                for c in range(n_chan):
                    out[n, od, oh, ow, c] = fill
                    acci[c] = -1
            if want:
                for c in range(n_chan):
                    idx[n, od, oh, ow, c] = acci[c]


@njit(cache=True, nogil=True)
def max_pool_forward_nd(x, out, idx, in_size, params, fill, want_indices, t0, t1):
    """Any-rank fallback on flattened planes (more than 3 spatial dims).

    ``x`` is ``(planes, prod(in_size))``, ``out``/``idx`` are ``(planes, n_out)``;
    ``params`` rows are kernel, stride, pad_begin, dilation, out_size (one column per
    spatial dim); the tasks are the planes ``t0 <= plane < t1``. Same scan order and
    tie/NaN rules as the 3-D kernels.
    """
    nd = in_size.shape[0]
    n_out = out.shape[1]
    kernel = params[0]
    stride = params[1]
    pad = params[2]
    dil = params[3]
    out_size = params[4]
    for plane in range(t0, t1):
        ocoord = np.zeros(nd, dtype=np.int64)
        kcoord = np.zeros(nd, dtype=np.int64)
        for o in range(n_out):
            rem = o
            for j in range(nd - 1, -1, -1):
                ocoord[j] = rem % out_size[j]
                rem //= out_size[j]
            kcoord[:] = 0
            found = False
            best_key = order_key(x[plane, 0])
            best = -1
            while True:
                flat = 0
                valid = True
                for j in range(nd):
                    pos = ocoord[j] * stride[j] - pad[j] + kcoord[j] * dil[j]
                    if pos < 0 or pos >= in_size[j]:
                        valid = False
                        break
                    flat = flat * in_size[j] + pos
                if valid:
                    v = x[plane, flat]
                    key = order_key(v)
                    if not found or key > best_key or is_nan(v):
                        found = True
                        best_key = key
                        best = flat
                # advance the window odometer (last dim fastest = row-major scan)
                j = nd - 1
                while j >= 0:
                    kcoord[j] += 1
                    if kcoord[j] < kernel[j]:
                        break
                    kcoord[j] = 0
                    j -= 1
                if j < 0:
                    break
            out[plane, o] = x[plane, best] if found else fill
            if want_indices:
                idx[plane, o] = best
