"""Compiled max pooling kernels (numba, cached on disk).

One window engine serves 1-D, 2-D and 3-D pooling: the callers hand 5-D views, either
``(N, C, D, H, W)`` (channels first, "NCHW") or ``(N, D, H, W, C)`` (channels last),
with unit leading spatial axes for lower ranks. Geometry comes as an int64 table
``kp`` of shape ``(4, 3)``: rows kernel, stride, pad_begin, dilation; columns D, H, W.

Every kernel exists as a serial function over a range of tasks (``*_range``) and a
parallel wrapper that splits the tasks over numba's threads (``*_par``); callers pick
the serial one for tiny problems, where starting the thread team costs more than the
work. Tasks never share output elements, so results do not depend on the thread count.

Semantics (shared by every path, docs/semantics.md §4): the window is scanned in
row-major order; a later element wins only if it is strictly greater or NaN (the first
maximum wins ties, the last NaN wins); padding never wins; a window with no element
inside the input yields ``fill`` and index -1. float16 travels as its uint16 bits and
is compared through :func:`order_key`.

Kernels are pure: they read their inputs and write only the output arrays given to
them; bad indices in the backward are reported through a flag array, never raised.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._scalar import accumulate, is_nan, order_key

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


@njit(cache=True, nogil=True, inline="always")
def _wins(v, best):
    """Does ``v`` replace ``best`` in a scan? (strictly greater, or NaN; no branches)."""
    return (order_key(v) > order_key(best)) | is_nan(v)


@njit(cache=True, nogil=True, inline="always")
def _step(v, i, m, mi):
    """One scan step: ``(v, i)`` replaces the running ``(m, mi)`` if it wins."""
    t = _wins(v, m)
    return (v if t else m), (i if t else mi)


@njit(cache=True, nogil=True)
def _border_columns(in_w, kw, sw, pw, dw, lo, n_in, out_w):
    """Border output columns (outside ``[lo, lo + n_in)``) and their valid window columns.

    Returns ``(ows, e_lo, e_hi)``: for border column ``ows[j]``, the window columns
    ``e_lo[j] <= e < e_hi[j]`` lie inside ``[0, in_w)``. Computed once per call, not per
    row (the integer divisions would otherwise dominate the border windows).
    """
    n_border = out_w - n_in
    ows = np.empty(n_border, dtype=np.int64)
    e_lo = np.empty(n_border, dtype=np.int64)
    e_hi = np.empty(n_border, dtype=np.int64)
    for j in range(n_border):
        ow = j if j < lo else j + n_in
        x0 = ow * sw - pw
        ows[j] = ow
        e_lo[j] = 0 if x0 >= 0 else (-x0 + dw - 1) // dw
        e_hi[j] = min(kw, (in_w - 1 - x0) // dw + 1) if x0 <= in_w - 1 else 0
    return ows, e_lo, e_hi


@njit(cache=True, nogil=True, inline="always")
def _border_point(x, n, c, zs, ys, n_rows, x0, e_lo, e_hi, dw, fill):
    """One window that crosses the W border: ``(value, flat plane index)``.

    ``zs``/``ys`` list the window rows inside the input (``n_rows`` of them, in scan
    order); the window columns inside the input are ``x0 + e*dw`` for
    ``e_lo <= e < e_hi`` (see :func:`_border_columns`). Scans in row-major order; with
    no element inside the input the result is ``(fill, -1)``.
    """
    in_h, in_w = x.shape[3], x.shape[4]
    if n_rows == 0 or e_lo >= e_hi:
        return fill, -1
    best = x[n, c, zs[0], ys[0], x0 + e_lo * dw]
    bi = (zs[0] * in_h + ys[0]) * in_w + x0 + e_lo * dw
    for i in range(n_rows):
        base = (zs[i] * in_h + ys[i]) * in_w
        for e in range(e_lo, e_hi):
            xx = x0 + e * dw
            best, bi = _step(x[n, c, zs[i], ys[i], xx], base + xx, best, bi)
    return best, bi


#: Vector width the padded row buffers are rounded up to (AVX-512: 16 float32 lanes).
#: Running every pass over a multiple of it leaves no scalar remainder loop, whose
#: data-dependent branches would cost as much as the whole vectorised row.
_LANES = 16

#: Rows with at least this many interior outputs and a single pass are written straight
#: into the output arrays.
_DIRECT = 256


@njit(cache=True, nogil=True, inline="always")
def _split(x, n, c, z, y, start, ph, r, sw, n_col):
    """Phase-split input row ``x[n, c, z, y, start:]`` into ``ph[r]``.

    ``ph[r, q, k] = x[n, c, z, y, start + k*sw + q]`` for the elements that exist. After
    the split every window column of a stride-``sw`` pooling is a unit-stride run, so
    the passes vectorise with plain loads instead of gathers. Entries past the row are
    left as they are: they only feed padding lanes, whose results are dropped. No array
    views are made (a view costs reference counting per row); the last index is
    unsigned so numba emits no negative-index wraparound code.
    """
    n_avail = x.shape[4] - start
    full = min(n_col, n_avail // sw)  # columns present in every phase
    if sw == 1:
        for k in range(full):
            ph[r, 0, k] = x[n, c, z, y, np.uint64(start + k)]
    elif sw == 2:
        for k in range(full):
            j = start + 2 * k
            ph[r, 0, k] = x[n, c, z, y, np.uint64(j)]
            ph[r, 1, k] = x[n, c, z, y, np.uint64(j + 1)]
    else:
        for k in range(full):
            for q in range(sw):
                ph[r, q, k] = x[n, c, z, y, np.uint64(start + k * sw + q)]
    for k in range(full, n_col):
        for q in range(sw):
            j = k * sw + q
            if j < n_avail:
                ph[r, q, k] = x[n, c, z, y, np.uint64(start + j)]


@njit(cache=True, nogil=True, inline="always")
def _pass_k2(ph, two, first, acc, acci, ba, bb):
    """k=2, s=2, d=1 along W: the window of ``ow`` is ``ph[r, 0, ow], ph[r, 1, ow]``.

    One or two phase-split window rows per pass (``two``; rows 0 and 1 of ``ph``);
    ``first`` starts the scan here instead of continuing from ``acc``/``acci``.
    Branch-free (selects only); the running maximum stays in registers across rows.
    """
    if first and two:
        for ow in range(acc.shape[0]):
            j = 2 * ow
            m, mi = _step(ph[0, 1, ow], np.int32(ba + j + 1), ph[0, 0, ow], np.int32(ba + j))
            m, mi = _step(ph[1, 0, ow], np.int32(bb + j), m, mi)
            m, mi = _step(ph[1, 1, ow], np.int32(bb + j + 1), m, mi)
            acc[ow] = m
            acci[ow] = mi
    elif first:
        for ow in range(acc.shape[0]):
            j = 2 * ow
            m, mi = _step(ph[0, 1, ow], np.int32(ba + j + 1), ph[0, 0, ow], np.int32(ba + j))
            acc[ow] = m
            acci[ow] = mi
    elif two:
        for ow in range(acc.shape[0]):
            j = 2 * ow
            m, mi = _step(ph[0, 0, ow], np.int32(ba + j), acc[ow], acci[ow])
            m, mi = _step(ph[0, 1, ow], np.int32(ba + j + 1), m, mi)
            m, mi = _step(ph[1, 0, ow], np.int32(bb + j), m, mi)
            m, mi = _step(ph[1, 1, ow], np.int32(bb + j + 1), m, mi)
            acc[ow] = m
            acci[ow] = mi
    else:
        for ow in range(acc.shape[0]):
            j = 2 * ow
            m, mi = _step(ph[0, 0, ow], np.int32(ba + j), acc[ow], acci[ow])
            m, mi = _step(ph[0, 1, ow], np.int32(ba + j + 1), m, mi)
            acc[ow] = m
            acci[ow] = mi


@njit(cache=True, nogil=True, inline="always")
def _pass_k3(ph, two, first, acc, acci, ba, bb):
    """k=3, s=2, d=1 along W: window ``ph[r, 0, ow], ph[r, 1, ow], ph[r, 0, ow + 1]``."""
    if first and two:
        for ow in range(acc.shape[0]):
            j = 2 * ow
            m, mi = _step(ph[0, 1, ow], np.int32(ba + j + 1), ph[0, 0, ow], np.int32(ba + j))
            m, mi = _step(ph[0, 0, ow + 1], np.int32(ba + j + 2), m, mi)
            m, mi = _step(ph[1, 0, ow], np.int32(bb + j), m, mi)
            m, mi = _step(ph[1, 1, ow], np.int32(bb + j + 1), m, mi)
            m, mi = _step(ph[1, 0, ow + 1], np.int32(bb + j + 2), m, mi)
            acc[ow] = m
            acci[ow] = mi
    elif first:
        for ow in range(acc.shape[0]):
            j = 2 * ow
            m, mi = _step(ph[0, 1, ow], np.int32(ba + j + 1), ph[0, 0, ow], np.int32(ba + j))
            m, mi = _step(ph[0, 0, ow + 1], np.int32(ba + j + 2), m, mi)
            acc[ow] = m
            acci[ow] = mi
    elif two:
        for ow in range(acc.shape[0]):
            j = 2 * ow
            m, mi = _step(ph[0, 0, ow], np.int32(ba + j), acc[ow], acci[ow])
            m, mi = _step(ph[0, 1, ow], np.int32(ba + j + 1), m, mi)
            m, mi = _step(ph[0, 0, ow + 1], np.int32(ba + j + 2), m, mi)
            m, mi = _step(ph[1, 0, ow], np.int32(bb + j), m, mi)
            m, mi = _step(ph[1, 1, ow], np.int32(bb + j + 1), m, mi)
            m, mi = _step(ph[1, 0, ow + 1], np.int32(bb + j + 2), m, mi)
            acc[ow] = m
            acci[ow] = mi
    else:
        for ow in range(acc.shape[0]):
            j = 2 * ow
            m, mi = _step(ph[0, 0, ow], np.int32(ba + j), acc[ow], acci[ow])
            m, mi = _step(ph[0, 1, ow], np.int32(ba + j + 1), m, mi)
            m, mi = _step(ph[0, 0, ow + 1], np.int32(ba + j + 2), m, mi)
            acc[ow] = m
            acci[ow] = mi


@njit(cache=True, nogil=True)
def _pass_generic(ph, first, acc, acci, kw, sw, dw, ba):
    """Any window along W, one phase-split window row (``ph[0]``); one pass per column.

    Window column ``e`` of output ``ow`` is ``ph[0, (e*dw) % sw, ow + (e*dw) // sw]``.
    """
    for e in range(kw):
        q = (e * dw) % sw
        sh = (e * dw) // sw
        o = ba + e * dw
        if first and e == 0:
            for ow in range(acc.shape[0]):
                acc[ow] = ph[0, q, ow + sh]
                acci[ow] = o + ow * sw
        else:
            for ow in range(acc.shape[0]):
                m, mi = _step(ph[0, q, ow + sh], o + ow * sw, acc[ow], acci[ow])
                acc[ow] = m
                acci[ow] = mi


@njit(cache=True, nogil=True)
def forward_nchw_range(x, out, idx, kp, fill, want, t0, t1):
    """Forward for output rows ``t0 <= task < t1`` of a channels-first 5-D view.

    ``task`` enumerates ``(n, c, od, oh)`` in row-major order. The window rows inside
    the input are listed first. Columns whose window lies inside the input along W
    (the interior) are then computed in padded row buffers: each window row is
    phase-split by the W stride, and passes of unit-stride, branch-free vector loops
    fold one or two window rows at a time into the running maximum (specialised for
    k=2/s=2 and k=3/s=2 along W, one pass per window column otherwise). Border
    columns use the padding-aware point routine. ``idx`` is only written if ``want``.
    """
    n_chan, in_d, in_h, in_w = x.shape[1], x.shape[2], x.shape[3], x.shape[4]
    out_d, out_h, out_w = out.shape[2], out.shape[3], out.shape[4]
    kd, kh, kw = kp[0, 0], kp[0, 1], kp[0, 2]
    sd, sh, sw = kp[1, 0], kp[1, 1], kp[1, 2]
    pd, ph_, pw = kp[2, 0], kp[2, 1], kp[2, 2]
    dd, dh, dw = kp[3, 0], kp[3, 1], kp[3, 2]
    lo, hi = _interior(in_w, kw, sw, pw, dw, out_w)
    small = in_d * in_h * in_w < 2**31  # plane indices fit int32 (half the vector work)
    k2 = kw == 2 and sw == 2 and dw == 1 and small
    k3 = kw == 3 and sw == 2 and dw == 1 and small
    start = lo * sw - pw  # first input column of the first interior window
    n_in = hi - lo
    n_pad = (n_in + _LANES - 1) // _LANES * _LANES
    n_col = n_pad + ((kw - 1) * dw) // sw + 1  # phase-split columns per window row
    ph = np.empty((2, sw, n_col), dtype=x.dtype)
    acc = np.empty(n_pad, dtype=x.dtype)
    acci = np.empty(0 if k2 or k3 else n_pad, dtype=np.int64)
    acci32 = np.empty(n_pad if k2 or k3 else 0, dtype=np.int32)  # k2/k3: int32 indices
    acci64 = np.empty(0 if want else n_in, dtype=np.int64)  # direct rows without idx
    zs = np.empty(kd * kh, dtype=np.int64)
    ys = np.empty(kd * kh, dtype=np.int64)
    b_ows, b_lo, b_hi = _border_columns(in_w, kw, sw, pw, dw, lo, n_in, out_w)
    for task in range(t0, t1):
        oh = task % out_h
        r = task // out_h
        od = r % out_d
        r //= out_d
        c = r % n_chan
        n = r // n_chan
        z0 = od * sd - pd
        y0 = oh * sh - ph_
        n_rows = 0
        for a in range(kd):
            z = z0 + a * dd
            if z < 0 or z >= in_d:
                continue
            for b in range(kh):
                y = y0 + b * dh
                if y < 0 or y >= in_h:
                    continue
                zs[n_rows] = z
                ys[n_rows] = y
                n_rows += 1
        for j in range(b_ows.shape[0]):  # border columns: [0, lo) and [hi, out_w)
            ow = b_ows[j]
            v, i = _border_point(x, n, c, zs, ys, n_rows, ow * sw - pw, b_lo[j], b_hi[j], dw, fill)
            out[n, c, od, oh, ow] = v
            if want:
                idx[n, c, od, oh, ow] = i
        if n_in == 0:
            continue
        if n_rows == 0:  # no window row inside the input: fill, index -1
            for ow in range(n_in):
                out[n, c, od, oh, np.uint64(lo + ow)] = fill
                if want:
                    idx[n, c, od, oh, np.uint64(lo + ow)] = -1
            continue
        if (k2 or k3) and n_rows <= 2 and n_in >= _DIRECT:
            # one pass over a long row: write straight into out/idx (no copy-out; the
            # short scalar remainder of a long row costs little)
            two = n_rows == 2
            _split(x, n, c, zs[0], ys[0], start, ph, 0, 2, n_col)
            if two:
                _split(x, n, c, zs[1], ys[1], start, ph, 1, 2, n_col)
            i2 = 1 if two else 0
            ba = (zs[0] * in_h + ys[0]) * in_w + start
            bb = (zs[i2] * in_h + ys[i2]) * in_w + start
            orow = out[n, c, od, oh, lo:hi]
            irow = idx[n, c, od, oh, lo:hi] if want else acci64[:n_in]
            if k2:
                _pass_k2(ph, two, True, orow, irow, ba, bb)
            else:
                _pass_k3(ph, two, True, orow, irow, ba, bb)
            continue
        if k2 or k3:
            for i in range(0, n_rows, 2):
                two = i + 1 < n_rows
                i2 = i + 1 if two else i
                _split(x, n, c, zs[i], ys[i], start, ph, 0, 2, n_col)
                if two:
                    _split(x, n, c, zs[i2], ys[i2], start, ph, 1, 2, n_col)
                ba = (zs[i] * in_h + ys[i]) * in_w + start
                bb = (zs[i2] * in_h + ys[i2]) * in_w + start
                if k2:
                    _pass_k2(ph, two, i == 0, acc, acci32, ba, bb)
                else:
                    _pass_k3(ph, two, i == 0, acc, acci32, ba, bb)
        else:
            for i in range(n_rows):
                _split(x, n, c, zs[i], ys[i], start, ph, 0, sw, n_col)
                ba = (zs[i] * in_h + ys[i]) * in_w + start
                _pass_generic(ph, i == 0, acc, acci, kw, sw, dw, ba)
        for ow in range(n_in):
            out[n, c, od, oh, np.uint64(lo + ow)] = acc[ow]
        if want and (k2 or k3):
            for ow in range(n_in):
                idx[n, c, od, oh, np.uint64(lo + ow)] = acci32[ow]
        elif want:
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
    int32 scratch vector (half the vector work of int64) when the plane is small enough,
    widened into ``idx`` once per pixel. No array views are made in the loops (a view
    costs reference counting).
    """
    in_d, in_h, in_w, n_chan = x.shape[1], x.shape[2], x.shape[3], x.shape[4]
    out_d, out_h, out_w = out.shape[1], out.shape[2], out.shape[3]
    kd, kh, kw = kp[0, 0], kp[0, 1], kp[0, 2]
    sd, sh, sw = kp[1, 0], kp[1, 1], kp[1, 2]
    pd, ph, pw = kp[2, 0], kp[2, 1], kp[2, 2]
    dd, dh, dw = kp[3, 0], kp[3, 1], kp[3, 2]
    small = in_d * in_h * in_w < 2**31
    acc32 = np.empty(n_chan if small else 0, dtype=np.int32)
    acc64 = np.empty(0 if small else n_chan, dtype=np.int64)
    for task in range(t0, t1):
        oh = task % out_h
        r = task // out_h
        od = r % out_d
        n = r // out_d
        z0 = od * sd - pd
        y0 = oh * sh - ph
        for ow in range(out_w):
            x0 = ow * sw - pw
            first = True
            for a in range(kd):
                z = z0 + a * dd
                if z < 0 or z >= in_d:
                    continue
                for b in range(kh):
                    y = y0 + b * dh
                    if y < 0 or y >= in_h:
                        continue
                    for e in range(kw):
                        xx = x0 + e * dw
                        if xx < 0 or xx >= in_w:
                            continue
                        k = (z * in_h + y) * in_w + xx
                        if first:
                            for c in range(n_chan):
                                out[n, od, oh, ow, c] = x[n, z, y, xx, c]
                            if small:
                                k32 = np.int32(k)
                                for c in range(n_chan):
                                    acc32[c] = k32
                            else:
                                for c in range(n_chan):
                                    acc64[c] = k
                            first = False
                        elif small:
                            k32 = np.int32(k)
                            for c in range(n_chan):
                                v = x[n, z, y, xx, c]
                                bv = out[n, od, oh, ow, c]
                                bi = acc32[c]
                                t = _wins(v, bv)
                                out[n, od, oh, ow, c] = v if t else bv
                                acc32[c] = k32 if t else bi
                        else:
                            for c in range(n_chan):
                                v = x[n, z, y, xx, c]
                                bv = out[n, od, oh, ow, c]
                                bi = acc64[c]
                                t = _wins(v, bv)
                                out[n, od, oh, ow, c] = v if t else bv
                                acc64[c] = k if t else bi
            if first:  # no window element inside the input: fill, index -1
                for c in range(n_chan):
                    out[n, od, oh, ow, c] = fill
                if want:
                    for c in range(n_chan):
                        idx[n, od, oh, ow, c] = -1
            elif want:
                if small:
                    for c in range(n_chan):
                        idx[n, od, oh, ow, c] = acc32[c]
                else:
                    for c in range(n_chan):
                        idx[n, od, oh, ow, c] = acc64[c]


# --------------------------------------------------------------------------------------
# backward: scatter-add in output row-major order, never two tasks on one plane element
# --------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def backward_nchw_range(grad, idx, dx, bad, t0, t1):
    """Planes ``t0 <= p < t1``: add ``grad`` at ``idx`` into ``dx[p]``.

    ``grad``/``idx`` are ``(P, n_out)`` views, ``dx`` is ``(P, plane)`` and zeroed on
    entry (``np.zeros``: fresh pages come zeroed from the OS, so zeroing them again here
    would only double the write traffic). Index -1 is skipped; any other out-of-range
    index sets ``bad[p]``.
    """
    plane = dx.shape[1]
    n_out = grad.shape[1]
    for p in range(t0, t1):
        drow = dx[p]
        grow = grad[p]
        irow = idx[p]
        for o in range(n_out):
            i = irow[o]
            if i < 0 or i >= plane:
                if i != -1:
                    bad[p] = 1
                continue
            drow[i] = accumulate(drow[i], grow[o])


@njit(cache=True, nogil=True)
def backward_nhwc_range(grad, idx, dx, bad, block, t0, t1):
    """Channels-last backward for tasks ``t0 <= task < t1``.

    ``grad``/``idx`` are ``(N, n_out, C)``, ``dx`` is ``(N, plane, C)`` (zeroed on
    entry). A task is one batch item and one block of ``block`` channels, so every
    ``(n, c)`` plane belongs to one task and is summed in output row-major order.
    """
    plane = dx.shape[1]
    n_chan = dx.shape[2]
    n_out = grad.shape[1]
    n_blocks = (n_chan + block - 1) // block
    for task in range(t0, t1):
        n = task // n_blocks
        c0 = (task % n_blocks) * block
        c1 = min(c0 + block, n_chan)
        for o in range(n_out):
            for c in range(c0, c1):
                i = idx[n, o, c]
                if i < 0 or i >= plane:
                    if i != -1:
                        bad[task] = 1
                    continue
                dx[n, i, c] = accumulate(dx[n, i, c], grad[n, o, c])


# --------------------------------------------------------------------------------------
# parallel wrappers: split tasks into contiguous chunks; the caller sets numba's parallel
# chunk size to 1 so chunks are handed out one at a time (a thread slowed by other load
# on the machine does not hold the others up)
# --------------------------------------------------------------------------------------


@njit(parallel=True, cache=True, nogil=True)
def forward_nchw_par(x, out, idx, kp, fill, want, n_tasks, n_chunks):
    """Parallel :func:`forward_nchw_range` over all ``n_tasks`` output rows."""
    for ch in prange(n_chunks):
        forward_nchw_range(
            x, out, idx, kp, fill, want, ch * n_tasks // n_chunks, (ch + 1) * n_tasks // n_chunks
        )


@njit(parallel=True, cache=True, nogil=True)
def forward_nhwc_par(x, out, idx, kp, fill, want, n_tasks, n_chunks):
    """Parallel :func:`forward_nhwc_range` over all ``n_tasks`` output rows."""
    for ch in prange(n_chunks):
        forward_nhwc_range(
            x, out, idx, kp, fill, want, ch * n_tasks // n_chunks, (ch + 1) * n_tasks // n_chunks
        )


@njit(parallel=True, cache=True, nogil=True)
def backward_nchw_par(grad, idx, dx, bad, n_chunks):
    """Parallel :func:`backward_nchw_range`: planes are split over threads."""
    n_tasks = dx.shape[0]
    for ch in prange(n_chunks):
        backward_nchw_range(
            grad, idx, dx, bad, ch * n_tasks // n_chunks, (ch + 1) * n_tasks // n_chunks
        )


@njit(parallel=True, cache=True, nogil=True)
def backward_nhwc_par(grad, idx, dx, bad, block, n_chunks):
    """Parallel :func:`backward_nhwc_range` over (batch item, channel block) tasks."""
    n_tasks = dx.shape[0] * ((dx.shape[2] + block - 1) // block)
    for ch in prange(n_chunks):
        backward_nhwc_range(
            grad, idx, dx, bad, block, ch * n_tasks // n_chunks, (ch + 1) * n_tasks // n_chunks
        )


@njit(parallel=True, cache=True, nogil=True)
def max_pool_forward_nd(x, out, idx, in_size, params, fill, want_indices):
    """Any-rank fallback on flattened planes (more than 3 spatial dims).

    ``x`` is ``(planes, prod(in_size))``, ``out``/``idx`` are ``(planes, n_out)``;
    ``params`` rows are kernel, stride, pad_begin, dilation, out_size (one column per
    spatial dim). Same scan order and tie/NaN rules as the 3-D kernels.
    """
    nd = in_size.shape[0]
    n_out = out.shape[1]
    kernel = params[0]
    stride = params[1]
    pad = params[2]
    dil = params[3]
    out_size = params[4]
    for plane in prange(x.shape[0]):
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
