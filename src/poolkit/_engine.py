"""The execution engine every pooling operation runs through.

It owns what sits between a resolved :class:`~poolkit._geometry.Geometry` and the
compiled kernels (docs/architecture.md, "The engine"):

* **views**: the kernels see ``(N, C, D, H, W)`` (or ``(N, D, H, W, C)``) 5-D views, or
  ``(planes, elements)`` runs for index kernels; float16 travels as its uint16 bits;
* **fill values**: what an empty max window yields (``-inf``, the dtype minimum);
* **serial or parallel**: below :data:`SERIAL_WORK` a call stays on the calling thread,
  above it :func:`run_tasks` splits a range kernel's tasks over poolkit's threads; the
  threshold is read at call time, so changing it reaches every operation;
* **streaming**: a call that moves more than :data:`STREAM_BYTES` (:func:`streams`),
  with output runs of whole vectors (:func:`streamable_bytes`), gets outputs aligned
  for non-temporal stores (:func:`new_array`), and the kernels that stream (the max and
  average row and pixel kernels, which prefetch on every call) store past the cache;
* **the plan cache**: per (operation, options, shape, dtype) plans, so a repeated call
  in a training loop skips validation and planning.

Arguments are assumed valid here (validation happens once, in :mod:`poolkit._args`).
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ._memo import BoundedCache
from ._threads import POOL, get_num_threads

#: Below this many element visits a call runs on the calling thread (read at call time).
SERIAL_WORK = 1 << 15


def last_level_cache(cache_dir: str = "/sys/devices/system/cpu/cpu0/cache",
                     default: int = 32 << 20) -> int:
    """Bytes of the largest CPU cache the OS lists in ``cache_dir`` (Linux sysfs:
    ``index*/size``, e.g. ``32768K``), else ``default``."""
    sizes = []
    for entry in Path(cache_dir).glob("index*/size"):
        try:
            text = entry.read_text().strip()
        except OSError:
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        digits = text.rstrip("KMG")
        if digits.isdigit():
            sizes.append(int(digits) * scale)
    return max(sizes, default=default)


#: A call whose input and output bytes together exceed this (the last-level cache)
#: streams (read at call time): its output would not stay in the cache anyway, and
#: ordinary stores read every output line before they write it, a fifth more memory
#: traffic on k2s2.
STREAM_BYTES = last_level_cache()

#: Alignment of the outputs of streaming calls (a cache line).
_STREAM_ALIGN = 64


#: Non-temporal stores write whole vectors of this many bytes (``_lanes.stream_store``).
_STREAM_VECTOR = 32


def streams(n_bytes: int) -> bool:
    """Should a kernel call that moves ``n_bytes`` stream past the cache? (0: a call that
    never streams, see :func:`streamable_bytes`.)"""
    return 0 < n_bytes and n_bytes > STREAM_BYTES


def streamable_bytes(moved: int, *runs: int) -> int:
    """The bytes a call moves, as :func:`streams` weighs them: ``moved``, or 0 (never
    stream) unless every contiguous run of output its kernel stores (``runs``, in bytes:
    an NCHW output row, a channels-last pixel of values or of indices) is made of whole
    32-byte vectors. Other runs would share cache lines between non-temporal and
    ordinary stores, which flushes the write-combining buffers half full: NCHW
    (2048,64,14,14) k2s2, 7-element rows, took 44 ms streaming against 7.1 ms."""
    return moved if all(run % _STREAM_VECTOR == 0 for run in runs) else 0


def new_array(shape: tuple[int, ...], dtype: np.dtype, aligned: bool) -> np.ndarray:
    """``np.empty(shape, dtype)``; ``aligned``: its data starts on a cache-line boundary
    (NumPy guarantees 16 bytes; non-temporal 256-bit stores need 32)."""
    if not aligned:  # (first: this is every call's allocation)
        return np.empty(shape, dtype)
    n_bytes = math.prod(shape) * np.dtype(dtype).itemsize
    if not n_bytes:  # an empty array has no data to align
        return np.empty(shape, dtype)
    raw = np.empty(n_bytes + _STREAM_ALIGN, np.uint8)
    start = -raw.ctypes.data % _STREAM_ALIGN
    return raw[start:start + n_bytes].view(dtype).reshape(shape)


#: Spatial rank the compiled kernels work in (1-D and 2-D get unit leading axes).
KERNEL_NDIM = 3

#: Plans by (operation, options, input shape, dtype, ...): see :class:`BoundedCache`.
plans = BoundedCache(512)

_F16 = np.dtype(np.float16)
_U16 = np.dtype(np.uint16)


def is_serial(work: int) -> bool:
    """Should a call of ``work`` element visits stay on the calling thread?"""
    return work < SERIAL_WORK


def run_tasks(kernel: Any, n_tasks: int, work: int, *args: Any) -> None:
    """Run the range kernel ``kernel(*args, t0, t1)`` over the tasks ``[0, n_tasks)``.

    Small ``work`` (element visits) stays on the calling thread; larger work is split
    into one contiguous part per thread (:data:`poolkit._threads.POOL`). Tasks never
    share outputs, so the split changes no result.
    """
    if is_serial(work) or n_tasks <= 1:
        kernel(*args, 0, n_tasks)
    else:
        POOL.run(kernel, args, n_tasks, min(get_num_threads(), n_tasks))


# ----------------------------------------------------------------------------- views


def kernel_bits(arr: np.ndarray) -> np.ndarray:
    """float16 goes through the kernels as its bits (numba has no CPU float16)."""
    return arr.view(_U16) if arr.dtype == _F16 else arr


def as_kernel_view(arr: np.ndarray, nd: int, batched: bool, channels_last: bool) -> np.ndarray:
    """View ``arr`` as ``(N, C, D, H, W)`` without copying.

    Channels-last arrays get their channel axis moved (a strided view); missing batch
    and leading spatial axes become unit axes.
    """
    view = arr if batched else arr[np.newaxis]
    if channels_last:
        view = np.moveaxis(view, -1, 1)
    lead = KERNEL_NDIM - nd
    if lead:
        view = np.expand_dims(view, tuple(range(2, 2 + lead)))
    return view


def kernel_view(arr: np.ndarray, nd: int, batched: bool, channels_last: bool) -> np.ndarray:
    """:func:`as_kernel_view` of the kernel form (float16 as bits) of ``arr``."""
    return as_kernel_view(kernel_bits(arr), nd, batched, channels_last)


def pixel_view(arr: np.ndarray, nd: int) -> np.ndarray:
    """``(N, D, H, W, C)`` view (float16 as bits) of a C-contiguous channels-last array
    with ``nd`` spatial axes, batched or not: the channel axis stays innermost, for the
    pixel kernels that run the channels side by side."""
    bits = kernel_bits(arr)
    return bits.reshape((-1,) + lead3(bits.shape[-nd - 1:-1]) + (bits.shape[-1],))


def to_planes(arr: np.ndarray, nd: int, channels_last: bool) -> np.ndarray:
    """``(planes, prod(spatial))`` array of a batched or unbatched input (view if possible)."""
    if channels_last:
        arr = np.moveaxis(arr, -1, -nd - 1)
    plane = int(np.prod(arr.shape[-nd:]))
    return arr.reshape(-1, plane)


def from_planes(planes: np.ndarray, shape: tuple[int, ...], nd: int, channels_last: bool):
    """Inverse of :func:`to_planes`: an array of ``shape`` (contiguous in its layout)."""
    if not channels_last:
        return planes.reshape(shape)
    moved = shape[:-nd - 1] + (shape[-1],) + shape[-nd - 1 : -1]
    return np.ascontiguousarray(np.moveaxis(planes.reshape(moved), -nd - 1, -1))


def flat_planes(arr: np.ndarray, nd: int, batched: bool, channels_last: bool) -> np.ndarray:
    """``(N, C, 1, 1, prod(spatial))`` view (or copy, if strides forbid a view) of ``arr``."""
    view = arr if batched else arr[np.newaxis]
    if channels_last:
        plane = int(np.prod(view.shape[1:-1]))
        view = np.moveaxis(view.reshape(view.shape[0], plane, view.shape[-1]), -1, 1)
    else:
        view = view.reshape(view.shape[0], view.shape[1], -1)
    return view[:, :, np.newaxis, np.newaxis, :]


def channels_first(arr: np.ndarray, batched: bool, channels_last: bool) -> np.ndarray:
    """``(N, C, *spatial)`` view of a batched/unbatched, channels-first/last array."""
    view = arr if batched else arr[np.newaxis]
    return np.moveaxis(view, -1, 1) if channels_last else view


def from_channels_first(
    arr: np.ndarray, batched: bool, channels_last: bool, dtype: np.dtype
) -> np.ndarray:
    """Inverse of :func:`channels_first`: a contiguous array of ``dtype`` in the user layout."""
    view = np.moveaxis(arr, 1, -1) if channels_last else arr
    return np.ascontiguousarray((view if batched else view[0]).astype(dtype, copy=False))


_I16 = np.dtype(np.int16)
_SIGN16 = np.int16(-32768)


def comparable(arr: np.ndarray) -> np.ndarray:
    """The array the max kernels compare, in kernel form. uint16 would read as float16
    bits there, so it becomes int16 with the sign bit flipped (``u - 32768``: an
    order-preserving copy, undone by :func:`restore`); float16 goes as its bits."""
    if arr.dtype == _U16:
        return np.bitwise_xor(arr.view(_I16), _SIGN16)
    return kernel_bits(arr)


def comparable_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype of :func:`comparable`'s result (what a max kernel's output holds)."""
    return _I16 if dtype == _U16 else dtype


def restore(out: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Undo :func:`comparable` on a kernel output in place: the values as ``dtype``."""
    if dtype == _U16 and out.dtype == _I16:
        np.bitwise_xor(out, _SIGN16, out=out)
        return out.view(_U16)
    return out


# ------------------------------------------------------------------------ fill values

_LOWEST = {
    np.dtype(np.float16): np.uint16(0xFC00),  # -inf as float16 bits
    np.dtype(np.float32): np.float32(-np.inf),
    np.dtype(np.float64): np.float64(-np.inf),
}


def lowest(dtype: np.dtype) -> np.generic:
    """What an empty max window yields, in kernel form: ``-inf`` or the dtype minimum."""
    fill = _LOWEST.get(dtype)
    if fill is None:
        fill = np.iinfo(dtype).min
        fill = dtype.type(fill)
        _LOWEST[dtype] = fill
    return fill


@lru_cache(maxsize=256)
def kernel_table(
    kernel: tuple[int, ...], stride: tuple[int, ...], pad: tuple[int, ...], dil: tuple[int, ...]
) -> np.ndarray:
    """Read-only ``(4, 3)`` int64 geometry table for the 3-D kernels (cached): rows kernel,
    stride, pad_begin, dilation; columns D, H, W."""
    lead = KERNEL_NDIM - len(kernel)
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


def pad_end_table(pad_end: tuple[int, ...]) -> np.ndarray:
    """The end pads padded to (D, H, W) with leading zeros, for the 3-D kernels."""
    return np.array((0,) * (KERNEL_NDIM - len(pad_end)) + tuple(pad_end), dtype=np.int64)


def lead3(spatial: tuple[int, ...]) -> tuple[int, int, int]:
    """Spatial sizes padded to (D, H, W) with leading ones."""
    full = (1,) * (KERNEL_NDIM - len(spatial)) + tuple(spatial)
    return full[0], full[1], full[2]


# ---------------------------------------------------------------------------- outputs


def gradient_buffer(shape: tuple[int, ...], dtype: np.dtype, out: np.ndarray | None,
                    zeroed: bool) -> np.ndarray:
    """The array a backward pass writes: the caller's validated ``out`` or a new one.

    ``zeroed``: the kernel adds into it, so it must start at zero (``np.zeros`` gets
    fresh zero pages from the OS; a reused ``out`` is cleared here).
    """
    if out is None:
        return np.zeros(shape, dtype) if zeroed else np.empty(shape, dtype)
    if zeroed:
        out.fill(0)
    return out


def deliver(result: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """Return ``result``, copied into the caller's ``out`` when one was given."""
    if out is None or result is out:
        return result
    np.copyto(out, result, casting="unsafe")
    return out
