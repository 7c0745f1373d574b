"""Channels-last max backward over 2x2 tiles, in vector IR (numba, cached on disk).

When the outputs tile the input plane in disjoint 2x2 windows (``H`` is ``2 * OH`` or
``2 * OH + 1``, ``W`` likewise: max pooling with k == s == 2 and no padding, the common
downsampling layer), and every index names a pixel of its own output's tile, each
input pixel receives at most one gradient. The scatter of :mod:`.route` (zero ``dx``,
then ``dx[idx] += g`` in output order) then gives, at every pixel of a tile, ``0.0 +
g`` where the index names it and +0.0 elsewhere. This kernel writes exactly that,
tile by tile: per output pixel and vector of channels, it loads the indices and the
gradients once and stores the four window pixels (a compare and a select each); the
pixels no tile covers (an odd last row or column) are zeroed. ``dx`` is written once
and never read: no zeroing pass, no read-modify-write.

Whether the indices are tile-shaped is checked on the way, lane by lane (an index that
matches none of its tile's four pixels, or does not fit in int32). A task that finds
one sets ``fail[0]`` and stops, the others stop at their next task, and the caller
routes the whole gradient through the scatter instead, which overwrites all of ``dx``
(and reports the indices outside the plane). Indices from any source are therefore
routed exactly as the scatter routes them; tile-shaped ones simply take this path.

float32 and float64 (8 or 4 lanes, 256-bit vectors), C-contiguous ``(N, OH, OW, C)``
gradients and indices and ``(N, H, W, C)`` ``dx``; tasks are ``(n, oh)`` output rows,
which own disjoint rows of ``dx``.
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from ._lanes import masked_memory
from ._vector_ir import I32, I64, Vectors, is_vector_array


@intrinsic
def _tile_pixel(typingctx, dx, grad, idx, o_off, d_off, width, base, n_chan):
    """Output pixel at flat offset ``o_off`` of ``grad``/``idx``, whose tile's top-left
    pixel has plane index ``base`` and flat offset ``d_off`` in ``dx`` (row ``width``
    pixels, ``n_chan`` channels): writes the tile, returns whether every channel's
    index named one of its four pixels."""
    if not (is_vector_array(dx) and is_vector_array(grad, dx.dtype)
            and isinstance(idx, types.Array) and idx.dtype == types.int64):
        return None
    sig = types.boolean(dx, grad, idx, o_off, d_off, width, base, n_chan)

    def codegen(context, builder, s, args):
        b = builder
        da, ga, ia = (context.make_array(s.args[k])(context, b, args[k]) for k in range(3))
        o_off, d_off, width, base, n_chan = (
            context.cast(b, args[k], s.args[k], types.int64) for k in range(3, 8))
        vx = Vectors(context, b, s.args[0].dtype)
        lanes = vx.lanes
        ivec = ir.VectorType(I64, lanes)
        bvec = ir.VectorType(ir.IntType(1), lanes)
        w32 = b.trunc(width, I32)
        # the tile's pixels, relative to its top-left one: plane index, then dx offset
        rel = [vx.splat(v) for v in (ir.Constant(I32, 0), ir.Constant(I32, 1), w32,
                                      b.add(w32, ir.Constant(I32, 1)))]
        row = b.mul(width, n_chan)
        at = [d_off, b.add(d_off, n_chan), b.add(d_off, row),
              b.add(b.add(d_off, row), n_chan)]
        base_v = vx.splat(b.trunc(base, I32))
        miss = cgutils.alloca_once_value(b, ir.Constant(bvec, [0] * lanes))
        load_ids = masked_memory(b.module, "load", ivec)

        def channels(c, mask):
            """Channels ``c .. c + lanes`` (``mask``: the ones below ``n_chan``)."""
            iptr = b.bitcast(b.gep(ia.data, [b.add(o_off, c)]), ivec.as_pointer())
            if mask is None:
                ids = b.load(iptr, align=8)
                g = vx.load(ga.data, b.add(o_off, c))
            else:
                ids = b.call(load_ids, [iptr, ir.Constant(I32, 8), mask,
                                        ir.Constant(ivec, [-1] * lanes)])
                g = vx.masked_load(ga.data, b.add(o_off, c), mask, vx.zeros)
            g = b.fadd(g, vx.zeros)  # 0.0 + g, as the scatter adds (-0.0 -> +0.0)
            ids32 = b.trunc(ids, vx.k32)
            # an index beyond int32 must not pass for its truncation
            hit = b.icmp_signed("==", b.sext(ids32, ivec), ids)
            pix = b.sub(ids32, base_v)
            named = None
            for q in range(4):
                m = b.icmp_signed("==", pix, rel[q])
                named = m if named is None else b.or_(named, m)
                value = b.select(m, g, vx.zeros)
                if mask is None:
                    vx.store(value, da.data, b.add(at[q], c))
                else:
                    vx.masked_store(value, da.data, b.add(at[q], c), mask)
            hit = b.and_(hit, named)
            if mask is not None:
                hit = b.or_(hit, b.not_(mask))
            b.store(b.or_(b.load(miss), b.not_(hit)), miss)

        n_full = b.udiv(n_chan, vx.n)
        with cgutils.for_range(b, n_full) as loop:
            channels(b.mul(loop.index, vx.n), None)
        rest = b.mul(n_full, vx.n)
        with b.if_then(b.icmp_signed("<", rest, n_chan)):
            channels(rest, vx.lanes_between(rest, None, n_chan))
        bits = b.bitcast(b.load(miss), ir.IntType(lanes))
        return b.icmp_signed("==", bits, ir.Constant(ir.IntType(lanes), 0))

    return sig, codegen


@njit(cache=True, nogil=True, inline="always")
def _zero(flat, start, stop):
    zero = flat.dtype.type(0)
    for j in range(start, stop):
        flat[j] = zero


@njit(cache=True, nogil=True)
def tile2_pixels_range(grad, idx, dx, fail, t0, t1):
    """Output rows ``t0 <= task < t1`` (``task = n * OH + oh``) of the 2x2 tile routing
    (module docstring): ``grad``/``idx`` ``(N, OH, OW, C)``, ``dx`` ``(N, H, W, C)``, any
    content on entry; sets ``fail[0]`` (and stops) at an index that is not tile-shaped,
    and stops at the next task once another part has set it."""
    _, out_h, out_w, n_chan = grad.shape
    in_h, in_w = dx.shape[1], dx.shape[2]
    g, i, d = grad.reshape(grad.size), idx.reshape(idx.size), dx.reshape(dx.size)
    for task in range(t0, t1):
        if fail[0]:
            return
        n, oh = task // out_h, task % out_h
        for ow in range(out_w):
            base = 2 * oh * in_w + 2 * ow
            if not _tile_pixel(d, g, i, ((n * out_h + oh) * out_w + ow) * n_chan,
                               (n * in_h * in_w + base) * n_chan, in_w, base, n_chan):
                fail[0] = 1
                return
        if in_w > 2 * out_w:  # the odd last column of the task's two rows
            for r in range(2):
                row = (n * in_h + 2 * oh + r) * in_w
                _zero(d, (row + 2 * out_w) * n_chan, (row + in_w) * n_chan)
        if oh == out_h - 1 and in_h > 2 * out_h:  # the odd last row
            _zero(d, (n * in_h + 2 * out_h) * in_w * n_chan, (n + 1) * in_h * in_w * n_chan)
