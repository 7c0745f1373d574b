"""Max pooling, channels first, any dtype: whole output rows in vector IR.

The NCHW forward (1-D to 3-D pooling, any W stride, C-contiguous input) with indices
for every dtype, and values for what the row kernels of :mod:`poolkit._kernels.max_rows`
do not take (integers, float16 as its uint16 bits, W strides above 2). Each output row
is computed in vectors of output columns (8 lanes, 4 for 64-bit elements): for every
window element the lanes load their input column (stride 1: one vector load; stride 2:
two vectors' worth and their even lanes, one shuffle; any other stride: one gather,
the stride read from the geometry vector, so one compiled kernel serves them all) and
take one scan step, ``v``
replacing the running ``m`` if ``v`` is greater or NaN, the int32 plane index vector
following the same mask (widened to int64 at the store). "Greater" is the dtype's order:
floats and signed or unsigned integers compare directly, float16 bits through the
ordering key of :func:`poolkit._kernels._scalar.order_key` (NaN above everything, -0 and
+0 equal). The window rows inside the input are listed once per plan, in plain NumPy
(:func:`window_table`); the elements of a window are scanned in
row-major order, so the first maximum wins ties (of -0.0 and +0.0 the first), the last
NaN wins, exactly as in every other path.

A block of lanes whose stored windows all lie inside the input row (the interior, most
of a row) starts its scan at the first window element and runs branch-free. Other
blocks (windows crossing the W border) mask their loads to the row and track per lane
whether an element inside the input was seen: a lane takes its first element inside
the input unconditionally, later ones by the scan rule, and a lane with none keeps the
dtype's lowest value (-inf, the integer minimum) and index -1. Padding never wins.

Masked loads and stores are slow on some CPUs (a narrow NCHW row, one block reaching
past the row, took 3-7x as long with them on the project's Zen 3 VM), so they are kept
for the array's ends: a block whose loads lie inside the array loads plainly (past the
row, lanes that are never stored; at the borders, the lowest value selected into the
lanes outside the row), and a partial last vector is stored whole when its extra lanes
fall on the next output row of the same part, which overwrites them.

Written as an intrinsic (explicit vectors), the kernel leaves LLVM's loop vectorizer
nothing to do, which keeps a first compilation to about a second.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from ._lanes import (
    lowest,
    masked_gather,
    masked_memory,
    scan_dtype_ok,
    scan_lanes,
    scan_wins,
    splat,
)

# the geometry vector ``geo`` (int64): the indices of its entries
G_IN_W, G_OUT_W, G_KW, G_PW, G_DW, G_LO, G_HI, G_SW = range(8)

#: The ``stride`` of :func:`_make_row` whose kernels take any W stride (a gather per load).
ANY = 0

#: How a window element's vector is loaded: plain, masked to columns below ``in_w``,
#: or masked to the columns inside the row (then the lanes' validity is tracked); or as
#: ``FULL`` but with a plain load and a select, where the block's loads lie inside the
#: array (masked loads are slow on some CPUs).
PLAIN, LIMIT, FULL, SELECT = range(4)


def _c(ty, value):
    return ir.Constant(ty, value)


def _ok(x, out):
    return (
        isinstance(x, types.Array) and x.layout == "C" and x.ndim == 5
        and scan_dtype_ok(x.dtype)
        and isinstance(out, types.Array) and out.layout == "C" and out.dtype == x.dtype
    )


def _make_row(stride: int, want: bool):
    """The row intrinsic for W stride 1, 2 or :data:`ANY`, with (``want``) or without the
    index vector."""

    @intrinsic
    def pool_row(typingctx, x, out, idx, rows, trow, xbase, n_rows, geo, obase, oend):
        """Output row at flat offset ``obase`` of ``out`` (and ``idx``).

        Window row ``r < n_rows`` has plane index ``rows[trow + r]`` at column 0 and
        starts at flat element ``xbase + rows[trow + r]`` of ``x`` (``xbase``: the
        plane's first element); ``geo`` is the geometry vector (``G_*``). The outputs
        from ``obase`` up to ``oend`` are written by this call or by later ones of the
        same part, so a partial last vector that ends before ``oend`` is stored whole
        (its extra lanes are overwritten by the next row).
        """
        if not _ok(x, out):
            return None
        sig = types.none(x, out, idx, rows, trow, xbase, n_rows, geo, obase, oend)
        return sig, lambda context, builder, sig, args: _codegen(
            context, builder, sig, args, stride, want)

    return pool_row


def _codegen(context, builder, sig, args, stride, want):
    elem = sig.args[0].dtype
    lanes = scan_lanes(elem)
    xa, oa, ia, ra = (context.make_array(sig.args[k])(context, builder, args[k])
                      for k in range(4))
    ga = context.make_array(sig.args[7])(context, builder, args[7])
    i64, i32, i1 = ir.IntType(64), ir.IntType(32), ir.IntType(1)
    ety = context.get_data_type(elem)
    vec = ir.VectorType(ety, lanes)
    s2, gather = stride == 2, stride == ANY
    n_load = 2 * lanes if s2 else lanes  # elements loaded per window element
    lvec = ir.VectorType(ety, n_load)
    kvec = ir.VectorType(i32, lanes)
    ivec = ir.VectorType(i64, lanes)
    bvec = ir.VectorType(i1, lanes)
    align = elem.bitwidth // 8
    mod = builder.module

    def g(k):
        return builder.load(builder.gep(ga.data, [_c(i64, k)]))

    in_w, out_w, kw = g(G_IN_W), g(G_OUT_W), g(G_KW)
    pw, dw, lo, hi = g(G_PW), g(G_DW), g(G_LO), g(G_HI)
    sw = g(G_SW) if gather else _c(i64, stride)
    trow, xbase, n_rows, obase, oend = (
        context.cast(builder, args[k], sig.args[k], types.int64) for k in (4, 5, 6, 8, 9))

    def row_start(r):
        """Plane index of window row ``r``'s column 0."""
        return builder.load(builder.gep(ra.data, [builder.add(trow, r)]))
    L, one, zero = _c(i64, lanes), _c(i64, 1), _c(i64, 0)
    x_size = xa.nitems

    def vsplat(v, ty):
        return splat(builder, v, ty.count)

    fill = ir.Constant(vec, [lowest(elem)] * lanes)  # a window without input elements
    fill_load = ir.Constant(lvec, [lowest(elem)] * n_load)
    mload = masked_memory(mod, "load", lvec)
    mstore = masked_memory(mod, "store", vec)
    istore = masked_memory(mod, "store", ivec)
    load_ids = ir.Constant(ir.VectorType(i32, n_load), list(range(n_load)))
    even = ir.Constant(kvec, [2 * j for j in range(lanes)])
    lane_ids = ir.Constant(kvec, list(range(lanes)))
    if gather:  # sw * lane, the lanes' columns past lane 0's
        kstep = builder.mul(lane_ids, vsplat(builder.trunc(sw, i32), kvec))
        pvec = ir.VectorType(ety.as_pointer(), lanes)
        byte_steps = builder.mul(builder.sext(kstep, ivec), vsplat(_c(i64, align), ivec))
        gather_fn = masked_gather(mod, vec)
    else:
        kstep = ir.Constant(kvec, [stride * j for j in range(lanes)])

    def wins(v, m):
        return scan_wins(builder, elem, v, m)

    def element(r, e, p0, mode):
        """Lane values, int32 plane indices (None without ``want``) and validity
        (``FULL`` mode, else None) of window element (r, e); ``p0`` is the input column
        of lane 0's first window element."""
        p = builder.add(p0, builder.mul(e, dw))  # column of lane 0
        ptr = builder.gep(xa.data, [builder.add(builder.add(xbase, row_start(r)), p)])
        valid = None
        if gather:
            return gather_element(r, p, ptr, FULL if mode == SELECT else mode)
        ptr = builder.bitcast(ptr, lvec.as_pointer())
        if mode == PLAIN:
            v = builder.load(ptr, align=align)
        else:
            limit = builder.trunc(builder.sub(in_w, p), i32)  # columns from in_w - p on
            m = builder.icmp_signed("<", load_ids, vsplat(limit, load_ids.type))
            if mode in (FULL, SELECT):
                neg = builder.trunc(builder.neg(p), i32)  # columns before 0
                m = builder.and_(m, builder.icmp_signed(">=", load_ids,
                                                        vsplat(neg, load_ids.type)))
                valid = builder.and_(builder.icmp_signed("<", kstep, vsplat(limit, kvec)),
                                     builder.icmp_signed(">=", kstep, vsplat(neg, kvec)))
            if mode == SELECT:
                v = builder.select(m, builder.load(ptr, align=align), fill_load)
            else:
                v = builder.call(mload, [ptr, _c(i32, align), m, fill_load])
        if s2:  # the even lanes of the two vectors
            v = builder.shuffle_vector(v, v, even)
        return v, plane_indices(r, p), valid

    def plane_indices(r, p):
        if not want:
            return None
        kb0 = builder.add(row_start(r), p)
        return builder.add(vsplat(builder.trunc(kb0, i32), kvec), kstep)

    def gather_element(r, p, ptr, mode):
        """:func:`element` for any stride: lane j reads column ``p + sw * j``."""
        base = vsplat(builder.ptrtoint(ptr, i64), ivec)
        ptrs = builder.inttoptr(builder.add(base, byte_steps), pvec)
        valid = None
        if mode == PLAIN:
            m = ir.Constant(bvec, [1] * lanes)
        else:
            m = builder.icmp_signed("<", kstep, vsplat(builder.trunc(builder.sub(in_w, p), i32),
                                                       kvec))
            if mode == FULL:
                neg = vsplat(builder.trunc(builder.neg(p), i32), kvec)
                m = valid = builder.and_(m, builder.icmp_signed(">=", kstep, neg))
        v = builder.call(gather_fn, [ptrs, _c(i32, align), m, fill])
        return v, plane_indices(r, p), valid

    acc = cgutils.alloca_once(builder, vec)
    acck = cgutils.alloca_once(builder, kvec)
    has = cgutils.alloca_once(builder, bvec)

    def step(v, k, take):
        builder.store(builder.select(take, v, builder.load(acc)), acc)
        if want:
            builder.store(builder.select(take, k, builder.load(acck)), acck)

    def plain_block(p0, mode):
        v, k, _ = element(zero, zero, p0, mode)
        builder.store(v, acc)
        if want:
            builder.store(k, acck)
        with cgutils.for_range(builder, builder.sub(kw, one)) as el:
            v, k, _ = element(zero, builder.add(el.index, one), p0, mode)
            step(v, k, wins(v, builder.load(acc)))
        with cgutils.for_range(builder, builder.sub(n_rows, one)) as rl:
            with cgutils.for_range(builder, kw) as el:
                v, k, _ = element(builder.add(rl.index, one), el.index, p0, mode)
                step(v, k, wins(v, builder.load(acc)))

    def masked_block(p0, mode):
        builder.store(fill, acc)
        builder.store(ir.Constant(kvec, [-1] * lanes), acck)
        builder.store(ir.Constant(bvec, [0] * lanes), has)
        with cgutils.for_range(builder, n_rows) as rl:
            with cgutils.for_range(builder, kw) as el:
                v, k, valid = element(rl.index, el.index, p0, mode)
                h = builder.load(has)
                take = builder.or_(wins(v, builder.load(acc)), builder.not_(h))
                step(v, k, builder.and_(valid, take))
                builder.store(builder.or_(h, valid), has)

    def select_min(a, b):
        return builder.select(builder.icmp_signed("<", a, b), a, b)

    n_blocks = builder.udiv(builder.add(out_w, builder.sub(L, one)), L)
    # the last column a block loads, past lane 0's first window element column
    last_load = builder.add(builder.mul(builder.sub(kw, one), dw),
                            builder.mul(sw, _c(i64, lanes - 1)) if gather
                            else _c(i64, n_load - 1))
    with cgutils.for_range(builder, n_blocks) as bl:
        ow0 = builder.mul(bl.index, L)
        ow1 = builder.add(ow0, L)
        p0 = builder.sub(builder.mul(ow0, sw), pw)
        # every stored lane's window inside the input (and some window row)?
        clean = builder.and_(
            builder.and_(builder.icmp_signed(">=", ow0, lo),
                         builder.icmp_signed("<=", select_min(ow1, out_w), hi)),
            builder.icmp_signed(">", n_rows, zero))
        in_row = builder.icmp_signed("<", builder.add(p0, last_load), in_w)
        # every load of the block inside the array (the window rows' starts increase)
        first_at = builder.add(builder.add(xbase, row_start(zero)), p0)
        last_row = builder.select(builder.icmp_signed(">", n_rows, zero),
                                  builder.sub(n_rows, one), zero)
        last_at = builder.add(builder.add(builder.add(xbase, row_start(last_row)), p0),
                              last_load)
        in_array = builder.and_(builder.icmp_signed(">=", first_at, zero),
                                builder.icmp_signed("<", last_at, x_size))
        with builder.if_else(clean, likely=True) as (yes, no):
            with yes:
                # the lanes a load reads past the row are never stored (stride 2: not
                # even kept), so only the array's end needs the masked loads
                with builder.if_else(builder.or_(in_row, in_array), likely=True) as (
                        inside, tail):
                    with inside:
                        plain_block(p0, PLAIN)
                    with tail:
                        plain_block(p0, LIMIT)
            with no:
                with builder.if_else(in_array, likely=True) as (inside, edge):
                    with inside:
                        masked_block(p0, SELECT)
                    with edge:
                        masked_block(p0, FULL)
        o = builder.add(obase, ow0)
        optr = builder.bitcast(builder.gep(oa.data, [o]), vec.as_pointer())
        iptr = builder.bitcast(builder.gep(ia.data, [o]), ivec.as_pointer())
        res = builder.load(acc)
        ks = builder.sext(builder.load(acck), ivec) if want else None
        whole = builder.or_(builder.icmp_signed("<=", ow1, out_w),
                            builder.icmp_signed("<=", builder.add(obase, ow1), oend))
        with builder.if_else(whole, likely=True) as (yes, no):
            with yes:
                builder.store(res, optr, align=align)
                if want:
                    builder.store(ks, iptr, align=8)
            with no:
                smask = builder.icmp_signed(
                    "<", lane_ids, vsplat(builder.trunc(builder.sub(out_w, ow0), i32), kvec))
                builder.call(mstore, [res, optr, _c(i32, align), smask])
                if want:
                    builder.call(istore, [ks, iptr, _c(i32, 8), smask])
    return context.get_dummy_value()


_values_s1 = _make_row(1, False)
_values_s2 = _make_row(2, False)
_values_sn = _make_row(ANY, False)
_indices_s1 = _make_row(1, True)
_indices_s2 = _make_row(2, True)
_indices_sn = _make_row(ANY, True)


@njit(cache=True, nogil=True, inline="always")
def _tasks(x, out, idx, table, counts, geo, t0, t1, stride, want):
    # the window rows of every (od, oh) come from the plan (:func:`window_table`): a
    # task is a table lookup, and a first call compiles no table code
    in_d, in_h, in_w = x.shape[2], x.shape[3], x.shape[4]
    out_w = out.shape[4]
    n_oh = counts.shape[0]
    per_row = table.shape[0] // n_oh
    plane_size = in_d * in_h * in_w
    oend = t1 * out_w  # this part's outputs end here
    t = t0 % n_oh
    xbase = (t0 // n_oh) * plane_size  # task = (n * C + c) * n_oh + od * out_h + oh
    for task in range(t0, t1):
        trow, n_rows, o = t * per_row, counts[t], task * out_w
        if want and stride == 2:
            _indices_s2(x, out, idx, table, trow, xbase, n_rows, geo, o, oend)
        elif want and stride == 1:
            _indices_s1(x, out, idx, table, trow, xbase, n_rows, geo, o, oend)
        elif want:
            _indices_sn(x, out, idx, table, trow, xbase, n_rows, geo, o, oend)
        elif stride == 2:
            _values_s2(x, out, idx, table, trow, xbase, n_rows, geo, o, oend)
        elif stride == 1:
            _values_s1(x, out, idx, table, trow, xbase, n_rows, geo, o, oend)
        else:
            _values_sn(x, out, idx, table, trow, xbase, n_rows, geo, o, oend)
        t += 1
        if t == n_oh:
            t = 0
            xbase += plane_size


@njit(cache=True, nogil=True)
def indices_s2(x, out, idx, table, counts, geo, t0, t1):
    """Values and int64 plane indices for output rows ``t0 <= task < t1`` of a
    C-contiguous ``(N, C, D, H, W)`` view (``task`` = (n, c, od, oh)), W stride 2.

    ``table`` and ``counts`` are :func:`window_table`'s, ``geo`` :func:`geometry`'s
    vector; a window without input elements yields the dtype's lowest
    value (``poolkit._engine.lowest``) and index -1; planes have fewer than 2**31
    elements. float16 travels as its uint16 bits.
    """
    _tasks(x, out, idx, table, counts, geo, t0, t1, 2, True)


@njit(cache=True, nogil=True)
def indices_s1(x, out, idx, table, counts, geo, t0, t1):
    """:func:`indices_s2` for W stride 1."""
    _tasks(x, out, idx, table, counts, geo, t0, t1, 1, True)


@njit(cache=True, nogil=True)
def values_s2(x, out, idx, table, counts, geo, t0, t1):
    """:func:`indices_s2` without the indices (``idx`` is not touched)."""
    _tasks(x, out, idx, table, counts, geo, t0, t1, 2, False)


@njit(cache=True, nogil=True)
def values_s1(x, out, idx, table, counts, geo, t0, t1):
    """:func:`values_s2` for W stride 1."""
    _tasks(x, out, idx, table, counts, geo, t0, t1, 1, False)


@njit(cache=True, nogil=True)
def indices_sn(x, out, idx, table, counts, geo, t0, t1):
    """:func:`indices_s2` for any W stride (``geo[G_SW]``; a gather per window element)."""
    _tasks(x, out, idx, table, counts, geo, t0, t1, ANY, True)


@njit(cache=True, nogil=True)
def values_sn(x, out, idx, table, counts, geo, t0, t1):
    """:func:`values_s2` for any W stride (``geo[G_SW]``)."""
    _tasks(x, out, idx, table, counts, geo, t0, t1, ANY, False)


def geometry(in_w: int, out_w: int, kw: int, sw: int, pw: int, dw: int) -> np.ndarray:
    """The read-only geometry vector of the kernels (plain Python, once per plan)."""
    lo = min(-(-pw // sw), out_w)
    num = in_w - 1 + pw - (kw - 1) * dw
    hi = max(min(num // sw + 1 if num >= 0 else 0, out_w), lo)
    geo = np.array([in_w, out_w, kw, pw, dw, lo, hi, sw], dtype=np.int64)
    geo.flags.writeable = False
    return geo


def window_table(in5, out5, kp) -> tuple[np.ndarray, np.ndarray]:
    """The window rows of every output row ``t = od * out_h + oh`` (plain NumPy, once
    per plan): ``(table, counts)``, read-only int64.

    ``table[t * per_row + i]`` (``per_row = kd * kh``) is the flat offset in the plane of
    column 0 of the ``i``-th window row inside the input, ``i < counts[t]``, in scan
    order (depth, then height); ``kp`` is the geometry table of
    :mod:`poolkit._kernels.max_pool`.
    """
    (in_d, in_h, in_w), (out_d, out_h) = in5[2:], out5[2:4]
    (kd, kh, _), (sd, sh, _), (pd, ph, _), (dd, dh, _) = kp.tolist()
    z = np.arange(out_d)[:, None] * sd - pd + np.arange(kd) * dd  # (out_d, kd)
    y = np.arange(out_h)[:, None] * sh - ph + np.arange(kh) * dh  # (out_h, kh)
    inside = (((z >= 0) & (z < in_d))[:, None, :, None]
              & ((y >= 0) & (y < in_h))[None, :, None, :]).reshape(out_d * out_h, kd * kh)
    offsets = ((z[:, None, :, None] * in_h + y[None, :, None, :]) * in_w).reshape(inside.shape)
    # the rows inside first, scan order kept (a stable sort of "outside")
    order = np.argsort(~inside, axis=1, kind="stable")
    table = np.where(np.take_along_axis(inside, order, 1),
                     np.take_along_axis(offsets, order, 1), 0).astype(np.int64).reshape(-1)
    counts = inside.sum(axis=1).astype(np.int64)
    table.flags.writeable = False
    counts.flags.writeable = False
    return table, counts
