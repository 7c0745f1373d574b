"""The window engine: output sizes, the ceil_mode drop rule, padding specs and layout views.

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
    every window that would start past the input and left padding is dropped (with
    PyTorch's padding, at most kernel // 2, that is at most the last one; explicit end pads
    beyond it can push several windows into the right padding).
    """
    numerator = length + pad_begin + pad_end - dilation * (kernel - 1) - 1
    if ceil_mode:
        numerator += stride - 1
    out = numerator // stride + 1
    if ceil_mode:
        # windows starting inside the input or the left padding: i * s < L + pb
        out = min(out, -(-(length + pad_begin) // stride))
    return out


def same_pads(
    length: int, kernel: int, stride: int, dilation: int, lower: bool
) -> tuple[int, int]:
    """``(begin, end)`` pads of SAME padding (ONNX SAME_UPPER/SAME_LOWER, TensorFlow SAME).

    The output length is ``ceil(L / s)``; the total pad
    ``max(0, (out - 1) * s + d * (k - 1) + 1 - L)`` is split evenly, the odd one going
    to the end (``lower=False``, SAME_UPPER) or to the start (``lower=True``).
    """
    out = -(-length // stride)
    total = max(0, (out - 1) * stride + dilation * (kernel - 1) + 1 - length)
    small, large = total // 2, total - total // 2
    return (large, small) if lower else (small, large)


@dataclass(frozen=True)
class PaddingSpec:
    """Parsed ``padding`` argument, resolved to per-dim pads once the input size is known.

    ``mode`` is ``"explicit"`` (``begin``/``end`` hold the pads), ``"same"`` (SAME_UPPER:
    the odd pad at the end) or ``"same_lower"`` (the odd pad at the start). ``pytorch``
    marks the PyTorch form (an int or one int per dim: symmetric, at most kernel // 2);
    the other forms must give windows that all cover at least one input element.
    """

    mode: str
    begin: tuple[int, ...]
    end: tuple[int, ...]
    pytorch: bool

    @classmethod
    def symmetric(cls, pads: tuple[int, ...]) -> PaddingSpec:
        return cls("explicit", tuple(pads), tuple(pads), True)

    def resolve(
        self,
        in_size: tuple[int, ...],
        kernel: tuple[int, ...],
        stride: tuple[int, ...],
        dilation: tuple[int, ...],
    ) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """``(pad_begin, pad_end)`` for an input of spatial size ``in_size``."""
        if self.mode == "explicit":
            return self.begin, self.end
        pairs = [
            same_pads(*dims, self.mode == "same_lower")
            for dims in zip(in_size, kernel, stride, dilation)
        ]
        return tuple(b for b, _ in pairs), tuple(e for _, e in pairs)

    def describe(self) -> str | tuple[int, ...] | tuple[tuple[int, int], ...]:
        """The padding as a user would write it (for reprs)."""
        if self.mode != "explicit":
            return self.mode
        if self.pytorch:
            return self.begin
        return tuple(zip(self.begin, self.end))


def empty_windows(
    length: int, kernel: int, stride: int, pad_begin: int, dilation: int, out: int
) -> list[int]:
    """Output positions (along one dim) whose window holds no input element."""
    bad = []
    for i in range(out):
        start = i * stride - pad_begin
        t = 0 if start >= 0 else (-start + dilation - 1) // dilation  # first tap >= 0
        if t >= kernel or start + t * dilation >= length:
            bad.append(i)
    return bad


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
