"""The window engine: output sizes, the ceil_mode drop rule, and layout views.

Every pooling operation describes its windows with a :class:`Geometry`; kernels see
inputs as 5-D ``(N, C, D, H, W)`` views, so 1-D and 2-D pooling run through the 3-D
kernels with unit leading spatial dimensions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Spatial rank the compiled kernels work in.
KERNEL_NDIM = 3


def pooled_size(
    length: int,
    kernel: int,
    stride: int,
    pad_begin: int,
    pad_end: int,
    dilation: int,
    ceil_mode: bool,
) -> int:
    """Output length of one pooled dimension (PyTorch's rule, with asymmetric pads).

    ``out = floor((L + pb + pe - d*(k-1) - 1 [+ s-1 if ceil]) / s) + 1``; with ceil_mode
    the last window is dropped when it would start past the input and left padding.
    """
    numerator = length + pad_begin + pad_end - dilation * (kernel - 1) - 1
    if ceil_mode:
        numerator += stride - 1
    out = numerator // stride + 1
    if ceil_mode and out > 0 and (out - 1) * stride >= length + pad_begin:
        out -= 1
    return out


@dataclass(frozen=True)
class Geometry:
    """Window geometry of one pooling call, per spatial dimension."""

    in_size: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    pad_begin: tuple[int, ...]
    pad_end: tuple[int, ...]
    dilation: tuple[int, ...]
    out_size: tuple[int, ...]

    @classmethod
    def build(
        cls,
        in_size: tuple[int, ...],
        kernel: tuple[int, ...],
        stride: tuple[int, ...],
        pad_begin: tuple[int, ...],
        pad_end: tuple[int, ...],
        dilation: tuple[int, ...],
        ceil_mode: bool,
    ) -> Geometry:
        out = tuple(
            pooled_size(*dims, ceil_mode)
            for dims in zip(in_size, kernel, stride, pad_begin, pad_end, dilation)
        )
        return cls(in_size, kernel, stride, pad_begin, pad_end, dilation, out)

    def kernel_params(self) -> np.ndarray:
        """``(4, 3)`` int64 table (kernel, stride, pad_begin, dilation) for the 3-D kernels."""
        lead = KERNEL_NDIM - len(self.kernel)
        table = np.empty((4, KERNEL_NDIM), dtype=np.int64)
        table[0] = (1,) * lead + self.kernel
        table[1] = (1,) * lead + self.stride
        table[2] = (0,) * lead + self.pad_begin
        table[3] = (1,) * lead + self.dilation
        return table


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


def output_shape(
    in_shape: tuple[int, ...], nd: int, out_spatial: tuple[int, ...], channels_last: bool
) -> tuple[int, ...]:
    """Full output shape: the input shape with its spatial sizes replaced."""
    if channels_last:
        return tuple(in_shape[: -nd - 1]) + tuple(out_spatial) + (in_shape[-1],)
    return tuple(in_shape[:-nd]) + tuple(out_spatial)
