"""Peer benchmark: poolkit against onnxruntime and PyTorch (NCHW and channels_last).

Times, in one process, the rows of issue 11: max pooling values, max pooling with
indices, max pooling backward, average pooling and global average pooling, float32, on
the shapes convnets use ("cache-resident" rows) and on a large batch whose data does not
fit in cache ("DRAM" rows). Every row is timed at each thread count of ``--threads``
(default ``1,2``; DRAM rows only at the largest unless ``--dram-all-threads``) for every
peer that is importable:

* ``poolkit``: NCHW input; for backward also ``poolkit out=`` (a preallocated gradient)
  when :func:`poolkit.max_pool2d_backward` accepts ``out=``;
* ``poolkit CL``: ``channels_last=True`` on an NHWC (C-contiguous) NumPy array;
* ``onnxruntime``: a one-node ONNX model (opset 18) in an ``InferenceSession`` per
  thread count, ``intra_op_num_threads`` = the thread count, ``inter_op_num_threads`` = 1,
  ``session.intra_op.allow_spinning`` = 0 (no backward: onnxruntime's CPU build has no
  pooling gradient);
* ``torch`` and ``torch CL``: PyTorch's CPU kernels on an NCHW tensor and on the same
  tensor made ``channels_last``, under ``torch.inference_mode``; backward is
  ``torch.ops.aten.max_pool2d_with_indices_backward`` (the kernel autograd calls, without
  the autograd engine, so it does the same work as poolkit's backward).

Timing: after a warm-up call each peer's calls are batched to about 2 ms per sample;
samples alternate between the peers (the order rotates every round, so no peer always
runs after the same other one) until every peer has ``--repeat`` samples and the row has
used about 0.5 s; each peer's best sample is reported. Before timing, each row checks
once that every peer computes what poolkit computes (max values and indices exactly,
averages and gradients to float32 rounding); a disagreement is reported and makes the
exit status 1.

Run ``python benchmarks/bench_peers.py`` or ``poolkit bench --peers``; ``--quick`` uses
small shapes and finishes in seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import math
import os
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import poolkit as pk
from poolkit.bench import OneLineErrorParser, markdown_table, memcpy_bandwidth, positive_int

__all__ = ["PEERS", "PeerRow", "interleaved_best", "main", "peer_rows"]

#: Column order of the peers in the table.
PEERS: tuple[str, ...] = (
    "poolkit",
    "poolkit out=",
    "poolkit CL",
    "onnxruntime",
    "torch",
    "torch CL",
)
_NCHW_OTHERS = ("onnxruntime", "torch")
_SHORT = {"onnxruntime": "ort", "torch": "torch", "torch CL": "torch CL"}


@dataclass(frozen=True)
class PeerRow:
    """One row of the peer benchmark.

    Parameters
    ----------
    op : {"max", "max+idx", "max bwd", "avg", "global avg"}
        What is timed.
    shape : tuple of 4 ints
        NCHW shape of the input (of the forward input for ``"max bwd"``).
    kernel, stride, padding : int
        The pooling window (ignored for ``"global avg"``).
    dram : bool, default False
        The data does not fit in cache: also report poolkit's fraction of copy bandwidth.

    Examples
    --------
    >>> PeerRow("max", (1, 64, 112, 112), 3, 2, 1).label
    'max values (1,64,112,112) k3s2p1'
    """

    op: str
    shape: tuple[int, int, int, int]
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    dram: bool = False

    @property
    def label(self) -> str:
        """The row's name in the table."""
        name = {
            "max": "max values",
            "max+idx": "max + indices",
            "max bwd": "max backward",
            "avg": "avg values",
            "global avg": "global avg",
        }[self.op]
        text = f"{name} ({','.join(map(str, self.shape))})"
        if self.op != "global avg":
            text += f" k{self.kernel}s{self.stride}" + (f"p{self.padding}" if self.padding else "")
        return text


def peer_rows(quick: bool = False) -> list[PeerRow]:
    """The benchmark's rows, in table order.

    Parameters
    ----------
    quick : bool, default False
        Small shapes (the same kinds of rows), for a run of seconds.

    Returns
    -------
    list of PeerRow

    Examples
    --------
    >>> [r.label for r in peer_rows(quick=True)][:2]
    ['max values (1,8,32,32) k3s2p1', 'max values (8,8,14,14) k2s2']
    """
    if quick:
        cache = [((1, 8, 32, 32), 3, 2, 1), ((8, 8, 14, 14), 2, 2, 0)]
        dram = [((2, 16, 64, 64), 2, 2, 0), ((2, 16, 64, 64), 3, 2, 1)]
        globals_ = [(8, 64, 7, 7)]
    else:
        cache = [
            ((1, 64, 112, 112), 3, 2, 1),
            ((64, 32, 28, 28), 2, 2, 0),
            ((64, 64, 14, 14), 2, 2, 0),
            ((8, 64, 56, 56), 3, 2, 1),
        ]
        dram = [((32, 64, 112, 112), 2, 2, 0), ((32, 64, 112, 112), 3, 2, 1)]
        globals_ = [(64, 512, 7, 7), (8, 2048, 7, 7)]
    rows = []
    for op in ("max", "max+idx", "max bwd", "avg"):
        rows += [PeerRow(op, s, k, st, p) for s, k, st, p in cache]
        rows += [PeerRow(op, s, k, st, p, dram=True) for s, k, st, p in dram]
    rows += [PeerRow("global avg", s) for s in globals_]
    return rows


# ------------------------------------------------------------------------------------
# timing
# ------------------------------------------------------------------------------------


def interleaved_best(
    calls: dict[str, Callable[[], Any]],
    repeat: int,
    sample: float = 2e-3,
    budget: float = 0.5,
    max_rounds_factor: int = 10,
    clock: Callable[[], float] = time.perf_counter,
    warm: bool = True,
) -> dict[str, float]:
    """Best seconds per call of each function, sampled alternately.

    Parameters
    ----------
    calls : dict of str to callable
        The peers' zero-argument calls.
    repeat : int
        At least this many samples per peer.
    sample : float, default 2e-3
        Calls are batched so one sample lasts about this many seconds.
    budget : float, default 0.5
        More rounds (up to ``max_rounds_factor * repeat``) until the samples of all peers
        add up to this many seconds.
    max_rounds_factor : int, default 10
        Limit on the rounds, as a multiple of ``repeat``.
    clock : callable, default time.perf_counter
        The clock, e.g. ``time.process_time`` (CPU time of the process: at one thread
        it does not count the time the process waits for a core on a busy host).
    warm : bool, default True
        One untimed call just before each timed batch, so that every peer starts its
        sample with its own arrays in cache. Without it the other peers' calls evict
        them between samples, and the first call of a batch pays for it unevenly: a
        new output is allocated from the block the previous peer just freed (in cache),
        while a preallocated ``out=`` buffer must come back from memory (``poolkit
        out=`` of a 1 ms row measured up to 1.6x its steady time, in 2-call batches).

    Returns
    -------
    dict of str to float
        Best (smallest) mean seconds per call over the samples, for each peer.

    Examples
    --------
    >>> t = interleaved_best({"a": lambda: sum(range(100)), "b": lambda: None}, 3)
    >>> sorted(t) == ["a", "b"] and t["a"] > 0
    True
    """
    names = list(calls)
    batch = {}
    for name in names:
        fn = calls[name]
        fn()  # warm-up: compilation, allocation, caches
        t0 = clock()
        fn()
        once = clock() - t0
        batch[name] = max(1, min(1000, math.ceil(sample / max(once, 1e-7))))
    best = dict.fromkeys(names, math.inf)
    spent = 0.0
    rounds = 0
    while rounds < repeat or (spent < budget and rounds < max_rounds_factor * repeat):
        shift = rounds % len(names)
        for name in names[shift:] + names[:shift]:
            fn, n = calls[name], batch[name]
            if warm:
                fn()
            t0 = clock()
            for _ in range(n):
                fn()
            dt = clock() - t0
            spent += dt
            best[name] = min(best[name], dt / n)
        rounds += 1
    return best


# ------------------------------------------------------------------------------------
# the peers of one row
# ------------------------------------------------------------------------------------


def _import(name: str) -> Any:
    try:
        return __import__(name)
    except ImportError:
        return None


def _backward_takes_out() -> bool:
    try:
        return "out" in inspect.signature(pk.max_pool2d_backward).parameters
    except (TypeError, ValueError):
        return False


def _ort_session(ort: Any, onnx: Any, row: PeerRow, threads: int) -> Any:
    """One-node ONNX model of ``row`` in an InferenceSession on ``threads`` threads."""
    from onnx import TensorProto, helper

    k, s, p = row.kernel, row.stride, row.padding
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if row.op == "global avg":
        node = helper.make_node("GlobalAveragePool", ["x"], ["y"])
    else:
        attrs: dict[str, Any] = dict(kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p])
        if row.op == "avg":
            node = helper.make_node("AveragePool", ["x"], ["y"], count_include_pad=1, **attrs)
        else:
            names = ["y"]
            if row.op == "max+idx":
                names.append("i")
                outputs.append(helper.make_tensor_value_info("i", TensorProto.INT64, None))
            node = helper.make_node("MaxPool", ["x"], names, **attrs)
    graph = helper.make_graph(
        [node],
        "pool",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(row.shape))],
        outputs,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = min(model.ir_version, 10)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


@dataclass
class _Prepared:
    """Inputs, calls and agreement checks of one row."""

    row: PeerRow
    calls: dict[str, Callable[[], Any]]  # thread-independent peers
    ort_call: Callable[[int], Callable[[], Any]] | None  # thread count -> call
    check: Callable[[], list[str]]
    moved: int  # bytes read + written by poolkit's call
    notes: list[str] = field(default_factory=list)


def _nhwc(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))


def _nchw(a: np.ndarray) -> np.ndarray:
    return np.moveaxis(a, -1, 1)


def _agree(name: str, got: Any, want: np.ndarray, exact: bool) -> list[str]:
    got = np.asarray(got)
    if got.shape != want.shape:
        return [f"{name}: shape {got.shape} != poolkit's {want.shape}"]
    ok = np.array_equal(got, want) if exact else np.allclose(got, want, rtol=1e-5, atol=1e-6)
    if ok:
        return []
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    return [
        f"{name}: {np.count_nonzero(diff)} elements differ from poolkit (max |diff| "
        f"{diff.max():.3g})"
    ]


def _agree_indices(
    name: str, got: Any, want: np.ndarray, x: np.ndarray, values: np.ndarray, plane: bool
) -> list[str]:
    """Indices agree if equal, or (ties) if they point at the same maximum values."""
    got = np.asarray(got)
    if got.shape == want.shape and np.array_equal(got, want):
        return []
    n, c, h, w = x.shape
    flat = got
    if plane:
        flat = got + (np.arange(n * c).reshape(n, c, 1, 1) * (h * w))
    if got.shape == want.shape and np.array_equal(x.reshape(-1)[flat], values):
        return []  # a tie broken differently: still a maximum
    return [f"{name}: indices differ from poolkit's and do not point at the maxima"]


def _prepare(row: PeerRow, torch: Any, ort: Any, onnx: Any) -> _Prepared:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(row.shape, dtype=np.float32)
    xc = _nhwc(x)
    k, s, p = row.kernel, row.stride, row.padding
    calls: dict[str, Callable[[], Any]] = {}
    tx = txc = None
    if torch is not None:
        tx = torch.from_numpy(x)
        txc = tx.contiguous(memory_format=torch.channels_last)
    F = torch.nn.functional if torch is not None else None
    ort_feed = {"x": x}
    ort_names = ["y", "i"] if row.op == "max+idx" else ["y"]
    notes: list[str] = []
    checks: list[Callable[[], list[str]]] = []

    if row.op in ("max", "max+idx"):
        idx = row.op == "max+idx"
        y = pk.max_pool2d(x, k, s, p, return_indices=idx)
        calls["poolkit"] = lambda: pk.max_pool2d(x, k, s, p, return_indices=idx)
        calls["poolkit CL"] = lambda: pk.max_pool2d(
            xc, k, s, p, return_indices=idx, channels_last=True
        )
        if torch is not None:
            calls["torch"] = lambda: F.max_pool2d(tx, k, s, p, return_indices=idx)
            calls["torch CL"] = lambda: F.max_pool2d(txc, k, s, p, return_indices=idx)
        values, plane_idx = y if idx else (y, None)
        moved = x.nbytes + values.nbytes + (plane_idx.nbytes if idx else 0)

        def check() -> list[str]:
            bad: list[str] = []
            pairs = [
                ("poolkit CL", lambda r: (_nchw(r[0]), _nchw(r[1])) if idx else (_nchw(r), None))
            ]
            if torch is not None:
                pairs += [
                    (n, lambda r: (r[0].numpy(), r[1].numpy()) if idx else (r.numpy(), None))
                    for n in ("torch", "torch CL")
                ]
            for name, conv in pairs:
                got_v, got_i = conv(calls[name]())
                bad += _agree(name, got_v, values, exact=True)
                if idx:
                    bad += _agree_indices(name, got_i, plane_idx, x, values, plane=True)
            if ort is not None and onnx is not None:
                res = _ort_session(ort, onnx, row, 1).run(ort_names, ort_feed)
                bad += _agree("onnxruntime", res[0], values, exact=True)
                if idx:
                    _, glob = pk.max_pool2d(x, k, s, p, return_indices=True, index_format="global")
                    bad += _agree_indices("onnxruntime", res[1], glob, x, values, plane=False)
            return bad

        checks.append(check)

    elif row.op == "max bwd":
        _, i = pk.max_pool2d(x, k, s, p, return_indices=True)
        g = rng.standard_normal(i.shape, dtype=np.float32)
        _, ic = pk.max_pool2d(xc, k, s, p, return_indices=True, channels_last=True)
        gc = _nhwc(g)
        shape, shape_c = x.shape, xc.shape
        calls["poolkit"] = lambda: pk.max_pool2d_backward(g, i, shape)
        if _backward_takes_out():
            buf = np.empty_like(x)
            calls["poolkit out="] = lambda: pk.max_pool2d_backward(g, i, shape, out=buf)
        calls["poolkit CL"] = lambda: pk.max_pool2d_backward(gc, ic, shape_c, channels_last=True)
        if torch is not None:
            bwd = torch.ops.aten.max_pool2d_with_indices_backward
            tg, ti = torch.from_numpy(g), torch.from_numpy(i)
            tgc = tg.contiguous(memory_format=torch.channels_last)
            _, tic = F.max_pool2d(txc, k, s, p, return_indices=True)
            ks, ss, ps = [k, k], [s, s], [p, p]
            calls["torch"] = lambda: bwd(tg, tx, ks, ss, ps, [1, 1], False, ti)
            calls["torch CL"] = lambda: bwd(tgc, txc, ks, ss, ps, [1, 1], False, tic)
        notes.append("onnxruntime: no pooling gradient in its CPU build")
        moved = g.nbytes + i.nbytes + x.nbytes
        dx = pk.max_pool2d_backward(g, i, shape)

        def check() -> list[str]:
            bad = _agree("poolkit CL", _nchw(calls["poolkit CL"]()), dx, exact=False)
            if "poolkit out=" in calls:
                res = calls["poolkit out="]()
                bad += [] if res is buf else ["poolkit out=: did not return out"]
                bad += _agree("poolkit out=", res, dx, exact=True)
            if torch is not None:
                for name in ("torch", "torch CL"):
                    bad += _agree(name, calls[name]().numpy(), dx, exact=False)
            return bad

        checks.append(check)

    else:  # avg, global avg
        if row.op == "avg":
            y = pk.avg_pool2d(x, k, s, p)
            calls["poolkit"] = lambda: pk.avg_pool2d(x, k, s, p)
            calls["poolkit CL"] = lambda: pk.avg_pool2d(xc, k, s, p, channels_last=True)
            if torch is not None:
                calls["torch"] = lambda: F.avg_pool2d(tx, k, s, p)
                calls["torch CL"] = lambda: F.avg_pool2d(txc, k, s, p)
        else:
            y = pk.global_avg_pool(x)
            calls["poolkit"] = lambda: pk.global_avg_pool(x)
            calls["poolkit CL"] = lambda: pk.global_avg_pool(xc, channels_last=True)
            if torch is not None:
                calls["torch"] = lambda: F.adaptive_avg_pool2d(tx, 1)
                calls["torch CL"] = lambda: F.adaptive_avg_pool2d(txc, 1)
        moved = x.nbytes + y.nbytes

        def check() -> list[str]:
            bad = _agree("poolkit CL", _nchw(calls["poolkit CL"]()), y, exact=False)
            if torch is not None:
                for name in ("torch", "torch CL"):
                    bad += _agree(name, calls[name]().numpy(), y, exact=False)
            if ort is not None and onnx is not None:
                res = _ort_session(ort, onnx, row, 1).run(ort_names, ort_feed)
                bad += _agree("onnxruntime", res[0], y, exact=False)
            return bad

        checks.append(check)

    ort_call = None
    if ort is not None and onnx is not None and row.op != "max bwd":

        def ort_call(threads: int) -> Callable[[], Any]:
            run = _ort_session(ort, onnx, row, threads).run
            return lambda: run(ort_names, ort_feed)

    def check_all() -> list[str]:
        return [msg for c in checks for msg in c()]

    return _Prepared(row, calls, ort_call, check_all, moved, notes)


# ------------------------------------------------------------------------------------
# the table
# ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _threads(n: int, torch: Any) -> Iterator[None]:
    pk.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)
    yield


def _ms(t: float | None) -> str:
    return "-" if t is None else f"{t * 1e3:.3f}" if t < 1e-2 else f"{t * 1e3:.2f}"


def _ratio_cell(times: dict[str, float], ours: str, others: Sequence[str]) -> str:
    have = [(times[o], o) for o in others if o in times]
    if ours not in times or not have:
        return "-"
    t_best, who = min(have)
    cell = f"{t_best / times[ours]:.2f}x vs {_SHORT[who]}"
    if ours == "poolkit" and "poolkit out=" in times:
        cell += f" (out= {t_best / times['poolkit out=']:.2f}x)"
    return cell


def _parse_threads(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected thread counts like 1,2, got {text!r}")
    return sorted(set(values))


def main(argv: list[str] | None = None) -> int:
    """Run the peer benchmark and print its markdown table; returns the exit status.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default ``sys.argv[1:]``): ``--threads 1,2``,
        ``--repeat N`` (samples per peer, default 9), ``--quick`` (small shapes),
        ``--rows TEXT`` (repeatable: only rows whose label contains one of them),
        ``--dram-all-threads`` (DRAM rows at every thread count, not only the largest),
        ``--clock {wall,cpu}`` (``cpu``: process CPU time, for one thread on a busy host),
        ``--no-torch``, ``--no-onnxruntime``.

    Returns
    -------
    int
        0, or 1 if a peer disagreed with poolkit on some row.

    Examples
    --------
    >>> from poolkit.bench_peers import main
    >>> main(["--quick", "--threads", "1", "--repeat", "1"])  # doctest: +SKIP
    0
    """
    # numba's and PyTorch's OpenMP pools spin after each call; onnxruntime runs with its
    # spinning off, so every peer gets the same (set before any of them starts a pool)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = OneLineErrorParser(
        prog="poolkit bench --peers",
        description="Time poolkit against onnxruntime and PyTorch, interleaved, best of N.",
    )
    parser.add_argument(
        "--threads",
        type=_parse_threads,
        default=[1, 2],
        help="comma-separated thread counts (default 1,2)",
    )
    parser.add_argument(
        "--repeat",
        type=positive_int,
        default=9,
        help="samples per peer; the best is reported (default 9)",
    )
    parser.add_argument("--quick", action="store_true", help="small shapes (seconds)")
    parser.add_argument(
        "--rows",
        action="append",
        default=None,
        metavar="TEXT",
        help="only rows whose label contains TEXT (repeatable), e.g. 'max values' or '(DRAM)'",
    )
    parser.add_argument(
        "--dram-all-threads",
        action="store_true",
        help="time DRAM rows at every thread count (default: the largest)",
    )
    parser.add_argument(
        "--sample-ms",
        type=float,
        default=2.0,
        help="calls are batched to about this many ms per sample (default 2; 0: one call)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds of samples per row and thread count before stopping (default 0.5; "
        "more rounds, up to 10x --repeat, when calls are fast)",
    )
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: elapsed time (default); cpu: the process's CPU time, all threads "
        "summed (meaningful at --threads 1 on a busy host)",
    )
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    parser.add_argument("--no-onnxruntime", action="store_true", help="skip onnxruntime")
    args = parser.parse_args(argv)

    import numba

    limit = int(numba.config.NUMBA_NUM_THREADS)
    threads = [t for t in args.threads if t <= limit]
    if not threads:
        parser.error(f"no thread count within NUMBA_NUM_THREADS={limit}")
    rows = peer_rows(args.quick)
    if args.rows:
        wanted = [w.strip().lower() for w in args.rows if w.strip()]
        rows = [r for r in rows if any(w in r.label.lower() for w in wanted)]
        if not rows:
            parser.error(f"no row matches --rows {args.rows!r}")

    notes: list[str] = []
    torch = None if args.no_torch else _import("torch")
    if torch is None and not args.no_torch:
        notes.append("PyTorch is not importable: its columns are '-'.")
    ort = onnx = None
    if not args.no_onnxruntime:
        ort, onnx = _import("onnxruntime"), _import("onnx")
        if ort is None or onnx is None:
            missing = " and ".join(
                n for n, m in (("onnxruntime", ort), ("onnx", onnx)) if m is None
            )
            notes.append(f"{missing} not importable: the onnxruntime column is '-'.")
            ort = onnx = None
    if not _backward_takes_out():
        notes.append("poolkit.max_pool2d_backward takes no out= (yet): 'poolkit out=' is '-'.")

    bw_bytes = (16 if args.quick else 256) << 20
    budget = args.budget if args.budget is not None else 0.02 if args.quick else 0.5
    sample = max(0.0, args.sample_ms) * 1e-3
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    bandwidth = {t: memcpy_bandwidth(bw_bytes, t) for t in threads}

    versions = [f"poolkit {pk.__version__}", f"numpy {np.__version__}"]
    if torch is not None:
        versions.append(f"torch {torch.__version__}")
    if ort is not None:
        versions.append(f"onnxruntime {ort.__version__}")
    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    print(
        f"{', '.join(versions)}; {platform.machine()}, {os.cpu_count()} CPUs "
        f"(load average {load[0]:.2f} at the start); float32; "
        f"best of >= {args.repeat} interleaved samples per peer, each after an untimed "
        "warm-up call; clock: "
        + ("process CPU time (all threads summed)" if args.clock == "cpu" else "wall")
    )

    header = [
        "row",
        "thr",
        *PEERS,
        "poolkit vs fastest NCHW peer",
        "poolkit CL vs torch CL",
        "of copy bw (pk / pk CL)",
    ]
    results: list[tuple[PeerRow, int, dict[str, float], int, bool]] = []
    failures: list[str] = []
    guard = torch.inference_mode() if torch is not None else contextlib.nullcontext()
    with guard:
        for row in rows:
            prep = _prepare(row, torch, ort, onnx)
            for msg in prep.notes:
                if msg not in notes:
                    notes.append(msg)
            bad = prep.check()
            failures += [f"{row.label}: {msg}" for msg in bad]
            row_threads = [max(threads)] if row.dram and not args.dram_all_threads else threads
            for t in row_threads:
                with _threads(t, torch):
                    calls = dict(prep.calls)
                    if prep.ort_call is not None:
                        calls["onnxruntime"] = prep.ort_call(t)
                    times = interleaved_best(
                        calls, args.repeat, sample=sample, budget=budget, clock=clock
                    )
                results.append((row, t, times, prep.moved, bool(bad)))
                print(f"  done: {row.label} @ {t} thread(s)", flush=True)

    bw_end = {t: memcpy_bandwidth(bw_bytes, t) for t in threads}
    if hasattr(os, "getloadavg"):
        print(f"load average at the end: {os.getloadavg()[0]:.2f} (1 min)")
    bw_line = ", ".join(
        f"{t} thread(s) {max(bandwidth[t], bw_end[t]) / 1e9:.1f} GB/s "
        f"(start {bandwidth[t] / 1e9:.1f}, end {bw_end[t] / 1e9:.1f})"
        for t in threads
    )
    print()
    print(
        f"Warm copy bandwidth (np.copyto of {bw_bytes >> 20} MiB float64 split over the "
        f"threads; bytes read + written per second), measured before and after the rows: "
        f"{bw_line}. The higher of the two is used for the fraction."
    )
    for t in threads:
        bandwidth[t] = max(bandwidth[t], bw_end[t])
    table = [header]
    for row, t, times, moved, bad in results:
        frac = "-"
        if row.dram:
            parts = [
                moved / times[n] / bandwidth[t] for n in ("poolkit", "poolkit CL") if n in times
            ]
            frac = " / ".join(f"{f:.0%}" for f in parts)
        table.append(
            [
                row.label + (" (DRAM)" if row.dram else "") + (" MISMATCH" if bad else ""),
                str(t),
                *[_ms(times.get(n)) for n in PEERS],
                _ratio_cell(times, "poolkit", _NCHW_OTHERS),
                _ratio_cell(times, "poolkit CL", ("torch CL",)),
                frac,
            ]
        )
    print(
        "Times in ms per call (best sample). 'poolkit vs fastest NCHW peer' = the fastest of "
        "onnxruntime and torch (NCHW) / poolkit's time: above 1x poolkit is faster, below 1x "
        "slower. 'poolkit CL vs torch CL' = torch channels_last / poolkit channels_last=True "
        "(NHWC array). 'out=': poolkit backward into a preallocated array. 'of copy bw' "
        "(DRAM rows) = (bytes of x read + bytes of the outputs written; backward: grad and "
        "indices read + grad_input written) / poolkit's time / the warm copy bandwidth at the "
        "same thread count. torch backward = torch.ops.aten.max_pool2d_with_indices_backward "
        "(the kernel autograd runs, without the engine). onnxruntime: one-node model, "
        "opset 18, intra_op_num_threads = thr, inter_op 1, spinning off."
    )
    print()
    print(markdown_table(table))
    print()
    for msg in notes:
        print(f"Note: {msg}")
    if failures:
        print("PEERS DISAGREE (these rows time different work):")
        for msg in failures:
            print(f"  {msg}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
