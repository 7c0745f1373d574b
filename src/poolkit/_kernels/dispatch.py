"""Glue between validated arguments and the compiled max pooling kernels.

Builds the kernels' 5-D views with plain reshapes (inserting unit axes never copies),
allocates outputs in their final layout, and picks the serial kernel for problems too
small to be worth waking the thread team. Arguments are assumed valid here.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np

from .._memo import BoundedCache
from . import LazyModule
from .max_select import chunks as _chunks
from .max_select import forward_runner
from .max_select import run_parallel as _run_parallel

#: Below this many window-element visits a call runs on the calling thread.
SERIAL_WORK = 1 << 15

#: Channels per task in the channels-last backward (a 64-byte line of float32).
_CL_BLOCK = 16

_DUMMY_IDX5 = np.zeros((1, 1, 1, 1, 1), dtype=np.int64)

_LOWEST = {
    np.dtype(np.float16): np.uint16(0xFC00),  # -inf as float16 bits
    np.dtype(np.float32): np.float32(-np.inf),
    np.dtype(np.float64): np.float64(-np.inf),
    np.dtype(np.int8): np.int8(np.iinfo(np.int8).min),
    np.dtype(np.int16): np.int16(np.iinfo(np.int16).min),
    np.dtype(np.int32): np.int32(np.iinfo(np.int32).min),
    np.dtype(np.int64): np.int64(np.iinfo(np.int64).min),
    np.dtype(np.uint8): np.uint8(0),
}

_F16 = np.dtype(np.float16)
_U16 = np.dtype(np.uint16)


@lru_cache(maxsize=256)
def kernel_table(
    kernel: tuple[int, ...], stride: tuple[int, ...], pad: tuple[int, ...], dil: tuple[int, ...]
) -> np.ndarray:
    """Read-only ``(4, 3)`` int64 geometry table for the 3-D kernels (cached)."""
    lead = 3 - len(kernel)
    table = np.array(
        [
            (1,) * lead + kernel,
            (1,) * lead + stride,
            (0,) * lead + pad,
            (1,) * lead + dil,
        ],
        dtype=np.int64,
    )
    table.flags.writeable = False
    return table


#: The compiled max pooling kernels (numba is imported by the first call).
_k: Any = LazyModule("max_pool")


def _plan_is_serial(serial: bool) -> Any:
    """The plan's serial/parallel choice (made when planned) as an ``is_serial(work)``."""
    return lambda work: serial


class ForwardPlan:
    """Everything about a forward call that depends only on shapes, dtype and options.

    Built once per (options, input shape, dtype) and reused, so a repeated call costs
    two allocations, a reshape and the kernel call.
    """

    __slots__ = (
        "fill",
        "half",
        "in5",
        "kp",
        "n_tasks",
        "nhwc",
        "out5",
        "out_dtype",
        "run",
        "serial",
        "user_out",
        "want",
    )

    def __init__(
        self,
        shape: tuple[int, ...],
        dtype: np.dtype,
        nd: int,
        batched: bool,
        channels_last: bool,
        out_size: tuple[int, ...],
        kp: np.ndarray,
        window: int,
        want: bool,
    ) -> None:
        lead = (1,) * (3 - nd)
        if channels_last:
            n_batch = shape[0] if batched else 1
            self.in5 = (n_batch,) + lead + shape[-nd - 1 : -1] + (shape[-1],)
            self.out5 = (n_batch,) + lead + out_size + (shape[-1],)
            self.user_out = (shape[:1] if batched else ()) + out_size + (shape[-1],)
        else:
            n_batch, n_chan = (shape[0], shape[1]) if batched else (1, shape[0])
            self.in5 = (n_batch, n_chan) + lead + shape[-nd:]
            self.out5 = (n_batch, n_chan) + lead + out_size
            self.user_out = shape[:-nd] + out_size
        o = self.out5
        # one task per output row: (n, c, od, oh) channels first, (n, od, oh) channels last
        self.n_tasks = o[0] * o[1] * o[2] * (1 if channels_last else o[3])
        self.serial = math.prod(o) * window < SERIAL_WORK
        self.nhwc = channels_last
        self.out_dtype = dtype
        self.half = dtype == _F16
        self.fill = _LOWEST[dtype]
        self.kp = kp
        self.want = want
        # the one kernel variant this plan runs (see max_select: only it gets compiled)
        self.run = forward_runner(
            self.in5, self.out5, dtype, kp, self.fill, want, channels_last,
            math.prod(o) * window, _plan_is_serial(self.serial), self.n_tasks,
        )

    def __call__(self, arr: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Run the forward on ``arr`` (shape and dtype as planned)."""
        out = np.empty(self.out5, self.out_dtype)
        want = self.want
        idx = np.empty(self.out5, np.int64) if want else _DUMMY_IDX5
        x5 = arr.reshape(self.in5)
        o5 = out
        if self.half:
            x5 = x5.view(_U16)
            o5 = out.view(_U16)
        self.run(x5, o5, idx)
        user_out = self.user_out
        return out.reshape(user_out), (idx.reshape(user_out) if want else None)


#: Forward plans by (options, input shape, dtype, want indices).
forward_plans = BoundedCache(256)


def max_pool_backward(
    grad: np.ndarray,
    idx: np.ndarray,
    shape: tuple[int, ...],
    nd: int,
    batched: bool,
    channels_last: bool,
) -> tuple[np.ndarray, bool]:
    """Scatter ``grad`` at ``idx`` into a new array of ``shape``; returns ``(dx, ok)``.

    ``ok`` is False when some index is outside its plane (and not -1).
    """
    n_batch = shape[0] if batched else 1
    dtype = grad.dtype
    dx = np.zeros(shape, dtype=dtype)
    if channels_last:
        n_chan = shape[-1]
        plane = int(np.prod(shape[-nd - 1 : -1]))
        n_out = grad.size // (n_batch * n_chan) if grad.size else 0
        g = grad.reshape(n_batch, n_out, n_chan)
        i = idx.reshape(n_batch, n_out, n_chan)
        d = dx.reshape(n_batch, plane, n_chan)
        n_tasks = n_batch * ((n_chan + _CL_BLOCK - 1) // _CL_BLOCK)
    else:
        n_chan = shape[1] if batched else shape[0]
        plane = int(np.prod(shape[-nd:]))
        n_out = grad.size // (n_batch * n_chan) if grad.size else 0
        g = grad.reshape(n_batch * n_chan, n_out)
        i = idx.reshape(n_batch * n_chan, n_out)
        d = dx.reshape(n_batch * n_chan, plane)
        n_tasks = n_batch * n_chan
    if dtype == _F16:
        g = g.view(_U16)
        d = d.view(_U16)
    bad = np.zeros(max(n_tasks, 1), dtype=np.uint8)
    chunks = 1 if dx.size + grad.size < SERIAL_WORK else _chunks(n_tasks)
    if channels_last:
        if chunks == 1:
            _k.backward_nhwc_range(g, i, d, bad, _CL_BLOCK, 0, n_tasks)
        else:
            _run_parallel(_k.backward_nhwc_par, g, i, d, bad, _CL_BLOCK, chunks)
    elif chunks == 1:
        _k.backward_nchw_range(g, i, d, bad, 0, n_tasks)
    else:
        _run_parallel(_k.backward_nchw_par, g, i, d, bad, chunks)
    return dx, not bad.any()
