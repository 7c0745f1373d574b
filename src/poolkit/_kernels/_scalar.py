"""Scalar helpers shared by the compiled kernels.

numba has no float16 on the CPU, so float16 arrays travel through the kernels as their
``uint16`` bit patterns (poolkit never accepts real uint16 data). These overloads give
every kernel one spelling for "ordering key", "is NaN" and "accumulate" whatever the
dtype, and the float16 versions reproduce IEEE half behaviour exactly.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

_HALF_NAN_KEY = 0x10000  # above every non-NaN key: nothing strictly beats a NaN


def is_half_bits(ty) -> bool:
    """Is the numba type ``ty`` uint16: float16 travelling as its bits?"""
    return isinstance(ty, types.Integer) and ty.bitwidth == 16 and not ty.signed


def compiled_only(name: str):
    """A Python stand-in, named ``name``, for a function that exists only in compiled
    code: an ``@overload`` of it gives the implementation; called from Python it raises."""

    def stub(*args):  # pragma: no cover - replaced by the overload in compiled code
        raise NotImplementedError(f"{name} runs only inside compiled kernels")

    stub.__name__ = stub.__qualname__ = name
    return stub


order_key = compiled_only("order_key")
is_nan = compiled_only("is_nan")
accumulate = compiled_only("accumulate")


@overload(order_key, inline="always")
def _order_key(v):
    """Map a value to a key whose ``>`` is the value's ``>`` (float16: on its bits)."""
    if is_half_bits(v):

        def impl(v):
            b = np.int32(v)
            mag = b & 0x7FFF
            if mag > 0x7C00:
                return np.int32(_HALF_NAN_KEY)
            if mag == 0:  # +0 and -0 compare equal
                return np.int32(0x8000)
            if b & 0x8000:
                return np.int32(0xFFFF - b)
            return np.int32(b | 0x8000)

        return impl
    return lambda v: v


@overload(is_nan, inline="always")
def _is_nan(v):
    if is_half_bits(v):
        return lambda v: (np.int32(v) & 0x7FFF) > 0x7C00
    if isinstance(v, types.Float):
        return lambda v: v != v
    return lambda v: False


@njit(inline="always")
def unsigned(i):
    """Unsigned index: numba then skips its negative-index wraparound, so loops vectorize."""
    return np.uint64(i)


@njit(cache=True)
def half_to_float(h):
    """float16 bits -> float32 value (exact)."""
    b = np.int32(h)
    sign = -1.0 if b & 0x8000 else 1.0
    exp = (b >> 10) & 0x1F
    man = b & 0x3FF
    if exp == 0:
        val = man * 2.0**-24
    elif exp == 31:
        val = math.inf if man == 0 else math.nan
    else:
        val = (1.0 + man / 1024.0) * 2.0 ** (exp - 15)
    return np.float32(sign * val)


@njit(cache=True)
def float_to_half(f):
    """float32 value -> float16 bits, round half to even (as NumPy and PyTorch)."""
    a = float(f)
    if a != a:
        return np.uint16(0x7E00)
    sign = 0x8000 if (a < 0.0 or (a == 0.0 and math.copysign(1.0, a) < 0.0)) else 0
    a = abs(a)
    if a >= 65520.0:
        return np.uint16(sign | 0x7C00)
    if a < 2.0**-14:  # subnormal (or rounds up to the smallest normal: bits stay continuous)
        return np.uint16(sign | int(np.rint(a * 2.0**24)))
    _, e = math.frexp(a)  # a = m * 2**e with 0.5 <= m < 1
    exp = e - 1
    r = int(np.rint(a * 2.0 ** (10 - exp)))  # in [1024, 2048]
    if r == 2048:
        r = 1024
        exp += 1
    if exp + 15 >= 31:
        return np.uint16(sign | 0x7C00)
    return np.uint16(sign | ((exp + 15) << 10) | (r - 1024))


@overload(accumulate, inline="always")
def _accumulate(acc, v):
    """``acc + v`` in the array's own precision (float16: rounded after every add)."""
    if is_half_bits(acc):
        return lambda acc, v: float_to_half(half_to_float(acc) + half_to_float(v))
    return lambda acc, v: acc + v
