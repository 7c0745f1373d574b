"""Cold start: the first call of an operation in a fresh numba cache.

For each of max_pool2d forward (values; ``--ops max_pool2d_indices``: with indices),
max_pool2d_backward and avg_pool2d forward (float32 NCHW,
``(8, 64, 56, 56)``, k3 s2 p1) this starts a fresh Python process with
``NUMBA_CACHE_DIR`` set to a new empty directory and measures, in that process,

* ``import``: ``import numpy, poolkit``;
* ``first call``: the first call of the operation (numba compiles what it needs, then runs);
* ``first call CPU``: the process's CPU time during the first call (all threads; on a
  busy host it is the steadier number, as compilation runs on one thread);
* ``second call``: the same call again (compiled), so ``first - second`` is the compile cost.

The backward's input indices are computed with NumPy only (an im2col argmax), so no
forward kernel is compiled before the timed backward call. ``--warm`` also reruns each
operation in a process that reuses the directory the cold run filled (the warm-cache first
call).

Where numba's cache lives: with ``cache=True`` numba stores each compiled function next to
its source file, in ``__pycache__`` (of ``site-packages/poolkit/_kernels/`` for an
installed package, of the source tree for an editable install) when that directory is
writable, and otherwise in the user-wide cache directory (``~/.cache/numba`` on Linux).
``NUMBA_CACHE_DIR`` overrides both: numba then reads and writes only there (its
``UserProvidedCacheLocator`` comes first and the in-tree ``__pycache__`` index is not
consulted), which is what makes each measurement here cold. The run is repeated
(``--runs``, default 2) with a new directory each time, so a cache reused by accident would
show up as a much faster second run.

Run ``python benchmarks/bench_cold.py`` or ``poolkit bench --cold``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import poolkit as pk
from poolkit.bench import OneLineErrorParser, markdown_table, positive_int

__all__ = ["OPERATIONS", "cold_call", "main"]

#: The operations that can be timed, by name (``max_pool2d``: values only).
OPERATIONS: tuple[str, ...] = (
    "max_pool2d",
    "max_pool2d_indices",
    "max_pool2d_backward",
    "avg_pool2d",
)
_DEFAULT_OPS = ("max_pool2d", "max_pool2d_backward", "avg_pool2d")

_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import poolkit as pk
t1 = time.perf_counter()
op, shape = sys.argv[1], tuple(json.loads(sys.argv[2]))
x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
if op == "max_pool2d":
    call = lambda: pk.max_pool2d(x, 3, 2, 1)
elif op == "max_pool2d_indices":
    call = lambda: pk.max_pool2d(x, 3, 2, 1, return_indices=True)
elif op == "avg_pool2d":
    call = lambda: pk.avg_pool2d(x, 3, 2, 1)
else:
    from poolkit.bench import im2col_max_pool  # NumPy only: compiles nothing
    y, idx = im2col_max_pool(x, 3, 2, 1)
    g = np.ones_like(y)
    call = lambda: pk.max_pool2d_backward(g, idx, x.shape)
t2, c2 = time.perf_counter(), time.process_time()
call()
t3, c3 = time.perf_counter(), time.process_time()
call()
t4 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "first": t3 - t2, "first_cpu": c3 - c2, "second": t4 - t3}))
"""


def cold_call(op: str, cache_dir: str, shape: tuple[int, ...] = (8, 64, 56, 56)) -> dict:
    """Import, first-call and second-call seconds of ``op`` in a fresh process.

    Parameters
    ----------
    op : {"max_pool2d", "max_pool2d_indices", "max_pool2d_backward", "avg_pool2d"}
        The operation (float32 NCHW, k3 s2 p1; ``max_pool2d``: values only,
        ``max_pool2d_indices``: ``return_indices=True``).
    cache_dir : str
        ``NUMBA_CACHE_DIR`` of the process: an empty directory for a cold start.
    shape : tuple of int, default (8, 64, 56, 56)
        The input shape.

    Returns
    -------
    dict
        Seconds: ``{"import": ..., "first": ..., "first_cpu": ..., "second": ...}``.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:  # doctest: +SKIP
    ...     cold_call("avg_pool2d", d)
    {'import': 0.2, 'first': 9.5, 'first_cpu': 9.4, 'second': 0.001}
    """
    if op not in OPERATIONS:
        raise ValueError(f"op must be one of {OPERATIONS}, got {op!r}")
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    src = os.path.dirname(os.path.dirname(os.path.abspath(pk.__file__)))
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    res = subprocess.run(
        [sys.executable, "-c", _CHILD, op, json.dumps(list(shape))],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    """Time cold first calls and print a markdown table; returns the exit status.

    Parameters
    ----------
    argv : list of str, optional
        ``--runs N`` (cold runs per operation, each in a new cache directory, default 2),
        ``--ops NAME[,NAME...]`` (of :data:`OPERATIONS`; default max_pool2d (values),
        max_pool2d_backward and avg_pool2d), ``--warm`` (also a
        process that reuses the filled cache), ``--shape N,C,H,W``.

    Returns
    -------
    int
        0 on success.

    Examples
    --------
    >>> from poolkit.bench_cold import main
    >>> main(["--runs", "1", "--ops", "avg_pool2d"])  # doctest: +SKIP
    0
    """
    parser = OneLineErrorParser(
        prog="poolkit bench --cold",
        description="First call of an operation in a fresh process and numba cache.",
    )
    parser.add_argument(
        "--runs",
        type=positive_int,
        default=2,
        help="cold runs per operation, each with a new cache dir (default 2)",
    )
    parser.add_argument(
        "--ops",
        default=",".join(_DEFAULT_OPS),
        help=f"comma-separated operations to time, of {', '.join(OPERATIONS)} "
        f"(default {','.join(_DEFAULT_OPS)})",
    )
    parser.add_argument(
        "--warm", action="store_true", help="also time a process that reuses the filled cache"
    )
    parser.add_argument("--shape", default="8,64,56,56", help="input shape (default 8,64,56,56)")
    args = parser.parse_args(argv)
    ops = [o.strip() for o in args.ops.split(",") if o.strip()]
    for op in ops:
        if op not in OPERATIONS:
            parser.error(f"unknown operation {op!r} (choose from {', '.join(OPERATIONS)})")
    try:
        shape = tuple(int(v) for v in args.shape.split(","))
    except ValueError:
        parser.error(f"--shape expects N,C,H,W, got {args.shape!r}")
    if len(shape) != 4 or min(shape) < 1:
        parser.error(f"--shape expects N,C,H,W, got {args.shape!r}")

    table = [
        [
            "operation",
            "run",
            "cache",
            "import s",
            "first call s",
            "first call CPU s",
            "second call s",
        ]
    ]
    for op in ops:
        for run in range(1, args.runs + 1):
            with tempfile.TemporaryDirectory(prefix="poolkit-cold-") as cache:
                t = cold_call(op, cache, shape)
                table.append(
                    [
                        op,
                        str(run),
                        "cold",
                        f"{t['import']:.2f}",
                        f"{t['first']:.2f}",
                        f"{t['first_cpu']:.2f}",
                        f"{t['second']:.4f}",
                    ]
                )
                if args.warm:
                    w = cold_call(op, cache, shape)
                    table.append(
                        [
                            op,
                            str(run),
                            "warm",
                            f"{w['import']:.2f}",
                            f"{w['first']:.3f}",
                            f"{w['first_cpu']:.3f}",
                            f"{w['second']:.4f}",
                        ]
                    )
            print(f"  done: {op} run {run}", flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print()
    print(
        f"Fresh process per cell, NUMBA_CACHE_DIR = a new empty directory per run ('warm': "
        f"a second process reusing it); float32 NCHW {shape}, k3 s2 p1, "
        f"{os.cpu_count()} CPUs (load average {load:.2f} at the end). 'first call' includes "
        "numba's compilation (and numba's import: 'import poolkit' does not load numba)."
    )
    print()
    print(markdown_table(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
