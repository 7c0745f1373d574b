"""Average pooling, channels first, float32/float64: whole output rows in vector IR.

The fast path of the NCHW forward (1-D, 2-D and 3-D pooling, dilation 1, any stride
along W, C-contiguous input; strides above 2 load each window column with one gather).
numba runs LLVM's loop vectorizer but not its SLP vectorizer, and a stride-2 window along
W needs a lane shuffle the loop vectorizer does not emit, so the row loop is written as
explicit LLVM IR (``<8 x float>`` / ``<4 x double>``, one 256-bit register; LLVM splits or
widens them to what the CPU has, the results do not change).

Exactness (docs/semantics.md §7). Each lane of a vector is one output: its accumulator
starts at +0.0 and adds the window's elements one at a time in row-major order (window
rows top to bottom, columns left to right), then is divided once by the window's
divisor (from the caller's table, in the same opmath type). That is the order of the
scalar loop and of PyTorch, lane by lane; only the outputs run side by side, so the bits
are the same on every machine. Window columns outside the input row (padding, the
ceil_mode overhang) are loaded as +0.0: an accumulator that starts at +0.0 is never
-0.0, so adding +0.0 leaves it bit-identical to skipping the tap (NaN and inf are kept).
Window rows outside the input are skipped (the ``rows`` table lists only input rows).

Stride 2 takes the window columns ``2m`` and ``2m + 1`` of a vector of outputs from the
same two loads (their even and odd lanes, one in-lane shuffle each); the lanes then hold
the output columns in the order ``_PERM`` (the same for every column), and one permute
puts the sums in order before the division.

Every call of the fixed-width kernels prefetches its input rows ahead of the loads; a
call far larger than the cache (``stream``) also writes its output with non-temporal stores
(:func:`poolkit._kernels._lanes.stream_store`); the values are the same.
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from ._lanes import prefetch_ahead, store_fence, stream_store, streaming_flag
from ._vector_ir import Vectors, i64, is_vector_array

#: Even / odd lanes of two stride-2 loads with an in-lane shuffle, and the output column
#: each result lane then holds (an involution, so it is also the permute that undoes it).
_EVEN = {8: [0, 2, 8, 10, 4, 6, 12, 14], 4: [0, 4, 2, 6]}
_ODD = {8: [1, 3, 9, 11, 5, 7, 13, 15], 4: [1, 5, 3, 7]}
_PERM = {8: [0, 1, 4, 5, 2, 3, 6, 7], 4: [0, 2, 1, 3]}

#: Output vectors summed side by side (independent accumulator chains).
_GROUP = 4

# geometry table ``geo`` (int64): the indices of its entries
(G_PLANE, G_IN_W, G_ROWS, G_OUT_W, G_KW, G_PW, G_LO, G_HI, G_WIDTH, G_SW) = range(10)


def _make_rows(kw_const: int | None, sw_const: int | None):
    """The row intrinsic for window width ``kw_const`` (None: any, a runtime loop) and
    stride ``sw_const`` along W (1, 2, or None: any, read from ``geo``, each window
    column one gather; with a runtime ``kw`` only)."""

    @intrinsic
    def avg_rows(typingctx, x, out, divs, rows, geo, stream, r0, r1):
        """Output rows ``r0 <= r < r1`` (flat over planes and (od, oh)) of ``out``;
        ``stream`` (0 or 1): store past the cache."""
        if not (is_vector_array(x) and is_vector_array(out, x.dtype)
                and is_vector_array(divs, x.dtype)
                and isinstance(rows, types.Array) and isinstance(geo, types.Array)
                and isinstance(stream, types.Integer)):
            return None
        elem = x.dtype

        def codegen(context, builder, sig, args):
            xa = context.make_array(sig.args[0])(context, builder, args[0])
            oa = context.make_array(sig.args[1])(context, builder, args[1])
            qa = context.make_array(sig.args[2])(context, builder, args[2])
            ra = context.make_array(sig.args[3])(context, builder, args[3])
            ga = context.make_array(sig.args[4])(context, builder, args[4])
            vx = Vectors(context, builder, elem)
            lanes, L = vx.lanes, vx.n
            streaming = streaming_flag(
                builder, context.cast(builder, args[5], sig.args[5], types.int64))
            r0v = context.cast(builder, args[6], sig.args[6], types.int64)
            r1v = context.cast(builder, args[7], sig.args[7], types.int64)

            def g(k):
                return builder.load(builder.gep(ga.data, [i64(k)]))

            def table(i):
                return builder.load(builder.gep(ra.data, [i]))

            plane, in_w, rows_pp, out_w = g(G_PLANE), g(G_IN_W), g(G_ROWS), g(G_OUT_W)
            kw = i64(kw_const) if kw_const is not None else g(G_KW)
            pw, lo, hi, width = g(G_PW), g(G_LO), g(G_HI), g(G_WIDTH)

            def load(off, col, masked):
                """``x[off + col : + lanes]``; columns outside [0, in_w) read +0.0.

                ``masked``: False (every used lane inside the row), "select" (the vector
                lies inside the array: a plain load, then +0.0 selected into the lanes
                outside the row) or True (a masked load: nothing outside the row is
                touched).
                """
                at = builder.add(off, col)
                if not masked:
                    return vx.load(xa.data, at)
                inside = vx.lanes_between(col, i64(0), in_w)
                if masked == "select":
                    return builder.select(inside, vx.load(xa.data, at), vx.zeros)
                return vx.masked_load(xa.data, at, inside, vx.zeros)

            def lanes_of(a, b, pattern):
                return builder.shuffle_vector(a, b, ir.Constant(vx.k32, pattern[lanes]))

            def columns(off, c0, masked):
                """The window columns (vectors of the outputs' lanes) of the input row at
                ``off``, in order (``kw_const`` columns)."""
                if not masked:  # the lines these loads reach a little later
                    prefetch_ahead(builder, xa.data, builder.add(off, c0), 1, vx.align)
                if sw_const == 1:
                    return [load(off, builder.add(c0, i64(e)), masked) for e in range(kw_const)]
                cols = []
                for m in range((kw_const + 1) // 2):  # columns 2m, 2m + 1: one pair of loads
                    col = builder.add(c0, i64(2 * m))
                    a = load(off, col, masked)
                    b = load(off, builder.add(col, L), masked)
                    cols.append(lanes_of(a, b, _EVEN))
                    if 2 * m + 1 < kw_const:
                        cols.append(lanes_of(a, b, _ODD))
                return cols

            def column(off, col, masked):
                """One window column (runtime ``kw``)."""
                if sw_const is None:  # lane i reads column col + sw * i
                    if masked:
                        inside = vx.strided_lanes_between(col, sw, i64(0), in_w)
                    else:
                        inside = ir.Constant(ir.VectorType(ir.IntType(1), lanes),
                                             [1] * lanes)
                    return vx.gather(xa.data, builder.add(off, col), sw, inside)
                if sw_const == 1:
                    return load(off, col, masked)
                a = load(off, col, masked)
                return lanes_of(a, load(off, builder.add(col, L), masked), _EVEN)

            x_size = xa.nitems
            q_size = qa.nitems
            n_vec = builder.udiv(builder.add(out_w, i64(lanes - 1)), L)
            sw = g(G_SW) if sw_const is None else i64(sw_const)
            # columns one vector's loads touch from its first window column
            if sw_const is None:
                span = builder.add(kw, builder.mul(sw, i64(lanes - 1)))
            elif sw_const == 1:
                span = builder.add(builder.sub(kw, i64(1)), L)
            elif kw_const is not None:
                span = i64(2 * ((kw_const - 1) // 2) + 2 * lanes)
            else:
                span = builder.add(builder.sub(kw, i64(1)), i64(2 * lanes))
            c0_max = builder.sub(builder.mul(builder.mul(builder.sub(n_vec, i64(1)), L), sw),
                                 pw)
            end = builder.mul(r1v, out_w)  # a store may spill up to here
            # vectors [v_lo, v_hi): every output lane's window lies inside the row (the
            # lanes past out_w are garbage: dropped or overwritten by a later store)
            v_lo = builder.udiv(builder.add(lo, i64(lanes - 1)), L)
            v_hi = builder.select(builder.icmp_signed(">=", hi, out_w), n_vec,
                                  builder.udiv(hi, L))
            v_hi = builder.select(builder.icmp_signed("<", v_hi, v_lo), v_lo, v_hi)
            # rows of one interior vector: _GROUP output rows per group
            one_vector = builder.and_(
                builder.icmp_signed("==", n_vec, i64(1)),
                builder.and_(builder.icmp_signed("==", v_lo, i64(0)),
                             builder.icmp_signed("==", v_hi, i64(1))))

            def store(res, orow, j0):
                at = builder.add(orow, j0)
                # a partial vector is stored whole if its tail lands in later rows of
                # this call (they are written afterwards); else masked
                fits = builder.icmp_signed("<=", builder.add(at, L), end)
                full = builder.icmp_signed("<=", builder.add(j0, L), out_w)
                with builder.if_else(builder.or_(full, fits), likely=True) as (plain, tail):
                    with plain:
                        stream_store(builder, res, vx.ptr(oa.data, at), vx.align, streaming)
                    with tail:
                        vx.masked_store(res, oa.data, at, vx.lanes_between(j0, None, out_w))

            def divisors(qrow, j0):
                """The divisors of the vector's outputs (1.0 past the table's end)."""
                qi = builder.add(qrow, j0)
                slot = cgutils.alloca_once(builder, vx.vec)
                inside = builder.icmp_signed("<=", builder.add(qi, L), q_size)
                with builder.if_else(inside, likely=True) as (plain, tail):
                    with plain:
                        builder.store(vx.load(qa.data, qi), slot)
                    with tail:
                        builder.store(vx.masked_load(qa.data, qi, vx.lanes_between(
                            j0, None, out_w), vx.ones), slot)
                return builder.load(slot)

            def group(items, n_rows, masked):
                """Output vectors ``items`` = [(orow, qrow, base, trow, j0)], all with
                ``n_rows`` window rows: one accumulator chain each, interleaved (the
                chains are independent, so the core overlaps their latencies)."""
                slots = [cgutils.alloca_once_value(builder, vx.zeros) for _ in items]
                c0s = [builder.sub(builder.mul(it[4], sw), pw) for it in items]
                with cgutils.for_range(builder, n_rows) as bl:
                    offs = [builder.add(it[2], table(builder.add(it[3], builder.add(
                        bl.index, i64(1))))) for it in items]
                    accs = [builder.load(s) for s in slots]
                    if kw_const is not None:  # one chain after the other (registers)
                        for s, a, o, c0 in zip(slots, accs, offs, c0s):
                            for col in columns(o, c0, masked):
                                a = builder.fadd(a, col)
                            builder.store(a, s)
                    else:
                        for s, a in zip(slots, accs):
                            builder.store(a, s)
                        with cgutils.for_range(builder, kw) as el:
                            for s, o, c0 in zip(slots, offs, c0s):
                                col = builder.add(c0, el.index)
                                builder.store(builder.fadd(builder.load(s),
                                                           column(o, col, masked)), s)
                for s, (orow, qrow, _, _, j0) in zip(slots, items):
                    total = builder.load(s)
                    if sw_const == 2:
                        total = lanes_of(total, total, _PERM)
                    store(builder.fdiv(total, divisors(qrow, j0)), orow, j0)

            def loads_inside(first, last):
                """Every load of any vector of the window rows at the array offsets
                ``first`` .. ``last`` lies inside the array."""
                return builder.and_(
                    builder.icmp_signed(">=", builder.sub(first, pw), i64(0)),
                    builder.icmp_signed(
                        "<=", builder.add(builder.add(last, c0_max), span), x_size))

            def first_last(base, trow, n_rows):
                """Array offsets of the first and last window row of a table row."""
                return (builder.add(base, table(builder.add(trow, i64(1)))),
                        builder.add(base, table(builder.add(trow, n_rows))))

            def one_row(r, p, q):
                """Output row ``r`` (plane ``p``, row ``q`` of the plane): vectors in
                groups of ``_GROUP`` over the interior, one by one at the edges."""
                trow = builder.mul(q, width)
                n_rows = table(trow)
                base = builder.mul(p, plane)
                orow = builder.mul(r, out_w)
                qrow = builder.mul(q, out_w)
                in_array = loads_inside(*first_last(base, trow, n_rows))

                def items(v0, count):
                    return [(orow, qrow, base, trow, builder.mul(builder.add(v0, i64(u)), L))
                            for u in range(count)]

                def singles(a, b, masked):
                    with cgutils.for_range(builder, builder.sub(b, a)) as loop:
                        group(items(builder.add(a, loop.index), 1), n_rows, masked)

                with builder.if_else(in_array, likely=True) as (inside, outside):
                    with inside:
                        singles(i64(0), v_lo, "select")
                        n_full = builder.udiv(builder.sub(v_hi, v_lo), i64(_GROUP))
                        with cgutils.for_range(builder, n_full) as loop:
                            v0 = builder.add(v_lo, builder.mul(loop.index, i64(_GROUP)))
                            group(items(v0, _GROUP), n_rows, False)
                        v_rest = builder.add(v_lo, builder.mul(n_full, i64(_GROUP)))
                        n_rest = builder.sub(v_hi, v_rest)
                        done = builder.append_basic_block("rest.done")
                        switch = builder.switch(n_rest, done)
                        for count in range(1, _GROUP):
                            case = builder.append_basic_block(f"rest.{count}")
                            switch.add_case(i64(count), case)
                            builder.position_at_end(case)
                            group(items(v_rest, count), n_rows, False)
                            builder.branch(done)
                        builder.position_at_end(done)
                        singles(v_hi, n_vec, "select")
                    with outside:
                        singles(i64(0), n_vec, True)

            def row_group(r, p, q):
                """``_GROUP`` consecutive output rows (planes may change between them) of
                one interior vector each (``one_vector``), with the same window row
                count and their loads inside the array: their vectors as one group.
                Returns whether it ran, and the plane and row of its last row."""
                its, counts = [], []
                pu, qu = p, q
                for u in range(_GROUP):
                    if u:  # (pu, qu) of row r + u
                        q1 = builder.add(qu, i64(1))
                        wrap = builder.icmp_signed("==", q1, rows_pp)
                        pu = builder.select(wrap, builder.add(pu, i64(1)), pu)
                        qu = builder.select(wrap, i64(0), q1)
                    trow = builder.mul(qu, width)
                    counts.append(table(trow))
                    its.append((builder.mul(builder.add(r, i64(u)), out_w),
                                builder.mul(qu, out_w), builder.mul(pu, plane), trow, i64(0)))
                ok = builder.and_(one_vector, builder.icmp_signed(
                    "<=", builder.add(r, i64(_GROUP)), r1v))
                for count in counts[1:]:
                    ok = builder.and_(ok, builder.icmp_signed("==", count, counts[0]))
                with builder.if_then(ok, likely=True):
                    first, _ = first_last(its[0][2], its[0][3], counts[0])
                    _, last = first_last(its[-1][2], its[-1][3], counts[0])
                    inside = loads_inside(first, last)
                    with builder.if_then(inside, likely=True):
                        group(its, counts[0], False)
                    builder.store(inside, ran)
                return builder.and_(ok, builder.load(ran)), pu, qu

            # rows r0 <= r < r1; (p, q) = divmod(r, rows_pp) tracked incrementally
            ran = cgutils.alloca_once(builder, ir.IntType(1))
            r_slot = cgutils.alloca_once_value(builder, r0v)
            p_slot = cgutils.alloca_once_value(builder, builder.sdiv(r0v, rows_pp))
            q_slot = cgutils.alloca_once_value(builder, builder.srem(r0v, rows_pp))
            head = builder.append_basic_block("rows.head")
            body = builder.append_basic_block("rows.body")
            tail = builder.append_basic_block("rows.end")
            builder.branch(head)
            builder.position_at_end(head)
            builder.cbranch(builder.icmp_signed("<", builder.load(r_slot), r1v), body, tail)
            builder.position_at_end(body)
            r, p, q = builder.load(r_slot), builder.load(p_slot), builder.load(q_slot)
            builder.store(ir.Constant(ir.IntType(1), 0), ran)
            grouped, p_last, q_last = row_group(r, p, q)
            with builder.if_then(builder.not_(grouped)):
                one_row(r, p, q)
            # the last row done, then one row on
            r = builder.select(grouped, builder.add(r, i64(_GROUP - 1)), r)
            p = builder.select(grouped, p_last, p)
            q = builder.select(grouped, q_last, q)
            builder.store(builder.add(r, i64(1)), r_slot)
            q1 = builder.add(q, i64(1))
            wrap = builder.icmp_signed("==", q1, rows_pp)
            builder.store(builder.select(wrap, i64(0), q1), q_slot)
            builder.store(builder.select(wrap, builder.add(p, i64(1)), p), p_slot)
            builder.branch(head)
            builder.position_at_end(tail)
            store_fence(builder, streaming)
            return context.get_dummy_value()

        return types.none(x, out, divs, rows, geo, stream, r0, r1), codegen

    return avg_rows


_rows_k2s2 = _make_rows(2, 2)
_rows_k3s2 = _make_rows(3, 2)
_rows_s2 = _make_rows(None, 2)
_rows_s1 = _make_rows(None, 1)
_rows_sn = _make_rows(None, None)


# serial kernels over flat output rows [r0, r1): ``x``, ``out`` and ``divs`` are the
# flat (1-D) C-contiguous input, output and divisor table; ``rows`` and ``geo`` the
# tables of :func:`poolkit._ops.avg_pool._rows_tables`; ``stream`` (0 or 1): the call
# is far larger than the cache


@njit(cache=True, nogil=True)
def avg_k2s2(x, out, divs, rows, geo, stream, r0, r1):
    """k=2, s=2 along W."""
    _rows_k2s2(x, out, divs, rows, geo, stream, r0, r1)


@njit(cache=True, nogil=True)
def avg_k3s2(x, out, divs, rows, geo, stream, r0, r1):
    """k=3, s=2 along W."""
    _rows_k3s2(x, out, divs, rows, geo, stream, r0, r1)


@njit(cache=True, nogil=True)
def avg_s2(x, out, divs, rows, geo, stream, r0, r1):
    """Any window width, stride 2 along W."""
    _rows_s2(x, out, divs, rows, geo, stream, r0, r1)


@njit(cache=True, nogil=True)
def avg_s1(x, out, divs, rows, geo, stream, r0, r1):
    """Any window width, stride 1 along W."""
    _rows_s1(x, out, divs, rows, geo, stream, r0, r1)


@njit(cache=True, nogil=True)
def avg_sn(x, out, divs, rows, geo, stream, r0, r1):
    """Any window width, any stride along W (``geo[G_SW]``; a gather per column)."""
    _rows_sn(x, out, divs, rows, geo, stream, r0, r1)
