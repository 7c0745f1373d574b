"""``poolkit compile``: fill numba's cache with every kernel, ahead of the first real call.

Each job runs one public operation family (forward and backward) on tiny inputs of one
dtype and layout, so that every compiled variant a later call can pick is written to
numba's cache (``cache=True`` kernels). A parallel call runs the same compiled range
kernels on more threads (:func:`poolkit._engine.run_tasks`), so one run covers both.
Where that cache lives: README, "The compile cache".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

__all__ = ["DTYPES", "FAMILIES", "Job", "jobs", "run_job"]

#: Every dtype some operation accepts (integers: max-like pooling and average pooling).
DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8",
          "uint16", "uint32", "uint64")
_FLOATS = DTYPES[:3]


@dataclass(frozen=True)
class Job:
    """One (family, dtype, layout) to compile."""

    family: str
    dtype: str
    channels_last: bool

    @property
    def label(self) -> str:
        layout = "channels_last" if self.channels_last else "channels_first"
        return f"{self.family} {self.dtype} {layout}"


def _x(dtype: str, channels_last: bool, shape=(2, 3, 9, 10)) -> np.ndarray:
    x = (np.arange(np.prod(shape)) % 7).reshape(shape).astype(dtype)
    return np.ascontiguousarray(np.moveaxis(x, 1, -1)) if channels_last else x


def _max(pk, x, cl):
    for k, s, p in ((3, 2, 1), (2, 2, 0), (3, 1, 1), (3, 3, 0)):  # s3: the gather rows
        y, idx = pk.max_pool2d(x, k, s, p, return_indices=True, channels_last=cl)
        pk.max_pool2d(x, k, s, p, channels_last=cl)
        g = np.ones(y.shape, x.dtype if x.dtype.kind == "f" else np.float32)
        pk.max_pool2d_backward(g, idx, x.shape, channels_last=cl)
        pk.max_unpool2d(g, idx, k, s, p, output_size=x.shape[-2:] if not cl else x.shape[1:3],
                        channels_last=cl)
        pk.max_unpool2d_backward(np.ones(x.shape, g.dtype), idx, y.shape, k, s, p,
                                 channels_last=cl)
    pk.max_pool1d(x.reshape(x.shape[0], -1, x.shape[-1]), 3, 2, 1)
    # k2s2 backward in 1-D and 3-D too: channels last, the tile kernels of each rank
    x1 = x.reshape(x.shape[0], -1, x.shape[-1])
    for x_nd, forward, backward in ((x1, pk.max_pool1d, pk.max_pool1d_backward),
                                    (_x(x.dtype, cl, (1, 2, 4, 5, 6)), pk.max_pool3d,
                                     pk.max_pool3d_backward)):
        forward(x_nd, 2, channels_last=cl)
        y, idx = forward(x_nd, 2, return_indices=True, channels_last=cl)
        g = np.ones(y.shape, x.dtype if x.dtype.kind == "f" else np.float32)
        backward(g, idx, x_nd.shape, channels_last=cl)


def _avg(pk, x, cl):
    wide = np.repeat(x, 2, axis=-1)[..., ::2]  # a strided view: another compiled layout
    for arr in (x, wide):
        for k, s, p in ((3, 2, 1), (2, 2, 0), (3, 1, 1), (4, 2, 1), (3, 3, 0)):
            y = pk.avg_pool2d(arr, k, s, p, channels_last=cl)
            if x.dtype.kind == "f":
                pk.avg_pool2d_backward(np.ones_like(y), arr.shape, k, s, p, channels_last=cl)
    pk.avg_pool3d(_x(x.dtype, cl, (1, 2, 4, 5, 6)), (3, 1, 3), (2, 1, 2), channels_last=cl)


def _lp(pk, x, cl):
    for k, s in ((2, 2), (3, 2)):
        y = pk.lp_pool2d(x, 2.0, k, s, channels_last=cl)
        pk.lp_pool2d_backward(np.ones_like(y), x, 2.0, k, s, channels_last=cl)
    y = pk.lp_pool2d(x, 3.0, 3, 2, channels_last=cl, padding=1)
    pk.lp_pool2d_backward(np.ones_like(y), x, 3.0, 3, 2, channels_last=cl, padding=1)


def _adaptive_avg(pk, x, cl):
    for size in ((3, 2), (4, 5), (1, 1)):
        y = pk.adaptive_avg_pool2d(x, size, channels_last=cl)
        pk.adaptive_avg_pool2d_backward(np.ones_like(y), x.shape, channels_last=cl)


def _adaptive_max(pk, x, cl):
    for size in ((3, 2), (4, 5)):
        y, idx = pk.adaptive_max_pool2d(x, size, return_indices=True, channels_last=cl)
        pk.adaptive_max_pool2d(x, size, channels_last=cl)
        g = np.ones(y.shape, x.dtype if x.dtype.kind == "f" else np.float32)
        pk.adaptive_max_pool2d_backward(g, idx, x.shape, channels_last=cl)


def _global(pk, x, cl):
    if x.dtype.kind == "f":
        y = pk.global_avg_pool(x, channels_last=cl)
        pk.global_avg_pool_backward(np.ones_like(y), x.shape, channels_last=cl)
        y = pk.global_lp_pool(x, 2.0, channels_last=cl)
        pk.global_lp_pool_backward(np.ones_like(y), x, 2.0, channels_last=cl)
    y, idx = pk.global_max_pool(x, return_indices=True, channels_last=cl)
    pk.global_max_pool(x, channels_last=cl)
    g = np.ones(y.shape, x.dtype if x.dtype.kind == "f" else np.float32)
    pk.global_max_pool_backward(g, idx, x.shape, channels_last=cl)


def _fractional(pk, x, cl):
    y, idx = pk.fractional_max_pool2d(x, 2, output_size=(4, 4), return_indices=True,
                                      rng=np.random.default_rng(0))
    g = np.ones(y.shape, x.dtype if x.dtype.kind == "f" else np.float32)
    pk.fractional_max_pool2d_backward(g, idx, x.shape)


#: family -> (runner, dtypes it accepts, has a channels_last layout)
FAMILIES: dict[str, tuple[Callable, tuple[str, ...], bool]] = {
    "max_pool": (_max, DTYPES, True),
    "avg_pool": (_avg, DTYPES, True),
    "lp_pool": (_lp, _FLOATS, True),
    "adaptive_avg_pool": (_adaptive_avg, _FLOATS, True),
    "adaptive_max_pool": (_adaptive_max, DTYPES, True),
    "global_pool": (_global, DTYPES, True),
    "fractional_max_pool": (_fractional, _FLOATS, False),
}


def jobs(families=None, dtypes=None, layouts=None) -> Iterator[Job]:
    """The jobs to run, optionally filtered (each filter: an iterable of names, or None).

    Examples
    --------
    >>> [j.label for j in jobs(["avg_pool"], ["float32"], ["channels_first"])]
    ['avg_pool float32 channels_first']
    """
    for family, (_, accepted, has_cl) in FAMILIES.items():
        if families is not None and family not in families:
            continue
        for dtype in accepted:
            if dtypes is not None and dtype not in dtypes:
                continue
            for cl in (False, True) if has_cl else (False,):
                name = "channels_last" if cl else "channels_first"
                if layouts is not None and name not in layouts:
                    continue
                yield Job(family, dtype, cl)


def run_job(job: Job) -> None:
    """Run one job's calls (numba compiles, and caches, what they need)."""
    import poolkit as pk
    from poolkit import _engine
    from poolkit._spin import rounds_per_second

    rounds_per_second()  # compiles the thread pool's spin wait, used by parallel calls
    old = _engine.SERIAL_WORK
    _engine.SERIAL_WORK = 1 << 62  # tiny inputs, on this thread: the kernels are the same
    try:
        with np.errstate(all="ignore"):
            FAMILIES[job.family][0](pk, _x(job.dtype, job.channels_last), job.channels_last)
    finally:
        _engine.SERIAL_WORK = old
