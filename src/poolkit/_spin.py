"""A short busy wait that runs without the GIL, for :mod:`poolkit._threads`.

Waking a sleeping thread costs tens of microseconds (a futex wake, and on a virtual
machine the wake of an idle virtual CPU), as long as a cache-resident pooling call
takes. So the pool's threads first watch a flag for a moment (:func:`spin_until`) and
only then sleep on a lock, as OpenMP runtimes do. The flag is a hint only: the locks
carry the hand-over, so a stale read can only make a wait longer, never wrong.

The load is atomic (acquire) so that LLVM cannot hoist it out of the loop. Each round
then calls ``sched_yield`` (POSIX; ``pause`` elsewhere): on an idle core it returns at
once, on a busy one it hands the core to whatever else wants it, so a spinning thread
never starves the calling thread or another process of a machine that is fully loaded.
"""

from __future__ import annotations

import os
import platform
import time

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

_POSIX = os.name == "posix"
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


@intrinsic
def _load_acquire(typingctx, flags, i):
    """``flags[i]`` (an int64 array) as an atomic acquire load."""
    sig = types.int64(flags, i)

    def codegen(context, builder, signature, args):
        ty = signature.args[0]
        array = context.make_array(ty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, ty, array, [args[1]])
        return builder.load_atomic(ptr, ordering="acquire", align=8)

    return sig, codegen


@intrinsic
def _relax(typingctx):
    """Give the core away if something else wants it (``sched_yield``; ``pause`` on x86
    without POSIX; nothing elsewhere)."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        if _POSIX:
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.IntType(32), []), "sched_yield")
            builder.call(fn, [])
        elif _X86:
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause")
            builder.call(fn, [])
        return context.get_dummy_value()

    return sig, codegen


@njit(nogil=True, cache=True)
def spin_until(flags, i, value, rounds):  # pragma: no cover - compiled
    """Watch ``flags[i]`` for up to ``rounds`` rounds; True once it equals ``value``."""
    for _ in range(rounds):
        if _load_acquire(flags, i) == value:
            return True
        _relax()
    return _load_acquire(flags, i) == value


def rounds_per_second() -> float:
    """How many :func:`spin_until` rounds this CPU runs per second (measured once)."""
    flags = np.zeros(1, np.int64)
    spin_until(flags, 0, 1, 1)  # compile (or load from the cache) before timing
    rounds, best = 20_000, float("inf")
    for _ in range(3):
        t = time.perf_counter()
        spin_until(flags, 0, 1, rounds)
        best = min(best, time.perf_counter() - t)
    return rounds / max(best, 1e-7)
