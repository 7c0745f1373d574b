"""Time poolkit against onnxruntime and PyTorch (see :mod:`poolkit.bench_peers`).

Usage: ``python benchmarks/bench_peers.py [--threads 1,2] [--repeat 9] [--quick]
[--rows TEXT] [--dram-all-threads]``; the same as ``poolkit bench --peers``.
"""

from __future__ import annotations

import sys

from poolkit.bench_peers import main

if __name__ == "__main__":
    sys.exit(main())
