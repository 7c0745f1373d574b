"""Compiled adaptive pooling kernels on 5-D ``(N, C, D, H, W)`` views.

Window ``o`` of a dimension of input length ``L`` and output length ``O`` covers
``[floor(o*L/O), ceil((o+1)*L/O))``. Arithmetic follows PyTorch's CPU adaptive kernels:
the average sums its window in row-major order in the opmath type and divides by the
window lengths one after another (``sum / kd / kh / kw``); its backward rounds the
gradient to its dtype after each of those divisions. The max keeps the first maximum
(strict ``>``) and the last NaN, as max pooling does.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.extending import overload

from ._lanes import lane_total
from ._scalar import accumulate, float_to_half, is_half_bits, is_nan, order_key, unsigned
from .avg_pool import divide, from_opmath, opmath_zero, sum_window_pixels, to_opmath


@njit(inline="always")
def _bounds(o, length, n_out):
    return (o * length) // n_out, ((o + 1) * length + n_out - 1) // n_out


@njit(inline="always")
def window_argmax(x, n, c, z0, z1, y0, y1, x0, x1):
    """(value, flat plane index) of the maximum of a non-empty box of plane (n, c).

    Semantics of a row-major scan where a later element wins only if strictly greater
    or NaN (first maximum wins ties, last NaN wins), as PyTorch's adaptive and
    fractional kernels. Computed in two passes that carry no long dependency chain:
    the largest key (four partial maxima) and whether a NaN occurs, then the first
    element equal to that key (or the last NaN); -0 and +0 compare equal, so the first
    of them wins, as in the scan.
    """
    in_h, in_w = x.shape[3], x.shape[4]
    first = order_key(x[n, c, z0, y0, x0])
    m0 = first
    m1 = first
    m2 = first
    m3 = first
    nan_seen = False
    for z in range(z0, z1):
        for y in range(y0, y1):
            row = x[n, c, z, y]
            xx = unsigned(x0)
            end = unsigned(x1)
            while xx + unsigned(4) <= end:
                k0 = order_key(row[xx])
                k1 = order_key(row[xx + unsigned(1)])
                k2 = order_key(row[xx + unsigned(2)])
                k3 = order_key(row[xx + unsigned(3)])
                nan_seen |= is_nan(row[xx]) | is_nan(row[xx + unsigned(1)])
                nan_seen |= is_nan(row[xx + unsigned(2)]) | is_nan(row[xx + unsigned(3)])
                m0 = k0 if k0 > m0 else m0
                m1 = k1 if k1 > m1 else m1
                m2 = k2 if k2 > m2 else m2
                m3 = k3 if k3 > m3 else m3
                xx += unsigned(4)
            while xx < end:
                k0 = order_key(row[xx])
                nan_seen |= is_nan(row[xx])
                m0 = k0 if k0 > m0 else m0
                xx += unsigned(1)
    m01 = m0 if m0 > m1 else m1
    m23 = m2 if m2 > m3 else m3
    top = m01 if m01 > m23 else m23
    if nan_seen:  # the last NaN in scan order
        for z in range(z1 - 1, z0 - 1, -1):
            for y in range(y1 - 1, y0 - 1, -1):
                row = x[n, c, z, y]
                for xx in range(x1 - 1, x0 - 1, -1):
                    if is_nan(row[xx]):
                        return row[xx], (z * in_h + y) * in_w + xx
    for z in range(z0, z1):
        for y in range(y0, y1):
            row = x[n, c, z, y]
            for xx in range(x0, x1):
                if order_key(row[xx]) == top:
                    return row[xx], (z * in_h + y) * in_w + xx
    return x[n, c, z0, y0, x0], (z0 * in_h + y0) * in_w + x0  # unreachable


@njit(inline="always")
def _round_div(v, k, like):
    """``v / k`` computed in opmath and rounded to the storage type of ``like``."""
    return from_opmath(divide(to_opmath(v), k), like)


@njit(inline="always")
def _divide3(total, kd, kh, kw):
    """``total / kd / kh / kw`` one division at a time (PyTorch's order); a division by
    1 is exact, so it is skipped."""
    v = total
    if kd != 1:
        v = divide(v, kd)
    if kh != 1:
        v = divide(v, kh)
    if kw != 1:
        v = divide(v, kw)
    return v


#: Planes summed side by side: independent add chains hide the float-add latency
#: while every window is still summed in its own row-major order.
PLANE_BLOCK = 8


@njit(inline="always")
def _add8(sums, r0, r1, r2, r3, r4, r5, r6, r7, j0, j1):
    """Add ``r_k[j]`` for j in [j0, j1), in order, to the k-th of 8 opmath sums (8
    independent add chains: one per plane)."""
    a0, a1, a2, a3, a4, a5, a6, a7 = sums
    for j in range(unsigned(j0), unsigned(j1)):
        a0 += to_opmath(r0[j])
        a1 += to_opmath(r1[j])
        a2 += to_opmath(r2[j])
        a3 += to_opmath(r3[j])
        a4 += to_opmath(r4[j])
        a5 += to_opmath(r5[j])
        a6 += to_opmath(r6[j])
        a7 += to_opmath(r7[j])
    return a0, a1, a2, a3, a4, a5, a6, a7


@njit(inline="always")
def _sum8_row(x, n, c0, z0, z1, y0, y1, xb, acc):
    """Row-major window sums of one output row for 8 consecutive planes.

    ``xb`` holds each output column's [x0, x1); ``acc[b, ow]`` receives the sums. Input
    rows are streamed in order (8 planes side by side: 8 independent add chains); each
    window still adds its elements in row-major order.
    """
    zero = opmath_zero(x[0, 0, 0, 0, 0])
    out_w = xb.shape[0]
    for ow in range(out_w):
        for b in range(PLANE_BLOCK):
            acc[b, ow] = zero
    for z in range(z0, z1):
        for y in range(y0, y1):
            r0 = x[n, c0, z, y]
            r1 = x[n, c0 + 1, z, y]
            r2 = x[n, c0 + 2, z, y]
            r3 = x[n, c0 + 3, z, y]
            r4 = x[n, c0 + 4, z, y]
            r5 = x[n, c0 + 5, z, y]
            r6 = x[n, c0 + 6, z, y]
            r7 = x[n, c0 + 7, z, y]
            for ow in range(out_w):
                sums = _add8(
                    (acc[0, ow], acc[1, ow], acc[2, ow], acc[3, ow],
                     acc[4, ow], acc[5, ow], acc[6, ow], acc[7, ow]),
                    r0, r1, r2, r3, r4, r5, r6, r7, xb[ow, 0], xb[ow, 1],
                )
                for b in range(PLANE_BLOCK):
                    acc[b, ow] = sums[b]


@njit(cache=True, nogil=True)
def adaptive_avg_forward(x, out, t0, t1):
    """Adaptive average: row-major window sum, then ``/ kd / kh / kw``.

    Tasks ``t0 <= task < t1`` (of ``N * ceil(C / PLANE_BLOCK) * out_d``) are blocks of
    :data:`PLANE_BLOCK` channels of one (n, od): the blocked
    planes are summed in lockstep (one add chain per plane and output, in row-major
    window order), so the arithmetic per output is exactly the sequential loop's.
    Input rows are streamed whole (few concurrent memory streams); contiguous inputs
    with narrow windows take :func:`adaptive_avg_flat` instead.
    """
    n_chan, in_d, in_h, in_w = x.shape[1:]
    out_d, out_h, out_w = out.shape[2], out.shape[3], out.shape[4]
    like = x[0, 0, 0, 0, 0]
    n_blocks = (n_chan + PLANE_BLOCK - 1) // PLANE_BLOCK
    xb = np.empty((out_w, 2), dtype=np.int64)
    for ow in range(out_w):
        xb[ow, 0], xb[ow, 1] = _bounds(ow, in_w, out_w)
    for task in range(t0, t1):
        n = task // (n_blocks * out_d)
        c0 = ((task // out_d) % n_blocks) * PLANE_BLOCK
        nb = min(PLANE_BLOCK, n_chan - c0)
        od = task % out_d
        z0, z1 = _bounds(od, in_d, out_d)
        acc = np.empty((PLANE_BLOCK, out_w), dtype=type(opmath_zero(like)))
        for oh in range(out_h):
            y0, y1 = _bounds(oh, in_h, out_h)
            if nb == PLANE_BLOCK:
                _sum8_row(x, n, c0, z0, z1, y0, y1, xb, acc)
            else:
                for b in range(nb):
                    for ow in range(out_w):
                        total = opmath_zero(like)
                        for z in range(z0, z1):
                            for y in range(y0, y1):
                                for xx in range(xb[ow, 0], xb[ow, 1]):
                                    total += to_opmath(x[n, c0 + b, z, y, xx])
                        acc[b, ow] = total
            for b in range(nb):
                for ow in range(out_w):
                    v = divide(divide(acc[b, ow], z1 - z0), y1 - y0)
                    v = divide(v, xb[ow, 1] - xb[ow, 0])
                    out[n, c0 + b, od, oh, ow] = from_opmath(v, like)


@njit(inline="always")
def _pixel_row(task, in_shape, out_shape):
    """``(n, od, oh)`` of channels-last output row ``task`` and its window's input rows
    ``[z0, z1) x [y0, y1)`` (shapes ``(N, D, H, W, C)``)."""
    out_d, out_h = out_shape[1], out_shape[2]
    oh = task % out_h
    od = (task // out_h) % out_d
    z0, z1 = _bounds(od, in_shape[1], out_d)
    y0, y1 = _bounds(oh, in_shape[2], out_h)
    return task // (out_h * out_d), od, oh, z0, z1, y0, y1


@njit(cache=True, nogil=True)
def adaptive_avg_pixels(x, out, t0, t1):
    """Adaptive average of a C-contiguous channels-last ``(N, D, H, W, C)`` input into
    ``out`` ``(N, oD, oH, oW, C)``, tasks ``t0 <= task < t1`` of ``N * oD * oH`` output
    rows. The arithmetic of :func:`adaptive_avg_forward` (per channel: +0 plus the window
    in row-major order, then ``/ kd / kh / kw``), with the channels side by side: every
    window pixel is one contiguous run of C values, so the channel loop vectorises."""
    in_w, n_chan, out_w = x.shape[3], x.shape[4], out.shape[3]
    like = x[0, 0, 0, 0, 0]
    acc = np.empty(n_chan, dtype=type(opmath_zero(like)))
    for task in range(t0, t1):
        n, od, oh, z0, z1, y0, y1 = _pixel_row(task, x.shape, out.shape)
        for ow in range(out_w):
            x0, x1 = _bounds(ow, in_w, out_w)
            sum_window_pixels(x, n, z0, z1, y0, y1, x0, x1, acc, opmath_zero(like))
            dst = out[n, od, oh, ow]
            for c in range(n_chan):
                v = divide(divide(acc[c], z1 - z0), y1 - y0)
                dst[c] = from_opmath(divide(v, x1 - x0), like)


@njit(inline="always")
def _covers(length, n_out):
    """Per input position: the first and last output whose window contains it."""
    cov = np.empty((length, 2), dtype=np.int64)
    for i in range(length):
        cov[i, 0] = n_out
        cov[i, 1] = -1
    for o in range(n_out):
        lo, hi = _bounds(o, length, n_out)
        for i in range(lo, hi):
            cov[i, 0] = min(cov[i, 0], o)
            cov[i, 1] = max(cov[i, 1], o)
    return cov


@njit(cache=True, nogil=True)
def adaptive_avg_backward(grad, dx, out_size, single_division, t0, t1):
    """Write into every element of ``dx`` the sum, starting from 0, of
    ``grad / kd / kh / kw`` (rounded after each division) of the windows covering it.

    ``grad`` is ``(N*C, oD*oH*oW)`` (C-contiguous planes), ``dx`` the 5-D input view,
    ``out_size`` (oD, oH, oW); the tasks are the planes ``t0 <= task < t1`` (one set
    of scratch arrays per call). A plane's shares are computed first in one flat loop
    (vectorized divisions); then each element adds the shares of its covering outputs in output
    row-major order: the float sums of PyTorch's scatter loop (adaptive windows may
    overlap by one element). Computed by gathering per input row; a row covered by one
    output row of non-overlapping windows is written as runs of ``0 + share`` (no
    zeroing, no per-output views). With ``single_division`` the gradient is divided
    once by the window size instead (PyTorch's ``mean()`` backward, used when every
    output size is 1).
    """
    n_chan, in_d, in_h, in_w = dx.shape[1:]
    out_d, out_h, out_w = out_size[0], out_size[1], out_size[2]
    n_out = out_d * out_h * out_w
    zc = _covers(in_d, out_d)
    yc = _covers(in_h, out_h)
    xc = _covers(in_w, out_w)
    xb = np.empty((out_w, 2), dtype=np.int64)
    for ow in range(out_w):
        xb[ow, 0], xb[ow, 1] = _bounds(ow, in_w, out_w)
    one_x = True  # every column in exactly one window
    for xx in range(in_w):
        one_x &= xc[xx, 0] == xc[xx, 1]
    ks = np.empty((3, n_out), dtype=np.int64)  # window lengths per output
    for o in range(n_out):
        z0, z1 = _bounds(o // (out_h * out_w), in_d, out_d)
        y0, y1 = _bounds((o // out_w) % out_h, in_h, out_h)
        x0, x1 = _bounds(o % out_w, in_w, out_w)
        ks[0, o] = z1 - z0
        ks[1, o] = y1 - y0
        ks[2, o] = x1 - x0
    rb = np.empty(in_w, dtype=dx.dtype)
    share = np.empty(n_out, dtype=dx.dtype)
    rb[0] = 0
    zero = rb[0]  # +0 of the storage type (float16: its bits)
    like = zero
    for task in range(t0, t1):
        n = task // n_chan
        c = task % n_chan
        if single_division:
            for o in range(unsigned(n_out)):
                k = ks[0, o] * ks[1, o] * ks[2, o]
                share[o] = _round_div(grad[task, o], k, like)
        else:
            for o in range(unsigned(n_out)):
                d = _round_div(grad[task, o], ks[0, o], like)
                d = _round_div(d, ks[1, o], like)
                share[o] = _round_div(d, ks[2, o], like)
        for z in range(in_d):
            for y in range(in_h):
                od = zc[z, 0]
                oh = yc[y, 0]
                if one_x and od == zc[z, 1] and oh == yc[y, 1]:
                    base = (od * out_h + oh) * out_w
                    for ow in range(out_w):
                        v = accumulate(zero, share[base + ow])
                        for xx in range(unsigned(xb[ow, 0]), unsigned(xb[ow, 1])):
                            dx[n, c, z, y, xx] = v
                    continue
                for xx in range(unsigned(in_w)):
                    rb[xx] = zero
                for od in range(zc[z, 0], zc[z, 1] + 1):
                    for oh in range(yc[y, 0], yc[y, 1] + 1):
                        base = (od * out_h + oh) * out_w
                        for ow in range(out_w):
                            d = share[base + ow]
                            for xx in range(unsigned(xb[ow, 0]), unsigned(xb[ow, 1])):
                                rb[xx] = accumulate(rb[xx], d)
                for xx in range(unsigned(in_w)):
                    dx[n, c, z, y, xx] = rb[xx]


@njit(cache=True, nogil=True)
def adaptive_max_forward(x, out, idx, want_indices, t0, t1):
    """Adaptive max with flat plane indices (first maximum wins ties, last NaN wins);
    tasks ``t0 <= task < t1`` of ``N * C * out_d``."""
    n_chan, in_d, in_h, in_w = x.shape[1:]
    out_d, out_h, out_w = out.shape[2], out.shape[3], out.shape[4]
    for task in range(t0, t1):
        n = task // (n_chan * out_d)
        c = (task // out_d) % n_chan
        od = task % out_d
        z0, z1 = _bounds(od, in_d, out_d)
        for oh in range(out_h):
            y0, y1 = _bounds(oh, in_h, out_h)
            for ow in range(out_w):
                x0, x1 = _bounds(ow, in_w, out_w)
                best, best_at = window_argmax(x, n, c, z0, z1, y0, y1, x0, x1)
                out[n, c, od, oh, ow] = best
                if want_indices:
                    idx[n, c, od, oh, ow] = best_at


@njit(cache=True, nogil=True)
def adaptive_max_pixels(x, out, idx, want_indices, t0, t1):
    """Adaptive max of a C-contiguous channels-last ``(N, D, H, W, C)`` input (in the
    comparable form of :func:`adaptive_max_forward`) into ``out`` / ``idx``
    ``(N, oD, oH, oW, C)``, tasks ``t0 <= task < t1`` of ``N * oD * oH`` output rows.
    Per channel the row-major scan of :func:`window_argmax` (a later element wins if
    strictly greater or NaN: the first maximum wins ties, the last NaN wins), with the
    channels side by side over each window pixel's contiguous run of C values."""
    in_h, in_w, n_chan, out_w = x.shape[2], x.shape[3], x.shape[4], out.shape[3]
    best = np.empty(n_chan, dtype=x.dtype)
    best_at = np.empty(n_chan, dtype=np.int64)
    nc = unsigned(n_chan)
    for task in range(t0, t1):
        n, od, oh, z0, z1, y0, y1 = _pixel_row(task, x.shape, out.shape)
        for ow in range(out_w):
            x0, x1 = _bounds(ow, in_w, out_w)
            first = x[n, z0, y0, x0]
            at0 = (z0 * in_h + y0) * in_w + x0
            for c in range(nc):
                best[c] = first[c]
                best_at[c] = at0
            for z in range(z0, z1):
                for y in range(y0, y1):
                    for xx in range(x0, x1):
                        at = (z * in_h + y) * in_w + xx
                        if at == at0:
                            continue
                        pixel = x[n, z, y, xx]
                        for c in range(nc):
                            v = pixel[c]
                            take = (order_key(v) > order_key(best[c])) | is_nan(v)
                            best[c] = v if take else best[c]
                            best_at[c] = at if take else best_at[c]
            dst = out[n, od, oh, ow]
            for c in range(nc):
                dst[c] = best[c]
            if want_indices:
                di = idx[n, od, oh, ow]
                for c in range(nc):
                    di[c] = best_at[c]


@njit(cache=True, nogil=True)
def plane_mean_backward(grad, dx, kd, kh, kw, single_division, t0, t1):
    """All-1 adaptive average backward on flat planes ``t0 <= p < t1``, into zeroed
    ``dx``: every element of plane p gets ``0 + grad[p] / ...``, as the scatter into
    zeros computes it."""
    size = dx.shape[1]
    for p in range(t0, t1):
        g = grad[p]
        if single_division:
            delta = _round_div(g, kd * kh * kw, g)
        else:
            delta = _round_div(_round_div(_round_div(g, kd, g), kh, g), kw, g)
        row = dx[p]
        value = accumulate(row[0], delta)
        for j in range(unsigned(size)):
            row[j] = value


def _totals_buffer(out, p0, p1):  # pragma: no cover - replaced by the overload
    raise NotImplementedError


def _store_means(totals, out, p0, size):  # pragma: no cover - replaced by the overload
    raise NotImplementedError


@overload(_totals_buffer, inline="always")
def _totals_buffer_impl(out, p0, p1):
    """Where the lane totals of planes ``p0 .. p1 - 1`` go: ``out`` itself when it has
    the opmath dtype (no buffer), else (float16 bits) a float32 buffer."""
    if is_half_bits(out.dtype):
        return lambda out, p0, p1: np.empty(p1 - p0, dtype=np.float32)
    return lambda out, p0, p1: out[p0:p1]


@overload(_store_means, inline="always")
def _store_means_impl(totals, out, p0, size):
    """``mean = (total + 0.0) / size`` (the +0.0 the lanes are defined to start from,
    see :func:`._lanes.lane_total`), in one vectorised pass: in place when the totals
    live in ``out``, else rounded to float16 bits on the way out."""
    if is_half_bits(out.dtype):
        def store_half(totals, out, p0, size):
            for i in range(unsigned(totals.shape[0])):
                out[unsigned(p0) + i] = float_to_half(divide(totals[i] + np.float32(0.0), size))
        return store_half

    def store_in_place(totals, out, p0, size):
        zero = totals.dtype.type(0.0)
        for i in range(unsigned(totals.shape[0])):
            totals[i] = divide(totals[i] + zero, size)
    return store_in_place


@njit(cache=True, nogil=True)
def plane_mean_range(x, out, p0, p1):
    """Means of the contiguous flat planes ``p0 <= p < p1``: ``out[p] = sum(x[p]) / size``
    with the sum in the zero-padded 16-lane order of :mod:`._lanes`, in the opmath
    type, one division. Totals first (one short dependency chain per plane), then one
    vectorised pass adds the +0.0 the lanes start from and divides."""
    size = x.shape[1]
    totals = _totals_buffer(out, p0, p1)
    for i in range(unsigned(p1 - p0)):
        totals[i] = lane_total(x[unsigned(p0) + i], size)
    _store_means(totals, out, p0, size)


@njit(cache=True, nogil=True)
def adaptive_avg_flat(x, out, in_size, out_size, t0, t1):
    """Adaptive average on contiguous flat planes: ``x`` (planes, D*H*W), ``out``
    (planes, oD*oH*oW). Same sums and divisions as :func:`adaptive_avg_forward`; 8
    planes side by side, their flat rows taken once per block (no per-row views); the
    tasks are the blocks ``t0 <= blk < t1`` of ``ceil(planes / PLANE_BLOCK)``."""
    n_planes = x.shape[0]
    in_d, in_h, in_w = in_size[0], in_size[1], in_size[2]
    out_d, out_h, out_w = out_size[0], out_size[1], out_size[2]
    like = x[0, 0]
    for blk in range(t0, t1):
        p0 = blk * PLANE_BLOCK
        full = p0 + PLANE_BLOCK <= n_planes
        r0 = x[p0]
        r1 = x[min(p0 + 1, n_planes - 1)]
        r2 = x[min(p0 + 2, n_planes - 1)]
        r3 = x[min(p0 + 3, n_planes - 1)]
        r4 = x[min(p0 + 4, n_planes - 1)]
        r5 = x[min(p0 + 5, n_planes - 1)]
        r6 = x[min(p0 + 6, n_planes - 1)]
        r7 = x[min(p0 + 7, n_planes - 1)]
        o = 0
        for od in range(out_d):
            z0, z1 = _bounds(od, in_d, out_d)
            for oh in range(out_h):
                y0, y1 = _bounds(oh, in_h, out_h)
                for ow in range(out_w):
                    x0, x1 = _bounds(ow, in_w, out_w)
                    if full:
                        zero = opmath_zero(like)
                        sums = (zero, zero, zero, zero, zero, zero, zero, zero)
                        for z in range(z0, z1):
                            for y in range(y0, y1):
                                base = (z * in_h + y) * in_w
                                sums = _add8(sums, r0, r1, r2, r3, r4, r5, r6, r7,
                                             base + x0, base + x1)
                        for b in range(PLANE_BLOCK):
                            v = _divide3(sums[b], z1 - z0, y1 - y0, x1 - x0)
                            out[p0 + b, o] = from_opmath(v, like)
                    else:
                        for p in range(p0, n_planes):
                            row = x[p]
                            total = opmath_zero(like)
                            for z in range(z0, z1):
                                for y in range(y0, y1):
                                    base = (z * in_h + y) * in_w
                                    for j in range(unsigned(base + x0), unsigned(base + x1)):
                                        total += to_opmath(row[j])
                            v = _divide3(total, z1 - z0, y1 - y0, x1 - x0)
                            out[p, o] = from_opmath(v, like)
                    o += 1


# -- uniform windows (every length divides its input length): flat garbage-row sweep --
#
# With ``L % O == 0`` in every dim the windows are disjoint boxes of kd x kh x kw
# elements, and ``kw`` divides the row length, so a C-contiguous input is a flat run of
# kw-groups ``u`` (elements ``kw*u .. kw*u + kw - 1``). The window whose first row starts
# at group ``u`` adds its rows at the fixed offsets ``(dz*H + dy)*W`` from ``kw*u``. A
# "super-row" ``t`` (plane, od, oh) has its out_w windows at groups ``start(t) + j``.
# The sweep computes that window sum for EVERY group of a range of super-rows, valid
# or not (groups in the other rows of a window give unused sums): one loop with linear
# (stride-kw) loads that vectorizes however short the output rows are; the valid sums
# are then copied out row by row. The extra work is kd*kh times the needed sums, cheap
# next to the scalar per-window loops for the narrow windows this path is used for.


@njit(inline="always")
def _row_start(t, in_d, in_h, out_d, out_h, kd, kh, out_w):
    """First kw-group of super-row ``t``'s windows (t = (plane*out_d + od)*out_h + oh)."""
    oh = t % out_h
    od = (t // out_h) % out_d
    p = t // (out_h * out_d)
    return ((p * in_d + od * kd) * in_h + oh * kh) * out_w


@njit(inline="always")
def _pow2(k):
    return k & (k - 1) == 0


@njit(inline="always")
def _scale(g, n, k, one):
    """``g[i] /= k`` for i < n; k a power of two multiplies by the exact ``1/k`` instead
    (the same correctly rounded quotient, subnormals included); k == 1 is skipped."""
    if k == 1:
        return
    if _pow2(k):
        r = divide(one, k)
        for i in range(unsigned(n)):
            g[i] = g[i] * r
    else:
        for i in range(unsigned(n)):
            g[i] = divide(g[i], k)


@njit(inline="always")
def _add_groups(g, src, n, kw):
    """``g[i] = (((g[i] + src[kw*i]) + src[kw*i + 1]) + ...)`` for i < n, kw in 1..4
    (constant strides: the loads vectorize as interleaved groups)."""
    one, two, three, four = unsigned(1), unsigned(2), unsigned(3), unsigned(4)
    if kw == 1:
        for i in range(unsigned(n)):
            g[i] = g[i] + src[i]
    elif kw == 2:
        for i in range(unsigned(n)):
            g[i] = (g[i] + src[two * i]) + src[two * i + one]
    elif kw == 3:
        for i in range(unsigned(n)):
            k = three * i
            g[i] = ((g[i] + src[k]) + src[k + one]) + src[k + two]
    else:
        for i in range(unsigned(n)):
            k = four * i
            g[i] = (((g[i] + src[k]) + src[k + one]) + src[k + two]) + src[k + three]


@njit(error_model="numpy", nogil=True, cache=True)
def _uniform_block(f, out, t0, t1, dims, zero):
    """Super-rows ``t0 <= t < t1`` of :func:`adaptive_avg_uniform`.

    A separate function compiled with NumPy's error model so the divisions vectorize
    (every divisor is >= 1).
    """
    in_d, in_h, in_w = dims[0], dims[1], dims[2]
    out_d, out_h, out_w = dims[3], dims[4], dims[5]
    kd, kh, kw = in_d // out_d, in_h // out_h, in_w // out_w
    u0 = _row_start(t0, in_d, in_h, out_d, out_h, kd, kh, out_w)
    n = _row_start(t1 - 1, in_d, in_h, out_d, out_h, kd, kh, out_w) + out_w - u0
    g = np.empty(n, dtype=type(zero))
    base = unsigned(kw * u0)
    one, two, three = unsigned(1), unsigned(2), unsigned(3)
    if kw == 2 and kd * kh == 2:  # 2x2 (or 2x1x2): the whole sum in registers
        s0 = f[base:]
        s1 = f[base + unsigned((kh - 1) * in_w + (kd - 1) * in_h * in_w):]
        for i in range(unsigned(n)):
            k = two * i
            g[i] = (((zero + s0[k]) + s0[k + one]) + s1[k]) + s1[k + one]
    elif kw == 2 and kd * kh == 1:
        for i in range(unsigned(n)):
            k = base + two * i
            g[i] = (zero + f[k]) + f[k + one]
    elif kw == 3 and kd * kh == 1:
        for i in range(unsigned(n)):
            k = base + three * i
            g[i] = ((zero + f[k]) + f[k + one]) + f[k + two]
    else:  # one pass per window row, rows in row-major order
        for i in range(unsigned(n)):
            g[i] = zero
        for dz in range(kd):
            for dy in range(kh):
                _add_groups(g, f[base + unsigned((dz * in_h + dy) * in_w):], n, kw)
    one_v = zero + np.float32(1.0)  # 1 in the opmath type
    rd, rh, rw = one_v, one_v, one_v  # multiplied in while copying out (x * 1 == x)
    if _pow2(kd) and _pow2(kh) and _pow2(kw):
        rd, rh, rw = divide(one_v, kd), divide(one_v, kh), divide(one_v, kw)
    else:
        _scale(g, n, kd, one_v)
        _scale(g, n, kh, one_v)
        _scale(g, n, kw, one_v)
    oh = t0 % out_h  # super-row counters, stepped (no divisions per row)
    od = (t0 // out_h) % out_d
    p = t0 // (out_h * out_d)
    dst = unsigned(t0 * out_w)
    for _ in range(t1 - t0):
        src = unsigned(((p * in_d + od * kd) * in_h + oh * kh) * out_w - u0)
        for j in range(unsigned(out_w)):
            out[dst + j] = ((g[src + j] * rd) * rh) * rw
        dst += unsigned(out_w)
        oh += 1
        if oh == out_h:
            oh = 0
            od += 1
            if od == out_d:
                od = 0
                p += 1


@njit(cache=True, nogil=True)
def adaptive_avg_uniform(x, out, dims, per_block, t0, t1):
    """Adaptive average of uniform windows (``in % out == 0`` in every dim, ``kw <= 4``)
    on a flat C-contiguous float32/float64 input ``x`` into the flat ``out``; ``dims``
    is (D, H, W, oD, oH, oW). Same sums (row-major from +0.0) and divisions (``/ kd``,
    ``/ kh``, ``/ kw``, lengths of 1 skipped) as :func:`adaptive_avg_forward`, by the
    flat sweep described above, over the super-rows ``t0 <= t < t1`` (of
    ``out.size // oW``), swept ``per_block`` super-rows at a time (a cache-sized sum
    buffer)."""
    zero = opmath_zero(x[0])
    for b0 in range(t0, t1, per_block):
        _uniform_block(x, out, b0, min(b0 + per_block, t1), dims, zero)
