"""Compiled average pooling kernels on 5-D ``(N, C, D, H, W)`` views.

Arithmetic follows PyTorch's CPU kernels so results are bit-identical: each window is
summed in row-major order in the "opmath" type (float32 for float16 and float32,
float64 for float64), divided once by the integer divisor, and cast back; the
backward divides each output gradient by its divisor (rounded to the gradient dtype)
and adds it to every input of the window, planes in parallel, outputs in row-major
order. float16 arrays travel as their uint16 bits (see :mod:`._scalar`).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from ._scalar import accumulate, float_to_half, half_to_float


def to_opmath(v):  # pragma: no cover - replaced by the overload in compiled code
    raise NotImplementedError


def from_opmath(acc, like):  # pragma: no cover
    raise NotImplementedError


def opmath_zero(like):  # pragma: no cover
    raise NotImplementedError


def divide(acc, d):  # pragma: no cover
    raise NotImplementedError


def _is_half_bits(ty) -> bool:
    return isinstance(ty, types.Integer) and ty.bitwidth == 16 and not ty.signed


@overload(to_opmath, inline="always")
def _to_opmath(v):
    """Widen a stored value to the accumulation type (float16 bits -> float32)."""
    if _is_half_bits(v):
        return lambda v: half_to_float(v)
    return lambda v: v


@overload(from_opmath, inline="always")
def _from_opmath(acc, like):
    """Round an accumulator back to the storage type of ``like``."""
    if _is_half_bits(like):
        return lambda acc, like: float_to_half(acc)
    if isinstance(like, types.Float) and like.bitwidth == 32:
        return lambda acc, like: np.float32(acc)
    return lambda acc, like: acc


@overload(opmath_zero, inline="always")
def _opmath_zero(like):
    """A zero of the accumulation type for values shaped like ``like``."""
    if _is_half_bits(like) or (isinstance(like, types.Float) and like.bitwidth == 32):
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
def _divisor(pd, ph, pw, cd, ch, cw, count_include_pad, divisor_override):
    if divisor_override != 0:
        return divisor_override
    if count_include_pad:
        return pd * ph * pw
    return cd * ch * cw


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


@njit(inline="always")
def _row_divisors(out_w, sw, pw, kw, in_w, ew):
    """Per output column: (clipped element count, padded window length)."""
    cnt = np.empty(out_w, dtype=np.int64)
    padded = np.empty(out_w, dtype=np.int64)
    for ow in range(out_w):
        x0, x1, xp = _window(ow, sw, pw, kw, in_w, ew)
        cnt[ow] = x1 - x0
        padded[ow] = xp
    return cnt, padded


@njit(inline="always")
def _u(i):
    """Unsigned index: numba then skips its negative-index wraparound, so loops vectorize."""
    return np.uint64(i)


@njit(inline="always")
def _add_run(dst, dst_start, src, src_start, count):
    """``dst[dst_start + i] += src[src_start + i]`` for i < count (each add in order)."""
    d0 = _u(dst_start)
    s0 = _u(src_start)
    for i in range(_u(count)):
        dst[d0 + i] = accumulate(dst[d0 + i], src[s0 + i])


@njit(inline="always")
def _add_strided(acc, start, row, first, step, count):
    """``acc[start + i] += row[first + i*step]`` (widened to opmath), each add in order."""
    a0 = _u(start)
    r0 = _u(first)
    st = _u(step)
    for i in range(_u(count)):
        acc[a0 + i] += to_opmath(row[r0 + i * st])


@njit(parallel=True, cache=True, nogil=True)
def avg_pool_forward(x, out, params, pad_end, count_include_pad, divisor_override):
    """Average of each window; ``divisor_override`` 0 means "no override".

    ``params`` is the (4, 3) table of :meth:`Geometry.kernel_params` (dilation 1),
    ``pad_end`` the three end paddings. A window with no input element gives 0.

    One output row at a time: for every window offset (z, y, e) in row-major order the
    whole row of accumulators takes its element (a strided run of the input row), so
    each window is still summed in row-major order, elements outside the input
    skipped, exactly as PyTorch's loop does; the runs vectorize across outputs.
    """
    n_batch, n_chan, in_d, in_h, in_w = x.shape
    out_d, out_h, out_w = out.shape[2], out.shape[3], out.shape[4]
    kd, kh, kw = params[0, 0], params[0, 1], params[0, 2]
    sd, sh, sw = params[1, 0], params[1, 1], params[1, 2]
    pd, ph, pw = params[2, 0], params[2, 1], params[2, 2]
    ed, eh, ew = pad_end[0], pad_end[1], pad_end[2]
    like = x[0, 0, 0, 0, 0]
    xcnt, xpad = _row_divisors(out_w, sw, pw, kw, in_w, ew)
    runs = np.empty((kw, 2), dtype=np.int64)
    for e in range(kw):
        runs[e, 0], runs[e, 1] = _col_range(e, sw, pw, in_w, out_w)
    for task in prange(n_batch * n_chan * out_d):
        n = task // (n_chan * out_d)
        c = (task // out_d) % n_chan
        od = task % out_d
        z0, z1, zp = _window(od, sd, pd, kd, in_d, ed)
        zero = opmath_zero(like)
        acc = np.empty(out_w, dtype=type(zero))
        div = np.empty(out_w, dtype=type(zero))
        for oh in range(out_h):
            y0, y1, yp = _window(oh, sh, ph, kh, in_h, eh)
            for ow in range(out_w):
                acc[ow] = zero
                if divisor_override != 0:
                    div[ow] = divisor_override
                elif count_include_pad:
                    div[ow] = zp * yp * xpad[ow]
                else:
                    div[ow] = (z1 - z0) * (y1 - y0) * xcnt[ow]
            for z in range(z0, z1):
                for y in range(y0, y1):
                    row = x[n, c, z, y]
                    for e in range(kw):
                        lo = runs[e, 0]
                        hi = runs[e, 1]
                        if hi > lo:
                            _add_strided(acc, lo, row, lo * sw + e - pw, sw, hi - lo)
            dst = out[n, c, od, oh]
            if z0 >= z1 or y0 >= y1:
                for ow in range(out_w):
                    dst[ow] = from_opmath(zero, like)
                continue
            for ow in range(_u(out_w)):
                dst[ow] = from_opmath(acc[ow] / div[ow], like)
            for ow in range(out_w):
                if xcnt[ow] <= 0:
                    dst[ow] = from_opmath(zero, like)


@njit(parallel=True, cache=True, nogil=True)
def avg_pool_backward(grad, dx, params, pad_end, count_include_pad, divisor_override):
    """Gradient of average pooling, written into every element of ``dx``.

    Each input element receives ``grad / divisor`` (rounded to the gradient dtype)
    from every window covering it, added in output row-major order starting from 0:
    the same float sums as PyTorch's scatter loop. Computed per input row by gathering
    (rows of a plane are independent), with the row split into ``stride`` phases so
    that each window offset adds a contiguous run of deltas; window columns run
    backwards so each element still sees its outputs in increasing order.
    """
    n_batch, n_chan, in_d, in_h, in_w = dx.shape
    out_d, out_h, out_w = grad.shape[2], grad.shape[3], grad.shape[4]
    kd, kh, kw = params[0, 0], params[0, 1], params[0, 2]
    sd, sh, sw = params[1, 0], params[1, 1], params[1, 2]
    pd, ph, pw = params[2, 0], params[2, 1], params[2, 2]
    ed, eh, ew = pad_end[0], pad_end[1], pad_end[2]
    like = grad[0, 0, 0, 0, 0]
    phase_len = (in_w + sw - 1) // sw
    xcnt, xpad = _row_divisors(out_w, sw, pw, kw, in_w, ew)
    # per window column e (visited backwards): output run [lo, hi) and its phase offset
    runs = np.empty((kw, 3), dtype=np.int64)
    for k in range(kw):
        e = kw - 1 - k
        lo, hi = _col_range(e, sw, pw, in_w, out_w)
        off = e - pw
        runs[k, 0] = lo
        runs[k, 1] = hi
        runs[k, 2] = (off % sw) * phase_len + lo + off // sw
    for task in prange(n_batch * n_chan * in_d):
        n = task // (n_chan * in_d)
        c = (task // in_d) % n_chan
        z = task % in_d
        fd, ld = _cover(z, sd, pd, kd, out_d)
        n_od = max(ld - fd + 1, 0)
        delta = np.empty(n_od * out_h * out_w, dtype=grad.dtype)
        for i in range(n_od):
            od = fd + i
            z0, z1, zp = _window(od, sd, pd, kd, in_d, ed)
            for oh in range(out_h):
                y0, y1, yp = _window(oh, sh, ph, kh, in_h, eh)
                base = (i * out_h + oh) * out_w
                for ow in range(out_w):
                    div = _divisor(
                        zp, yp, xpad[ow], z1 - z0, y1 - y0, max(xcnt[ow], 1),
                        count_include_pad, divisor_override,
                    )
                    delta[base + ow] = from_opmath(
                        divide(to_opmath(grad[n, c, od, oh, ow]), div), like
                    )
        acc = np.empty(sw * phase_len, dtype=grad.dtype)
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
            step = _u(sw)
            row = dx[n, c, z, y]
            for r in range(sw):
                src0 = _u(r * phase_len)
                for j in range(_u((in_w - r + sw - 1) // sw)):
                    row[j * step + _u(r)] = acc[src0 + j]
