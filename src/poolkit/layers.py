"""Stateful pooling layers: thin wrappers that remember what backward needs."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from . import _indices
from ._layer_base import Layer, compact
from .functional import IntOrTuple, MaxPoolParams, Padding, _backward_impl, _max_pool_impl

__all__ = ["MaxPool1d", "MaxPool2d", "MaxPool3d"]


def _padding_repr(p: MaxPoolParams) -> object:
    pads = p.padding.describe()
    return compact(pads) if p.padding.pytorch else pads


class _MaxPoolNd(Layer):
    """Max pooling layer; ``forward`` keeps the indices so ``backward`` can route."""

    _nd = 0

    def __init__(
        self,
        kernel_size: IntOrTuple,
        stride: IntOrTuple | None = None,
        padding: Padding = 0,
        dilation: IntOrTuple = 1,
        ceil_mode: bool = False,
        return_indices: bool = False,
        channels_last: bool = False,
        index_format: str = "plane",
        storage_order: int = 0,
    ) -> None:
        self.params = MaxPoolParams.parse(self._nd, kernel_size, stride, padding, dilation,
                                          ceil_mode, return_indices, channels_last,
                                          index_format, storage_order)
        self._indices: np.ndarray | None = None
        self._input_shape: tuple[int, ...] | None = None

    def forward(self, x: ArrayLike) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Pool ``x`` and remember where each maximum came from.

        Returns the pooled array, or ``(pooled, indices)`` with ``return_indices=True``.
        """
        p = self.params
        out, idx = _max_pool_impl(x, p, want_indices=True, convert=False)
        self._indices = idx
        self._input_shape = tuple(np.shape(x))
        if not p.return_indices:
            return out
        batched = len(self._input_shape) == p.nd + 2
        return out, _indices.from_plane(
            idx, self._input_shape, p.nd, batched, p.channels_last, p.index_format,
            p.storage_order,
        )

    def backward(self, grad_output: ArrayLike) -> np.ndarray:
        """Gradient with respect to the input of the most recent ``forward``."""
        self._require_forward(self._indices)
        grad_shape = np.shape(grad_output)
        if grad_shape != self._indices.shape:
            raise ValueError(
                f"grad_output must have the shape of the last forward output "
                f"{self._indices.shape}, got {grad_shape}"
            )
        return _backward_impl(
            grad_output, self._indices, self._input_shape, self._nd, self.params.channels_last
        )

    def __repr__(self) -> str:
        p = self.params
        text = (
            f"{type(self).__name__}(kernel_size={compact(p.kernel)}, "
            f"stride={compact(p.stride)}, padding={_padding_repr(p)!r}, "
            f"dilation={compact(p.dilation)}, ceil_mode={p.ceil_mode}"
        )
        if p.return_indices:
            text += ", return_indices=True"
        if p.channels_last:
            text += ", channels_last=True"
        text += _indices.layout_repr(p.index_format, p.storage_order)
        return text + ")"


class MaxPool1d(_MaxPoolNd):
    """1-D max pooling layer. Options as :func:`poolkit.max_pool1d`.

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> layer = pk.MaxPool1d(2)
    >>> y = layer(np.array([[[1.0, 3.0, 2.0, 0.0]]]))
    >>> layer.backward(np.ones_like(y))
    array([[[0., 1., 1., 0.]]])
    """

    _nd = 1


class MaxPool2d(_MaxPoolNd):
    """2-D max pooling layer. Options as :func:`poolkit.max_pool2d`.

    Input ``(N, C, H, W)`` / ``(C, H, W)`` (or channels-last), output likewise.

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> layer = pk.MaxPool2d(3, stride=2, padding=1)
    >>> x = np.random.default_rng(0).standard_normal((8, 4, 16, 16)).astype(np.float32)
    >>> y = layer(x)
    >>> y.shape
    (8, 4, 8, 8)
    >>> layer.backward(np.ones_like(y)).shape
    (8, 4, 16, 16)
    """

    _nd = 2


class MaxPool3d(_MaxPoolNd):
    """3-D max pooling layer. Options as :func:`poolkit.max_pool3d`.

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> layer = pk.MaxPool3d(2)
    >>> layer(np.zeros((1, 2, 4, 4, 4))).shape
    (1, 2, 2, 2, 2)
    """

    _nd = 3

# The pooling family's layers live beside their functions; re-exported here.
from ._adaptive import (  # noqa: E402
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveAvgPool3d,
    AdaptiveMaxPool1d,
    AdaptiveMaxPool2d,
    AdaptiveMaxPool3d,
    GlobalAvgPool,
    GlobalLpPool,
    GlobalMaxPool,
)
from ._avg import AvgPool1d, AvgPool2d, AvgPool3d, LPPool1d, LPPool2d, LPPool3d  # noqa: E402
from ._fractional import (  # noqa: E402
    FractionalMaxPool2d,
    FractionalMaxPool3d,
)
from ._unpool import (  # noqa: E402
    MaxUnpool1d,
    MaxUnpool2d,
    MaxUnpool3d,
)

__all__ += [
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AdaptiveAvgPool3d",
    "AdaptiveMaxPool1d",
    "AdaptiveMaxPool2d",
    "AdaptiveMaxPool3d",
    "AvgPool1d",
    "AvgPool2d",
    "AvgPool3d",
    "FractionalMaxPool2d",
    "FractionalMaxPool3d",
    "GlobalAvgPool",
    "GlobalLpPool",
    "GlobalMaxPool",
    "LPPool1d",
    "LPPool2d",
    "LPPool3d",
    "MaxUnpool1d",
    "MaxUnpool2d",
    "MaxUnpool3d",
]
