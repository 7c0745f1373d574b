"""Index layouts of max pooling: per-plane (PyTorch) and global (ONNX), row- or column-major.

The kernels always produce *plane* indices: the row-major flat position of the maximum
inside its ``(n, c)`` plane of the unpadded input, ``-1`` for a window with no input
element. These helpers convert to and from the other layouts:

* ``storage_order=1`` flattens the plane column-major (the first spatial axis varies
  fastest: ``h + w * H`` in 2-D), as ONNX MaxPool's ``storage_order`` attribute.
* ``index_format="global"`` flattens over the whole input tensor as it is laid out,
  batch and channel included: ``(n * C + c) * plane + i`` for channels-first inputs
  (ONNX MaxPool's ``Indices``) and ``(n * plane + i) * C + c`` for channels-last ones
  (TensorFlow's ``max_pool_with_argmax``), ``i`` being the in-plane index.

``-1`` is kept as is in every layout.
"""

from __future__ import annotations

import numpy as np

from . import _args


def layout_repr(index_format: str, storage_order: int) -> str:
    """The ``, index_format=..., storage_order=...`` part of a layer repr (defaults omitted)."""
    text = f", index_format={index_format!r}" if index_format != "plane" else ""
    return text + (f", storage_order={storage_order}" if storage_order else "")


def _plane_ids(
    out_shape: tuple[int, ...], nd: int, batched: bool, channels_last: bool
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Broadcastable batch and channel coordinates of every output element, plus N and C."""
    ndim = len(out_shape)
    chan_axis = ndim - 1 if channels_last else (1 if batched else 0)
    n_chan = out_shape[chan_axis]
    shape_c = [1] * ndim
    shape_c[chan_axis] = n_chan
    c = np.arange(n_chan, dtype=np.int64).reshape(shape_c)
    if batched:
        shape_n = [1] * ndim
        shape_n[0] = out_shape[0]
        n = np.arange(out_shape[0], dtype=np.int64).reshape(shape_n)
        n_batch = out_shape[0]
    else:
        n = np.zeros((1,) * ndim, dtype=np.int64)
        n_batch = 1
    return n, c, n_batch, n_chan


def _reorder(idx: np.ndarray, spatial: tuple[int, ...], to_column_major: bool) -> np.ndarray:
    """Re-flatten valid in-plane indices between row-major and column-major order."""
    valid = idx >= 0
    safe = np.where(valid, idx, 0)
    src, dst = ("C", "F") if to_column_major else ("F", "C")
    coords = np.unravel_index(safe, spatial, order=src)
    return np.where(valid, np.ravel_multi_index(coords, spatial, order=dst), -1)


def from_plane(
    idx: np.ndarray,
    in_shape: tuple[int, ...],
    nd: int,
    batched: bool,
    channels_last: bool,
    index_format: str,
    storage_order: int,
) -> np.ndarray:
    """Convert kernel (plane, row-major) indices to the requested layout."""
    if index_format == "plane" and storage_order == 0:
        return idx
    spatial = _args.spatial_shape(in_shape, nd, channels_last)
    within = _reorder(idx, spatial, True) if storage_order == 1 else idx
    if index_format == "plane":
        return within
    plane = int(np.prod(spatial))
    n, c, _, n_chan = _plane_ids(idx.shape, nd, batched, channels_last)
    if channels_last:
        flat = (n * plane + within) * n_chan + c
    else:
        flat = (n * n_chan + c) * plane + within
    return np.where(idx >= 0, flat, -1)


def to_plane(
    idx: np.ndarray,
    in_shape: tuple[int, ...],
    nd: int,
    batched: bool,
    channels_last: bool,
    index_format: str,
    storage_order: int,
) -> np.ndarray:
    """Convert indices in the given layout back to plane row-major ones.

    Raises ValueError for an index that is neither -1 nor inside the plane its output
    element belongs to (for ``"plane"`` indices with ``storage_order=0`` the range check
    is left to the backward kernel, which needs no conversion).
    """
    if index_format == "plane" and storage_order == 0:
        return idx
    spatial = _args.spatial_shape(in_shape, nd, channels_last)
    plane = int(np.prod(spatial))
    idx = idx.astype(np.int64, copy=False)
    valid = idx >= 0
    if np.any(idx < -1):
        raise _args.bad_indices(f"must be >= 0 or -1, got minimum {int(idx.min())}")
    if index_format == "global":
        n, c, n_batch, n_chan = _plane_ids(idx.shape, nd, batched, channels_last)
        total = n_batch * n_chan * plane
        if np.any(idx >= total):
            raise _args.bad_indices(
                f"in index_format='global' must lie in [0, {total}) (the flattened input "
                f"of shape {tuple(in_shape)}) or be -1; got maximum {int(idx.max())}"
            )
        if channels_last:
            rest, cc = np.divmod(idx, n_chan)
            nn, within = np.divmod(rest, plane)
            own = (nn == n) & (cc == c)
        else:
            owner, within = np.divmod(idx, plane)
            own = owner == n * n_chan + c
        if np.any(valid & ~own):
            raise _args.bad_indices(
                "in index_format='global' must point into the (n, c) plane of their own "
                "output element; some point into another plane"
            )
    else:
        within = idx
        if np.any(idx >= plane):
            raise _args.bad_indices(
                f"must lie in [0, {plane}) (the flattened spatial plane of input_shape "
                f"{tuple(in_shape)}) or be -1; got maximum {int(idx.max())}"
            )
    within = np.where(valid, within, -1)
    return _reorder(within, spatial, False) if storage_order == 1 else within
