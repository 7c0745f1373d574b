"""Max pooling, channels last, float32/float64: one output pixel in vector IR.

The fast path of the NHWC forward, values or values and indices, 1-D to 3-D, on
C-contiguous ``(N, D, H, W, C)`` views. For each output pixel the channels are walked in
vectors of 256 bits (``<8 x float>`` / ``<4 x double>``; the last one masked), and each
vector's running maximum stays in a register while the window is scanned in row-major
order (one load and one step per window element), so every output element is stored
once. The step is the scan rule of every path: ``v`` replaces ``m`` if ``v > m`` or
``v`` is NaN (``select``; on x86 ``vmaxps`` plus a NaN blend), the index vector
(int32: plane indices of planes under 2**31 elements) follows the same mask and is
widened to int64 at the store. The window starts from its first element inside the
input; a window with no element inside the input stores ``-inf`` and index -1.

Every call prefetches its input ahead of the loads; a call far larger than the cache
(``stream``) also writes whole vectors with non-temporal stores (:func:`poolkit._kernels._lanes.
stream_store`); the results are the same.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from ._lanes import (
    X86_MAX,
    lowest,
    masked_memory,
    prefetch_ahead,
    scan_dtype_ok,
    scan_lanes,
    scan_wins,
    splat,
    stream_store,
    streamed_stores_done,
    streaming_flag,
)

#: Channel vectors per window scan (their maxima stay in registers).
_UNROLL = 4


def _c(ty, value):
    return ir.Constant(ty, value)


def _make_pixel(want: bool):
    """The pixel intrinsic, with (``want``) or without the index vector."""

    @intrinsic
    def pixel(typingctx, x, out, idx, xoffs, kbase, n_rows, x0, e_lo, e_hi, geo, ooff, stream):
        """Output pixel at flat offset ``ooff`` (times C) of ``out`` (and ``idx``);
        ``stream`` (0 or 1): store past the cache.

        Window rows ``r < n_rows`` start at element ``xoffs[r]`` of ``x`` (column 0,
        channel 0) and have plane index ``kbase[r]`` at column 0; window columns are
        ``x0 + e*dw`` for ``e_lo <= e < e_hi``. ``geo`` = ``(C, dw)``.
        """
        if not (
            isinstance(x, types.Array) and x.layout == "C" and scan_dtype_ok(x.dtype)
            and isinstance(out, types.Array) and out.layout == "C" and out.dtype == x.dtype
        ):
            return None
        elem = x.dtype
        lanes = scan_lanes(elem)

        def codegen(context, builder, sig, args):
            arrs = [context.make_array(sig.args[k])(context, builder, args[k])
                    for k in range(5)]
            xa, oa, ia, xo, kb = arrs
            ga = context.make_array(sig.args[9])(context, builder, args[9])
            i64 = ir.IntType(64)
            i32 = ir.IntType(32)
            fty = context.get_data_type(elem)
            vec = ir.VectorType(fty, lanes)
            ivec = ir.VectorType(i64, lanes)
            kvec = ir.VectorType(i32, lanes)
            align = elem.bitwidth // 8

            def arg(k):
                return context.cast(builder, args[k], sig.args[k], types.int64)

            n_rows, x0, e_lo, e_hi, ooff = arg(5), arg(6), arg(7), arg(8), arg(10)
            streaming = streaming_flag(builder, arg(11))
            n_chan = builder.load(builder.gep(ga.data, [_c(i64, 0)]))
            dw = builder.load(builder.gep(ga.data, [_c(i64, 1)]))
            L = _c(i64, lanes)
            lane_ids = ir.Constant(ivec, list(range(lanes)))
            fill = ir.Constant(vec, [lowest(elem)] * lanes)  # also the masked loads' rest
            mod = builder.module
            vptr = vec.as_pointer()
            ivptr = ivec.as_pointer()
            mload = masked_memory(mod, "load", vec)
            mstore = masked_memory(mod, "store", vec)
            istore = masked_memory(mod, "store", ivec)
            xmax = None
            if X86_MAX and isinstance(elem, types.Float):
                xmax = cgutils.get_or_insert_function(
                    mod, ir.FunctionType(vec, [vec, vec]),
                    f"llvm.x86.avx.max.{'ps' if elem == types.float32 else 'pd'}.256")

            def vsplat(v, ty):
                return splat(builder, v, ty.count)

            acc_slots = [cgutils.alloca_once(builder, vec) for _ in range(_UNROLL)]
            k_slots = [cgutils.alloca_once(builder, kvec) for _ in range(_UNROLL)]
            has = builder.and_(builder.icmp_signed(">", n_rows, _c(i64, 0)),
                               builder.icmp_signed("<", e_lo, e_hi))

            def row_off(r):
                return builder.load(builder.gep(xo.data, [r]))

            def element(r, e, c, u, mask):
                """``u`` vectors of channels from ``c`` at window element (r, e)."""
                xx = builder.add(x0, builder.mul(e, dw))
                off = builder.add(builder.add(row_off(r), builder.mul(xx, n_chan)), c)
                vs = []
                if mask is None:  # the lines these loads reach a little later
                    prefetch_ahead(builder, xa.data, off, u * lanes, align)
                for j in range(u):
                    at = builder.add(off, _c(i64, j * lanes))
                    p = builder.bitcast(builder.gep(xa.data, [at]), vptr)
                    if mask is None:
                        vs.append(builder.load(p, align=align))
                    else:
                        vs.append(builder.call(mload, [p, _c(i32, align), mask, fill]))
                k = None
                if want:
                    k = builder.trunc(builder.add(builder.load(builder.gep(kb.data, [r])), xx),
                                      i32)
                    k = vsplat(k, kvec)
                return vs, k

            def update(r, e, c, u, mask):
                vs, k = element(r, e, c, u, mask)
                for j in range(u):
                    v = vs[j]
                    m = builder.load(acc_slots[j])
                    if not want and xmax is not None:  # maxps(v, m) = v > m ? v : m
                        nan = builder.fcmp_unordered("uno", v, v)
                        builder.store(builder.select(nan, v, builder.call(xmax, [v, m])),
                                      acc_slots[j])
                        continue
                    take = scan_wins(builder, elem, v, m)
                    builder.store(builder.select(take, v, m), acc_slots[j])
                    if not want:
                        continue
                    builder.store(builder.select(take, k, builder.load(k_slots[j])), k_slots[j])

            def block(c, u, mask):
                with builder.if_else(has, likely=True) as (yes, no):
                    with yes:
                        vs, k = element(_c(i64, 0), e_lo, c, u, mask)
                        for j in range(u):
                            builder.store(vs[j], acc_slots[j])
                            if want:
                                builder.store(k, k_slots[j])
                        with cgutils.for_range(builder, builder.sub(builder.sub(e_hi, e_lo),
                                                                    _c(i64, 1))) as el:
                            update(_c(i64, 0), builder.add(builder.add(e_lo, el.index),
                                                           _c(i64, 1)), c, u, mask)
                        with cgutils.for_range(builder, builder.sub(n_rows, _c(i64, 1))) as rl:
                            r = builder.add(rl.index, _c(i64, 1))
                            with cgutils.for_range(builder, builder.sub(e_hi, e_lo)) as el:
                                update(r, builder.add(e_lo, el.index), c, u, mask)
                    with no:
                        for j in range(u):
                            builder.store(fill, acc_slots[j])
                            if want:
                                builder.store(ir.Constant(kvec, [-1] * lanes), k_slots[j])
                for j in range(u):
                    o = builder.add(ooff, builder.add(c, _c(i64, j * lanes)))
                    optr = builder.bitcast(builder.gep(oa.data, [o]), vptr)
                    res = builder.load(acc_slots[j])
                    if want:
                        ks = builder.sext(builder.load(k_slots[j]), ivec)
                        iptr = builder.bitcast(builder.gep(ia.data, [o]), ivptr)
                    if mask is None:
                        stream_store(builder, res, optr, align, streaming)
                        if want:
                            stream_store(builder, ks, iptr, 8, streaming)
                    else:
                        builder.call(mstore, [res, optr, _c(i32, align), mask])
                        if want:
                            builder.call(istore, [ks, iptr, _c(i32, 8), mask])

            # channels: blocks of _UNROLL vectors, then single vectors, then a masked one
            big = _c(i64, lanes * _UNROLL)
            n_big = builder.udiv(n_chan, big)
            with cgutils.for_range(builder, n_big) as cl:
                block(builder.mul(cl.index, big), _UNROLL, None)
            done = builder.mul(n_big, big)
            n_full = builder.udiv(builder.sub(n_chan, done), L)
            with cgutils.for_range(builder, n_full) as cl:
                block(builder.add(done, builder.mul(cl.index, L)), 1, None)
            c = builder.add(done, builder.mul(n_full, L))
            with builder.if_then(builder.icmp_signed("<", c, n_chan)):
                mask = builder.icmp_signed(
                    "<", builder.add(vsplat(c, ivec), lane_ids), vsplat(n_chan, ivec))
                block(c, 1, mask)
            return context.get_dummy_value()

        return (types.none(x, out, idx, xoffs, kbase, n_rows, x0, e_lo, e_hi, geo, ooff, stream),
                codegen)

    return pixel


_pixel_values = _make_pixel(False)
_pixel_indices = _make_pixel(True)


@njit(cache=True, nogil=True, inline="always")
def _window_columns(in_w, kw, sw, pw, dw, out_w):
    """Per output column: the window columns ``e_lo <= e < e_hi`` inside the input."""
    e_lo = np.empty(out_w, dtype=np.int64)
    e_hi = np.empty(out_w, dtype=np.int64)
    for ow in range(out_w):
        x0 = ow * sw - pw
        e_lo[ow] = 0 if x0 >= 0 else min(kw, (-x0 + dw - 1) // dw)
        e_hi[ow] = min(kw, (in_w - 1 - x0) // dw + 1) if x0 <= in_w - 1 else 0
    return e_lo, e_hi


@njit(cache=True, nogil=True, inline="always")
def _rows(x, out, idx, kp, stream, t0, t1, want):
    n_in_d, in_h, in_w, n_chan = x.shape[1], x.shape[2], x.shape[3], x.shape[4]
    out_d, out_h, out_w = out.shape[1], out.shape[2], out.shape[3]
    kd, kh, kw = kp[0, 0], kp[0, 1], kp[0, 2]
    sd, sh, sw = kp[1, 0], kp[1, 1], kp[1, 2]
    pd, ph, pw = kp[2, 0], kp[2, 1], kp[2, 2]
    dd, dh, dw = kp[3, 0], kp[3, 1], kp[3, 2]
    e_lo, e_hi = _window_columns(in_w, kw, sw, pw, dw, out_w)
    xoffs = np.empty(kd * kh, dtype=np.int64)
    kbase = np.empty(kd * kh, dtype=np.int64)
    geo = np.empty(2, dtype=np.int64)
    geo[0] = n_chan
    geo[1] = dw
    for task in range(t0, t1):
        oh = task % out_h
        r = task // out_h
        od = r % out_d
        n = r // out_d
        z0 = od * sd - pd
        y0 = oh * sh - ph
        n_rows = 0
        for a in range(kd):
            z = z0 + a * dd
            if z < 0 or z >= n_in_d:
                continue
            for b in range(kh):
                y = y0 + b * dh
                if y < 0 or y >= in_h:
                    continue
                xoffs[n_rows] = ((n * n_in_d + z) * in_h + y) * in_w * n_chan
                kbase[n_rows] = (z * in_h + y) * in_w
                n_rows += 1
        obase = task * out_w * n_chan
        for ow in range(out_w):
            if want:
                _pixel_indices(x, out, idx, xoffs, kbase, n_rows, ow * sw - pw, e_lo[ow],
                               e_hi[ow], geo, obase + ow * n_chan, stream)
            else:
                _pixel_values(x, out, idx, xoffs, kbase, n_rows, ow * sw - pw, e_lo[ow],
                              e_hi[ow], geo, obase + ow * n_chan, stream)
    if stream:
        streamed_stores_done()


@njit(cache=True, nogil=True)
def cl_values(x, out, idx, kp, stream, t0, t1):
    """Values for output rows ``t0 <= task < t1`` (``task`` = (n, od, oh)); ``stream``
    (0 or 1): the call is far larger than the cache."""
    _rows(x, out, idx, kp, stream, t0, t1, False)


@njit(cache=True, nogil=True)
def cl_indices(x, out, idx, kp, stream, t0, t1):
    """Values and int64 plane indices for output rows ``t0 <= task < t1``."""
    _rows(x, out, idx, kp, stream, t0, t1, True)
