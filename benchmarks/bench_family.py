"""Time the pooling family in poolkit against PyTorch (CPU), side by side.

Usage: ``python benchmarks/bench_family.py [--repeat 7] [--quick] [--single-thread]``.
Both libraries use their default thread counts (``--single-thread``: one each, timed by
process CPU time); each row reports the best of at least ``--repeat`` runs of each
(more for fast calls, up to about 0.25 s of samples), measured alternately after a
warm-up call (numba compilation excluded). float32, NCHW unless stated. Numbers from a
machine shared with other work are noisy.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch

import poolkit as pk

A = torch.ops.aten


def best_pair(
    ours: Callable[[], object],
    theirs: Callable[[], object],
    repeat: int,
    clock=time.perf_counter,
    budget: float = 0.25,
    max_rounds: int = 500,
):
    """Best times of both, measured alternately (fairer on a busy machine): at least
    ``repeat`` rounds, and more for fast calls until ``budget`` seconds of samples (at
    most ``max_rounds``), so a sub-millisecond row is not decided by a handful of
    samples on a noisy host."""
    ours()
    theirs()
    a, b = [], []
    rounds = 0
    while rounds < repeat or (sum(a) + sum(b) < budget and rounds < max_rounds):
        for fn, times in ((ours, a), (theirs, b)):
            start = clock()
            fn()
            times.append(clock() - start)
        rounds += 1
    return min(a), min(b)


def rows(shape: tuple[int, ...], rng: np.random.Generator):
    x = rng.standard_normal(shape).astype(np.float32)
    tx = torch.from_numpy(x)
    y = pk.avg_pool2d(x, 3, 2, 1)
    g = np.ones_like(y)
    tg = torch.from_numpy(g)
    yield (
        "avg_pool2d k3 s2 p1 forward",
        lambda: pk.avg_pool2d(x, 3, 2, 1),
        lambda: torch.nn.functional.avg_pool2d(tx, 3, 2, 1),
    )
    yield (
        "avg_pool2d k3 s2 p1 backward",
        lambda: pk.avg_pool2d_backward(g, x.shape, 3, 2, 1),
        lambda: A.avg_pool2d_backward(tg, tx, [3, 3], [2, 2], [1, 1], False, True, None),
    )
    for size, feature in ((1, (shape[0], 2048, 7, 7)), (7, (shape[0], 512, 14, 14)), (7, None)):
        # the usual places: ResNet's head (2048x7x7 -> 1), VGG's (512x14x14 -> 7), and the
        # large input itself
        xa = x if feature is None else rng.standard_normal(feature).astype(np.float32)
        txa = torch.from_numpy(xa)
        ga = np.ones_like(pk.adaptive_avg_pool2d(xa, size))
        tga = torch.from_numpy(ga)
        label = f"adaptive_avg_pool2d {xa.shape[1:]} -> {size}x{size}"
        yield (
            f"{label} forward",
            lambda xa=xa, size=size: pk.adaptive_avg_pool2d(xa, size),
            lambda txa=txa, size=size: torch.nn.functional.adaptive_avg_pool2d(txa, size),
        )
        yield (
            f"{label} backward",
            lambda ga=ga, xa=xa: pk.adaptive_avg_pool2d_backward(ga, xa.shape),
            lambda tga=tga, txa=txa: A._adaptive_avg_pool2d_backward(tga, txa),
        )
    yield (
        "adaptive_max_pool2d -> 7x7 forward+indices",
        lambda: pk.adaptive_max_pool2d(x, 7, return_indices=True),
        lambda: torch.nn.functional.adaptive_max_pool2d(tx, 7, return_indices=True),
    )
    yield (
        "lp_pool2d p=2 k3 s2 forward",
        lambda: pk.lp_pool2d(x, 2.0, 3, 2),
        lambda: torch.nn.functional.lp_pool2d(tx, 2.0, 3, 2),
    )
    ym, idx = pk.max_pool2d(x, 2, return_indices=True)
    tym, tidx = torch.from_numpy(ym), torch.from_numpy(idx)
    yield (
        "max_unpool2d k2 forward",
        lambda: pk.max_unpool2d(ym, idx, 2),
        lambda: torch.nn.functional.max_unpool2d(tym, tidx, 2),
    )
    u = rng.random((shape[0], shape[1], 2)).astype(np.float32)
    tu = torch.from_numpy(u)
    out = (shape[2] * 5 // 8, shape[3] * 5 // 8)
    yield (
        "fractional_max_pool2d k2 ratio 0.625",
        lambda: pk.fractional_max_pool2d(x, 2, out, random_samples=u),
        lambda: torch.nn.functional.fractional_max_pool2d(tx, 2, out, _random_samples=tu),
    )
    yield (
        "global_avg_pool",
        lambda: pk.global_avg_pool(x),
        lambda: tx.mean((2, 3), keepdim=True),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="smaller input (8,64,112,112)")
    parser.add_argument(
        "--single-thread",
        action="store_true",
        help="one thread each, timed by process CPU time (steadier on a shared machine)",
    )
    args = parser.parse_args(argv)
    clock = time.perf_counter
    if args.single_thread:
        pk.set_num_threads(1)
        torch.set_num_threads(1)
        clock = time.process_time
    shape = (8, 64, 112, 112) if args.quick else (32, 64, 112, 112)
    rng = np.random.default_rng(0)
    print(f"input {shape} float32; torch threads {torch.get_num_threads()}")
    print(f"{'operation':58s} {'poolkit ms':>11s} {'torch ms':>10s} {'speed-up':>9s}")
    for name, ours, theirs in rows(shape, rng):
        a, b = best_pair(ours, theirs, args.repeat, clock)
        print(f"{name:58s} {a * 1e3:11.3f} {b * 1e3:10.3f} {b / a:8.2f}x")


if __name__ == "__main__":
    main()
