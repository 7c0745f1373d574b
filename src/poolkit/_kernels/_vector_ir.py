"""Shared pieces of the average pooling vector-IR kernels (:mod:`.avg_rows`, :mod:`.avg_cl`).

One 256-bit vector per step (``<8 x float>`` / ``<4 x double>``; LLVM splits or widens
it to what the CPU has, the results do not change), with plain, masked and selected
loads and stores on a flat array's data pointer.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils

#: Lanes of one vector by dtype (256 bits).
LANES = {types.float32: 8, types.float64: 4}

I64 = ir.IntType(64)
I32 = ir.IntType(32)


def i64(value: int) -> ir.Constant:
    return ir.Constant(I64, value)


def is_vector_array(ty, elem=None) -> bool:
    """A C-contiguous array of a vector dtype (``elem``: that dtype)."""
    return (isinstance(ty, types.Array) and ty.layout == "C" and ty.dtype in LANES
            and (elem is None or ty.dtype == elem))


class Vectors:
    """Vector types, constants and memory operations of dtype ``elem`` in one function."""

    def __init__(self, context, builder, elem) -> None:
        self.builder = builder
        self.lanes = lanes = LANES[elem]
        self.vec = ir.VectorType(context.get_data_type(elem), lanes)
        self.k32 = ir.VectorType(I32, lanes)
        self.align = elem.bitwidth // 8
        self.zeros = ir.Constant(self.vec, [0.0] * lanes)
        self.ones = ir.Constant(self.vec, [1.0] * lanes)
        self.n = i64(lanes)
        self.lane_ids = ir.Constant(self.k32, list(range(lanes)))
        vptr = self.vec.as_pointer()
        mask = ir.VectorType(ir.IntType(1), lanes)
        suffix = f"v{lanes}f{elem.bitwidth}.p0"
        self._mload = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(self.vec, [vptr, I32, mask, self.vec]),
            f"llvm.masked.load.{suffix}")
        self._pvec = ir.VectorType(self.vec.element.as_pointer(), lanes)
        self._gather = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(self.vec, [self._pvec, I32, mask, self.vec]),
            f"llvm.masked.gather.v{lanes}f{elem.bitwidth}.v{lanes}p0")
        self._mstore = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [self.vec, vptr, I32, mask]),
            f"llvm.masked.store.{suffix}")

    def splat(self, value) -> ir.Value:
        """``value`` (an int32 or an element) in every lane."""
        b = self.builder
        ty = self.k32 if value.type == I32 else self.vec
        s = b.insert_element(ir.Constant(ty, None), value, ir.Constant(I32, 0))
        return b.shuffle_vector(s, s, ir.Constant(self.k32, [0] * self.lanes))

    def lanes_between(self, first, low, high) -> ir.Value:
        """Mask of the lanes ``i`` with ``low <= first + i < high`` (int64 arguments,
        compared in int32: rows and channel counts are below 2**31)."""
        b = self.builder
        at = b.add(self.splat(b.trunc(first, I32)), self.lane_ids)
        below = b.icmp_signed("<", at, self.splat(b.trunc(high, I32)))
        if low is None:
            return below
        return b.and_(b.icmp_signed(">=", at, self.splat(b.trunc(low, I32))), below)

    def strided_lanes_between(self, first, step, low, high) -> ir.Value:
        """:meth:`lanes_between` for the lanes' positions ``first + step * i``."""
        b = self.builder
        at = b.add(self.splat(b.trunc(first, I32)),
                   b.mul(self.lane_ids, self.splat(b.trunc(step, I32))))
        return b.and_(b.icmp_signed(">=", at, self.splat(b.trunc(low, I32))),
                      b.icmp_signed("<", at, self.splat(b.trunc(high, I32))))

    def gather(self, data, off, step, mask) -> ir.Value:
        """Lane ``i`` = ``data[off + step * i]`` where ``mask`` is set (not read
        elsewhere: +0.0 there); ``off`` and ``step`` are int64."""
        b = self.builder
        base = b.ptrtoint(b.gep(data, [off]), I64)
        ids = b.sext(self.lane_ids, ir.VectorType(I64, self.lanes))
        steps = b.mul(ids, self._splat64(b.mul(step, i64(self.align))))
        ptrs = b.inttoptr(b.add(self._splat64(base), steps), self._pvec)
        return b.call(self._gather, [ptrs, ir.Constant(I32, self.align), mask, self.zeros])

    def _splat64(self, value) -> ir.Value:
        b = self.builder
        ty = ir.VectorType(I64, self.lanes)
        s = b.insert_element(ir.Constant(ty, None), value, ir.Constant(I32, 0))
        return b.shuffle_vector(s, s, ir.Constant(self.k32, [0] * self.lanes))

    def ptr(self, data, off) -> ir.Value:
        return self.builder.bitcast(self.builder.gep(data, [off]), self.vec.as_pointer())

    def load(self, data, off) -> ir.Value:
        return self.builder.load(self.ptr(data, off), align=self.align)

    def masked_load(self, data, off, mask, passthru) -> ir.Value:
        """Lanes outside ``mask`` are ``passthru`` and are not read."""
        return self.builder.call(self._mload, [self.ptr(data, off), ir.Constant(I32, self.align),
                                               mask, passthru])

    def store(self, value, data, off) -> None:
        self.builder.store(value, self.ptr(data, off), align=self.align)

    def masked_store(self, value, data, off, mask) -> None:
        self.builder.call(self._mstore, [value, self.ptr(data, off),
                                         ir.Constant(I32, self.align), mask])
