"""A vector sum in a fixed 16-lane order, written as explicit LLVM IR.

numba runs LLVM's loop vectorizer but not its SLP vectorizer, so a sum whose order is
fixed (no fast-math reassociation) compiles to a chain of scalar adds. The intrinsic
:func:`lane_sum` emits the vector IR itself: ``<16 x T>`` loads, lane-wise IEEE adds
and a shuffle tree. The order is part of the IR, not of the machine: LLVM splits or
widens the vectors to what the CPU has, and every lane still adds the same values in
the same order, so the result is bit-identical on every machine.

Lane order of ``row[start : start + 16 * n_vectors]``, in the opmath type (float16
bits are widened to float32 exactly)::

    lane[k] = ((0 + row[start + k]) + row[start + 16 + k]) + ...   (k < 16)
    lane[k] += lane[k + 8]    (k < 8)
    lane[k] += lane[k + 4]    (k < 4)
    lane[k] += lane[k + 2]    (k < 2)
    result  = lane[0] + lane[1]

``poolkit._reference.plane_mean`` spells out the same order in plain Python.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

#: Lanes of :func:`lane_sum`; part of the summation order, so of the results.
LANES = 16


def _is_half_bits(dtype: types.Type) -> bool:
    return isinstance(dtype, types.Integer) and dtype.bitwidth == 16 and not dtype.signed


def _widen_half_bits(builder, bits):
    """``<16 x i16>`` float16 bits -> ``<16 x float>``, exactly, in integer ops.

    LLVM's ``fpext half`` needs F16C; without it LLVM calls a runtime helper that a
    numba process does not have, so the widening is spelled out: normal numbers rebias
    the exponent, inf/NaN keep their payload, zeros and subnormals are ``m * 2**-24``
    (computed on normal floats, so flush-to-zero modes cannot touch it)."""
    i32 = ir.VectorType(ir.IntType(32), LANES)
    f32 = ir.VectorType(ir.FloatType(), LANES)

    def const(value, vec=i32):
        return ir.Constant(vec, [value] * LANES)

    h = builder.zext(bits, i32)
    sign = builder.shl(builder.and_(h, const(0x8000)), const(16))
    exponent = builder.and_(builder.lshr(h, const(10)), const(0x1F))
    mantissa = builder.and_(h, const(0x3FF))
    shifted = builder.shl(mantissa, const(13))
    normal = builder.or_(builder.shl(builder.add(exponent, const(112)), const(23)), shifted)
    special = builder.or_(const(0x7F800000), shifted)
    tiny = builder.bitcast(
        builder.fmul(builder.sitofp(mantissa, f32), const(2.0**-24, f32)), i32
    )
    magnitude = builder.select(
        builder.icmp_unsigned("==", exponent, const(0)),
        tiny,
        builder.select(builder.icmp_unsigned("==", exponent, const(0x1F)), special, normal),
    )
    return builder.bitcast(builder.or_(magnitude, sign), f32)


@intrinsic
def lane_sum(typingctx, row, start, n_vectors):
    """Opmath sum of ``row[start : start + 16 * n_vectors]`` in lane order.

    ``row`` is a 1-D C-contiguous float32 or float64 array, or float16 bits (uint16);
    the caller guarantees that the range is in bounds.
    """
    if not (
        isinstance(row, types.Array) and row.ndim == 1 and row.layout == "C"
        and (_is_half_bits(row.dtype) or isinstance(row.dtype, types.Float))
        and isinstance(start, types.Integer) and isinstance(n_vectors, types.Integer)
    ):
        return None
    elem = row.dtype
    acc_type = types.float64 if elem == types.float64 else types.float32

    def codegen(context, builder, signature, args):
        row_type, start_type, count_type = signature.args
        array = context.make_array(row_type)(context, builder, args[0])
        start_i = context.cast(builder, args[1], start_type, types.intp)
        count_i = context.cast(builder, args[2], count_type, types.intp)
        in_vec = ir.VectorType(context.get_data_type(elem), LANES)
        acc_vec = ir.VectorType(context.get_value_type(acc_type), LANES)
        lanes = cgutils.alloca_once_value(builder, ir.Constant(acc_vec, None))  # +0.0
        base = builder.gep(array.data, [start_i])
        with cgutils.for_range(builder, count_i) as loop:
            offset = builder.mul(loop.index, ir.Constant(loop.index.type, LANES))
            ptr = builder.bitcast(builder.gep(base, [offset]), in_vec.as_pointer())
            values = builder.load(ptr, align=elem.bitwidth // 8)
            if _is_half_bits(elem):
                values = _widen_half_bits(builder, values)
            builder.store(builder.fadd(builder.load(lanes), values), lanes)
        acc = builder.load(lanes)
        width = LANES
        while width > 1:  # lane[k] += lane[k + width / 2]
            half = width // 2
            mask_type = ir.VectorType(ir.IntType(32), half)
            low = builder.shuffle_vector(acc, acc, ir.Constant(mask_type, list(range(half))))
            high = builder.shuffle_vector(
                acc, acc, ir.Constant(mask_type, list(range(half, width)))
            )
            acc = builder.fadd(low, high)
            width = half
        return builder.extract_element(acc, ir.Constant(ir.IntType(32), 0))

    return acc_type(row, start, n_vectors), codegen
