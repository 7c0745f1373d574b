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

``-1`` is kept as is in every layout. An :class:`IndexLayout` holds the facts a conversion
needs; it also converts the indices of one block of a larger array (``start``: the block's
first batch and channel), as :mod:`poolkit.dask` does per task.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from . import _args


def layout_repr(index_format: str, storage_order: int) -> str:
    """The ``, index_format=..., storage_order=...`` part of a layer repr (defaults omitted)."""
    text = f", index_format={index_format!r}" if index_format != "plane" else ""
    return text + (f", storage_order={storage_order}" if storage_order else "")


class IndexLayout(NamedTuple):
    """How the max pooling indices of an input of shape ``in_shape`` are laid out."""

    in_shape: tuple[int, ...]
    nd: int
    batched: bool
    channels_last: bool
    index_format: str
    storage_order: int

    @property
    def plain(self) -> bool:
        """Plane indices, row-major: the kernels' own layout (no conversion)."""
        return (self.index_format, self.storage_order) == _PLAIN

    def lead_ids(
        self, shape: tuple[int, ...], start: tuple[int, int] = (0, 0)
    ) -> tuple[np.ndarray, np.ndarray, int, int]:
        """Broadcastable batch and channel coordinates of every element of an array of
        ``shape`` whose first element is at batch ``start[0]``, channel ``start[1]`` of the
        whole input; plus the input's N and C."""
        ndim = len(shape)
        chan_axis = ndim - 1 if self.channels_last else (1 if self.batched else 0)
        n_chan = self.in_shape[chan_axis]
        shape_c = [1] * ndim
        shape_c[chan_axis] = shape[chan_axis]
        c = (np.arange(shape[chan_axis], dtype=np.int64) + start[1]).reshape(shape_c)
        if not self.batched:
            return np.zeros((1,) * ndim, dtype=np.int64), c, 1, n_chan
        shape_n = [1] * ndim
        shape_n[0] = shape[0]
        n = (np.arange(shape[0], dtype=np.int64) + start[0]).reshape(shape_n)
        return n, c, self.in_shape[0], n_chan

    def from_plane(self, idx: np.ndarray, start: tuple[int, int] = (0, 0)) -> np.ndarray:
        """Kernel (plane, row-major) indices, ``-1`` kept, in this layout."""
        if self.plain:
            return idx
        spatial = _args.spatial_shape(self.in_shape, self.nd, self.channels_last)
        within = _reorder(idx, spatial, True) if self.storage_order == 1 else idx
        if self.index_format == "plane":
            return within
        plane = int(np.prod(spatial))
        n, c, _, n_chan = self.lead_ids(idx.shape, start)
        if self.channels_last:
            flat = (n * plane + within) * n_chan + c
        else:
            flat = (n * n_chan + c) * plane + within
        return np.where(idx >= 0, flat, -1)

    def to_plane(
        self, idx: np.ndarray, start: tuple[int, int] = (0, 0), check: bool = False
    ) -> np.ndarray:
        """Indices in this layout back to plane row-major ones (int64, ``-1`` kept).

        Raises ValueError for an index that is neither -1 nor inside the plane its output
        element belongs to. Plane row-major indices are returned unchecked unless
        ``check`` (the in-memory backward kernels check their range themselves).
        """
        if self.plain and not check:
            return idx
        spatial = _args.spatial_shape(self.in_shape, self.nd, self.channels_last)
        plane = int(np.prod(spatial))
        idx = idx.astype(np.int64, copy=False)
        valid = idx >= 0
        if np.any(idx < -1):
            raise _args.bad_indices(f"must be >= 0 or -1, got minimum {int(idx.min())}")
        if self.index_format == "global":
            n, c, n_batch, n_chan = self.lead_ids(idx.shape, start)
            total = n_batch * n_chan * plane
            if np.any(idx >= total):
                raise _args.bad_indices(
                    f"in index_format='global' must lie in [0, {total}) (the flattened input "
                    f"of shape {tuple(self.in_shape)}) or be -1; got maximum {int(idx.max())}"
                )
            if self.channels_last:
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
                    f"{tuple(self.in_shape)}) or be -1; got maximum {int(idx.max())}"
                )
        within = np.where(valid, within, -1)
        return _reorder(within, spatial, False) if self.storage_order == 1 else within


def _reorder(idx: np.ndarray, spatial: tuple[int, ...], to_column_major: bool) -> np.ndarray:
    """Re-flatten valid in-plane indices between row-major and column-major order."""
    valid = idx >= 0
    safe = np.where(valid, idx, 0)
    src, dst = ("C", "F") if to_column_major else ("F", "C")
    coords = np.unravel_index(safe, spatial, order=src)
    return np.where(valid, np.ravel_multi_index(coords, spatial, order=dst), -1)


#: the ``(index_format, storage_order)`` of the kernels' own layout
_PLAIN = ("plane", 0)


def from_plane(idx: np.ndarray, *layout: Any) -> np.ndarray:
    """Convert kernel (plane, row-major) indices to the layout ``IndexLayout(*layout)``:
    ``in_shape, nd, batched, channels_last, index_format, storage_order``."""
    if layout[4:] == _PLAIN:  # the common case, without building the layout
        return idx
    return IndexLayout(*layout).from_plane(idx)


def to_plane(idx: np.ndarray, *layout: Any) -> np.ndarray:
    """Convert indices in the layout ``IndexLayout(*layout)`` back to plane row-major ones
    (see :meth:`IndexLayout.to_plane`; ``"plane"`` indices with ``storage_order=0`` are
    left to the backward kernel's range check)."""
    if layout[4:] == _PLAIN:
        return idx
    return IndexLayout(*layout).to_plane(idx)
