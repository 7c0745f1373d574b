"""THE window rule: output sizes, the ceil_mode drop rule (with ONNX's opset-22 flag),
padding specs (PyTorch ints, (begin, end) pairs, SAME and VALID) and fractional interval
starts (docs/semantics.md §2, §3, §10).

Every pooling operation describes its windows with a :class:`Geometry`: explicit begin
and end pads and window counts, whatever rule (PyTorch's, ONNX's, a chunk's) made them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def pooled_size(
    length: int,
    kernel: int,
    stride: int,
    pad_begin: int,
    pad_end: int,
    dilation: int,
    ceil_mode: bool,
    late: str = "all",
) -> int:
    """Output length of one pooled dimension (docs/semantics.md §2), any pads.

    ``out = floor((L + pb + pe - d*(k-1) - 1 [+ s-1 if ceil]) / s) + 1``; with ceil_mode
    every window that would start past the input and left padding is dropped (with
    PyTorch's padding, at most kernel // 2, that is at most the last one; explicit end pads
    beyond it can push several windows into the right padding). ``late`` names the rule
    for those late windows: ``"all"`` dropped (poolkit, PyTorch), ``"one"``: only the
    last one is (ONNX from opset 22), ``"keep"`` (ONNX before opset 22).
    """
    numerator = length + pad_begin + pad_end - dilation * (kernel - 1) - 1
    if ceil_mode:
        numerator += stride - 1
    out = numerator // stride + 1
    if ceil_mode and late == "all":
        # windows starting inside the input or the left padding: i * s < L + pb
        out = min(out, -(-(length + pad_begin) // stride))
    elif ceil_mode and late == "one" and (out - 1) * stride >= length + pad_begin:
        out -= 1
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
        late: str = "all",
    ) -> Geometry:
        """Count the windows of every dim (``late``: see :func:`pooled_size`)."""
        out = tuple(
            pooled_size(*dims, ceil_mode, late)
            for dims in zip(in_size, kernel, stride, pad_begin, pad_end, dilation)
        )
        return cls(in_size, kernel, stride, pad_begin, pad_end, dilation, out)


def output_shape(
    in_shape: tuple[int, ...], nd: int, out_spatial: tuple[int, ...], channels_last: bool
) -> tuple[int, ...]:
    """Full output shape: the input shape with its spatial sizes replaced."""
    if channels_last:
        return tuple(in_shape[: -nd - 1]) + tuple(out_spatial) + (in_shape[-1],)
    return tuple(in_shape[:-nd]) + tuple(out_spatial)


def interval_starts(u: np.ndarray, length: int, n_out: int, pool: int) -> np.ndarray:
    """Fractional max pooling's window starts (docs/semantics.md §10) for every sample in
    ``u`` (any shape), computed in ``u``'s dtype.

    Returns int64 of shape ``u.shape + (n_out,)``.
    """
    dt = u.dtype.type
    starts = np.empty(u.shape + (n_out,), dtype=np.int64)
    if n_out > 1:
        alpha = dt(length - pool) / dt(n_out - 1)
        i = np.arange(n_out - 1).astype(u.dtype)
        uu = u[..., None]
        first = ((i + uu) * alpha).astype(np.int64)  # trunc toward 0, as static_cast<int>
        starts[..., :-1] = first - (uu * alpha).astype(np.int64)
    starts[..., -1] = length - pool
    return starts
