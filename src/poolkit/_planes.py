"""Layout helpers shared by the pooling family: ``(planes, elements)`` views and copies.

Index-based kernels (argmax scatter, unpooling) only need each ``(n, c)`` plane as a
flat run of elements; these helpers convert between that form and any user layout.
"""

from __future__ import annotations

import numpy as np

from ._geometry import as_kernel_view


def kernel_bits(arr: np.ndarray) -> np.ndarray:
    """float16 goes through the kernels as its bits (numba has no CPU float16)."""
    return arr.view(np.uint16) if arr.dtype == np.float16 else arr


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


def global_view(arr: np.ndarray, nd: int, channels_last: bool) -> np.ndarray:
    """``(N, C, 1, 1, prod(spatial))`` view (or copy) of a batched array, for 3-D kernels."""
    n_batch = arr.shape[0]
    if channels_last:
        flat = arr.reshape(n_batch, -1, arr.shape[-1])
        return np.moveaxis(flat, -1, 1)[:, :, np.newaxis, np.newaxis, :]
    return arr.reshape(n_batch, arr.shape[1], -1)[:, :, np.newaxis, np.newaxis, :]


def kernel_view(arr: np.ndarray, nd: int, batched: bool, channels_last: bool) -> np.ndarray:
    """:func:`as_kernel_view` of the kernel form (float16 as bits) of ``arr``."""
    return as_kernel_view(kernel_bits(arr), nd, batched, channels_last)
