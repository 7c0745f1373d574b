"""Which compiled max pooling kernel a forward plan runs (chosen once per plan).

:func:`forward_runner` looks at the planned shapes, dtype and options and returns a
callable ``run(x5, o5, idx, stream)`` that runs exactly one kernel variant, so a call
compiles (on its first use in a fresh cache) only the variant it needs:

* NCHW float32/float64 values, one depth slice (1-D and 2-D pooling), W stride 1 or 2:
  the row kernels of :mod:`poolkit._kernels.max_rows` (k2s2, k3s2, any-k s2, any-k s1;
  streaming stores on calls far larger than the cache);
* NHWC, any dtype, values or values and indices, 1-D to 3-D: the pixel kernels of
  :mod:`poolkit._kernels.max_cl` (streaming stores on calls far larger than the cache);
* every other NCHW plan (indices, any dtype, 3-D, any W stride): the row kernels of
  :mod:`poolkit._kernels.max_scan`;
* what is left (planes of 2**31 elements or more): the window engine of
  :mod:`poolkit._kernels.max_pool`.

Every kernel runs serially or split over threads by the engine (``run_tasks``).

The fast kernels take C-contiguous input: a strided view is copied first (plans are keyed
on shape and dtype, not on strides; one copy costs less than a strided window scan and
compiles nothing more). Plain Python, no numba import here: the family's choice among
kernels, run through the engine's serial/parallel helpers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._engine import run_tasks
from .._kernels import LazyModule

_k: Any = LazyModule("max_pool")
_rows: Any = LazyModule("max_rows")
_cl: Any = LazyModule("max_cl")
_scan: Any = LazyModule("max_scan")

_FAST_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class _Engine:
    """The window engine of :mod:`poolkit._kernels.max_pool` (any layout, dtype, geometry,
    indices)."""

    __slots__ = ("fill", "kp", "n_tasks", "nhwc", "want", "work")

    def __init__(self, kp, fill, want, nhwc, work, n_tasks):
        self.kp, self.fill, self.want = kp, fill, want
        self.nhwc, self.work, self.n_tasks = nhwc, work, n_tasks

    def __call__(self, x5: np.ndarray, o5: np.ndarray, idx: np.ndarray, stream: bool) -> None:
        kernel = _k.forward_nhwc_range if self.nhwc else _k.forward_nchw_range
        run_tasks(kernel, self.n_tasks, self.work, x5, o5, idx, self.kp, self.fill, self.want)


class _Rows:
    """NCHW values through the row kernels of :mod:`poolkit._kernels.max_rows`."""

    __slots__ = ("engine", "geo", "n_rows", "name", "rows", "scr_len")

    def __init__(self, in5, out5, dtype, kp, name, engine):
        in_h, in_w = in5[3], in5[4]
        out_h, out_w = out5[3], out5[4]
        (_, kh, kw), (_, sh, sw), (_, ph, pw), (_, dh, dw) = kp.tolist()
        self.rows, self.geo, self.scr_len = _rows.module().tables(
            in_h, in_w, out_h, out_w, kh, sh, ph, dh, kw, sw, pw, dw, dtype
        )
        self.name = name
        self.n_rows = out5[0] * out5[1] * out_h
        self.engine = engine

    def __call__(self, x5: np.ndarray, o5: np.ndarray, idx: np.ndarray, stream: bool) -> None:
        x5 = np.ascontiguousarray(x5)  # a strided view: one copy, then the fast kernel
        run_tasks(getattr(_rows, self.name), self.n_rows, self.engine.work, x5, o5, self.rows,
                  self.geo, self.scr_len, int(stream))


class _Pixels:
    """NHWC values (and indices) through the pixel kernels of :mod:`poolkit._kernels.max_cl`."""

    __slots__ = ("engine", "kernel")

    def __init__(self, want, engine):
        self.kernel = "cl_indices" if want else "cl_values"
        self.engine = engine

    def __call__(self, x5: np.ndarray, o5: np.ndarray, idx: np.ndarray, stream: bool) -> None:
        x5 = np.ascontiguousarray(x5)  # a strided view: one copy, then the fast kernel
        engine = self.engine
        run_tasks(getattr(_cl, self.kernel), engine.n_tasks, engine.work, x5, o5, idx, engine.kp,
                  int(stream))


class _Scan:
    """NCHW rows through the kernels of :mod:`poolkit._kernels.max_scan` (any dtype)."""

    __slots__ = ("counts", "engine", "geo", "name", "table")

    def __init__(self, in5, out5, kp, want, engine):
        (_, _, kw), (_, _, sw), (_, _, pw), (_, _, dw) = kp.tolist()
        self.geo = _scan.module().geometry(in5[4], out5[4], kw, sw, pw, dw)
        self.table, self.counts = _scan.module().window_table(in5, out5, kp)
        self.name = f"{'indices' if want else 'values'}_s{sw if sw in (1, 2) else 'n'}"
        self.engine = engine

    def __call__(self, x5: np.ndarray, o5: np.ndarray, idx: np.ndarray, stream: bool) -> None:
        engine = self.engine
        run_tasks(getattr(_scan, self.name), engine.n_tasks, engine.work,
                  np.ascontiguousarray(x5), o5, idx, self.table, self.counts, self.geo)


def scan_kernel_ok(in5, out5, kp, nhwc) -> bool:
    """Does this plan take the NCHW row kernels of :mod:`poolkit._kernels.max_scan`?"""
    return (
        not nhwc and min(out5) > 0
        and in5[2] * in5[3] * in5[4] < 2**31  # int32 plane indices
    )


def pixel_kernel_ok(in5, out5, nhwc) -> bool:
    """Does this plan take the channels-last pixel kernels of :mod:`poolkit._kernels.max_cl`?"""
    return nhwc and min(out5) > 0 and in5[1] * in5[2] * in5[3] < 2**31  # int32 plane indices


def row_kernel_name(in5, out5, dtype, kp, want, nhwc) -> str | None:
    """Name of the :mod:`poolkit._kernels.max_rows` kernel for this plan, or None (the
    window engine)."""
    if want or nhwc or np.dtype(dtype) not in _FAST_DTYPES:
        return None
    (kd, _, kw), (_, _, sw), (pd, _, _), (_, _, dw) = kp.tolist()
    if in5[2] != 1 or out5[2] != 1 or kd != 1 or pd != 0:
        return None
    if min(out5) == 0:
        return None
    if sw == 2:
        if dw == 1 and kw in (2, 3):
            return f"rows_k{kw}s2"
        return "rows_s2"
    if sw == 1:
        return "rows_s1"
    return None


def forward_runner(
    in5: tuple[int, ...],
    out5: tuple[int, ...],
    dtype: np.dtype,
    kp: np.ndarray,
    fill: Any,
    want: bool,
    nhwc: bool,
    work: int,
    n_tasks: int,
) -> Callable[[np.ndarray, np.ndarray, np.ndarray, bool], None]:
    """The kernel runner of a forward plan: ``run(x5, o5, idx, stream)`` fills ``o5``
    (and ``idx`` if ``want``) from the 5-D view ``x5`` (float16 as uint16 bits);
    ``stream`` (:func:`poolkit._engine.streams`): the row and pixel kernels write past
    the cache, the other kernels ignore it.

    ``dtype`` is the dtype the kernels store; ``work`` the plan's element visits (the
    engine's serial/parallel choice, :func:`poolkit._engine.run_tasks`, made at every call).
    """
    engine = _Engine(kp, fill, want, nhwc, work, n_tasks)
    if pixel_kernel_ok(in5, out5, nhwc):
        return _Pixels(want, engine)
    name = row_kernel_name(in5, out5, dtype, kp, want, nhwc)
    if name is not None:
        return _Rows(in5, out5, dtype, kp, name, engine)
    if scan_kernel_ok(in5, out5, kp, nhwc):
        return _Scan(in5, out5, kp, want, engine)
    return engine
