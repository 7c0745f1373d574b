"""Max pooling forward: poolkit vs onnxruntime vs PyTorch (NCHW and channels_last).

A development check for the max pooling fast paths (issue 11): one process, the
libraries interleaved round by round, best per-call time of each; onnxruntime is an
InferenceSession of one MaxPool node with ``session.intra_op.allow_spinning`` = 0 and
the same thread count. Modes: v (values), i (values + indices), cv / ci (the same on
channels-last input, against PyTorch channels_last). DRAM rows also print the fraction
of warm copy bandwidth (bytes read + written / time, vs a NumPy copy at the same
threads). ``ratio`` = fastest peer / poolkit.

On a shared host run it with ``OMP_WAIT_POLICY=PASSIVE``: PyTorch's (and numba's)
OpenMP threads otherwise spin after each call and take the cores from whatever runs
next. (The complete peer benchmark is ``benchmarks/bench_peers.py``.)

    OMP_WAIT_POLICY=PASSIVE PYTHONPATH=src python benchmarks/bench_max_rows.py \
        [--rows stem,k2] [--modes v,i,cv,ci] [--rounds 15]
"""

import argparse
import math
import time

import numpy as np
import onnxruntime as ort
import torch
from onnx import TensorProto, helper

import poolkit as pk
from poolkit.bench import memcpy_bandwidth

ROWS = [  # label, shape, k, s, p, threads list, dram
    ("stem", (1, 64, 112, 112), 3, 2, 1, (1, 2), False),
    ("k2 28", (64, 32, 28, 28), 2, 2, 0, (1, 2), False),
    ("k2 14", (64, 64, 14, 14), 2, 2, 0, (1, 2), False),
    ("k3 56", (8, 64, 56, 56), 3, 2, 1, (1, 2), False),
    ("dram k2", (32, 64, 112, 112), 2, 2, 0, (2,), True),
    ("dram k3", (32, 64, 112, 112), 3, 2, 1, (2,), True),
]


def ort_session(shape, k, s, p, threads, want):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
    outs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    names = ["y"]
    if want:
        outs.append(helper.make_tensor_value_info("i", TensorProto.INT64, None))
        names.append("i")
    node = helper.make_node(
        "MaxPool", ["x"], names, kernel_shape=[k, k], strides=[s, s], pads=[p] * 4
    )
    g = helper.make_graph([node], "g", [x], outs)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return lambda xx: sess.run(None, {"x": xx})


def bench(fns, rounds, budget=0.004):
    """fns: dict name -> callable. Interleaved rounds; best per-call time."""
    batch = {}
    for n, f in fns.items():
        f()
        f()
        t0 = time.perf_counter()
        f()
        dt = time.perf_counter() - t0
        batch[n] = max(1, int(budget / max(dt, 1e-7)))
    best = {n: math.inf for n in fns}
    for _ in range(rounds):
        for n, f in fns.items():
            b = batch[n]
            t0 = time.perf_counter()
            for _ in range(b):
                f()
            best[n] = min(best[n], (time.perf_counter() - t0) / b)
    return best


def _callables(x, xcl, tx, txcl, ksp, threads, want, cl):
    """The timed callables of one row: poolkit and its peers."""
    k, s, p = ksp
    if cl:
        return {
            "pk": lambda: pk.max_pool2d(xcl, k, s, p, return_indices=want, channels_last=True),
            "tcl": lambda: torch.nn.functional.max_pool2d(txcl, k, s, p, return_indices=want),
        }
    sess = ort_session(x.shape, k, s, p, threads, want)
    return {
        "pk": lambda: pk.max_pool2d(x, k, s, p, return_indices=want),
        "ort": lambda: sess(x),
        "torch": lambda: torch.nn.functional.max_pool2d(tx, k, s, p, return_indices=want),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default="")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--modes", default="v,i,cv,ci")
    a = ap.parse_args()
    modes = a.modes.split(",")
    rng = np.random.default_rng(0)
    bw = {}
    print(f"{'row':10} {'mode':3} thr {'pk':>8} {'ort':>8} {'torch':>8} {'torchCL':>8} ratio  bw%")
    for label, shape, k, s, p, thr, dram in ROWS:
        if a.rows and not any(r in label for r in a.rows.split(",")):
            continue
        x = rng.standard_normal(shape, dtype=np.float32)
        xcl = np.ascontiguousarray(np.moveaxis(x, 1, -1))
        tx = torch.from_numpy(x)
        txcl = tx.contiguous(memory_format=torch.channels_last)
        for t in thr:
            pk.set_num_threads(t)
            torch.set_num_threads(t)
            if dram and t not in bw:
                bw[t] = memcpy_bandwidth(x.nbytes, t)
            for mode in modes:
                want = mode.endswith("i")
                cl = mode.startswith("c")
                fns = _callables(x, xcl, tx, txcl, (k, s, p), t, want, cl)
                with torch.no_grad():
                    r = bench(fns, a.rounds if not dram else max(5, a.rounds // 2))
                peers = [v for n, v in r.items() if n != "pk"]
                ratio = min(peers) / r["pk"]
                y = pk.max_pool2d(x, k, s, p)
                moved = x.nbytes + y.nbytes * (3 if want else 1)
                bws = f"{moved / r['pk'] / bw[t]:.0%}" if dram else ""
                cells = " ".join(
                    f"{r[n] * 1e3:8.3f}" if n in r else "       -"
                    for n in ("pk", "ort", "torch", "tcl")
                )
                print(f"{label:10} {mode:3} {t:3} {cells} {ratio:5.2f}x {bws}", flush=True)


main()
