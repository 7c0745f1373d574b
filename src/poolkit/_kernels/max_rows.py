"""Max pooling values, channels first, float32/float64: whole output rows in vector IR.

The fast path of the NCHW forward without indices (2-D and 1-D pooling on C-contiguous
input). numba runs LLVM's loop vectorizer but not its SLP vectorizer, and a stride-2
window along W needs a lane shuffle the loop vectorizer does not emit, so the row loop
is written as explicit LLVM IR (``<8 x float>`` / ``<4 x double>``, one 256-bit register;
LLVM splits or widens them to what the CPU has, the results do not change).

Exactness. The scan rule of every max pooling path (a later element wins if it is
strictly greater or NaN) is a selection that is associative over *contiguous segments
of the scan order*: reducing each window row left to right and then combining the row
results top to bottom with the same rule (earlier result first) picks the very element
the row-major scan picks. So each window row is reduced horizontally first (the
stride-2 columns come from one shuffle of two loads, no gathers) and the rows are then
folded in order. Each step is ``select(isnan(v), v, select(v > m, v, m))``: the first
maximum wins ties (so of -0.0 and +0.0 the first in scan order), the last NaN wins.
Input elements outside the row (padding, ceil_mode overhang) are masked loads that read
-inf: -inf never wins strictly, and where it is picked it has the bits of every other
candidate (-inf) or of ``fill`` (a window with no input element), so the values are
those of the scan that skips padding.

For overlapping windows whose last row is the next window's first row (k=3, s=2) the
horizontal reduction of that row is kept in a scratch buffer and reused.

Every call prefetches its input rows ahead of the loads; a call far larger than the
cache (``stream``) also writes its output with non-temporal stores (:func:`poolkit._kernels._lanes.
stream_store`), which skip reading each output line before writing it (docs/speed.md,
"Calls larger than the cache"). The values are the same.

Stride 2 loads two vectors and takes their even lanes with one in-lane shuffle
(``vshufps``); the lanes then hold the output columns in the order ``_PERM``, the same
for every row, so the vertical steps run in that order and one permute puts the result
in order before the store.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from ._lanes import X86_MAX, prefetch_ahead, store_fence, stream_store, streaming_flag

#: Lanes of one vector by dtype (256 bits).
_LANES = {types.float32: 8, types.float64: 4}

#: Even lanes of two stride-2 loads with an in-lane shuffle, and the output column each
#: result lane then holds (an involution, so it is also the permute that undoes it).
_EVEN = {8: [0, 2, 8, 10, 4, 6, 12, 14], 4: [0, 4, 2, 6]}
_PERM = {8: [0, 1, 4, 5, 2, 3, 6, 7], 4: [0, 2, 1, 3]}

# geometry table ``geo`` (int64): the indices of its entries
(G_IN_H, G_IN_W, G_OUT_H, G_OUT_W, G_KW, G_SW, G_PW, G_DW, G_DH, G_KEEP, G_LO, G_HI,
 G_UNIFORM) = range(13)
#: ``rows`` table (int64, 3 per output row): first input row, rows inside, reuse flag
ROW_FIELDS = 3


def _c(ty, value):
    return ir.Constant(ty, value)


def _make_rows(kw_const: int | None, sw_const: int):
    """The row intrinsic for window width ``kw_const`` (None: any, a runtime loop) and
    stride ``sw_const`` (1 or 2) along W."""

    @intrinsic
    def pool_rows(typingctx, x, out, scr_len, rows, geo, stream, r0, r1):
        """Output rows ``r0 <= r < r1`` (flat over planes) of ``out`` from ``x``;
        ``stream`` (0 or 1): store past the cache. The scratch row of ``scr_len``
        elements is allocated here (numba's runtime allocator, so a first call compiles
        no NumPy allocation code) and freed at the end; a failed allocation raises
        MemoryError before anything is written."""
        if not (
            isinstance(x, types.Array) and x.layout == "C" and x.dtype in _LANES
            and isinstance(out, types.Array) and out.layout == "C" and out.dtype == x.dtype
            and isinstance(scr_len, types.Integer)
            and isinstance(rows, types.Array) and isinstance(geo, types.Array)
            and isinstance(stream, types.Integer)
        ):
            return None
        elem = x.dtype
        lanes = _LANES[elem]

        def codegen(context, builder, sig, args):
            xa = context.make_array(sig.args[0])(context, builder, args[0])
            oa = context.make_array(sig.args[1])(context, builder, args[1])
            ra = context.make_array(sig.args[3])(context, builder, args[3])
            ga = context.make_array(sig.args[4])(context, builder, args[4])
            i64 = ir.IntType(64)
            i32 = ir.IntType(32)
            fty = context.get_data_type(elem)
            vec = ir.VectorType(fty, lanes)
            ivec = ir.VectorType(i64, lanes)
            bvec = ir.VectorType(ir.IntType(1), lanes)
            align = elem.bitwidth // 8
            streaming = streaming_flag(
                builder, context.cast(builder, args[5], sig.args[5], types.int64))
            r0v = context.cast(builder, args[6], sig.args[6], types.int64)
            r1v = context.cast(builder, args[7], sig.args[7], types.int64)

            def g(k):
                return builder.load(builder.gep(ga.data, [_c(i64, k)]))

            in_h, in_w, out_h, out_w = g(G_IN_H), g(G_IN_W), g(G_OUT_H), g(G_OUT_W)
            kw = _c(i64, kw_const) if kw_const is not None else g(G_KW)
            sw = _c(i64, sw_const)
            pw, dw, dh, keep = g(G_PW), g(G_DW), g(G_DH), g(G_KEEP)
            lo, hi = g(G_LO), g(G_HI)
            L = _c(i64, lanes)
            neg_inf = ir.Constant(vec, [float("-inf")] * lanes)
            n_scr = context.cast(builder, args[2], sig.args[2], types.int64)
            # a cache line more, to start the row on a line (malloc aligns to 16 bytes)
            scr_raw = context.nrt.allocate(
                builder, builder.add(builder.mul(n_scr, _c(i64, align)), _c(i64, 64)))
            scr_start = builder.and_(builder.add(builder.ptrtoint(scr_raw, i64), _c(i64, 63)),
                                     _c(i64, -64))
            scr_data = builder.inttoptr(scr_start, fty.as_pointer())

            mod = builder.module
            vptr = vec.as_pointer()
            mload = cgutils.get_or_insert_function(
                mod, ir.FunctionType(vec, [vptr, i32, bvec, vec]),
                f"llvm.masked.load.v{lanes}f{elem.bitwidth}.p0",
            )
            mstore = cgutils.get_or_insert_function(
                mod, ir.FunctionType(ir.VoidType(), [vec, vptr, i32, bvec]),
                f"llvm.masked.store.v{lanes}f{elem.bitwidth}.p0",
            )

            def splat(v):
                s = builder.insert_element(ir.Constant(ivec, None), v, _c(i32, 0))
                return builder.shuffle_vector(s, s, ir.Constant(ir.VectorType(i32, lanes),
                                                                [0] * lanes))

            def ptr(base_ptr, off):
                return builder.bitcast(builder.gep(base_ptr, [off]), vptr)

            k32 = ir.VectorType(i32, lanes)
            lane_ids32 = ir.Constant(k32, list(range(lanes)))
            in_w32 = builder.trunc(in_w, i32)

            def splat32(v):
                s = builder.insert_element(ir.Constant(k32, None), v, _c(i32, 0))
                return builder.shuffle_vector(s, s, ir.Constant(k32, [0] * lanes))

            def load(off, col, masked):
                """``x[off + col : + lanes]``; columns outside [0, in_w) read -inf.

                ``masked``: False (every lane inside the row), "select" (the vector lies
                inside the array: a plain load, then -inf selected into the lanes outside
                the row) or True (a masked load: nothing outside the row is touched).
                Column masks in int32 (a row is shorter than 2**31).
                """
                p_ = ptr(xa.data, builder.add(off, col))
                if not masked:
                    return builder.load(p_, align=align)
                cols = builder.add(splat32(builder.trunc(col, i32)), lane_ids32)
                inside = builder.and_(
                    builder.icmp_signed(">=", cols, ir.Constant(k32, [0] * lanes)),
                    builder.icmp_signed("<", cols, splat32(in_w32)),
                )
                if masked == "select":
                    return builder.select(inside, builder.load(p_, align=align), neg_inf)
                return builder.call(mload, [p_, _c(i32, align), inside, neg_inf])

            xmax = None
            if X86_MAX and lanes * elem.bitwidth == 256:
                xmax = cgutils.get_or_insert_function(
                    mod, ir.FunctionType(vec, [vec, vec]),
                    f"llvm.x86.avx.max.{'ps' if elem == types.float32 else 'pd'}.256",
                )

            def step(m, v):
                """``v`` (later in the scan) replaces ``m`` if greater or NaN."""
                if xmax is not None:  # maxps(v, m) is exactly ``v > m ? v : m``
                    gt = builder.call(xmax, [v, m])
                else:
                    gt = builder.select(builder.fcmp_ordered(">", v, m), v, m)
                return builder.select(builder.fcmp_unordered("uno", v, v), v, gt)

            def column(off, col, masked):
                """Window column values of the vector's lanes for one window column."""
                if sw_const == 1:
                    return load(off, col, masked)
                a = load(off, col, masked)
                b = load(off, builder.add(col, L), masked)
                return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(i32, lanes),
                                                                _EVEN[lanes]))

            def hrow(off, c0, masked):
                """Horizontal window reduction of the input row at ``off``."""
                if masked is False:  # the lines this row's loads reach a little later
                    prefetch_ahead(builder, xa.data, builder.add(off, c0), 1, align)
                if kw_const is not None:
                    acc = column(off, c0, masked)
                    for e in range(1, kw_const):
                        col = builder.add(c0, builder.mul(_c(i64, e), dw))
                        acc = step(acc, column(off, col, masked))
                    return acc
                slot = cgutils.alloca_once(builder, vec)
                builder.store(column(off, c0, masked), slot)
                with cgutils.for_range(builder, builder.sub(kw, _c(i64, 1))) as loop:
                    e = builder.add(loop.index, _c(i64, 1))
                    col = builder.add(c0, builder.mul(e, dw))
                    builder.store(step(builder.load(slot), column(off, col, masked)), slot)
                return builder.load(slot)

            plane_in = builder.mul(in_h, in_w)
            x_size = xa.nitems
            n_vec = builder.udiv(builder.add(out_w, _c(i64, lanes - 1)), L)
            span = builder.add(builder.mul(builder.sub(kw, _c(i64, 1)), dw),
                               builder.mul(sw, L))  # columns one vector's loads touch
            c0_max = builder.sub(builder.mul(builder.mul(builder.sub(n_vec, _c(i64, 1)), L),
                                             sw), pw)
            keep_b = builder.icmp_signed("!=", keep, _c(i64, 0))
            row_step = builder.mul(dh, in_w)
            end = builder.mul(r1v, out_w)  # a store may spill up to here
            # vectors [v_lo, v_hi): every output lane's window lies inside the row (the
            # lanes past out_w are garbage: dropped or overwritten by a later store)
            v_lo = builder.udiv(builder.add(lo, _c(i64, lanes - 1)), L)
            v_hi = builder.select(builder.icmp_signed(">=", hi, out_w), n_vec,
                                  builder.udiv(hi, L))
            v_hi = builder.select(builder.icmp_signed("<", v_hi, v_lo), v_lo, v_hi)
            p_slot = cgutils.alloca_once_value(builder, builder.sdiv(r0v, out_h))
            oh_slot = cgutils.alloca_once_value(builder, builder.srem(r0v, out_h))

            def vector(v, orow, off0, n_rows, n_rows_v, reuse, masked):
                """One output vector: ``n_rows`` window rows (an int: straight-line code;
                None: a loop over ``n_rows_v``), ``reuse`` a bool constant or an i1."""
                j0 = builder.mul(v, L)
                c0 = builder.sub(builder.mul(j0, sw), pw)
                sptr = ptr(scr_data, j0)
                if reuse is True:
                    first = builder.load(sptr, align=align)
                elif reuse is False:
                    first = hrow(off0, c0, masked)
                else:
                    first_slot = cgutils.alloca_once(builder, vec)
                    with builder.if_else(reuse) as (yes, no):
                        with yes:
                            builder.store(builder.load(sptr, align=align), first_slot)
                        with no:
                            builder.store(hrow(off0, c0, masked), first_slot)
                    first = builder.load(first_slot)
                if n_rows is not None:
                    acc = h = first
                    for b in range(1, n_rows):
                        off = builder.add(off0, builder.mul(_c(i64, b), row_step))
                        h = hrow(off, c0, masked)
                        acc = step(acc, h)
                    if reuse is True:  # (the k3s2 fast case: keep is set)
                        builder.store(h, sptr, align=align)
                    else:
                        with builder.if_then(keep_b):
                            builder.store(h, sptr, align=align)
                    store(acc, orow, j0)
                    return
                acc_slot = cgutils.alloca_once(builder, vec)
                last_slot = cgutils.alloca_once(builder, vec)
                builder.store(first, acc_slot)
                builder.store(first, last_slot)
                with cgutils.for_range(builder, builder.sub(n_rows_v, _c(i64, 1))) as bl:
                    b = builder.add(bl.index, _c(i64, 1))
                    off = builder.add(off0, builder.mul(b, row_step))
                    h = hrow(off, c0, masked)
                    builder.store(h, last_slot)
                    builder.store(step(builder.load(acc_slot), h), acc_slot)
                with builder.if_then(keep_b):
                    builder.store(builder.load(last_slot), sptr, align=align)
                store(builder.load(acc_slot), orow, j0)

            def vectors(orow, off0, n_rows, n_rows_v, reuse, in_array):
                """The output vectors of one row: plain loads on [v_lo, v_hi) when the
                row's loads lie inside the array, masked loads elsewhere."""

                def run(a, b, masked):
                    count = builder.sub(b, a)
                    with cgutils.for_range(builder, count) as loop:
                        vector(builder.add(a, loop.index), orow, off0, n_rows, n_rows_v, reuse,
                               masked)

                with builder.if_else(in_array, likely=True) as (inside, outside):
                    with inside:
                        run(_c(i64, 0), v_lo, "select")
                        run(v_lo, v_hi, False)
                        run(v_hi, n_vec, "select")
                    with outside:
                        run(_c(i64, 0), n_vec, True)

            def store(res, orow, j0):
                if sw_const == 2:
                    res = builder.shuffle_vector(res, res, ir.Constant(
                        ir.VectorType(i32, lanes), _PERM[lanes]))
                optr = ptr(oa.data, builder.add(orow, j0))
                # a partial vector is stored whole if its tail lands in later rows of
                # this call (they are written afterwards); else masked
                fits = builder.icmp_signed("<=", builder.add(builder.add(orow, j0), L), end)
                full = builder.icmp_signed("<=", builder.add(j0, L), out_w)
                with builder.if_else(builder.or_(full, fits), likely=True) as (plain, tail):
                    with plain:
                        stream_store(builder, res, optr, align, streaming)
                    with tail:
                        ok = builder.icmp_signed(
                            "<", builder.add(splat32(builder.trunc(j0, i32)), lane_ids32),
                            splat32(builder.trunc(out_w, i32)))
                        builder.call(mstore, [res, optr, _c(i32, align), ok])

            # the straight-line case: k2s2 rows of 2 window rows (no reuse), k3s2 rows of
            # 3 window rows reusing the first (every row but the edges)
            fast_rows = {2: 2, 3: 3}.get(kw_const)
            def general():
                with cgutils.for_range(builder, builder.sub(r1v, r0v)) as rloop:
                    r = builder.add(r0v, rloop.index)
                    p = builder.load(p_slot)
                    oh = builder.load(oh_slot)
                    trow = builder.mul(oh, _c(i64, ROW_FIELDS))
                    y_first = builder.load(builder.gep(ra.data, [trow]))
                    n_rows_v = builder.load(builder.gep(ra.data, [builder.add(trow, _c(i64, 1))]))
                    reuse_flag = builder.load(builder.gep(ra.data, [builder.add(trow, _c(i64, 2))]))
                    reuse = builder.and_(builder.icmp_signed("!=", reuse_flag, _c(i64, 0)),
                                         builder.icmp_signed(">", r, r0v))
                    off0 = builder.add(builder.mul(p, plane_in), builder.mul(y_first, in_w))
                    orow = builder.mul(r, out_w)
                    # every load of this output row lies inside the array
                    off_last = builder.add(off0, builder.mul(
                        builder.sub(n_rows_v, _c(i64, 1)), row_step))
                    in_array = builder.and_(
                        builder.icmp_signed(">=", builder.sub(off0, pw), _c(i64, 0)),
                        builder.icmp_signed(
                            "<=", builder.add(builder.add(off_last, c0_max), span), x_size),
                    )
                    has_rows = builder.icmp_signed(">", n_rows_v, _c(i64, 0))
                    with builder.if_else(has_rows, likely=True) as (rows_in, no_rows):
                        with rows_in:
                            if fast_rows is None:
                                vectors(orow, off0, None, n_rows_v, reuse, in_array)
                            else:
                                fast_reuse = kw_const == 3
                                is_fast = builder.icmp_signed("==", n_rows_v, _c(i64, fast_rows))
                                is_fast = builder.and_(
                                    is_fast, reuse if fast_reuse else builder.not_(reuse))
                                with builder.if_else(is_fast, likely=True) as (fast, other):
                                    with fast:
                                        vectors(orow, off0, fast_rows, n_rows_v, fast_reuse,
                                                in_array)
                                    with other:
                                        vectors(orow, off0, None, n_rows_v, reuse, in_array)
                        with no_rows:
                            with cgutils.for_range(builder, n_vec) as vloop:
                                store(neg_inf, orow, builder.mul(vloop.index, L))
                    # next output row: (p, oh) += 1
                    oh1 = builder.add(oh, _c(i64, 1))
                    wrap = builder.icmp_signed("==", oh1, out_h)
                    builder.store(builder.select(wrap, _c(i64, 0), oh1), oh_slot)
                    builder.store(builder.select(wrap, builder.add(p, _c(i64, 1)), p), p_slot)

            def uniform_rows():
                """k2s2 on planes of whole window pairs (no padding, in = 2 out along H
                and W, one vector per row): output row r is input rows 2r, 2r + 1."""
                with cgutils.for_range(builder, builder.sub(r1v, r0v)) as rloop:
                    r = builder.add(r0v, rloop.index)
                    off = builder.mul(builder.mul(r, _c(i64, 2)), in_w)
                    off2 = builder.add(off, in_w)
                    safe = builder.icmp_signed(
                        "<=", builder.add(off2, builder.mul(sw, L)), x_size)
                    orow = builder.mul(r, out_w)
                    with builder.if_else(safe, likely=True) as (plain, edge):
                        for block, masked in ((plain, False), (edge, True)):
                            with block:
                                zero = _c(i64, 0)
                                acc = step(hrow(off, zero, masked), hrow(off2, zero, masked))
                                store(acc, orow, zero)

            if kw_const == 2:
                uniform = builder.icmp_signed("!=", g(G_UNIFORM), _c(i64, 0))
                with builder.if_else(uniform) as (uni, gen):
                    with uni:
                        uniform_rows()
                    with gen:
                        general()
            else:
                general()
            store_fence(builder, streaming)
            context.nrt.free(builder, scr_raw)
            return context.get_dummy_value()

        return types.none(x, out, scr_len, rows, geo, stream, r0, r1), codegen

    return pool_rows


_rows_k2s2 = _make_rows(2, 2)
_rows_k3s2 = _make_rows(3, 2)
_rows_s2 = _make_rows(None, 2)
_rows_s1 = _make_rows(None, 1)


def _lanes_of(dtype) -> int:
    return 8 if np.dtype(dtype) == np.float32 else 4


# range kernels over flat output rows [r0, r1); ``x``/``out`` are C-contiguous arrays
# of planes (any rank); each call allocates its own scratch row of ``scr_len`` elements
# (one output row of vectors, see :func:`tables`), so parallel parts never share one;
# ``stream`` (0 or 1): the call is far larger than the cache


@njit(cache=True, nogil=True)
def rows_k2s2(x, out, rows, geo, scr_len, stream, r0, r1):
    """k=2, s=2, d=1 along W."""
    _rows_k2s2(x, out, scr_len, rows, geo, stream, r0, r1)


@njit(cache=True, nogil=True)
def rows_k3s2(x, out, rows, geo, scr_len, stream, r0, r1):
    """k=3, s=2, d=1 along W."""
    _rows_k3s2(x, out, scr_len, rows, geo, stream, r0, r1)


@njit(cache=True, nogil=True)
def rows_s2(x, out, rows, geo, scr_len, stream, r0, r1):
    """Any window width and dilation, stride 2 along W."""
    _rows_s2(x, out, scr_len, rows, geo, stream, r0, r1)


@njit(cache=True, nogil=True)
def rows_s1(x, out, rows, geo, scr_len, stream, r0, r1):
    """Any window width and dilation, stride 1 along W."""
    _rows_s1(x, out, scr_len, rows, geo, stream, r0, r1)


def tables(in_h, in_w, out_h, out_w, kh, sh, ph, dh, kw, sw, pw, dw, dtype):
    """``(rows, geo, scratch_len)`` for the row kernels (plain Python, once per plan).

    ``rows[3 oh : 3 oh + 3]`` = first input row inside the window of output row ``oh``,
    the number of window rows inside the input, and whether the first of them is the
    last window row of output row ``oh - 1`` (its horizontal reduction is then reused).
    """
    rows = np.zeros((out_h, ROW_FIELDS), dtype=np.int64)
    prev_last = None
    for oh in range(out_h):
        ys = [oh * sh - ph + b * dh for b in range(kh)]
        ys = [y for y in ys if 0 <= y < in_h]
        if ys:
            rows[oh] = (ys[0], len(ys), int(prev_last == ys[0]))
            prev_last = ys[-1]
        else:
            rows[oh] = (0, 0, 0)
            prev_last = None
    keep = int(bool(rows[:, 2].any()))
    # output columns [lo, hi) whose window lies inside the row
    lo = min(-(-pw // sw), out_w)
    num = in_w - 1 + pw - (kw - 1) * dw
    hi = min(num // sw + 1 if num >= 0 else 0, out_w)
    hi = max(hi, lo)
    lanes = _lanes_of(dtype)
    # k2s2 over whole 2x2 window blocks, one vector per output row: the uniform loop
    uniform = int(
        (kh, sh, ph, dh, kw, sw, pw, dw) == (2, 2, 0, 1, 2, 2, 0, 1)
        and in_h == 2 * out_h and in_w == 2 * out_w and out_w <= lanes
    )
    geo = np.array(
        [in_h, in_w, out_h, out_w, kw, sw, pw, dw, dh, keep, lo, hi, uniform], dtype=np.int64
    )
    n_vec = (out_w + lanes - 1) // lanes
    rows.flags.writeable = False
    geo.flags.writeable = False
    return rows.reshape(-1), geo, n_vec * lanes
