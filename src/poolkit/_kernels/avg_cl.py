"""Average pooling, channels last, float32/float64: one output pixel in vector IR.

The fast path of the NHWC forward (1-D to 3-D, dilation 1) on C-contiguous
``(N, D, H, W, C)`` views. For each output pixel the channels are walked in blocks of
``_UNROLL`` vectors of 256 bits (``<8 x float>`` / ``<4 x double>``), then one block of
the remaining whole vectors, then one masked vector; each vector's sums stay in a
register while the window is scanned in row-major order (one load and one add per
window element and vector), and are divided once by the window's divisor, so every
output element is stored once.

Exactness (docs/semantics.md §7): every lane is one channel of the output pixel; its
accumulator starts at +0.0 and adds the window's input elements in row-major order
(padding is skipped, which equals adding +0.0), then is divided by the divisor in the
same opmath type: the scalar loop's and PyTorch's arithmetic, lane by lane. When every
divisor of a call is a power of two (``k=2``: 4), the plan hands in their reciprocals
and :func:`avg_cl_times` multiplies instead of dividing: ``s * 2**-k`` and ``s / 2**k``
are the same exact quotient rounded once, so the bits are the same (overflow,
subnormals, NaN and zeros included).

Every call prefetches its input ahead of the loads; a call far larger than the cache
(``stream``) also writes whole vectors with non-temporal stores (:func:`poolkit._kernels._lanes.
stream_store`); the values are the same.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from ._lanes import prefetch_ahead, stream_store, streamed_stores_done, streaming_flag
from ._vector_ir import Vectors, i64, is_vector_array

#: Channel vectors per window scan (their sums stay in registers).
_UNROLL = 8


def _make_pixel(times: bool):
    """The pixel intrinsic that divides by its divisor, or (``times``) multiplies."""
    scale_op = "fmul" if times else "fdiv"

    @intrinsic
    def pixel(typingctx, x, out, xoffs, n_rows, x0, e_lo, e_hi, n_chan, ooff, divisor,
              stream):
        """Output pixel at element ``ooff`` of ``out``: the channels of the window
        elements ``(r, e)``, ``r < n_rows``, ``e_lo <= e < e_hi``, at
        ``xoffs[r] + (x0 + e) * n_chan`` of ``x``, summed in that order and divided by
        (``times``: multiplied by) ``divisor``; ``stream`` (0 or 1): store past the
        cache."""
        return _pixel_codegen(x, out, divisor, scale_op, (x, out, xoffs, n_rows, x0, e_lo,
                                                          e_hi, n_chan, ooff, divisor, stream))

    return pixel


def _pixel_codegen(x, out, divisor, scale_op, arg_types):
    if not (is_vector_array(x) and is_vector_array(out, x.dtype)
            and isinstance(divisor, types.Float)):
        return None
    elem = x.dtype

    def codegen(context, builder, sig, args):
        xa = context.make_array(sig.args[0])(context, builder, args[0])
        oa = context.make_array(sig.args[1])(context, builder, args[1])
        xo = context.make_array(sig.args[2])(context, builder, args[2])
        vx = Vectors(context, builder, elem)
        lanes = vx.lanes

        def arg(k):
            return context.cast(builder, args[k], sig.args[k], types.int64)

        n_rows, x0, e_lo, e_hi, n_chan, ooff = (arg(k) for k in range(3, 9))
        divs = vx.splat(context.cast(builder, args[9], sig.args[9], elem))
        streaming = streaming_flag(builder, arg(10))
        slots = [cgutils.alloca_once(builder, vx.vec) for _ in range(_UNROLL)]
        n_cols = builder.sub(e_hi, e_lo)

        def block(c, u, mask):
            """``u`` vectors of channels from ``c``: the window, the division, the store."""
            for j in range(u):
                builder.store(vx.zeros, slots[j])
            with cgutils.for_range(builder, n_rows) as rl:
                row = builder.add(builder.load(builder.gep(xo.data, [rl.index])), c)
                start = builder.add(row, builder.mul(builder.add(x0, e_lo), n_chan))
                with cgutils.for_range(builder, n_cols) as el:
                    off = builder.add(start, builder.mul(el.index, n_chan))
                    if mask is None:  # the lines these loads reach a little later
                        prefetch_ahead(builder, xa.data, off, u * lanes, vx.align)
                    for j in range(u):
                        at = builder.add(off, i64(j * lanes))
                        v = (vx.load(xa.data, at) if mask is None
                             else vx.masked_load(xa.data, at, mask, vx.zeros))
                        builder.store(builder.fadd(builder.load(slots[j]), v), slots[j])
            for j in range(u):
                at = builder.add(ooff, builder.add(c, i64(j * lanes)))
                res = getattr(builder, scale_op)(builder.load(slots[j]), divs)
                if mask is None:
                    stream_store(builder, res, vx.ptr(oa.data, at), vx.align, streaming)
                else:
                    vx.masked_store(res, oa.data, at, mask)

        # channels: blocks of _UNROLL vectors, one block of the rest, then a masked vector
        big = i64(lanes * _UNROLL)
        n_big = builder.udiv(n_chan, big)
        with cgutils.for_range(builder, n_big) as cl:
            block(builder.mul(cl.index, big), _UNROLL, None)
        done = builder.mul(n_big, big)
        n_full = builder.udiv(builder.sub(n_chan, done), vx.n)  # < _UNROLL: one block
        rest_done = builder.append_basic_block("rest.done")
        switch = builder.switch(n_full, rest_done)
        for count in range(1, _UNROLL):
            case = builder.append_basic_block(f"rest.{count}")
            switch.add_case(i64(count), case)
            builder.position_at_end(case)
            block(done, count, None)
            builder.branch(rest_done)
        builder.position_at_end(rest_done)
        c = builder.add(done, builder.mul(n_full, vx.n))
        with builder.if_then(builder.icmp_signed("<", c, n_chan)):
            block(c, 1, vx.lanes_between(c, None, n_chan))
        return context.get_dummy_value()

    return types.none(*arg_types), codegen


_pixel_divide = _make_pixel(False)
_pixel_times = _make_pixel(True)


@njit(cache=True, nogil=True, inline="always")
def _rows(x, out, divs, params, stream, t0, t1, times):
    in_d, in_h, in_w, n_chan = x.shape[1], x.shape[2], x.shape[3], x.shape[4]
    out_d, out_h, out_w = out.shape[1], out.shape[2], out.shape[3]
    kd, kh, kw = params[0, 0], params[0, 1], params[0, 2]
    sd, sh, sw = params[1, 0], params[1, 1], params[1, 2]
    pd, ph, pw = params[2, 0], params[2, 1], params[2, 2]
    xoffs = np.empty(max(min(kd, in_d) * min(kh, in_h), 1), dtype=np.int64)
    for task in range(t0, t1):
        n, od, oh = task // (out_d * out_h), (task // out_h) % out_d, task % out_h
        z0, y0 = od * sd - pd, oh * sh - ph
        z1, y1 = min(z0 + kd, in_d), min(y0 + kh, in_h)
        n_rows = 0
        for z in range(max(z0, 0), z1):
            for y in range(max(y0, 0), y1):
                xoffs[n_rows] = ((n * in_d + z) * in_h + y) * in_w * n_chan
                n_rows += 1
        obase = task * out_w * n_chan
        for ow in range(out_w):
            xs = ow * sw - pw
            e_lo = max(0, -xs)
            e_hi = max(e_lo, min(kw, in_w - xs))
            if times:
                _pixel_times(x, out, xoffs, n_rows, xs, e_lo, e_hi, n_chan,
                             obase + ow * n_chan, divs[od, oh, ow], stream)
            else:
                _pixel_divide(x, out, xoffs, n_rows, xs, e_lo, e_hi, n_chan,
                              obase + ow * n_chan, divs[od, oh, ow], stream)
    if stream:
        streamed_stores_done()


@njit(cache=True, nogil=True)
def avg_cl(x, out, divs, params, stream, t0, t1):
    """Output rows ``t0 <= task < t1`` (``task`` = (n, od, oh)) of a channels-last
    ``x`` (``(N, D, H, W, C)``, C-contiguous) into ``out``; ``divs`` is the
    ``(out_d, out_h, out_w)`` divisor table in the dtype of ``x``, ``params`` the kernel
    geometry table (window rows and columns past the input are padding: skipped);
    ``stream`` (0 or 1): the call is far larger than the cache."""
    _rows(x, out, divs, params, stream, t0, t1, False)


@njit(cache=True, nogil=True)
def avg_cl_times(x, out, recips, params, stream, t0, t1):
    """:func:`avg_cl` with ``recips``, the reciprocals of divisors that are all powers of
    two: each sum is multiplied by its reciprocal (the same bits as the division)."""
    _rows(x, out, recips, params, stream, t0, t1, True)

