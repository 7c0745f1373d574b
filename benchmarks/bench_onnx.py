"""Benchmark: a small ONNX convnet in onnx.reference, with and without poolkit.onnx.OPS.

The model (tests/onnx_spec.py: Conv, Relu, MaxPool k3 s2 p1, AveragePool k2 s2,
GlobalAveragePool, Flatten, Gemm) runs through ``ReferenceEvaluator`` twice: with
onnx.reference's own pooling operators and with ``new_ops=poolkit.onnx.OPS``. Prints
the best-of-``repeat`` time of each, the speed ratio, and checks the outputs agree.

    python benchmarks/bench_onnx.py [--batch 4] [--size 32] [--channels 16] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from onnx.reference import ReferenceEvaluator

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import poolkit.onnx
from onnx_spec import conv_model

POOL_OPS = {"MaxPool", "AveragePool", "GlobalAveragePool"}


def _time_pool_nodes(sess: ReferenceEvaluator, spent: list[float]) -> None:
    """Wrap the pooling nodes' ``_run`` so their time adds up in ``spent[0]``."""
    for node in getattr(sess, "rt_nodes_", []):
        if node.onnx_node.op_type in POOL_OPS:
            run = node._run

            def timed(*args, _run=run, **kwargs):
                start = time.perf_counter()
                result = _run(*args, **kwargs)
                spent[0] += time.perf_counter() - start
                return result

            node._run = timed


def best_time(
    sess: ReferenceEvaluator, feeds: dict, repeat: int
) -> tuple[float, float, np.ndarray]:
    """Best total time, the pooling nodes' time in that run, and the output."""
    best, pool, out = float("inf"), 0.0, None
    spent = [0.0]
    _time_pool_nodes(sess, spent)
    for _ in range(repeat):
        spent[0] = 0.0
        start = time.perf_counter()
        out = sess.run(None, feeds)[0]
        total = time.perf_counter() - start
        if total < best:
            best, pool = total, spent[0]
    return best, pool, out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    model = conv_model(channels=args.channels)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, 3, args.size, args.size)).astype(np.float32)
    feeds = {"x": x}
    fast = ReferenceEvaluator(model, new_ops=poolkit.onnx.OPS)
    fast.run(None, feeds)  # compile poolkit's kernels outside the timing
    t_fast, p_fast, y_fast = best_time(fast, feeds, args.repeat)
    t_ref, p_ref, y_ref = best_time(ReferenceEvaluator(model), feeds, args.repeat)
    np.testing.assert_allclose(y_fast, y_ref, rtol=1e-5, atol=1e-6)
    print(
        f"input {x.shape}, {args.channels} channels (outputs agree to 1e-5)\n"
        f"  whole model:   onnx.reference {t_ref * 1e3:9.1f} ms, with poolkit.onnx.OPS "
        f"{t_fast * 1e3:8.1f} ms -> {t_ref / t_fast:6.1f}x\n"
        f"  pooling nodes: onnx.reference {p_ref * 1e3:9.1f} ms, with poolkit.onnx.OPS "
        f"{p_fast * 1e3:8.1f} ms -> {p_ref / max(p_fast, 1e-9):6.1f}x"
    )


if __name__ == "__main__":
    main()
