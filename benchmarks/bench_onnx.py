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


def best_time(sess: ReferenceEvaluator, feeds: dict, repeat: int) -> tuple[float, np.ndarray]:
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = sess.run(None, feeds)[0]
        best = min(best, time.perf_counter() - start)
    return best, out


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
    t_fast, y_fast = best_time(fast, feeds, args.repeat)
    t_ref, y_ref = best_time(ReferenceEvaluator(model), feeds, args.repeat)
    np.testing.assert_allclose(y_fast, y_ref, rtol=1e-5, atol=1e-6)
    print(
        f"input {x.shape}, {args.channels} channels: onnx.reference {t_ref * 1e3:.1f} ms, "
        f"with poolkit.onnx.OPS {t_fast * 1e3:.1f} ms -> {t_ref / t_fast:.1f}x faster "
        "(outputs agree to 1e-5)"
    )


if __name__ == "__main__":
    main()
