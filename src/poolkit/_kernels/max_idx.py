"""Max pooling values and indices, channels first, float32/float64: output rows in vector IR.

The fast path of the NCHW forward with indices (1-D to 3-D pooling, W stride 1 or 2,
C-contiguous input). Each output row is computed in vectors of 256 bits of output
columns (``<8 x float>`` / ``<4 x double>``): for every window element the lanes load
their input column (stride 2: two vectors and their even lanes, one shuffle) and take
one scan step, ``v`` replacing the running ``m`` if ``v > m`` or ``v`` is NaN, the int32
plane index vector following the same mask (widened to int64 at the store). The window
rows inside the input are listed by :func:`poolkit._kernels.max_pool.window_rows`; the
window elements are scanned in row-major order, so the first maximum wins ties (of -0.0
and +0.0 the first), the last NaN wins, exactly as in every other path.

A block of lanes whose windows all lie inside the input row (the interior, most of a
row) starts its scan at the first window element and runs branch-free. Other blocks
(windows crossing the W border, the last partial block of a row) load with masks and
track per lane whether an element inside the input was seen: a lane takes its first
element inside the input unconditionally, later ones by the scan rule, and a lane with
none keeps ``-inf`` and index -1 (``fill`` of a float max pooling). Padding never wins.

Written as an intrinsic (explicit vectors), the kernel leaves LLVM's loop vectorizer
nothing to do, which keeps its first compilation short.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .max_pool import window_rows

#: Lanes of one 256-bit vector by dtype.
LANES = {types.float32: 8, types.float64: 4}

# the geometry vector ``geo`` (int64): the indices of its entries
G_IN_W, G_OUT_W, G_KW, G_SW, G_PW, G_DW, G_LO, G_HI = range(8)
GEO_LEN = 8


#: How a window element's vector is loaded (see ``element`` in :func:`_typed_row`).
PLAIN, LIMIT, FULL = range(3)


def _c(ty, value):
    return ir.Constant(ty, value)


def _min(builder, a, b):
    return builder.select(builder.icmp_signed("<", a, b), a, b)


def _make_row(s2: bool):
    """The row intrinsic for W stride 2 (``s2``) or 1."""

    @intrinsic
    def pool_row(typingctx, x, out, idx, xoffs, kbase, n_rows, geo, obase):
        """Output row at flat offset ``obase`` of ``out`` and ``idx``.

        Window rows ``r < n_rows`` start at flat element ``xoffs[r]`` of ``x`` (column 0)
        and have plane index ``kbase[r]`` at column 0; ``geo`` is the geometry vector
        (``G_*``).
        """
        return _typed_row(s2, x, out, idx, xoffs, kbase, n_rows, geo, obase)

    return pool_row


def _typed_row(s2, x, out, idx, xoffs, kbase, n_rows, geo, obase):
    if not (
        isinstance(x, types.Array) and x.layout == "C" and x.dtype in LANES
        and isinstance(out, types.Array) and out.layout == "C" and out.dtype == x.dtype
    ):
        return None
    elem = x.dtype
    lanes = LANES[elem]

    def codegen(context, builder, sig, args):
        xa, oa, ia, xo, kb = (context.make_array(sig.args[k])(context, builder, args[k])
                              for k in range(5))
        ga = context.make_array(sig.args[6])(context, builder, args[6])
        i64 = ir.IntType(64)
        i32 = ir.IntType(32)
        i1 = ir.IntType(1)
        fty = context.get_data_type(elem)
        vec = ir.VectorType(fty, lanes)
        wide = ir.VectorType(fty, 2 * lanes)
        kvec = ir.VectorType(i32, lanes)
        ivec = ir.VectorType(i64, lanes)
        bvec = ir.VectorType(i1, lanes)
        bwide = ir.VectorType(i1, 2 * lanes)
        align = elem.bitwidth // 8
        mod = builder.module

        def g(k):
            return builder.load(builder.gep(ga.data, [_c(i64, k)]))

        in_w, out_w, kw, sw = g(G_IN_W), g(G_OUT_W), g(G_KW), g(G_SW)
        pw, dw, lo, hi = g(G_PW), g(G_DW), g(G_LO), g(G_HI)
        n_rows = context.cast(builder, args[5], sig.args[5], types.int64)
        obase = context.cast(builder, args[7], sig.args[7], types.int64)
        L = _c(i64, lanes)
        one = _c(i64, 1)
        zero = _c(i64, 0)
        neg_inf = ir.Constant(vec, [float("-inf")] * lanes)
        neg_inf2 = ir.Constant(wide, [float("-inf")] * (2 * lanes))

        def masked_load_fn(ty, bty):
            return cgutils.get_or_insert_function(
                mod, ir.FunctionType(ty, [ty.as_pointer(), i32, bty, ty]),
                f"llvm.masked.load.v{ty.count}f{elem.bitwidth}.p0")

        mload = masked_load_fn(vec, bvec)
        mload2 = masked_load_fn(wide, bwide)
        mstore = cgutils.get_or_insert_function(
            mod, ir.FunctionType(ir.VoidType(), [vec, vec.as_pointer(), i32, bvec]),
            f"llvm.masked.store.v{lanes}f{elem.bitwidth}.p0")
        istore = cgutils.get_or_insert_function(
            mod, ir.FunctionType(ir.VoidType(), [ivec, ivec.as_pointer(), i32, bvec]),
            f"llvm.masked.store.v{lanes}i64.p0")

        def splat(v, ty):
            s = builder.insert_element(ir.Constant(ty, None), v, _c(i32, 0))
            return builder.shuffle_vector(s, s, ir.Constant(ir.VectorType(i32, ty.count),
                                                            [0] * ty.count))

        n_load = 2 * lanes if s2 else lanes  # elements loaded per window element
        load_ids = ir.Constant(ir.VectorType(i32, n_load), list(range(n_load)))
        even = ir.Constant(kvec, [2 * j for j in range(lanes)])
        kstep = ir.Constant(kvec, [(2 if s2 else 1) * j for j in range(lanes)])  # sw * lane
        lane32 = ir.Constant(kvec, list(range(lanes)))

        def element(r, e, p0, mode):
            """Lane values, int32 plane indices and the lanes' validity (``FULL`` mode,
            else None) of window element (r, e); ``p0`` is the input column of lane 0's
            first window element. Loads are plain (``PLAIN``), masked to columns below
            ``in_w`` (``LIMIT``) or to columns inside the row (``FULL``)."""
            p = builder.add(p0, builder.mul(e, dw))  # column of lane 0
            ptr = builder.gep(xa.data, [builder.add(builder.load(builder.gep(xo.data, [r])), p)])
            ty = wide if s2 else vec
            ptr = builder.bitcast(ptr, ty.as_pointer())
            valid = None
            if mode == PLAIN:
                v = builder.load(ptr, align=align)
            else:
                limit = builder.trunc(builder.sub(in_w, p), i32)  # columns in_w - p on
                m = builder.icmp_signed("<", load_ids, splat(limit, load_ids.type))
                if mode == FULL:
                    neg = builder.trunc(builder.neg(p), i32)  # columns before 0
                    m = builder.and_(m, builder.icmp_signed(">=", load_ids,
                                                            splat(neg, load_ids.type)))
                    valid = builder.and_(
                        builder.icmp_signed("<", kstep, splat(limit, kvec)),
                        builder.icmp_signed(">=", kstep, splat(neg, kvec)))
                v = builder.call(mload2 if s2 else mload,
                                 [ptr, _c(i32, align), m, neg_inf2 if s2 else neg_inf])
            if s2:  # the even lanes of the two vectors
                v = builder.shuffle_vector(v, v, even)
            kb0 = builder.add(builder.load(builder.gep(kb.data, [r])), p)
            k = builder.add(splat(builder.trunc(kb0, i32), kvec), kstep)
            return v, k, valid

        acc = cgutils.alloca_once(builder, vec)
        acck = cgutils.alloca_once(builder, kvec)
        has = cgutils.alloca_once(builder, bvec)

        def plain_step(v, k):
            m = builder.load(acc)
            take = builder.or_(builder.fcmp_ordered(">", v, m), builder.fcmp_unordered("uno", v, v))
            builder.store(builder.select(take, v, m), acc)
            builder.store(builder.select(take, k, builder.load(acck)), acck)

        def plain_block(p0, mode):
            v, k, _ = element(zero, zero, p0, mode)
            builder.store(v, acc)
            builder.store(k, acck)
            with cgutils.for_range(builder, builder.sub(kw, one)) as el:
                v, k, _ = element(zero, builder.add(el.index, one), p0, mode)
                plain_step(v, k)
            with cgutils.for_range(builder, builder.sub(n_rows, one)) as rl:
                with cgutils.for_range(builder, kw) as el:
                    v, k, _ = element(builder.add(rl.index, one), el.index, p0, mode)
                    plain_step(v, k)

        def masked_block(p0):
            builder.store(neg_inf, acc)
            builder.store(ir.Constant(kvec, [-1] * lanes), acck)
            builder.store(ir.Constant(bvec, [0] * lanes), has)
            with cgutils.for_range(builder, n_rows) as rl:
                with cgutils.for_range(builder, kw) as el:
                    v, k, valid = element(rl.index, el.index, p0, FULL)
                    m = builder.load(acc)
                    h = builder.load(has)
                    take = builder.or_(builder.fcmp_ordered(">", v, m),
                                       builder.fcmp_unordered("uno", v, v))
                    take = builder.and_(valid, builder.or_(take, builder.not_(h)))
                    builder.store(builder.select(take, v, m), acc)
                    builder.store(builder.select(take, k, builder.load(acck)), acck)
                    builder.store(builder.or_(h, valid), has)

        n_blocks = builder.udiv(builder.add(out_w, builder.sub(L, one)), L)
        # highest input column a plain block may load, relative to its lane 0 start:
        # lanes * sw - 1 elements past the last window element column of lane 0
        last_load = builder.add(builder.mul(builder.sub(kw, one), dw),
                                builder.sub(builder.mul(L, sw), one))
        with cgutils.for_range(builder, n_blocks) as bl:
            ow0 = builder.mul(bl.index, L)
            ow1 = builder.add(ow0, L)
            p0 = builder.sub(builder.mul(ow0, sw), pw)
            # every stored lane's window inside the input (and some window row)?
            clean = builder.and_(
                builder.and_(builder.icmp_signed(">=", ow0, lo),
                             builder.icmp_signed("<=", _min(builder, ow1, out_w), hi)),
                builder.icmp_signed(">", n_rows, zero))
            in_row = builder.icmp_signed("<", builder.add(p0, last_load), in_w)
            with builder.if_else(clean, likely=True) as (yes, no):
                with yes:
                    with builder.if_else(in_row, likely=True) as (inside, tail):
                        with inside:
                            plain_block(p0, PLAIN)
                        with tail:
                            plain_block(p0, LIMIT)
                with no:
                    masked_block(p0)
            o = builder.add(obase, ow0)
            optr = builder.bitcast(builder.gep(oa.data, [o]), vec.as_pointer())
            iptr = builder.bitcast(builder.gep(ia.data, [o]), ivec.as_pointer())
            res = builder.load(acc)
            ks = builder.sext(builder.load(acck), ivec)
            full = builder.icmp_signed("<=", ow1, out_w)
            with builder.if_else(full, likely=True) as (yes, no):
                with yes:
                    builder.store(res, optr, align=align)
                    builder.store(ks, iptr, align=8)
                with no:
                    smask = builder.icmp_signed(
                        "<", lane32,
                        splat(builder.trunc(builder.sub(out_w, ow0), i32), kvec))
                    builder.call(mstore, [res, optr, _c(i32, align), smask])
                    builder.call(istore, [ks, iptr, _c(i32, 8), smask])
        return context.get_dummy_value()

    return types.none(x, out, idx, xoffs, kbase, n_rows, geo, obase), codegen


_row_s1 = _make_row(False)
_row_s2 = _make_row(True)


@njit(cache=True, nogil=True, inline="always")
def _tasks(x, out, idx, kp, geo, t0, t1, s2):
    in_d, in_h, in_w = x.shape[2], x.shape[3], x.shape[4]
    out_d, out_h, out_w = out.shape[2], out.shape[3], out.shape[4]
    rows = np.empty(kp[0, 0] * kp[0, 1], dtype=np.int64)
    xoffs = np.empty(kp[0, 0] * kp[0, 1], dtype=np.int64)
    for task in range(t0, t1):
        oh = task % out_h
        od = (task // out_h) % out_d
        plane = task // (out_h * out_d)  # n * C + c
        n_rows = window_rows(kp, in_d, in_h, od, oh, rows)
        for i in range(n_rows):
            xoffs[i] = (plane * in_d * in_h + rows[i]) * in_w
            rows[i] *= in_w
        if s2:
            _row_s2(x, out, idx, xoffs, rows, n_rows, geo, task * out_w)
        else:
            _row_s1(x, out, idx, xoffs, rows, n_rows, geo, task * out_w)


@njit(cache=True, nogil=True)
def indices_s2(x, out, idx, kp, geo, t0, t1):
    """Values and int64 plane indices for output rows ``t0 <= task < t1`` of a
    C-contiguous ``(N, C, D, H, W)`` float32/float64 view (``task`` = (n, c, od, oh)),
    W stride 2. ``geo`` is :func:`geometry`'s vector; planes have fewer than 2**31
    elements."""
    _tasks(x, out, idx, kp, geo, t0, t1, True)


@njit(cache=True, nogil=True)
def indices_s1(x, out, idx, kp, geo, t0, t1):
    """:func:`indices_s2` for W stride 1."""
    _tasks(x, out, idx, kp, geo, t0, t1, False)


def geometry(in_w: int, out_w: int, kw: int, sw: int, pw: int, dw: int) -> np.ndarray:
    """The read-only geometry vector of :func:`nchw_indices` (plain Python, per plan)."""
    lo = min(-(-pw // sw), out_w)
    num = in_w - 1 + pw - (kw - 1) * dw
    hi = max(min(num // sw + 1 if num >= 0 else 0, out_w), lo)
    geo = np.array([in_w, out_w, kw, sw, pw, dw, lo, hi], dtype=np.int64)
    geo.flags.writeable = False
    return geo
