"""Max pooling benchmark: poolkit against PyTorch and a NumPy im2col baseline.

Times every case of the kernels issue side by side in one process: poolkit, PyTorch
(NCHW and channels_last, when PyTorch is importable), and a plain NumPy im2col +
argmax baseline. It measures the machine's memory-copy bandwidth in the same run and
reports, for each case, how close poolkit gets to the memory-bound limit
(bytes read + written / bandwidth), the speed-up over each competitor, the per-call
cost on a tiny input, the peak memory of a forward call, and (with ``--latency``) the
import + first-call time of a fresh process with a cold and a warm compile cache.

Run ``python -m poolkit.bench`` (or ``poolkit bench``); ``--quick`` uses small shapes
and finishes in seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import math
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import poolkit as pk

__all__ = ["Case", "main", "memcpy_bandwidth"]


@dataclass(frozen=True)
class Case:
    """One benchmark row: shape, window and what is timed."""

    label: str
    shape: tuple[int, ...]  # NCHW-style shape (N, C, *spatial)
    kernel: int
    stride: int
    padding: int
    backward: bool = False
    channels_last: bool = False

    @property
    def nd(self) -> int:
        return len(self.shape) - 2


def _cases(quick: bool) -> list[Case]:
    if quick:
        big, small, one_d, three_d = (4, 8, 32, 32), (8, 4, 14, 14), (4, 8, 256), (2, 4, 8, 14, 14)
    else:
        big, small = (32, 64, 112, 112), (128, 16, 28, 28)
        one_d, three_d = (64, 64, 4096), (8, 32, 16, 56, 56)
    return [
        Case("k2s2 fwd+idx", big, 2, 2, 0),
        Case("k2s2 fwd+idx CL", big, 2, 2, 0, channels_last=True),
        Case("k3s2p1 fwd+idx", big, 3, 2, 1),
        Case("k3s2p1 fwd+idx CL", big, 3, 2, 1, channels_last=True),
        Case("k2s2 backward", big, 2, 2, 0, backward=True),
        Case("k3s2p1 backward", big, 3, 2, 1, backward=True),
        Case("k2s2 fwd+idx", small, 2, 2, 0),
        Case("1-D k3s2p1 fwd+idx", one_d, 3, 2, 1),
        Case("3-D k2s2 fwd+idx", three_d, 2, 2, 0),
    ]


# ------------------------------------------------------------------------------------
# timing helpers
# ------------------------------------------------------------------------------------


def best_time(fn: Callable[[], Any], repeat: int, warmup: int = 1) -> float:
    """Best wall-clock seconds per call over ``repeat`` samples after ``warmup`` calls.

    Calls shorter than 5 ms are batched so each sample lasts about 5 ms or more.
    """
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    fn()
    once = time.perf_counter() - t0
    batch = 1 if once >= 5e-3 else min(1000, int(5e-3 / max(once, 1e-7)) + 1)
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(batch):
            fn()
        best = min(best, (time.perf_counter() - t0) / batch)
    return best


def per_call_time(fn: Callable[[], Any], budget: float = 0.2) -> float:
    """Seconds per call of a fast function (best of 5 batches sized to ``budget``)."""
    fn()
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - t0 > budget / 10 or n >= 1 << 20:
            break
        n *= 4
    best = math.inf
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def memcpy_bandwidth(n_bytes: int, threads: int, repeat: int = 5) -> float:
    """Memory-copy bandwidth in bytes/s (bytes read + bytes written per second).

    Copies a ``n_bytes`` buffer with ``threads`` threads (NumPy releases the GIL while
    copying), as many as poolkit's kernels use.
    """
    n = n_bytes // 8
    src = np.ones(n, dtype=np.float64)
    dst = np.zeros_like(src)
    bounds = np.linspace(0, n, threads + 1).astype(int)
    parts = [(dst[a:b], src[a:b]) for a, b in itertools.pairwise(bounds)]
    with ThreadPoolExecutor(threads) as pool:

        def copy() -> None:
            list(pool.map(lambda p: np.copyto(p[0], p[1]), parts))

        t = best_time(copy, repeat)
    return 2 * src.nbytes / t


# ------------------------------------------------------------------------------------
# the NumPy im2col + argmax baseline
# ------------------------------------------------------------------------------------


def im2col_max_pool(x: np.ndarray, k: int, s: int, p: int) -> tuple[np.ndarray, np.ndarray]:
    """Plain NumPy max pooling: pad, copy every window into columns, argmax.

    The classic tutorial baseline: correct for finite inputs, but it copies
    the input ``k**nd`` times. Returns ``(values, flat plane indices)``.
    """
    nd = x.ndim - 2
    axes = tuple(range(2, 2 + nd))
    pad = [(0, 0), (0, 0)] + [(p, p)] * nd
    lowest = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    xp = np.pad(x, pad, constant_values=lowest)
    win = sliding_window_view(xp, (k,) * nd, axis=axes)
    win = win[(slice(None), slice(None)) + (slice(None, None, s),) * nd]
    out_sp = win.shape[2 : 2 + nd]
    cols = win.reshape(x.shape[:2] + out_sp + (k**nd,))  # the im2col copy
    arg = cols.argmax(axis=-1)
    out = np.take_along_axis(cols, arg[..., None], axis=-1)[..., 0]
    # window offset -> plane index of the unpadded input
    offs = np.unravel_index(arg, (k,) * nd)
    grids = np.meshgrid(*[np.arange(o) * s - p for o in out_sp], indexing="ij")
    flat = np.zeros(arg.shape, dtype=np.int64)
    for j in range(nd):
        flat = flat * x.shape[2 + j] + (grids[j] + offs[j])
    return out, flat


def scatter_backward(grad: np.ndarray, idx: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Plain NumPy backward (col2im as one ``np.add.at`` per call)."""
    planes = shape[0] * shape[1]
    dx = np.zeros((planes, math.prod(shape[2:])), dtype=grad.dtype)
    rows = np.repeat(np.arange(planes), grad[0, 0].size)
    np.add.at(dx, (rows, idx.reshape(-1)), grad.reshape(-1))
    return dx.reshape(shape)


# ------------------------------------------------------------------------------------
# one case
# ------------------------------------------------------------------------------------


@dataclass
class Row:
    label: str
    shape: str
    poolkit: float
    torch: float | None
    baseline: float | None
    limit: float

    def cells(self) -> list[str]:
        def ms(t: float | None) -> str:
            return "-" if t is None else f"{t * 1e3:.2f}"

        def ratio(t: float | None) -> str:
            return "-" if t is None else f"{t / self.poolkit:.1f}x"

        return [
            self.label,
            self.shape,
            ms(self.poolkit),
            ms(self.torch),
            ms(self.baseline),
            ratio(self.torch),
            ratio(self.baseline),
            f"{self.limit / self.poolkit:.0%}",
        ]


def _to_cl(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))


def run_case(case: Case, torch: Any, bandwidth: float, repeat: int, baseline: bool) -> Row:
    """Time one case for poolkit, PyTorch (if given) and the im2col baseline."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(case.shape, dtype=np.float32)
    nd, k, s, p = case.nd, case.kernel, case.stride, case.padding
    cl = case.channels_last
    xin = _to_cl(x) if cl else x
    kw = dict(kernel_size=(k,) * nd, stride=(s,) * nd, padding=(p,) * nd)
    y, idx = pk.max_pool(xin, return_indices=True, channels_last=cl, **kw)
    if case.backward:
        g = np.ones_like(y)

        def run_pk() -> Any:
            return pk.max_pool_backward(g, idx, xin.shape, channels_last=cl)

        moved = g.nbytes + idx.nbytes + x.nbytes
    else:

        def run_pk() -> Any:
            return pk.max_pool(xin, return_indices=True, channels_last=cl, **kw)

        moved = x.nbytes + y.nbytes + idx.nbytes
    t_pk = best_time(run_pk, repeat)

    t_torch = None
    if torch is not None:
        fn = getattr(torch.nn.functional, f"max_pool{nd}d")
        tx = torch.from_numpy(x)
        if cl:
            tx = tx.contiguous(
                memory_format=torch.channels_last if nd == 2 else torch.channels_last_3d
            )
        if case.backward:
            tx.requires_grad_(True)
            ty = fn(tx, k, s, p)
            tg = torch.ones_like(ty)

            def run_torch() -> Any:
                tx.grad = None
                ty.backward(tg, retain_graph=True)
                return tx.grad

        else:

            def run_torch() -> Any:
                return fn(tx, k, s, p, return_indices=True)

        with contextlib.nullcontext() if case.backward else torch.no_grad():
            t_torch = best_time(run_torch, repeat)

    t_base = None
    if baseline:
        if case.backward:
            gb, ib = _nchw(np.ones_like(y), cl), _nchw(idx, cl)
            t_base = best_time(lambda: scatter_backward(gb, ib, x.shape), 1, warmup=0)
        else:
            t_base = best_time(lambda: im2col_max_pool(x, k, s, p), 1, warmup=0)
    return Row(
        case.label,
        "x".join(map(str, case.shape)),
        t_pk,
        t_torch,
        t_base,
        moved / bandwidth,
    )


def _nchw(a: np.ndarray, cl: bool) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(a, -1, 1)) if cl else a


# ------------------------------------------------------------------------------------
# small rows: per-call cost, peak memory, first-call latency
# ------------------------------------------------------------------------------------


def peak_forward_memory(shape: tuple[int, ...]) -> tuple[int, int]:
    """(peak bytes traced during one forward with indices, output + indices bytes)."""
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    pk.max_pool2d(x, 3, 2, 1, return_indices=True)  # compile / plan outside the trace
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        y, idx = pk.max_pool2d(x, 3, 2, 1, return_indices=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, y.nbytes + idx.nbytes


_FIRST_CALL = (
    "import time; t0 = time.perf_counter(); import numpy as np, poolkit; "
    "poolkit.max_pool2d(np.zeros((1, 1, 4, 4), np.float32), 2); "
    "print(time.perf_counter() - t0)"
)


def first_call_latency(cache_dir: str) -> float:
    """Seconds for import + first max_pool2d call in a fresh interpreter."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    src = os.path.dirname(os.path.dirname(os.path.abspath(pk.__file__)))
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    res = subprocess.run(
        [sys.executable, "-c", _FIRST_CALL], env=env, capture_output=True, text=True, check=True
    )
    return float(res.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------


def markdown_table(rows: list[list[str]]) -> str:
    """Rows of cells (the first is the header) as an aligned markdown table.

    Examples
    --------
    >>> print(markdown_table([["a", "bb"], ["1", "2"]]))
    | a | bb |
    |---|----|
    | 1 | 2  |
    """
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, r in enumerate(rows):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
        if j == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _import_torch() -> Any:
    try:
        import torch
    except ImportError:
        return None
    return torch


class OneLineErrorParser(argparse.ArgumentParser):
    """Usage errors as one line (``poolkit bench: error: ...``) and exit status 2, as the
    ``poolkit`` command reports its own, instead of argparse's usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def positive_int(text: str) -> int:
    """argparse type of the benchmark commands' counts: an integer >= 1.

    Examples
    --------
    >>> positive_int("3")
    3
    """
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table; returns the exit status.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default ``sys.argv[1:]``): ``--quick`` (small shapes,
        a few seconds), ``--threads N``, ``--repeat R``, ``--no-baseline``,
        ``--no-torch``, ``--latency`` (also time import + first call in fresh processes).
        ``--peers`` runs :func:`poolkit.bench_peers.main` on the other arguments and
        ``--cold`` :func:`poolkit.bench_cold.main`.

    Returns
    -------
    int
        0 on success.

    Examples
    --------
    >>> from poolkit.bench import main
    >>> main(["--quick", "--no-baseline", "--no-torch"])  # doctest: +SKIP
    0
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    for flag, module in (("--peers", "bench_peers"), ("--cold", "bench_cold")):
        if flag in argv:  # the other benchmarks, with their own options
            import importlib

            rest = [a for a in argv if a != flag]
            return int(importlib.import_module(f"poolkit.{module}").main(rest) or 0)
    parser = OneLineErrorParser(
        prog="poolkit bench",
        description="Benchmark poolkit's max pooling. With --peers: against onnxruntime and "
        "PyTorch (see 'poolkit bench --peers --help'); with --cold: first calls in a fresh "
        "numba cache (see 'poolkit bench --cold --help').",
    )
    parser.add_argument("--quick", action="store_true", help="small shapes (seconds)")
    parser.add_argument(
        "--threads", type=positive_int, default=None, help="threads for both libraries"
    )
    parser.add_argument(
        "--repeat", type=positive_int, default=None, help="timed repetitions per case"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the im2col baseline")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    parser.add_argument(
        "--latency", action="store_true", help="also time import + first call (fresh processes)"
    )
    parser.add_argument(
        "--peers", action="store_true", help="the peer benchmark (onnxruntime, PyTorch)"
    )
    parser.add_argument(
        "--cold", action="store_true", help="first-call times in a fresh numba cache"
    )
    args = parser.parse_args(argv)

    if args.threads is not None:
        pk.set_num_threads(args.threads)
    threads = pk.get_num_threads()
    repeat = args.repeat or (3 if args.quick else 5)
    torch = None if args.no_torch else _import_torch()
    if torch is None and not args.no_torch:
        print("PyTorch is not importable: its columns are skipped.")
    if torch is not None:
        torch.set_num_threads(threads)

    bandwidth = memcpy_bandwidth((16 if args.quick else 256) << 20, threads)
    print(
        f"poolkit {pk.__version__}, float32, {threads} thread(s); "
        f"memcpy bandwidth {bandwidth / 1e9:.1f} GB/s (read + write)"
        + (f"; torch {torch.__version__}" if torch is not None else "")
    )
    header = [
        "case",
        "shape",
        "poolkit ms",
        "torch ms",
        "im2col ms",
        "vs torch",
        "vs im2col",
        "of bw limit",
    ]
    rows = [header]
    for case in _cases(args.quick):
        row = run_case(case, torch, bandwidth, repeat, not args.no_baseline)
        rows.append(row.cells())
        print("  done:", row.label, row.shape, flush=True)
    print()
    print(markdown_table(rows))
    print(
        "torch ms: PyTorch NCHW, or channels_last for the CL rows; vs: time / poolkit time;"
        " of bw limit: (bytes read + written) / memcpy bandwidth / poolkit time."
    )

    x1 = np.zeros((1, 1, 4, 4), dtype=np.float32)
    t1 = per_call_time(lambda: pk.max_pool2d(x1, 2))
    line = f"(1,1,4,4) k2, one call: poolkit {t1 * 1e6:.2f} us"
    if torch is not None:
        tx1 = torch.from_numpy(x1)
        tt1 = per_call_time(lambda: torch.nn.functional.max_pool2d(tx1, 2))
        line += f", torch {tt1 * 1e6:.2f} us ({t1 / tt1:.1f}x torch's time)"
    print(line)

    mem_shape = (4, 16, 56, 56) if args.quick else (32, 64, 112, 112)
    peak, need = peak_forward_memory(mem_shape)
    print(
        f"peak memory of a k3s2p1 forward with indices on {mem_shape}: {peak / 2**20:.1f} MiB"
        f" = {peak / need:.3f}x output + indices ({need / 2**20:.1f} MiB)"
    )

    if args.latency:
        with tempfile.TemporaryDirectory() as cache:
            cold = first_call_latency(cache)
            warm = min(first_call_latency(cache) for _ in range(3))
        print(f"import + first call, fresh process: cold cache {cold:.2f} s, warm {warm:.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
