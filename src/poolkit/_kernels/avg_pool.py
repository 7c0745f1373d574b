"""Compiled average pooling kernels on 5-D ``(N, C, D, H, W)`` (or ``(N, D, H, W, C)``)
views.

Arithmetic follows PyTorch's CPU kernels so results are bit-identical: each window is
summed in row-major order in the "opmath" type (float32 for float16 and float32,
float64 for float64) from +0.0, divided once by the window's divisor, and cast back; the
backward divides each output gradient by its divisor (rounded to the gradient dtype)
and adds it to every input of the window, outputs in row-major order. float16 arrays
travel as their uint16 bits (see :mod:`._scalar`). The divisors come in as a
``(out_d, out_h, out_w)`` table in the opmath type (computed by the caller).

Every path is a serial function over a range of tasks (``*_range(..., t0, t1)``; tasks
never share outputs), run by :func:`poolkit._engine.run_tasks` on the calling thread or
split over poolkit's threads, so a cold process compiles only the path it runs:

* :func:`forward_split_range`: channels-first input that the vector row kernels of
  :mod:`.avg_rows` do not take (float16, strided views, column strides above 2): rows
  phase-split into a buffer so the window sums run over unit-stride runs;
* :func:`forward_nhwc_range`: channels-last, vectorised over the channels;
* :func:`backward_range`: the channels-first gradient.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import overload

from ._scalar import (
    accumulate,
    compiled_only,
    float_to_half,
    half_to_float,
    is_half_bits,
    unsigned,
)

#: the opmath conversions (compiled code only; implementations: the overloads below)
to_opmath, from_opmath, opmath_zero, divide = (
    compiled_only(name) for name in ("to_opmath", "from_opmath", "opmath_zero", "divide"))


@overload(to_opmath, inline="always")
def _to_opmath(v):
    """Widen a stored value to the accumulation type (float16 bits -> float32)."""
    if is_half_bits(v):
        return lambda v: half_to_float(v)
    return lambda v: v


@overload(from_opmath, inline="always")
def _from_opmath(acc, like):
    """Round an accumulator back to the storage type of ``like``."""
    if is_half_bits(like):
        return lambda acc, like: float_to_half(acc)
    if isinstance(like, types.Float) and like.bitwidth == 32:
        return lambda acc, like: np.float32(acc)
    return lambda acc, like: acc


@overload(opmath_zero, inline="always")
def _opmath_zero(like):
    """A zero of the accumulation type for values shaped like ``like``."""
    if is_half_bits(like) or (isinstance(like, types.Float) and like.bitwidth == 32):
        return lambda like: np.float32(0.0)
    return lambda like: 0.0


@overload(divide, inline="always")
def _divide(acc, d):
    """``acc / d`` with the integer ``d`` converted to the accumulator's type (as C++)."""
    if isinstance(acc, types.Float) and acc.bitwidth == 32:
        return lambda acc, d: acc / np.float32(d)
    return lambda acc, d: acc / np.float64(d)


@njit(inline="always")
def _window(o, stride, pad, kernel, length, pad_end):
    """(begin, end, padded_size) of one window in one dim, PyTorch's clipping rules."""
    start = o * stride - pad
    end = min(start + kernel, length + pad_end)
    padded = end - start
    return max(start, 0), min(end, length), padded


@njit(inline="always")
def _col_range(e, stride, pad, length, n_out):
    """Outputs ``o`` whose window column ``e`` (``o*stride - pad + e``) lies in [0, length)."""
    lo = max(0, (pad - e + stride - 1) // stride)
    hi = min(n_out, (length - 1 + pad - e) // stride + 1)
    return lo, hi


@njit(inline="always")
def _cover(i, stride, pad, kernel, n_out):
    """First and last output whose window covers input position ``i`` (last < first: none)."""
    first = max(0, -((kernel - 1 - i - pad) // stride))
    last = min(n_out - 1, (i + pad) // stride)
    return first, last


@njit(cache=True, nogil=True)
def deltas_pixels(grad, divs, delta, t0, t1):
    """``delta = grad / divisor`` rounded to the gradient dtype, for channels-last
    ``(N, oD, oH, oW, C)`` views, tasks ``t0 <= task < t1`` the output rows (n, od, oh):
    the per-window deltas :func:`backward_range` computes, once each."""
    out_d, out_h, out_w, n_chan = grad.shape[1], grad.shape[2], grad.shape[3], grad.shape[4]
    like = grad[0, 0, 0, 0, 0]
    nc = unsigned(n_chan)
    src = grad.reshape(-1)
    dst = delta.reshape(-1)
    q_all = divs.reshape(-1)
    for task in range(t0, t1):
        q0 = unsigned(task % (out_d * out_h)) * unsigned(out_w)  # divisor row (od, oh)
        row = unsigned(task) * unsigned(out_w)
        for ow in range(unsigned(out_w)):
            q = q_all[q0 + ow]
            at = (row + ow) * nc
            for c in range(nc):
                dst[at + c] = from_opmath(to_opmath(src[at + c]) / q, like)


@njit(cache=True, nogil=True)
def backward_pixels(delta, dx, params, t0, t1):
    """:func:`backward_range` for C-contiguous channels-last views: ``delta`` (of
    :func:`deltas_pixels`) ``(N, oD, oH, oW, C)``, ``dx`` ``(N, D, H, W, C)``, tasks
    ``t0 <= task < t1`` the input rows (n, z, y). Every element gets 0 plus the delta of
    each window covering it, in output row-major order, as in :func:`backward_range`;
    the channels run side by side (flat offsets, the W covers tabled once per call)."""
    in_d, in_h, in_w, n_chan = dx.shape[1], dx.shape[2], dx.shape[3], dx.shape[4]
    out_d, out_h, out_w = delta.shape[1], delta.shape[2], delta.shape[3]
    kd, kh, kw = params[0, 0], params[0, 1], params[0, 2]
    sd, sh, sw = params[1, 0], params[1, 1], params[1, 2]
    pd, ph, pw = params[2, 0], params[2, 1], params[2, 2]
    nc = unsigned(n_chan)
    src = delta.reshape(-1)
    dst = dx.reshape(-1)
    covers = np.empty((in_w, 2), dtype=np.int64)
    for x in range(in_w):
        covers[x, 0], covers[x, 1] = _cover(x, sw, pw, kw, out_w)
    acc = np.empty(n_chan, dtype=delta.dtype)
    for task in range(t0, t1):
        y = task % in_h
        z = (task // in_h) % in_d
        n = task // (in_h * in_d)
        fd, ld = _cover(z, sd, pd, kd, out_d)
        fh, lh = _cover(y, sh, ph, kh, out_h)
        out_row0 = unsigned(task * in_w) * nc
        for x in range(in_w):
            fw, lw = covers[x, 0], covers[x, 1]
            for c in range(nc):
                acc[c] = 0
            for od in range(fd, ld + 1):
                for oh in range(fh, lh + 1):
                    row = ((n * out_d + od) * out_h + oh) * out_w
                    for ow in range(fw, lw + 1):
                        at = unsigned(row + ow) * nc
                        for c in range(nc):
                            acc[c] = accumulate(acc[c], src[at + c])
            at = out_row0 + unsigned(x) * nc
            for c in range(nc):
                dst[at + c] = acc[c]


@njit(inline="always")
def _add_run(dst, dst_start, src, src_start, count):
    """``dst[dst_start + i] += src[src_start + i]`` for i < count (each add in order)."""
    d0 = unsigned(dst_start)
    s0 = unsigned(src_start)
    for i in range(unsigned(count)):
        dst[d0 + i] = accumulate(dst[d0 + i], src[s0 + i])


@njit(inline="always")
def _split_row(x, n, c, z, y, buf, ri, pw, sw):
    """Phase-split input row ``x[n, c, z, y]`` (widened to opmath) into ``buf[ri]``.

    ``buf[ri, t % sw, t // sw]`` receives padded column ``t = i + pw`` (input column
    ``i``); the padding slots are zeroed once per task by the caller. After the split
    the window column ``e`` of output ``ow`` is ``buf[ri, e % sw, e // sw + ow]``: a
    unit-stride run over the outputs, so the window sums vectorize with plain loads.
    """
    in_w = x.shape[4]
    if sw == 2:
        a = pw % 2
        oa = unsigned(pw // 2)
        ob = unsigned((pw + 1) // 2)
        for k in range(unsigned(in_w // 2)):
            buf[ri, a, oa + k] = to_opmath(x[n, c, z, y, unsigned(2) * k])
            buf[ri, 1 - a, ob + k] = to_opmath(x[n, c, z, y, unsigned(2) * k + unsigned(1)])
        if in_w % 2:
            t = in_w - 1 + pw
            buf[ri, t % 2, t // 2] = to_opmath(x[n, c, z, y, in_w - 1])
    elif sw == 1:
        for i in range(unsigned(in_w)):
            buf[ri, 0, unsigned(pw) + i] = to_opmath(x[n, c, z, y, i])
    else:
        for i in range(in_w):
            t = i + pw
            buf[ri, t % sw, t // sw] = to_opmath(x[n, c, z, y, i])


@njit(inline="always")
def _add_window_row(acc, buf, ri, kw, sw, out_w):
    """``acc[ow] += buf[ri, e % sw, e // sw + ow]`` for e = 0..kw-1 in order, per output."""
    n = unsigned(out_w)
    if kw == 3 and sw == 2:
        for ow in range(n):
            acc[ow] = ((acc[ow] + buf[ri, 0, ow]) + buf[ri, 1, ow]) + buf[ri, 0, ow + unsigned(1)]
    elif kw == 2 and sw == 2:
        for ow in range(n):
            acc[ow] = (acc[ow] + buf[ri, 0, ow]) + buf[ri, 1, ow]
    elif kw == 3 and sw == 1:
        for ow in range(n):
            acc[ow] = ((acc[ow] + buf[ri, 0, ow]) + buf[ri, 0, ow + unsigned(1)]) + buf[
                ri, 0, ow + unsigned(2)
            ]
    else:
        for e in range(kw):
            r = e % sw
            q = unsigned(e // sw)
            for ow in range(n):
                acc[ow] += buf[ri, r, q + ow]


# --------------------------------------------------------------------------------------
# serial task ranges (the whole call on this thread, or one chunk of a parallel call)
# --------------------------------------------------------------------------------------


@njit(error_model="numpy", nogil=True, cache=True)
def forward_split_range(x, out, divs, params, pad_end, t0, t1):
    """Tasks (n, c, od) ``t0 <= task < t1`` of the phase-buffer path (any dtype/stride).

    One phase buffer serves the range; its padding slots are zeroed once. Per task the
    input rows of the depth window are phase-split once into it (see :func:`_split_row`).
    Then one output row at a time: for every window offset (z, y, e) in row-major order
    the whole row of accumulators adds its element (a unit-stride run of the buffer), so
    each window is still summed in row-major order. Padding slots add +0.0, which leaves
    every sum bit-identical to skipping them (an accumulator starting at +0.0 is never
    -0.0; NaN and inf are kept), exactly PyTorch's loop; the runs vectorize across
    outputs.
    """
    n_chan, in_d, in_h, in_w = x.shape[1], x.shape[2], x.shape[3], x.shape[4]
    out_d, out_h, out_w = out.shape[2], out.shape[3], out.shape[4]
    kd, kh, kw = params[0, 0], params[0, 1], params[0, 2]
    sd, sh, sw = params[1, 0], params[1, 1], params[1, 2]
    pd, ph, pw = params[2, 0], params[2, 1], params[2, 2]
    ed, eh = pad_end[0], pad_end[1]
    like = x[0, 0, 0, 0, 0]
    zero = opmath_zero(like)
    # padded columns 0 .. n_col*sw - 1 cover every window column of every output
    n_col = max(out_w + (kw - 1) // sw, (in_w + pw + sw - 1) // sw)
    rows_max = min(kd, in_d) * in_h
    acc = np.empty(out_w, dtype=type(zero))
    buf = np.empty((max(rows_max, 1), sw, n_col), dtype=type(zero))
    for ri in range(rows_max):  # the padding slots, never overwritten by a split
        for t in range(pw):
            buf[ri, t % sw, t // sw] = zero
        for t in range(pw + in_w, n_col * sw):
            buf[ri, t % sw, t // sw] = zero
    for task in range(t0, t1):
        n = task // (n_chan * out_d)
        c = (task // out_d) % n_chan
        od = task % out_d
        z0, z1, _ = _window(od, sd, pd, kd, in_d, ed)
        for z in range(z0, z1):
            for y in range(in_h):
                _split_row(x, n, c, z, y, buf, (z - z0) * in_h + y, pw, sw)
        for oh in range(out_h):
            y0, y1, _ = _window(oh, sh, ph, kh, in_h, eh)
            for ow in range(unsigned(out_w)):
                acc[ow] = zero
            for z in range(z0, z1):
                for y in range(y0, y1):
                    _add_window_row(acc, buf, (z - z0) * in_h + y, kw, sw, out_w)
            dst = out[n, c, od, oh]
            q = divs[od, oh]
            for ow in range(unsigned(out_w)):
                dst[ow] = from_opmath(acc[ow] / q[ow], like)



@njit(inline="always")
def sum_window_pixels(x, n, z0, z1, y0, y1, x0, x1, acc, zero):
    """``acc[c]`` = ``zero`` plus channel ``c`` of the window's pixels of the channels-last
    ``(N, D, H, W, C)`` input ``x``, in row-major order (one contiguous run of C per
    pixel, so the channel loop vectorises)."""
    nc = unsigned(acc.shape[0])
    for c in range(nc):
        acc[c] = zero
    for z in range(z0, z1):
        for y in range(y0, y1):
            for i in range(x0, x1):
                src = x[n, z, y, i]
                for c in range(nc):
                    acc[c] += to_opmath(src[c])

@njit(error_model="numpy", nogil=True, cache=True)
def forward_nhwc_range(x, out, divs, params, pad_end, t0, t1):
    """Channels-last tasks (n, od, oh) ``t0 <= task < t1``: ``x`` is ``(N, D, H, W, C)``.

    Per output, a row of C accumulators (one per channel) adds the window's elements in
    row-major order from +0.0; each element is a run of C values (unit stride for a
    contiguous input), so the adds vectorize across channels, and the run is divided
    once by the window's divisor.
    """
    in_d, in_h, in_w, n_chan = x.shape[1], x.shape[2], x.shape[3], x.shape[4]
    out_d, out_h, out_w = out.shape[1], out.shape[2], out.shape[3]
    kd, kh, kw = params[0, 0], params[0, 1], params[0, 2]
    sd, sh, sw = params[1, 0], params[1, 1], params[1, 2]
    pd, ph, pw = params[2, 0], params[2, 1], params[2, 2]
    ed, eh, ew = pad_end[0], pad_end[1], pad_end[2]
    like = x[0, 0, 0, 0, 0]
    zero = opmath_zero(like)
    nc = unsigned(n_chan)
    acc = np.empty(n_chan, dtype=type(zero))
    for task in range(t0, t1):
        n = task // (out_d * out_h)
        od = (task // out_h) % out_d
        oh = task % out_h
        z0, z1, _ = _window(od, sd, pd, kd, in_d, ed)
        y0, y1, _ = _window(oh, sh, ph, kh, in_h, eh)
        q = divs[od, oh]
        for ow in range(out_w):
            x0, x1, _ = _window(ow, sw, pw, kw, in_w, ew)
            sum_window_pixels(x, n, z0, z1, y0, y1, x0, x1, acc, zero)
            dst = out[n, od, oh, ow]
            d = q[ow]
            for c in range(nc):
                dst[c] = from_opmath(acc[c] / d, like)


@njit(error_model="numpy", nogil=True, cache=True)
def backward_range(grad, dx, divs, params, t0, t1):
    """Tasks (n, c, z) ``t0 <= task < t1`` of the gradient: every element of the input
    rows ``dx[n, c, z]`` is written.

    Each input element receives ``grad / divisor`` (rounded to the gradient dtype)
    from every window covering it, added in output row-major order starting from 0:
    the same float sums as PyTorch's scatter loop. Computed per input row by gathering
    (rows of a plane are independent), with the row split into ``stride`` phases so
    that each window offset adds a contiguous run of deltas; window columns run
    backwards so each element still sees its outputs in increasing order.
    """
    n_chan, in_d, in_h, in_w = dx.shape[1], dx.shape[2], dx.shape[3], dx.shape[4]
    out_d, out_h, out_w = grad.shape[2], grad.shape[3], grad.shape[4]
    kd, kh, kw = params[0, 0], params[0, 1], params[0, 2]
    sd, sh, sw = params[1, 0], params[1, 1], params[1, 2]
    pd, ph, pw = params[2, 0], params[2, 1], params[2, 2]
    like = grad[0, 0, 0, 0, 0]
    phase_len = (in_w + sw - 1) // sw
    # per window column e (visited backwards): output run [lo, hi) and its phase offset
    runs = np.empty((kw, 3), dtype=np.int64)
    for k in range(kw):
        e = kw - 1 - k
        lo, hi = _col_range(e, sw, pw, in_w, out_w)
        off = e - pw
        runs[k, 0] = lo
        runs[k, 1] = hi
        runs[k, 2] = (off % sw) * phase_len + lo + off // sw
    acc = np.empty(sw * phase_len, dtype=grad.dtype)
    delta = np.empty(min(kd, out_d) * out_h * out_w, dtype=grad.dtype)
    for task in range(t0, t1):
        n = task // (n_chan * in_d)
        c = (task // in_d) % n_chan
        z = task % in_d
        fd, ld = _cover(z, sd, pd, kd, out_d)
        n_od = max(ld - fd + 1, 0)
        if n_od * out_h * out_w > delta.shape[0]:
            delta = np.empty(n_od * out_h * out_w, dtype=grad.dtype)
        for i in range(n_od):
            od = fd + i
            for oh in range(out_h):
                base = unsigned((i * out_h + oh) * out_w)
                q = divs[od, oh]
                g = grad[n, c, od, oh]
                for ow in range(unsigned(out_w)):
                    delta[base + ow] = from_opmath(to_opmath(g[ow]) / q[ow], like)
        for y in range(in_h):
            fh, lh = _cover(y, sh, ph, kh, out_h)
            for j in range(sw * phase_len):
                acc[j] = 0
            for i in range(n_od):
                for oh in range(fh, lh + 1):
                    base = (i * out_h + oh) * out_w
                    for k in range(kw):
                        lo = runs[k, 0]
                        hi = runs[k, 1]
                        if hi > lo:
                            _add_run(acc, runs[k, 2], delta, base + lo, hi - lo)
            row = dx[n, c, z, y]
            if sw == 2:
                for j in range(unsigned(in_w // 2)):
                    row[unsigned(2) * j] = acc[j]
                    row[unsigned(2) * j + unsigned(1)] = acc[unsigned(phase_len) + j]
                if in_w % 2:
                    row[in_w - 1] = acc[in_w // 2]
                continue
            step = unsigned(sw)
            for r in range(sw):
                src0 = unsigned(r * phase_len)
                for j in range(unsigned((in_w - r + sw - 1) // sw)):
                    row[j * step + unsigned(r)] = acc[src0 + j]
