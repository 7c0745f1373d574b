"""Slow, obviously-correct reference implementations: the oracle for the tests.

Plain Python loops over planes, output positions and window elements, written
straight from the definitions in DESIGN.md §3 and sharing no code with the fast path
(not even the output-size formula). Arguments are assumed valid.
"""

from __future__ import annotations

import itertools

import numpy as np


def window_count(
    length: int,
    kernel: int,
    stride: int,
    pad_begin: int,
    pad_end: int,
    dilation: int,
    ceil_mode: bool,
) -> int:
    """Count windows by enumerating their start positions (no closed formula)."""
    extent = dilation * (kernel - 1) + 1
    count = 0
    i = 0
    while True:
        start = i * stride - pad_begin
        end = start + extent  # exclusive, in unpadded coordinates
        fits = end <= length + pad_end
        if ceil_mode:
            # also keep a window overhanging the end by less than one stride, but only
            # if it starts inside the input or the left padding
            fits = (fits or end - stride < length + pad_end) and start < length
        if fits:
            count += 1
            i += 1
            continue
        return count


def _planes(x: np.ndarray, nd: int, channels_last: bool) -> np.ndarray:
    """``(planes, *spatial)`` copy of a batched or unbatched input."""
    if channels_last:
        x = np.moveaxis(x, -1, -nd - 1)
    return np.array(x).reshape((-1,) + x.shape[-nd:])


def _unplanes(planes: np.ndarray, shape: tuple[int, ...], nd: int, channels_last: bool):
    if channels_last:
        lead = shape[: -nd - 1] + (shape[-1],)
        arr = planes.reshape(lead + planes.shape[1:])
        return np.moveaxis(arr, -nd - 1, -1)
    return planes.reshape(shape[:-nd] + planes.shape[1:])


def max_pool(
    x: np.ndarray,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
    ceil_mode: bool = False,
    channels_last: bool = False,
    pad_end: tuple[int, ...] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Reference max pooling: returns ``(values, int64 plane indices)``."""
    nd = len(kernel)
    pad_end = padding if pad_end is None else pad_end
    x = np.asarray(x)
    planes = _planes(x, nd, channels_last)
    in_size = planes.shape[1:]
    out_size = tuple(
        window_count(
            in_size[j], kernel[j], stride[j], padding[j], pad_end[j], dilation[j], ceil_mode
        )
        for j in range(nd)
    )
    out = np.empty((planes.shape[0],) + out_size, dtype=x.dtype)
    idx = np.empty((planes.shape[0],) + out_size, dtype=np.int64)
    lowest = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    for p in range(planes.shape[0]):
        for o in itertools.product(*(range(n) for n in out_size)):
            best_val, best_idx = None, -1
            for t in itertools.product(*(range(k) for k in kernel)):  # row-major scan
                pos = tuple(o[j] * stride[j] - padding[j] + t[j] * dilation[j] for j in range(nd))
                if any(q < 0 or q >= in_size[j] for j, q in enumerate(pos)):
                    continue  # padding never wins
                v = planes[(p, *pos)]
                if best_val is None or v > best_val or np.isnan(v):
                    best_val, best_idx = v, int(np.ravel_multi_index(pos, in_size))
            out[(p, *o)] = lowest if best_val is None else best_val
            idx[(p, *o)] = best_idx
    return (
        _unplanes(out, x.shape, nd, channels_last),
        _unplanes(idx, x.shape, nd, channels_last),
    )


def max_pool_backward(
    grad: np.ndarray,
    indices: np.ndarray,
    input_shape: tuple[int, ...],
    nd: int,
    channels_last: bool = False,
) -> np.ndarray:
    """Reference backward: add each gradient at its index, in output row-major order."""
    g = _planes(np.asarray(grad), nd, channels_last)
    ix = _planes(np.asarray(indices), nd, channels_last)
    dx = _planes(np.zeros(input_shape, dtype=g.dtype), nd, channels_last)
    for p in range(g.shape[0]):
        flat = dx[p].reshape(-1)
        for gv, iv in zip(g[p].reshape(-1), ix[p].reshape(-1)):
            if iv >= 0:
                flat[iv] = flat[iv] + gv  # scalar add rounds in the array dtype each time
        dx[p] = flat.reshape(dx[p].shape)
    return _unplanes(dx, tuple(input_shape), nd, channels_last)
