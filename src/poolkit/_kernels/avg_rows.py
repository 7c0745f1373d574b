"""Average pooling, channels first, float32/float64: whole output rows in vector IR.

The fast path of the NCHW forward (1-D, 2-D and 3-D pooling, dilation 1, stride 1 or 2
along W, C-contiguous input). numba runs LLVM's loop vectorizer but not its SLP
vectorizer, and a stride-2 window along W needs a lane shuffle the loop vectorizer does
not emit, so the row loop is written as explicit LLVM IR (``<8 x float>`` /
``<4 x double>``, one 256-bit register; LLVM splits or widens them to what the CPU has,
the results do not change).

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
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

#: Lanes of one vector by dtype (256 bits).
_LANES = {types.float32: 8, types.float64: 4}

#: Even / odd lanes of two stride-2 loads with an in-lane shuffle, and the output column
#: each result lane then holds (an involution, so it is also the permute that undoes it).
_EVEN = {8: [0, 2, 8, 10, 4, 6, 12, 14], 4: [0, 4, 2, 6]}
_ODD = {8: [1, 3, 9, 11, 5, 7, 13, 15], 4: [1, 5, 3, 7]}
_PERM = {8: [0, 1, 4, 5, 2, 3, 6, 7], 4: [0, 2, 1, 3]}

# geometry table ``geo`` (int64): the indices of its entries
(G_PLANE, G_IN_W, G_ROWS, G_OUT_W, G_KW, G_PW, G_LO, G_HI, G_WIDTH) = range(9)


def _c(ty, value):
    return ir.Constant(ty, value)


def _make_rows(kw_const: int | None, sw_const: int):
    """The row intrinsic for window width ``kw_const`` (None: any, a runtime loop) and
    stride ``sw_const`` (1 or 2) along W."""

    @intrinsic
    def avg_rows(typingctx, x, out, divs, rows, geo, r0, r1):
        """Output rows ``r0 <= r < r1`` (flat over planes and (od, oh)) of ``out``."""
        if not (
            isinstance(x, types.Array) and x.layout == "C" and x.dtype in _LANES
            and isinstance(out, types.Array) and out.layout == "C" and out.dtype == x.dtype
            and isinstance(divs, types.Array) and divs.dtype == x.dtype
            and isinstance(rows, types.Array) and isinstance(geo, types.Array)
        ):
            return None
        elem = x.dtype
        lanes = _LANES[elem]

        def codegen(context, builder, sig, args):
            xa = context.make_array(sig.args[0])(context, builder, args[0])
            oa = context.make_array(sig.args[1])(context, builder, args[1])
            qa = context.make_array(sig.args[2])(context, builder, args[2])
            ra = context.make_array(sig.args[3])(context, builder, args[3])
            ga = context.make_array(sig.args[4])(context, builder, args[4])
            i64 = ir.IntType(64)
            i32 = ir.IntType(32)
            fty = context.get_data_type(elem)
            vec = ir.VectorType(fty, lanes)
            k32 = ir.VectorType(i32, lanes)
            bvec = ir.VectorType(ir.IntType(1), lanes)
            align = elem.bitwidth // 8
            r0v = context.cast(builder, args[5], sig.args[5], types.int64)
            r1v = context.cast(builder, args[6], sig.args[6], types.int64)

            def g(k):
                return builder.load(builder.gep(ga.data, [_c(i64, k)]))

            plane, in_w, rows_pp, out_w = g(G_PLANE), g(G_IN_W), g(G_ROWS), g(G_OUT_W)
            kw = _c(i64, kw_const) if kw_const is not None else g(G_KW)
            pw, lo, hi, width = g(G_PW), g(G_LO), g(G_HI), g(G_WIDTH)
            L = _c(i64, lanes)
            zeros = ir.Constant(vec, [0.0] * lanes)
            ones = ir.Constant(vec, [1.0] * lanes)

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
            lane_ids = ir.Constant(k32, list(range(lanes)))

            def splat32(v):
                s = builder.insert_element(ir.Constant(k32, None), v, _c(i32, 0))
                return builder.shuffle_vector(s, s, ir.Constant(k32, [0] * lanes))

            def ptr(base_ptr, off):
                return builder.bitcast(builder.gep(base_ptr, [off]), vptr)

            in_w32 = builder.trunc(in_w, i32)
            out_w32 = builder.trunc(out_w, i32)

            def load(off, col, masked):
                """``x[off + col : + lanes]``; columns outside [0, in_w) read +0.0.

                ``masked``: False (every used lane inside the row), "select" (the vector
                lies inside the array: a plain load, then +0.0 selected into the lanes
                outside the row) or True (a masked load: nothing outside the row is
                touched). Column masks in int32 (a row is shorter than 2**31).
                """
                p_ = ptr(xa.data, builder.add(off, col))
                if not masked:
                    return builder.load(p_, align=align)
                cols = builder.add(splat32(builder.trunc(col, i32)), lane_ids)
                inside = builder.and_(
                    builder.icmp_signed(">=", cols, ir.Constant(k32, [0] * lanes)),
                    builder.icmp_signed("<", cols, splat32(in_w32)),
                )
                if masked == "select":
                    return builder.select(inside, builder.load(p_, align=align), zeros)
                return builder.call(mload, [p_, _c(i32, align), inside, zeros])

            def lanes_of(a, b, pattern):
                return builder.shuffle_vector(a, b, ir.Constant(k32, pattern[lanes]))

            def add_row(acc, off, c0, masked):
                """``acc`` plus the window columns of the input row at ``off``, in order."""
                if sw_const == 1:
                    if kw_const is not None:
                        for e in range(kw_const):
                            acc = builder.fadd(acc, load(off, builder.add(c0, _c(i64, e)),
                                                         masked))
                        return acc
                    slot = cgutils.alloca_once_value(builder, acc)
                    with cgutils.for_range(builder, kw) as loop:
                        col = builder.add(c0, loop.index)
                        builder.store(builder.fadd(builder.load(slot), load(off, col, masked)),
                                      slot)
                    return builder.load(slot)
                if kw_const is not None:  # columns 2m and 2m + 1 from one pair of loads
                    for m in range((kw_const + 1) // 2):
                        col = builder.add(c0, _c(i64, 2 * m))
                        a = load(off, col, masked)
                        b = load(off, builder.add(col, L), masked)
                        acc = builder.fadd(acc, lanes_of(a, b, _EVEN))
                        if 2 * m + 1 < kw_const:
                            acc = builder.fadd(acc, lanes_of(a, b, _ODD))
                    return acc
                slot = cgutils.alloca_once_value(builder, acc)
                with cgutils.for_range(builder, kw) as loop:
                    col = builder.add(c0, loop.index)
                    a = load(off, col, masked)
                    b = load(off, builder.add(col, L), masked)
                    builder.store(builder.fadd(builder.load(slot), lanes_of(a, b, _EVEN)), slot)
                return builder.load(slot)

            x_size = xa.nitems
            q_size = qa.nitems
            n_vec = builder.udiv(builder.add(out_w, _c(i64, lanes - 1)), L)
            sw = _c(i64, sw_const)
            # columns one vector's loads touch from its first window column
            if sw_const == 1:
                span = builder.add(builder.sub(kw, _c(i64, 1)), L)
            elif kw_const is not None:
                span = _c(i64, 2 * ((kw_const - 1) // 2) + 2 * lanes)
            else:
                span = builder.add(builder.sub(kw, _c(i64, 1)), _c(i64, 2 * lanes))
            c0_max = builder.sub(builder.mul(builder.mul(builder.sub(n_vec, _c(i64, 1)), L),
                                             sw), pw)
            end = builder.mul(r1v, out_w)  # a store may spill up to here
            # vectors [v_lo, v_hi): every output lane's window lies inside the row (the
            # lanes past out_w are garbage: dropped or overwritten by a later store)
            v_lo = builder.udiv(builder.add(lo, _c(i64, lanes - 1)), L)
            v_hi = builder.select(builder.icmp_signed(">=", hi, out_w), n_vec,
                                  builder.udiv(hi, L))
            v_hi = builder.select(builder.icmp_signed("<", v_hi, v_lo), v_lo, v_hi)
            p_slot = cgutils.alloca_once_value(builder, builder.sdiv(r0v, rows_pp))
            q_slot = cgutils.alloca_once_value(builder, builder.srem(r0v, rows_pp))

            def store(res, orow, j0):
                optr = ptr(oa.data, builder.add(orow, j0))
                # a partial vector is stored whole if its tail lands in later rows of
                # this call (they are written afterwards); else masked
                fits = builder.icmp_signed("<=", builder.add(builder.add(orow, j0), L), end)
                full = builder.icmp_signed("<=", builder.add(j0, L), out_w)
                with builder.if_else(builder.or_(full, fits), likely=True) as (plain, tail):
                    with plain:
                        builder.store(res, optr, align=align)
                    with tail:
                        ok = builder.icmp_signed(
                            "<", builder.add(splat32(builder.trunc(j0, i32)), lane_ids),
                            splat32(out_w32))
                        builder.call(mstore, [res, optr, _c(i32, align), ok])

            def divisors(qrow, j0):
                """The divisors of the vector's outputs (1.0 past the table's end)."""
                qi = builder.add(qrow, j0)
                qptr = ptr(qa.data, qi)
                slot = cgutils.alloca_once(builder, vec)
                inside = builder.icmp_signed("<=", builder.add(qi, L), q_size)
                with builder.if_else(inside, likely=True) as (plain, tail):
                    with plain:
                        builder.store(builder.load(qptr, align=align), slot)
                    with tail:
                        ok = builder.icmp_signed(
                            "<", builder.add(splat32(builder.trunc(j0, i32)), lane_ids),
                            splat32(out_w32))
                        builder.store(builder.call(mload, [qptr, _c(i32, align), ok, ones]),
                                      slot)
                return builder.load(slot)

            def vector(v, orow, qrow, base, trow, n_rows, masked):
                """One output vector: the window rows in order, then the division."""
                j0 = builder.mul(v, L)
                c0 = builder.sub(builder.mul(j0, sw), pw)
                acc = cgutils.alloca_once_value(builder, zeros)
                with cgutils.for_range(builder, n_rows) as bl:
                    roff = builder.load(builder.gep(ra.data, [builder.add(
                        trow, builder.add(bl.index, _c(i64, 1)))]))
                    builder.store(add_row(builder.load(acc), builder.add(base, roff), c0,
                                          masked), acc)
                total = builder.load(acc)
                if sw_const == 2:
                    total = lanes_of(total, total, _PERM)
                store(builder.fdiv(total, divisors(qrow, j0)), orow, j0)

            with cgutils.for_range(builder, builder.sub(r1v, r0v)) as rloop:
                r = builder.add(r0v, rloop.index)
                p = builder.load(p_slot)
                q = builder.load(q_slot)
                trow = builder.mul(q, width)
                n_rows = builder.load(builder.gep(ra.data, [trow]))
                base = builder.mul(p, plane)
                orow = builder.mul(r, out_w)
                qrow = builder.mul(q, out_w)
                # every load of this output row lies inside the array
                first = builder.load(builder.gep(ra.data, [builder.add(trow, _c(i64, 1))]))
                last = builder.load(builder.gep(ra.data, [builder.add(trow, n_rows)]))
                in_array = builder.and_(
                    builder.icmp_signed(">=", builder.sub(builder.add(base, first), pw),
                                        _c(i64, 0)),
                    builder.icmp_signed(
                        "<=", builder.add(builder.add(builder.add(base, last), c0_max), span),
                        x_size),
                )

                def run(a, b, masked):
                    with cgutils.for_range(builder, builder.sub(b, a)) as loop:
                        vector(builder.add(a, loop.index), orow, qrow, base, trow, n_rows,
                               masked)

                with builder.if_else(in_array, likely=True) as (inside, outside):
                    with inside:
                        run(_c(i64, 0), v_lo, "select")
                        run(v_lo, v_hi, False)
                        run(v_hi, n_vec, "select")
                    with outside:
                        run(_c(i64, 0), n_vec, True)
                # next output row: (p, q) += 1
                q1 = builder.add(q, _c(i64, 1))
                wrap = builder.icmp_signed("==", q1, rows_pp)
                builder.store(builder.select(wrap, _c(i64, 0), q1), q_slot)
                builder.store(builder.select(wrap, builder.add(p, _c(i64, 1)), p), p_slot)
            return context.get_dummy_value()

        return types.none(x, out, divs, rows, geo, r0, r1), codegen

    return avg_rows


_rows_k2s2 = _make_rows(2, 2)
_rows_k3s2 = _make_rows(3, 2)
_rows_s2 = _make_rows(None, 2)
_rows_s1 = _make_rows(None, 1)


# serial kernels over flat output rows [r0, r1): ``x``, ``out`` and ``divs`` are the
# flat (1-D) C-contiguous input, output and divisor table; ``rows`` and ``geo`` the
# tables of :func:`poolkit._ops.avg_pool._rows_tables`


@njit(cache=True, nogil=True)
def avg_k2s2(x, out, divs, rows, geo, r0, r1):
    """k=2, s=2 along W."""
    _rows_k2s2(x, out, divs, rows, geo, r0, r1)


@njit(cache=True, nogil=True)
def avg_k3s2(x, out, divs, rows, geo, r0, r1):
    """k=3, s=2 along W."""
    _rows_k3s2(x, out, divs, rows, geo, r0, r1)


@njit(cache=True, nogil=True)
def avg_s2(x, out, divs, rows, geo, r0, r1):
    """Any window width, stride 2 along W."""
    _rows_s2(x, out, divs, rows, geo, r0, r1)


@njit(cache=True, nogil=True)
def avg_s1(x, out, divs, rows, geo, r0, r1):
    """Any window width, stride 1 along W."""
    _rows_s1(x, out, divs, rows, geo, r0, r1)
