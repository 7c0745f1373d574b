"""First calls in a fresh numba cache (see :mod:`poolkit.bench_cold`).

Usage: ``python benchmarks/bench_cold.py [--runs 2] [--ops max_pool2d,...] [--warm]``; the
same as ``poolkit bench --cold``.
"""

from __future__ import annotations

import sys

from poolkit.bench_cold import main

if __name__ == "__main__":
    sys.exit(main())
