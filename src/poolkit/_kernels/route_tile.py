"""Channels-last max backward written directly, in vector IR (numba, cached on disk):
tiles of 2 per axis, and 3x3 windows of stride 2.

When the outputs tile the input in disjoint windows of 2 along every spatial axis (1-D
pairs, 2-D 2x2, 3-D 2x2x2; each input size ``2 * out`` or ``2 * out + 1``: max pooling
with k == s == 2 and no padding, the common downsampling layer), and every index names
a pixel of its own output's tile, each input pixel receives at most one gradient. The
scatter of :mod:`.route` (zero ``dx``, then ``dx[idx] += g`` in output order) then
gives, at every pixel of a tile, ``0.0 + g`` where the index names it and +0.0
elsewhere. These kernels write exactly that, tile by tile: per output pixel and vector
of channels, they load the indices and the gradients once and store the tile's pixels
(a compare and a select each); the pixels no tile covers (an odd last column, row or
depth slice) are zeroed. ``dx`` is written once and never read: no zeroing pass, no
read-modify-write.

Whether the indices are tile-shaped is checked on the way, lane by lane (an index that
matches none of its tile's pixels, or does not fit in int32). A task that finds one
sets ``fail[0]`` and stops, the others stop at their next task, and the caller routes
the whole gradient through the scatter instead, which overwrites all of ``dx`` (and
reports the indices outside the plane). Indices from any source are therefore routed
exactly as the scatter routes them; tile-shaped ones simply take this path.

The same idea carries over to the overlapping windows of max pooling with k = 3, s = 2,
p = 1 (2-D, :func:`k3s2_pixels_range`): each output's own 2x2 block is reached by no
earlier output, so walking the outputs in order, each writes its own block and adds
into the five pixels of its window that earlier outputs own; that is the scatter's
every add, in its order, with the same check and fallback.

float32 and float64 (8 or 4 lanes, 256-bit vectors), C-contiguous ``(N, OD, OH, OW,
C)`` gradients and indices and ``(N, D, H, W, C)`` ``dx`` (lower ranks with unit
leading axes); tasks are ``(n, od, oh)`` output rows, which own disjoint rows of ``dx``.
One compiled driver per rank (``tile1_pixels_range`` ... ``tile3_pixels_range``), so a
call compiles only its own.
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from ._lanes import masked_memory
from ._vector_ir import I32, I64, Vectors, i64, is_vector_array


def _channel_vectors(context, b, vx, ia, ga, o_off, n_chan, body):
    """Walk the channels of one output pixel at flat offset ``o_off`` of ``grad`` (data
    ``ga``) and ``idx`` (data ``ia``), in whole vectors and a masked last one. For each,
    load the int64 indices and the gradients and call ``body(c, mask, ids32, g)`` (``c``:
    the first channel, ``mask``: the lanes below ``n_chan`` or None, ``ids32``: the
    indices as int32), which stores its results and returns the lanes whose index it
    accepted. Returns an i1: every index fitted in int32 and was accepted."""
    lanes = vx.lanes
    ivec = ir.VectorType(I64, lanes)
    bvec = ir.VectorType(ir.IntType(1), lanes)
    miss = cgutils.alloca_once_value(b, ir.Constant(bvec, [0] * lanes))
    load_ids = masked_memory(b.module, "load", ivec)

    def channels(c, mask):
        iptr = b.bitcast(b.gep(ia.data, [b.add(o_off, c)]), ivec.as_pointer())
        if mask is None:
            ids = b.load(iptr, align=8)
            g = vx.load(ga.data, b.add(o_off, c))
        else:
            ids = b.call(load_ids, [iptr, ir.Constant(I32, 8), mask,
                                    ir.Constant(ivec, [-1] * lanes)])
            g = vx.masked_load(ga.data, b.add(o_off, c), mask, vx.zeros)
        ids32 = b.trunc(ids, vx.k32)
        # an index beyond int32 must not pass for its truncation
        ok = b.and_(b.icmp_signed("==", b.sext(ids32, ivec), ids), body(c, mask, ids32, g))
        if mask is not None:
            ok = b.or_(ok, b.not_(mask))
        b.store(b.or_(b.load(miss), b.not_(ok)), miss)

    n_full = b.udiv(n_chan, vx.n)
    with cgutils.for_range(b, n_full) as loop:
        channels(b.mul(loop.index, vx.n), None)
    rest = b.mul(n_full, vx.n)
    with b.if_then(b.icmp_signed("<", rest, n_chan)):
        channels(rest, vx.lanes_between(rest, None, n_chan))
    bits = b.bitcast(b.load(miss), ir.IntType(lanes))
    return b.icmp_signed("==", bits, ir.Constant(ir.IntType(lanes), 0))


def _make_tile_pixel(nd: int):
    """The intrinsic of one output pixel of an ``nd``-D tile (2, 4 or 8 pixels)."""
    # the tile's pixels, in plane-index steps of (depth, row, column)
    steps = [(dz, dy, dx) for dz in range(2 if nd == 3 else 1)
             for dy in range(2 if nd >= 2 else 1) for dx in range(2)]

    @intrinsic
    def tile_pixel(typingctx, dx, grad, idx, o_off, d_off, width, area, base, n_chan):
        """Output pixel at flat offset ``o_off`` of ``grad``/``idx``, whose tile's first
        pixel has plane index ``base`` and flat offset ``d_off`` in ``dx`` (rows of
        ``width`` pixels, depth slices of ``area``, ``n_chan`` channels): writes the
        tile, returns whether every channel's index named one of its pixels."""
        if not (is_vector_array(dx) and is_vector_array(grad, dx.dtype)
                and isinstance(idx, types.Array) and idx.dtype == types.int64):
            return None
        sig = types.boolean(dx, grad, idx, o_off, d_off, width, area, base, n_chan)
        return sig, lambda context, builder, s, args: _tile_codegen(
            context, builder, s, args, steps)

    return tile_pixel


def _tile_codegen(context, builder, s, args, steps):
    b = builder
    da, ga, ia = (context.make_array(s.args[k])(context, b, args[k]) for k in range(3))
    o_off, d_off, width, area, base, n_chan = (
        context.cast(b, args[k], s.args[k], types.int64) for k in range(3, 9))
    vx = Vectors(context, b, s.args[0].dtype)
    # the tile's pixels, relative to its first one: plane index, then dx offset
    pixel = [b.add(b.add(b.mul(i64(dz), area), b.mul(i64(dy), width)), i64(dx))
             for dz, dy, dx in steps]
    rel = [vx.splat(b.trunc(q, I32)) for q in pixel]
    at = [b.add(d_off, b.mul(q, n_chan)) for q in pixel]
    base_v = vx.splat(b.trunc(base, I32))

    def tile(c, mask, ids32, g):
        g = b.fadd(g, vx.zeros)  # 0.0 + g, as the scatter adds (-0.0 -> +0.0)
        pix = b.sub(ids32, base_v)
        named = None
        for q in range(len(steps)):
            m = b.icmp_signed("==", pix, rel[q])
            named = m if named is None else b.or_(named, m)
            value = b.select(m, g, vx.zeros)
            if mask is None:
                vx.store(value, da.data, b.add(at[q], c))
            else:
                vx.masked_store(value, da.data, b.add(at[q], c), mask)
        return named

    return _channel_vectors(context, b, vx, ia, ga, o_off, n_chan, tile)


_tile_pixel_1d, _tile_pixel_2d, _tile_pixel_3d = (_make_tile_pixel(nd) for nd in (1, 2, 3))


@njit(cache=True, nogil=True, inline="always")
def _zero(flat, start, stop):
    zero = flat.dtype.type(0)
    for j in range(start, stop):
        flat[j] = zero


@njit(cache=True, nogil=True, inline="always")
def _tasks(grad, idx, dx, fail, t0, t1, nd):
    """Output rows ``t0 <= task < t1`` (``task = (n * OD + od) * OH + oh``) of the tile
    routing of ``nd``-D tiles (a literal): ``grad``/``idx`` ``(N, OD, OH, OW, C)``,
    ``dx`` ``(N, D, H, W, C)``; an axis the tiles do not split has ``D == OD == 1``
    (``H == OH == 1``)."""
    _, out_d, out_h, out_w, n_chan = grad.shape
    in_d, in_h, in_w = dx.shape[1], dx.shape[2], dx.shape[3]
    tz, ty = (2 if nd == 3 else 1), (2 if nd >= 2 else 1)  # the tile's depth and height
    area, volume = in_h * in_w, in_d * in_h * in_w
    g, i, d = grad.reshape(grad.size), idx.reshape(idx.size), dx.reshape(dx.size)
    for task in range(t0, t1):
        if fail[0]:
            return
        n, od, oh = task // (out_d * out_h), task // out_h % out_d, task % out_h
        first = tz * od * area + ty * oh * in_w  # plane index of the row's first tile
        for ow in range(out_w):
            base = first + 2 * ow
            o_off = (task * out_w + ow) * n_chan
            d_off = (n * volume + base) * n_chan
            if nd == 1:
                ok = _tile_pixel_1d(d, g, i, o_off, d_off, in_w, area, base, n_chan)
            elif nd == 2:
                ok = _tile_pixel_2d(d, g, i, o_off, d_off, in_w, area, base, n_chan)
            else:
                ok = _tile_pixel_3d(d, g, i, o_off, d_off, in_w, area, base, n_chan)
            if not ok:
                fail[0] = 1
                return
        # the pixels no tile covers: an odd last column of the task's rows, an odd last
        # row of its depth slices, an odd last depth slice of the item
        for z in range(tz * od, tz * od + tz):
            for y in range(ty * oh, ty * oh + ty):
                row = n * volume + z * area + y * in_w
                _zero(d, (row + 2 * out_w) * n_chan, (row + in_w) * n_chan)
            if oh == out_h - 1:
                start = n * volume + z * area + ty * out_h * in_w
                _zero(d, start * n_chan, (n * volume + (z + 1) * area) * n_chan)
        if od == out_d - 1 and oh == out_h - 1:
            _zero(d, (n * volume + tz * out_d * area) * n_chan, (n + 1) * volume * n_chan)


@njit(cache=True, nogil=True)
def tile1_pixels_range(grad, idx, dx, fail, t0, t1):
    """1-D tiles (pairs of pixels), ``(N, 1, 1, OW, C)`` views: see :func:`_tasks`; sets
    ``fail[0]`` (and stops) at an index that is not tile-shaped, and stops at the next
    task once another part has set it."""
    _tasks(grad, idx, dx, fail, t0, t1, 1)


@njit(cache=True, nogil=True)
def tile2_pixels_range(grad, idx, dx, fail, t0, t1):
    """:func:`tile1_pixels_range` for 2x2 tiles, ``(N, 1, OH, OW, C)`` views."""
    _tasks(grad, idx, dx, fail, t0, t1, 2)


@njit(cache=True, nogil=True)
def tile3_pixels_range(grad, idx, dx, fail, t0, t1):
    """:func:`tile1_pixels_range` for 2x2x2 tiles, ``(N, OD, OH, OW, C)`` views."""
    _tasks(grad, idx, dx, fail, t0, t1, 3)


# ------------------------------------------------------------------------------------
# overlapping 3x3 windows of stride 2 (k3s2p1), 2-D
# ------------------------------------------------------------------------------------

#: A k3s2p1 window's pixels relative to its center ``(2 oh, 2 ow)``, as (row, column):
#: the output's own 2x2 block, which no earlier output reaches, and the five pixels it
#: shares with the outputs before it (the row above, the column to the left).
_OWN = ((0, 0), (0, 1), (1, 0), (1, 1))
_SHARED = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (1, -1))


def _make_k3s2_pixel(interior: bool):
    """The intrinsic of one output pixel of the k3s2p1 routing; ``interior``: every
    pixel of its window lies inside the input (no checks), else the four flags say
    which of its window's rows and columns do."""

    @intrinsic
    def k3s2_pixel(typingctx, dx, grad, idx, o_off, d_off, width, center, n_chan, up, left,
                   down, right):
        """Output pixel at flat offset ``o_off`` of ``grad``/``idx``, its window centered
        on plane index ``center`` at flat offset ``d_off`` of ``dx``: writes its own
        block, adds into the shared pixels; returns whether every channel's index named
        a pixel of its window inside the input."""
        if not (is_vector_array(dx) and is_vector_array(grad, dx.dtype)
                and isinstance(idx, types.Array) and idx.dtype == types.int64):
            return None
        sig = types.boolean(dx, grad, idx, o_off, d_off, width, center, n_chan, up, left,
                            down, right)
        return sig, lambda context, builder, s, args: _k3s2_codegen(
            context, builder, s, args, interior)

    return k3s2_pixel


def _k3s2_codegen(context, builder, s, args, interior):
    b = builder
    da, ga, ia = (context.make_array(s.args[k])(context, b, args[k]) for k in range(3))
    o_off, d_off, width, center, n_chan = (
        context.cast(b, args[k], s.args[k], types.int64) for k in range(3, 8))
    up, left, down, right = (context.cast(b, args[k], s.args[k], types.boolean)
                             for k in range(8, 12))
    vx = Vectors(context, b, s.args[0].dtype)
    lanes = vx.lanes
    bvec = ir.VectorType(ir.IntType(1), lanes)
    minus_zero = ir.Constant(vx.vec, [-0.0] * lanes)

    def inside(dy, dx_):
        """Does the window pixel (dy, dx_) lie inside the input? (an i1, or None: yes)"""
        if interior:
            return None
        flags = [f for f, need in ((up, dy < 0), (down, dy > 0), (left, dx_ < 0),
                                   (right, dx_ > 0)) if need]
        if not flags:
            return None
        flag = flags[0]
        for f in flags[1:]:
            flag = b.and_(flag, f)
        return flag

    pixels = []
    for dy, dx_ in _OWN + _SHARED:
        rel = b.add(b.mul(i64(dy), width), i64(dx_))
        flag = inside(dy, dx_)
        lane_flag = None if flag is None else b.shuffle_vector(
            b.insert_element(ir.Constant(bvec, None), flag, ir.Constant(I32, 0)),
            ir.Constant(bvec, None), ir.Constant(vx.k32, [0] * lanes))
        pixels.append(((dy, dx_) in _OWN, vx.splat(b.trunc(rel, I32)),
                       b.add(d_off, b.mul(rel, n_chan)), flag, lane_flag))
    center_v = vx.splat(b.trunc(center, I32))

    def window(c, mask, ids32, g):
        first = b.fadd(g, vx.zeros)  # 0.0 + g, the scatter's first add (-0.0 -> +0.0)
        pix = b.sub(ids32, center_v)
        named = ir.Constant(bvec, [0] * lanes)
        for own, rel, at, flag, lane_flag in pixels:
            m = b.icmp_signed("==", pix, rel)
            if lane_flag is not None:
                m = b.and_(m, lane_flag)
            named = b.or_(named, m)

            def write(own=own, m=m, at=at):
                ptr_at = b.add(at, c)
                if own:  # the first gradient this pixel gets, or +0.0
                    value = b.select(m, first, vx.zeros)
                else:  # old + g where named, old + -0.0 (the same bits) elsewhere
                    old = (vx.load(da.data, ptr_at) if mask is None
                           else vx.masked_load(da.data, ptr_at, mask, vx.zeros))
                    value = b.fadd(old, b.select(m, g, minus_zero))
                if mask is None:
                    vx.store(value, da.data, ptr_at)
                else:
                    vx.masked_store(value, da.data, ptr_at, mask)

            if flag is None:
                write()
            else:
                with b.if_then(flag, likely=True):
                    write()
        return b.and_(named, b.icmp_signed(">=", ids32, vx.splat(ir.Constant(I32, 0))))

    return _channel_vectors(context, b, vx, ia, ga, o_off, n_chan, window)


_k3s2_interior, _k3s2_border = _make_k3s2_pixel(True), _make_k3s2_pixel(False)


@njit(cache=True, nogil=True)
def k3s2_pixels_range(grad, idx, dx, fail, t0, t1):
    """Batch items ``t0 <= n < t1`` of the channels-last routing of 3x3 windows of
    stride 2 and padding 1: ``grad``/``idx`` ``(N, OH, OW, C)``, ``dx`` ``(N, H, W, C)``
    with ``H`` = ``2 OH - 1`` or ``2 OH`` (``W`` likewise), any content on entry.

    Output ``(oh, ow)``'s window is rows ``2 oh - 1 .. 2 oh + 1`` and columns ``2 ow - 1
    .. 2 ow + 1``. Its own 2x2 block (rows and columns ``2 oh``, ``2 oh + 1`` and ``2
    ow``, ``2 ow + 1``) is reached by no earlier output, in row-major order, so the
    output writes it (``0.0 + g`` where the index names the pixel, +0.0 elsewhere); to
    the five pixels it shares with earlier outputs it adds ``g`` where named (``-0.0``
    elsewhere, which changes no bits). Walked in output order, that is the scatter's
    every add, in its order; the own blocks cover ``dx``. A task is a whole batch item
    (the adds cross output rows; splitting an item by blocks of channels instead was not
    faster with 2 threads here, docs/speed.md). Sets ``fail[0]`` (and stops) at an index
    outside its own window's pixels inside the input, and stops at the next item once
    another part has set it (the caller then routes through the scatter).
    """
    _, out_h, out_w, n_chan = grad.shape
    in_h, in_w = dx.shape[1], dx.shape[2]
    g, i, d = grad.reshape(grad.size), idx.reshape(idx.size), dx.reshape(dx.size)
    for n in range(t0, t1):
        if fail[0]:
            return
        for oh in range(out_h):
            up, down = oh > 0, 2 * oh + 1 < in_h
            for ow in range(out_w):
                left, right = ow > 0, 2 * ow + 1 < in_w
                center = 2 * oh * in_w + 2 * ow
                o_off = ((n * out_h + oh) * out_w + ow) * n_chan
                d_off = (n * in_h * in_w + center) * n_chan
                if up and down and left and right:
                    ok = _k3s2_interior(d, g, i, o_off, d_off, in_w, center, n_chan, up,
                                        left, down, right)
                else:
                    ok = _k3s2_border(d, g, i, o_off, d_off, in_w, center, n_chan, up, left,
                                      down, right)
                if not ok:
                    fail[0] = 1
                    return
