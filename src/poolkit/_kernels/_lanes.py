"""Vector IR helpers of the compiled kernels: plane sums in a fixed 16-lane order, and
the max scan step (the end of this module).

numba runs LLVM's loop vectorizer but not its SLP vectorizer, so a sum whose order is
fixed (no fast-math reassociation) compiles to a chain of scalar adds. The intrinsic
:func:`lane_total` emits the vector IR itself: ``<16 x T>`` loads, lane-wise IEEE adds
and a shuffle tree. The order is part of the IR, not of the machine: LLVM splits or
widens the vectors to what the CPU has, and every lane still adds the same values in
the same order, so results are bit-identical on every machine.

Lane order of a plane ``row`` of ``n`` elements, zero-padded to ``16 m`` elements
(``m = ceil(n / 16)``), in the opmath type (float16 widens to float32 exactly)::

    lane[k] = ((0 + row[k]) + row[16 + k]) + ... + row[16 (m - 1) + k]   (k < 16)
    lane[k] += lane[k + 8]    (k < 8)
    lane[k] += lane[k + 4]    (k < 4)
    lane[k] += lane[k + 2]    (k < 2)
    total   = lane[0] + lane[1]

A lane that starts at +0.0 is never -0.0 afterwards, so the padding zeros change
nothing (``x + 0.0 == x`` for every ``x`` but -0.0; NaN and inf stay).
``poolkit._reference.plane_mean`` spells out the same order in plain Python.
"""

from __future__ import annotations

import llvmlite.binding as _ll
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core import config as _config
from numba.extending import intrinsic

from ._scalar import is_half_bits

#: Lanes of the sum; part of the summation order, so of the results.
LANES = 16

#: Planes of up to this many vectors are summed in straight-line code.
_SHORT = 4


def _i32(value: int) -> ir.Constant:
    return ir.Constant(ir.IntType(32), value)


def _splat(value: int | float, vec: ir.VectorType) -> ir.Constant:
    return ir.Constant(vec, [value] * vec.count)


def _widen_half_bits(builder, bits):
    """``<16 x i16>`` float16 bits -> ``<16 x float>``, exactly, in integer ops.

    LLVM's ``fpext half`` needs F16C; without it LLVM calls a runtime helper that a
    numba process does not have, so the widening is spelled out: normal numbers rebias
    the exponent, inf/NaN keep their payload, zeros and subnormals are ``m * 2**-24``
    (computed on normal floats, so flush-to-zero modes cannot touch it)."""
    i32 = ir.VectorType(ir.IntType(32), LANES)
    f32 = ir.VectorType(ir.FloatType(), LANES)
    h = builder.zext(bits, i32)
    sign = builder.shl(builder.and_(h, _splat(0x8000, i32)), _splat(16, i32))
    exponent = builder.and_(builder.lshr(h, _splat(10, i32)), _splat(0x1F, i32))
    mantissa = builder.and_(h, _splat(0x3FF, i32))
    shifted = builder.shl(mantissa, _splat(13, i32))
    normal = builder.or_(
        builder.shl(builder.add(exponent, _splat(112, i32)), _splat(23, i32)), shifted
    )
    special = builder.or_(_splat(0x7F800000, i32), shifted)
    tiny = builder.bitcast(
        builder.fmul(builder.sitofp(mantissa, f32), _splat(2.0**-24, f32)), i32
    )
    magnitude = builder.select(
        builder.icmp_unsigned("==", exponent, _splat(0, i32)),
        tiny,
        builder.select(builder.icmp_unsigned("==", exponent, _splat(0x1F, i32)), special,
                       normal),
    )
    return builder.bitcast(builder.or_(magnitude, sign), f32)


@intrinsic
def lane_total(typingctx, row, size):
    """Opmath lane-order total of ``row[:size]``, except that a zero total may come
    back as -0.0: ``lane_total(row, size) + 0.0`` is the lane-order total exactly.

    (The lanes start from the first vector instead of +0.0, which differs only in the
    sign of zeros and takes one add off every plane's dependency chain; the caller's
    ``+ 0.0`` sits in its vectorised division loop.) ``row`` is a 1-D C-contiguous
    float32 or float64 array, or float16 bits (uint16), with ``size >= 1`` elements.
    """
    if not (
        isinstance(row, types.Array) and row.ndim == 1 and row.layout == "C"
        and (is_half_bits(row.dtype) or isinstance(row.dtype, types.Float))
        and isinstance(size, types.Integer)
    ):
        return None
    elem = row.dtype
    acc_type = types.float64 if elem == types.float64 else types.float32
    width = elem.bitwidth
    masked_load_name = f"llvm.masked.load.v{LANES}{'i' if is_half_bits(elem) else 'f'}{width}.p0"

    def codegen(context, builder, signature, args):
        row_type, size_type = signature.args
        array = context.make_array(row_type)(context, builder, args[0])
        intp = context.get_value_type(types.intp)
        size_i = context.cast(builder, args[1], size_type, types.intp)
        in_vec = ir.VectorType(context.get_data_type(elem), LANES)
        acc_vec = ir.VectorType(context.get_value_type(acc_type), LANES)
        lanes_i = ir.Constant(intp, LANES)
        n_vec = builder.udiv(builder.add(size_i, ir.Constant(intp, LANES - 1)), lanes_i)
        last = builder.sub(n_vec, ir.Constant(intp, 1))
        # the padded last vector: one masked load, zeros past the end of the row
        in_last = builder.sub(size_i, builder.mul(last, lanes_i))
        spread = builder.insert_element(ir.Constant(ir.VectorType(intp, LANES), None),
                                        in_last, _i32(0))
        spread = builder.shuffle_vector(spread, spread, _splat(0, ir.VectorType(ir.IntType(32),
                                                                                 LANES)))
        mask = builder.icmp_unsigned("<", ir.Constant(ir.VectorType(intp, LANES),
                                                      list(range(LANES))), spread)
        masked_load = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(in_vec, [in_vec.as_pointer(), ir.IntType(32),
                                     ir.VectorType(ir.IntType(1), LANES), in_vec]),
            masked_load_name,
        )

        def widen(values):
            return _widen_half_bits(builder, values) if is_half_bits(elem) else values

        def pointer(index):
            return builder.bitcast(builder.gep(array.data, [builder.mul(index, lanes_i)]),
                                   in_vec.as_pointer())

        def load(index):
            return widen(builder.load(pointer(index), align=width // 8))

        def load_last():
            return widen(builder.call(masked_load, [pointer(last), _i32(width // 8), mask,
                                                    ir.Constant(in_vec, None)]))

        lanes = cgutils.alloca_once(builder, acc_vec)
        is_short = builder.icmp_unsigned("<=", n_vec, ir.Constant(intp, _SHORT))
        with builder.if_else(is_short) as (short, long_):
            with short:  # straight-line code per vector count: no loop per plane
                done = builder.append_basic_block("lanes.short.done")
                switch = builder.switch(n_vec, done)
                for count in range(1, _SHORT + 1):
                    case = builder.append_basic_block(f"lanes.short.{count}")
                    switch.add_case(ir.Constant(intp, count), case)
                    builder.position_at_end(case)
                    acc = load(ir.Constant(intp, 0)) if count > 1 else None
                    for v in range(1, count - 1):
                        acc = builder.fadd(acc, load(ir.Constant(intp, v)))
                    builder.store(load_last() if acc is None else builder.fadd(acc, load_last()),
                                  lanes)
                    builder.branch(done)
                builder.position_at_end(done)
            with long_:
                builder.store(load(ir.Constant(intp, 0)), lanes)
                with cgutils.for_range(builder, builder.sub(last, ir.Constant(intp, 1))) as loop:
                    index = builder.add(loop.index, ir.Constant(intp, 1))
                    builder.store(builder.fadd(builder.load(lanes), load(index)), lanes)
                builder.store(builder.fadd(builder.load(lanes), load_last()), lanes)
        acc = builder.load(lanes)
        lane_count = LANES
        while lane_count > 1:  # lane[k] += lane[k + lane_count / 2]
            half = lane_count // 2
            mask_type = ir.VectorType(ir.IntType(32), half)
            low = builder.shuffle_vector(acc, acc, ir.Constant(mask_type, list(range(half))))
            high = builder.shuffle_vector(
                acc, acc, ir.Constant(mask_type, list(range(half, lane_count)))
            )
            acc = builder.fadd(low, high)
            lane_count = half
        return builder.extract_element(acc, _i32(0))

    return acc_type(row, size), codegen


# ------------------------------------------------------------------ the max scan step
# Shared by the max pooling kernels in vector IR (max_scan, max_cl; X86_MAX also by
# max_rows).

#: x86 with AVX: the stride-free part of a max step is one ``vmaxps`` (LLVM would fold
#: the two selects into one compare-or-blend chain otherwise).
X86_MAX = (
    _config.CPU_NAME in (None, "host") and not _config.CPU_FEATURES
    and "+avx" in _ll.get_host_cpu_features().flatten().split(",")
)


def scan_lanes(elem) -> int:
    """Lanes of a max kernel's vectors for the numba element type ``elem`` (256 bits for
    32- and 64-bit elements; 8 lanes of narrower integers)."""
    return 4 if elem.bitwidth == 64 else 8


def scan_dtype_ok(elem) -> bool:
    """Can the vector max kernels scan this element type (floats, integers, float16
    bits)?"""
    return isinstance(elem, (types.Float, types.Integer)) and elem.bitwidth in (8, 16, 32, 64)


def lowest(elem) -> float | int:
    """What an empty max window yields, in kernel form (as :func:`poolkit._engine.lowest`):
    -inf, the bits of float16 -inf, or the integer minimum."""
    if isinstance(elem, types.Float):
        return float("-inf")
    if is_half_bits(elem):
        return 0xFC00
    return -(1 << (elem.bitwidth - 1)) if elem.signed else 0


def splat(builder, value, count: int):
    """``<count x T>`` with every lane ``value``."""
    vty = ir.VectorType(value.type, count)
    s = builder.insert_element(ir.Constant(vty, None), value, _i32(0))
    return builder.shuffle_vector(s, s, ir.Constant(ir.VectorType(ir.IntType(32), count),
                                                    [0] * count))


def _vector_suffix(vty: ir.VectorType) -> str:
    """The overload suffix of a vector type in an intrinsic's name (``v8f32``, ``v8i16``)."""
    el = vty.element
    if isinstance(el, ir.IntType):
        return f"v{vty.count}i{el.width}"
    return f"v{vty.count}f{32 if isinstance(el, ir.FloatType) else 64}"


def masked_memory(module, name: str, vty: ir.VectorType):
    """The ``llvm.masked.load`` (``name="load"``) or ``llvm.masked.store`` intrinsic for
    vectors of type ``vty``."""
    bty = ir.VectorType(ir.IntType(1), vty.count)
    if name == "load":
        fty = ir.FunctionType(vty, [vty.as_pointer(), ir.IntType(32), bty, vty])
    else:
        fty = ir.FunctionType(ir.VoidType(), [vty, vty.as_pointer(), ir.IntType(32), bty])
    return cgutils.get_or_insert_function(
        module, fty, f"llvm.masked.{name}.{_vector_suffix(vty)}.p0")


def masked_gather(module, vty: ir.VectorType):
    """The ``llvm.masked.gather`` intrinsic: ``vty`` lanes from a vector of pointers,
    ``(pointers, align, mask, passthru)``."""
    n = vty.count
    pty = ir.VectorType(vty.element.as_pointer(), n)
    fty = ir.FunctionType(vty, [pty, ir.IntType(32), ir.VectorType(ir.IntType(1), n), vty])
    return cgutils.get_or_insert_function(
        module, fty, f"llvm.masked.gather.{_vector_suffix(vty)}.v{n}p0")


def _half_key(builder, v):
    """float16 bits -> int32 ordering key, lane-wise (:func:`poolkit._kernels._scalar.
    order_key`: NaN 0x10000 above everything, both zeros 0x8000)."""
    n = v.type.count

    def k(value):
        return splat(builder, _i32(value), n)

    b = builder.zext(v, ir.VectorType(ir.IntType(32), n))
    mag = builder.and_(b, k(0x7FFF))
    neg = builder.icmp_unsigned("!=", builder.and_(b, k(0x8000)), k(0))
    key = builder.select(neg, builder.sub(k(0xFFFF), b), builder.or_(b, k(0x8000)))
    key = builder.select(builder.icmp_unsigned("==", mag, k(0)), k(0x8000), key)
    return builder.select(builder.icmp_unsigned(">", mag, k(0x7C00)), k(0x10000), key)


def scan_wins(builder, elem, v, m):
    """Lanes where ``v`` replaces the running maximum ``m`` in a max scan: greater in the
    dtype's order, or NaN (docs/semantics.md §4)."""
    if isinstance(elem, types.Float):
        return builder.or_(builder.fcmp_ordered(">", v, m), builder.fcmp_unordered("uno", v, v))
    if is_half_bits(elem):
        kv = _half_key(builder, v)
        nan = builder.icmp_signed("==", kv, splat(builder, _i32(0x10000), v.type.count))
        return builder.or_(builder.icmp_signed(">", kv, _half_key(builder, m)), nan)
    if elem.signed:
        return builder.icmp_signed(">", v, m)
    return builder.icmp_unsigned(">", v, m)


# ------------------------------------------------------------------ streamed stores
# Shared by the forward vector kernels (max_rows, max_cl, avg_rows, avg_cl): every call
# prefetches, a call far larger than the cache also stores past it.

#: How far ahead of its loads a vector kernel prefetches its input. Every call prefetches:
#: a prefetch evicts nothing, and it helps well below the cache's size on the project's
#: VM (channels-last (64,32,28,28) k2s2 max with indices, 11 MB: 1.6-2.1x torch
#: channels_last with it, 1.24-1.29x without; docs/speed.md, "Prefetching every call").
PREFETCH_BYTES = 32 << 10


def streaming_flag(builder, stream):
    """A kernel's ``stream`` argument (an int64 value) as an i1: store past the cache."""
    return builder.icmp_signed("!=", stream, ir.Constant(ir.IntType(64), 0))


def prefetch_ahead(builder, data, start, n_elements: int, align: int):
    """Prefetch the lines of ``n_elements`` elements of ``align`` bytes that begin
    :data:`PREFETCH_BYTES` past element ``start`` of ``data``: the lines the loads at
    ``start`` reach a little later (one prefetch per cache line)."""
    i64 = ir.IntType(64)
    ahead = builder.add(start, ir.Constant(i64, PREFETCH_BYTES // align))
    for j in range(0, n_elements, 64 // align):
        prefetch(builder, builder.gep(data, [builder.add(ahead, ir.Constant(i64, j))]))


def prefetch(builder, pointer):
    """Hint that the line at ``pointer`` is read soon (``llvm.prefetch``: never faults,
    whatever the address, and changes no result)."""
    i8p = ir.IntType(8).as_pointer()
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(ir.VoidType(), [i8p, ir.IntType(32), ir.IntType(32),
                                                        ir.IntType(32)]), "llvm.prefetch.p0")
    # read, keep in all cache levels, data cache
    builder.call(fn, [builder.bitcast(pointer, i8p), _i32(0), _i32(3), _i32(1)])


def stream_store(builder, value, pointer, align: int, streaming):
    """Store the vector ``value`` at ``pointer``: where ``streaming`` (an i1) is set,
    ``value`` has 256 bits or more and ``pointer`` is 32-byte aligned, without reading
    its line first (a non-temporal store); else an ordinary store (alignment ``align``).

    An ordinary store reads the line it writes into the cache first (the read for
    ownership), so an output far larger than the cache costs its bytes twice. The
    non-temporal stores are weakly ordered: the kernel ends with :func:`store_fence`."""
    vty = value.type
    element_bits = vty.element.width if isinstance(vty.element, ir.IntType) else (
        32 if isinstance(vty.element, ir.FloatType) else 64)
    if vty.count * element_bits < 256:  # part of a line: the write combining gains nothing
        builder.store(value, pointer, align=align)
        return
    i64 = ir.IntType(64)
    aligned = builder.icmp_unsigned(
        "==", builder.and_(builder.ptrtoint(pointer, i64), ir.Constant(i64, 31)),
        ir.Constant(i64, 0))
    with builder.if_else(builder.and_(streaming, aligned)) as (whole, part):
        with whole:
            store = builder.store(value, pointer, align=32)
            store.set_metadata("nontemporal",
                               builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)]))
        with part:
            builder.store(value, pointer, align=align)


def store_fence(builder, streaming=None):
    """Order the non-temporal stores before every later memory operation (a full fence:
    on x86 ``mfence``, which also drains the write-combining buffers); where
    ``streaming`` (an i1) is given, only if it is set."""
    if streaming is None:
        builder.fence("seq_cst")
        return
    with builder.if_then(streaming):
        builder.fence("seq_cst")


@intrinsic
def streamed_stores_done(typingctx):
    """:func:`store_fence`, called from a kernel in Python at the end of a streaming call."""

    def codegen(context, builder, sig, args):
        store_fence(builder)
        return context.get_dummy_value()

    return types.none(), codegen
