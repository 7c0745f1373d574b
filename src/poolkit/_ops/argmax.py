"""The one gradient router of every max-like operation (docs/semantics.md §6).

Max pooling, adaptive, fractional and global max pooling all end their backward pass
here: each output gradient is added to the input element its (plane) index names, in
output row-major order per ``(n, c)`` plane, so overlapping windows add up
deterministically, bit-identical to PyTorch's CPU backward.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import _args, _engine
from .._kernels import LazyModule
from .._threads import get_num_threads

#: compiled kernels, imported (with numba) by the first call that needs them
_k: Any = LazyModule("route")
_tile: Any = LazyModule("route_tile")

_TILE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

#: Tasks per thread a parallel channels-last backward aims for (dynamic balancing).
_TASKS_PER_THREAD = 4

#: A task's block of ``dx`` (a plane; channels last, its rows of one batch item) up to
#: this many bytes is zeroed whole before the adds, while it stays in cache; a larger
#: one is zeroed row by row just ahead of the adds (the watermark of _kernels/route.py).
#: Read at call time.
ZERO_FIRST_BYTES = 1 << 22


def _row_parts(n_batch: int, work: int) -> int:
    """Tasks per batch item in the channels-last backward: 1 (a task owns the whole
    ``dx[n]``) unless a parallel call has too few batch items to keep the threads busy;
    then each item's rows are split between tasks, each of which reads all of the
    item's outputs and adds the ones that fall in its rows. Any split gives the same
    bits: every element's adds still come in output order. (Splitting by blocks of
    channels instead reads less, but zeroes one short run per pixel: it was not faster,
    docs/speed.md.)"""
    if _engine.is_serial(work):
        return 1
    threads = get_num_threads()
    if threads == 1 or n_batch >= _TASKS_PER_THREAD * threads:
        return 1
    return -(-threads // n_batch)


def _tile_view(grad_shape: tuple[int, ...], shape: tuple[int, ...], nd: int,
               channels_last: bool, dtype: np.dtype) -> tuple[tuple, tuple] | None:
    """``(out5, in5)``, the ``(N, D, H, W, C)`` kernel views of the gradient and of the
    input, if the outputs tile the input in disjoint windows of 2 along every spatial
    axis (k == s == 2, no padding; ``H`` is ``2 * OH`` or ``2 * OH + 1``, and so on), so
    that the tile kernels of :mod:`poolkit._kernels.route_tile` may route them; else
    None. (Channels last, float32/float64; whether the indices are tile-shaped is
    checked by the kernels themselves.)"""
    if not (channels_last and dtype in _TILE_DTYPES and grad_shape[-1] > 0):
        return None
    out_sp, in_sp = grad_shape[-nd - 1:-1], shape[-nd - 1:-1]
    if min(out_sp) < 1 or any(i - 2 * o not in (0, 1) for i, o in zip(in_sp, out_sp)):
        return None
    lead = (1,) * (3 - nd)
    n_batch = math.prod(shape[:-nd - 1])
    return ((n_batch, *lead, *out_sp, shape[-1]), (n_batch, *lead, *in_sp, shape[-1]))


def _tile_shaped_probe(idx: np.ndarray, views: tuple[tuple, tuple]) -> bool:
    """Do the indices of one output pixel (the second of the first row, or the first)
    lie in its own tile? A few microseconds of NumPy that keep a call whose indices come
    from overlapping windows of the same output shape (k3s2p1 on even sizes) from
    compiling and trying the tile kernel first; the kernel checks every index anyway."""
    (_, _, _, out_w, _), (_, _, in_h, in_w, _) = views
    ow = min(1, out_w - 1)
    probe = np.asarray(idx).reshape(views[0])[0, 0, 0, ow]
    x, rest = probe % in_w, probe // in_w
    return bool(((probe >= 0) & (x // 2 == ow) & (rest % in_h < 2) & (rest // in_h < 2)).all())


def _k3s2_view(grad_shape: tuple[int, ...], shape: tuple[int, ...], nd: int,
               channels_last: bool, dtype: np.dtype) -> tuple[tuple, tuple] | None:
    """``(out4, in4)``, the ``(N, H, W, C)`` kernel views, if the output shape is that
    of 3x3 windows of stride 2 and padding 1 (``H`` is ``2 * OH - 1`` or ``2 * OH``,
    ``W`` likewise), so that the k3s2p1 kernel of :mod:`poolkit._kernels.route_tile`
    may route them; else None. (Channels last, 2-D, float32/float64; whether each
    index lies in its own output's window is checked by the kernel itself.)"""
    if not (channels_last and nd == 2 and dtype in _TILE_DTYPES and grad_shape[-1] > 0):
        return None
    (out_h, out_w), (in_h, in_w) = grad_shape[-3:-1], shape[-3:-1]
    if min(out_h, out_w) < 1 or 2 * out_h - in_h not in (0, 1) or 2 * out_w - in_w not in (0, 1):
        return None
    n_batch = math.prod(shape[:-3])
    return (n_batch, out_h, out_w, shape[-1]), (n_batch, in_h, in_w, shape[-1])


def _route_directly(kernel: Any, n_tasks: int, work: int, grad: np.ndarray, idx: np.ndarray,
                    dx: np.ndarray, views: tuple[tuple, tuple]) -> bool:
    """Run one of the direct routing kernels of :mod:`poolkit._kernels.route_tile` on
    the kernel views; False (``dx`` partly written) if an index did not fit its
    assumed window."""
    out_view, in_view = views
    fail = np.zeros(1, dtype=np.uint8)
    _engine.run_tasks(kernel, n_tasks, work, np.ascontiguousarray(grad).reshape(out_view),
                      np.ascontiguousarray(idx).reshape(out_view), dx.reshape(in_view), fail)
    return not fail[0]


def route(
    grad: np.ndarray,
    idx: np.ndarray,
    shape: tuple[int, ...],
    nd: int,
    channels_last: bool,
    allow_missing: bool = True,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Add ``grad`` at the plane indices ``idx`` into an array of ``shape`` that is
    zero elsewhere.

    Parameters
    ----------
    grad : ndarray
        Validated float gradient; ``grad.size // (N * C)`` outputs per plane.
    idx : ndarray of int64
        Plane row-major indices, same shape as ``grad``.
    shape : tuple of int
        The input shape (batched or unbatched, either layout).
    nd : int
        Number of spatial dims.
    channels_last : bool
        Layout of ``grad``, ``idx`` and ``shape``.
    allow_missing : bool, default True
        Index -1 (a window with no input element) is skipped; with False it is an error.
    out : ndarray, optional
        A validated C-contiguous buffer of ``shape`` and ``grad``'s dtype to fill.

    Returns
    -------
    ndarray
        The gradient with respect to the input (``out`` when given).

    Examples
    --------
    >>> import numpy as np
    >>> route(np.ones((1, 1, 2)), np.array([[[1, 1]]]), (1, 1, 3), 1, False).ravel()
    array([0., 2., 0.])
    """
    batched = len(shape) == nd + 2
    n_batch = shape[0] if batched else 1
    # not cleared here: the kernels zero dx block by block, just before adding to it,
    # so dx is written in one pass, while in cache (docs of _kernels/route.py)
    dx = _engine.gradient_buffer(shape, grad.dtype, out, zeroed=False)
    work = dx.size + grad.size
    # channels last, indices that stay in their own output's window of a common
    # geometry: each pixel is written directly, no zeroing pass (the kernels check the
    # indices; where one does not fit, the scatter below overwrites all of dx)
    tiles = _tile_view(grad.shape, shape, nd, channels_last, grad.dtype)
    if tiles is not None and _tile_shaped_probe(idx, tiles):  # k == s == 2, 1-D to 3-D
        kernel = (_tile.tile1_pixels_range, _tile.tile2_pixels_range,
                  _tile.tile3_pixels_range)[nd - 1]
        if _route_directly(kernel, math.prod(tiles[0][:3]), work, grad, idx, dx, tiles):
            return dx
    k3s2 = _k3s2_view(grad.shape, shape, nd, channels_last, grad.dtype)
    if k3s2 is not None and _route_directly(  # k3s2p1, 2-D; a task per batch item
            _tile.k3s2_pixels_range, k3s2[0][0], work, grad, idx, dx, k3s2):
        return dx
    if channels_last:
        n_chan = shape[-1]
        plane = math.prod(shape[-nd - 1 : -1])
        n_out = grad.size // (n_batch * n_chan) if grad.size else 0
        g = grad.reshape(n_batch, n_out, n_chan)
        i = idx.reshape(n_batch, n_out, n_chan)
        d = dx.reshape(n_batch, plane, n_chan)
        parts = _row_parts(n_batch, work)
        n_tasks = n_batch * parts
        block = -(-plane // parts) * n_chan
    else:
        n_chan = shape[1] if batched else shape[0]
        plane = math.prod(shape[-nd:])
        n_out = grad.size // (n_batch * n_chan) if grad.size else 0
        g = grad.reshape(n_batch * n_chan, n_out)
        i = idx.reshape(n_batch * n_chan, n_out)
        d = dx.reshape(n_batch * n_chan, plane)
        n_tasks = n_batch * n_chan
        block = plane
    zero_first = block * dx.itemsize <= ZERO_FIRST_BYTES
    g, d = _engine.kernel_bits(g), _engine.kernel_bits(d)
    bad = np.zeros(max(n_tasks, 1), dtype=np.uint8)
    if channels_last:
        _engine.run_tasks(_k.route_pixels_range, n_tasks, work, g, i, d, bad, parts,
                          zero_first)
    else:
        _engine.run_tasks(_k.route_planes_range, n_tasks, work, g, i, d, bad, zero_first)
    if np.count_nonzero(bad) or (not allow_missing and idx.size and idx.min() < 0):
        missing = " or be -1" if allow_missing else ""
        raise ValueError(
            f"indices must lie in [0, {plane}) (the flattened spatial plane of input_shape "
            f"{tuple(shape)}){missing}; got values outside that range"
        )
    return dx


def backward(grad_output: Any, indices: Any, input_shape: Any, nd: int, channels_last: Any,
             out: Any = None) -> np.ndarray:
    """Validated backward of an op whose indices are plane indices that always name an
    input element (adaptive, fractional max pooling): the router with -1 rejected."""
    channels_last = _args.check_bool(channels_last, "channels_last")
    grad, shape, _, out = _args.backward_args(grad_output, input_shape, nd, channels_last, out,
                                              indices)
    _args.check_input(grad.shape, nd, "grad_output", channels_last)
    idx = _args.check_index_array(indices, grad.shape, like="grad_output")
    return route(grad, idx, shape, nd, channels_last, allow_missing=False, out=out)
