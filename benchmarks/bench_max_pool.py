"""Benchmark poolkit's max pooling against PyTorch and NumPy (see :mod:`poolkit.bench`).

Usage: ``python benchmarks/bench_max_pool.py [--quick] [--threads N] [--latency]``.
"""

from __future__ import annotations

import sys

from poolkit.bench import main

if __name__ == "__main__":
    sys.exit(main())
