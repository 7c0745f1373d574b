"""Slow, obviously-correct reference implementations: the oracle for the tests.

Plain Python loops over planes, output positions and window elements, written
straight from the definitions in docs/semantics.md and sharing no code with the fast path
(not even the output-size formula). Arguments are assumed valid.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Iterable, Iterator
from typing import Any

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


# --------------------------------------------------------------------------------------
# The pooling family: plain-loop references (arguments assumed valid).


def _opmath(dtype: np.dtype) -> type:
    """Accumulation type of PyTorch's CPU kernels: float32 for float16/32, else float64."""
    return np.float32 if dtype in (np.float16, np.float32) else np.float64


def _avg_windows(
    dims: list[tuple[int, int, int, int]], out_size: tuple[int, ...], count_include_pad: bool,
    divisor_override: int | None,
) -> Iterator[tuple[tuple[int, ...], list[tuple[int, ...]], int]]:
    """Every average pooling window with an input element, in output row-major order:
    its output position, its input positions in row-major order and its divisor.
    ``dims``: (input length, kernel, stride, pad) per dim; a window may run past the
    input into the padding, never past the end padding."""
    for o in itertools.product(*(range(n) for n in out_size)):
        starts = [i * s - p for i, (_, _, s, p) in zip(o, dims)]
        ends = [min(b + k, n + p) for b, (n, k, _, p) in zip(starts, dims)]
        lo = [max(b, 0) for b in starts]
        hi = [min(e, n) for e, (n, _, _, _) in zip(ends, dims)]
        if any(a >= b for a, b in zip(lo, hi)):
            continue
        if divisor_override is not None:
            div = divisor_override
        elif count_include_pad:
            div = int(np.prod([e - b for b, e in zip(starts, ends)]))
        else:
            div = int(np.prod([b - a for a, b in zip(lo, hi)]))
        yield o, list(itertools.product(*(range(a, b) for a, b in zip(lo, hi)))), div


def avg_pool(
    x: np.ndarray,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
    channels_last: bool = False,
) -> np.ndarray:
    """Reference average pooling (integer inputs pooled in float64)."""
    nd = len(kernel)
    x = np.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    acc_t = _opmath(x.dtype)
    planes = _planes(x, nd, channels_last)
    in_size = planes.shape[1:]
    out_size = tuple(
        window_count(in_size[j], kernel[j], stride[j], padding[j], padding[j], 1, ceil_mode)
        for j in range(nd)
    )
    out = np.zeros((planes.shape[0],) + out_size, dtype=x.dtype)
    dims = list(zip(in_size, kernel, stride, padding))
    windows = list(_avg_windows(dims, out_size, count_include_pad, divisor_override))
    for p in range(planes.shape[0]):
        for o, taps, div in windows:
            total = acc_t(0)
            for pos in taps:
                total = acc_t(total + acc_t(planes[(p, *pos)]))
            out[(p, *o)] = x.dtype.type(total / acc_t(div))
    return _unplanes(out, x.shape, nd, channels_last)


def avg_pool_backward(grad: np.ndarray, input_shape: tuple[int, ...], *options: Any) -> np.ndarray:
    """Reference average pooling backward (``options`` those of :func:`avg_pool` after
    ``x``): scatter grad/divisor over the same windows, in output row-major order."""
    bound = inspect.signature(avg_pool).bind(None, *options)
    bound.apply_defaults()
    o = bound.arguments
    nd = len(o["kernel"])
    g = _planes(np.asarray(grad), nd, o["channels_last"])
    acc_t = _opmath(g.dtype)
    dx = _planes(np.zeros(input_shape, dtype=g.dtype), nd, o["channels_last"])
    dims = list(zip(dx.shape[1:], o["kernel"], o["stride"], o["padding"]))
    windows = list(_avg_windows(dims, g.shape[1:], o["count_include_pad"],
                                o["divisor_override"]))
    for p in range(g.shape[0]):
        for out_pos, taps, div in windows:
            delta = g.dtype.type(acc_t(g[(p, *out_pos)]) / acc_t(div))
            for pos in taps:
                dx[(p, *pos)] = dx[(p, *pos)] + delta
    return _unplanes(dx, tuple(input_shape), nd, o["channels_last"])


def _window_max(plane: np.ndarray, positions: Iterable[tuple[int, ...]]) -> tuple[Any, int]:
    """The maximum of ``plane`` over ``positions`` (window order) and its row-major index:
    the first maximum wins ties, the last NaN wins."""
    best, best_pos = None, None
    for pos in positions:
        v = plane[pos]
        if best is None or v > best or np.isnan(v):
            best, best_pos = v, pos
    return best, int(np.ravel_multi_index(best_pos, plane.shape))


def adaptive_bounds(o: int, length: int, n_out: int) -> tuple[int, int]:
    """``[floor(o*L/O), ceil((o+1)*L/O))`` by exact integer arithmetic."""
    return (o * length) // n_out, -((-(o + 1) * length) // n_out)


def plane_mean(row: np.ndarray) -> np.generic:
    """Mean of a flat plane as poolkit computes it for all-1 output sizes (the order
    of ``_kernels._lanes``): the plane zero-padded to a multiple of 16, 16 lane sums
    (element ``i`` into lane ``i % 16``, each lane from +0.0), folded pairwise (lane k
    with k + 8, then k + 4, k + 2, k + 1), all in opmath; one division by ``n``."""
    acc_t = _opmath(row.dtype)
    n = row.size
    lanes = [acc_t(0)] * 16
    with np.errstate(all="ignore"):  # IEEE results (inf - inf = NaN, overflow) intended
        for i in range(-(-n // 16) * 16):
            lanes[i % 16] = acc_t(lanes[i % 16] + (acc_t(row[i]) if i < n else acc_t(0)))
        width = 16
        while width > 1:
            width //= 2
            for k in range(width):
                lanes[k] = acc_t(lanes[k] + lanes[k + width])
        return row.dtype.type(acc_t(lanes[0] / acc_t(n)))


def adaptive_avg_pool(x: np.ndarray, out_size: tuple[int, ...]) -> np.ndarray:
    """Reference adaptive average: row-major sum in opmath, divided by each length;
    all-1 output sizes take the mean of the whole plane (:func:`plane_mean`)."""
    nd = len(out_size)
    x = np.asarray(x)
    acc_t = _opmath(x.dtype)
    planes = _planes(x, nd, False)
    if all(o == 1 for o in out_size):
        flat = planes.reshape(planes.shape[0], -1)
        means = np.array([plane_mean(row) for row in flat], dtype=x.dtype)
        return _unplanes(means.reshape((-1,) + (1,) * nd), x.shape, nd, False)
    in_size = planes.shape[1:]
    out = np.empty((planes.shape[0],) + tuple(out_size), dtype=x.dtype)
    with np.errstate(all="ignore"):  # IEEE results (inf - inf = NaN, overflow) intended
        for p in range(planes.shape[0]):
            for o in itertools.product(*(range(n) for n in out_size)):
                bounds = [adaptive_bounds(o[j], in_size[j], out_size[j]) for j in range(nd)]
                total = acc_t(0)
                for pos in itertools.product(*(range(a, b) for a, b in bounds)):
                    total = acc_t(total + acc_t(planes[(p, *pos)]))
                for a, b in bounds:
                    total = acc_t(total / acc_t(b - a))
                out[(p, *o)] = x.dtype.type(total)
    return _unplanes(out, x.shape, nd, False)


def adaptive_max_pool(x: np.ndarray, out_size: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Reference adaptive max: first maximum wins, last NaN wins; plane indices."""
    nd = len(out_size)
    x = np.asarray(x)
    planes = _planes(x, nd, False)
    in_size = planes.shape[1:]
    out = np.empty((planes.shape[0],) + tuple(out_size), dtype=x.dtype)
    idx = np.empty((planes.shape[0],) + tuple(out_size), dtype=np.int64)
    for p in range(planes.shape[0]):
        for o in itertools.product(*(range(n) for n in out_size)):
            bounds = [adaptive_bounds(o[j], in_size[j], out_size[j]) for j in range(nd)]
            out[(p, *o)], idx[(p, *o)] = _window_max(
                planes[p], itertools.product(*(range(a, b) for a, b in bounds)))
    return _unplanes(out, x.shape, nd, False), _unplanes(idx, x.shape, nd, False)


def lp_pool(
    x: np.ndarray,
    norm_type: float,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    ceil_mode: bool = False,
) -> np.ndarray:
    """Reference Lp pooling in float64: ``(sum |x|^p * k / clipped_count)^(1/p)``."""
    nd = len(kernel)
    x = np.asarray(x)
    planes = _planes(x.astype(np.float64), nd, False)
    in_size = planes.shape[1:]
    out_size = tuple(
        window_count(in_size[j], kernel[j], stride[j], 0, 0, 1, ceil_mode) for j in range(nd)
    )
    out = np.empty((planes.shape[0],) + out_size)
    for p in range(planes.shape[0]):
        for o in itertools.product(*(range(n) for n in out_size)):
            total, count = 0.0, 0
            for t in itertools.product(*(range(k) for k in kernel)):
                pos = tuple(o[j] * stride[j] + t[j] for j in range(nd))
                if any(q >= in_size[j] for j, q in enumerate(pos)):
                    continue
                total += abs(planes[(p, *pos)]) ** norm_type
                count += 1
            out[(p, *o)] = (total * int(np.prod(kernel)) / count) ** (1.0 / norm_type)
    return _unplanes(out, x.shape, nd, False)


def fractional_starts(sample, length: int, n_out: int, pool: int) -> list[int]:
    """PyTorch's interval sequence, evaluated in the sample's own float type."""
    t = type(sample)
    seq = []
    if n_out > 1:
        alpha = t(t(length - pool) / t(n_out - 1))
        for i in range(n_out - 1):
            seq.append(int(t(t(t(i) + sample) * alpha)) - int(t(sample * alpha)))
    seq.append(length - pool)
    return seq


def fractional_max_pool(
    x: np.ndarray, kernel: tuple[int, ...], out_size: tuple[int, ...], samples: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Reference fractional max pooling; ``samples`` is ``(N, C, nd)`` ((w, h) for 2-D)."""
    nd = len(kernel)
    x = np.asarray(x)
    planes = _planes(x, nd, False)
    u = np.asarray(samples).reshape(-1, nd)
    in_size = planes.shape[1:]
    out = np.empty((planes.shape[0],) + tuple(out_size), dtype=x.dtype)
    idx = np.empty((planes.shape[0],) + tuple(out_size), dtype=np.int64)
    for p in range(planes.shape[0]):
        which = [1, 0] if nd == 2 else [0, 1, 2]
        seqs = [
            fractional_starts(u[p, which[j]], in_size[j], out_size[j], kernel[j])
            for j in range(nd)
        ]
        for o in itertools.product(*(range(n) for n in out_size)):
            taps = itertools.product(*(range(k) for k in kernel))
            out[(p, *o)], idx[(p, *o)] = _window_max(
                planes[p], (tuple(seqs[j][o[j]] + t[j] for j in range(nd)) for t in taps))
    return _unplanes(out, x.shape, nd, False), _unplanes(idx, x.shape, nd, False)


def max_unpool(
    x: np.ndarray, indices: np.ndarray, out_size: tuple[int, ...]
) -> np.ndarray:
    """Reference unpooling: write values in row-major order (the last duplicate wins)."""
    nd = len(out_size)
    x = np.asarray(x)
    src = _planes(x, nd, False)
    ix = _planes(np.asarray(indices), nd, False)
    out = np.zeros((src.shape[0], int(np.prod(out_size))), dtype=x.dtype)
    for p in range(src.shape[0]):
        for v, i in zip(src[p].reshape(-1), ix[p].reshape(-1)):
            out[p, i] = v
    shape = x.shape[:-nd] + tuple(out_size)
    return out.reshape(shape)


def max_unpool_backward(grad: np.ndarray, indices: np.ndarray, nd: int) -> np.ndarray:
    """Reference unpooling backward: the winner (last duplicate) of a slot takes its grad."""
    g = _planes(np.asarray(grad), nd, False).reshape(-1, int(np.prod(grad.shape[-nd:])))
    ix = np.asarray(indices)
    flat = _planes(ix, nd, False).reshape(g.shape[0], -1)
    dx = np.zeros(flat.shape, dtype=g.dtype)
    for p in range(flat.shape[0]):
        winner = {}
        for k, i in enumerate(flat[p]):
            winner[int(i)] = k
        for i, k in winner.items():
            dx[p, k] = g[p, i]
    return dx.reshape(ix.shape)
