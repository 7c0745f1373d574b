"""The threads poolkit's compiled kernels run on.

Every kernel is a serial ``nogil`` function over a task range ``kernel(*args, t0, t1)``
(docs/architecture.md, "The engine"). A parallel call splits ``[0, n_tasks)`` into one
contiguous part per thread and runs each part on its own thread: the calling thread
takes the first part, persistent worker threads of :data:`POOL` the others. numba's
own ``parallel=True`` is not used: it would compile every kernel twice (once more
inside each parallel wrapper, the slow part of a first call in a fresh cache), and one
compiled range kernel serves both the serial and the parallel call.

The pool's size limit is ``NUMBA_NUM_THREADS`` (default: the number of CPU cores);
:func:`set_num_threads` chooses how many threads the calling thread's poolkit calls use.
"""

from __future__ import annotations

import numbers
import os
import threading
from functools import lru_cache
from typing import Any

import numpy as np

__all__ = ["get_num_threads", "set_num_threads"]

_local = threading.local()


def _limit() -> int:
    import numba  # imported on use: ``import poolkit`` does not load numba

    return int(numba.config.NUMBA_NUM_THREADS)


def set_num_threads(n: int) -> None:
    """Set how many threads poolkit's kernels use (in the calling thread).

    Parameters
    ----------
    n : int
        Between 1 and the pool size, ``NUMBA_NUM_THREADS`` (default: the number of
        CPU cores). Results never depend on it: every kernel gives bit-identical
        output for any thread count.

    Raises
    ------
    TypeError
        If ``n`` is not an int.
    ValueError
        If ``n`` is outside ``[1, NUMBA_NUM_THREADS]``.

    Examples
    --------
    >>> import poolkit as pk
    >>> pk.set_num_threads(1)
    >>> pk.get_num_threads()
    1
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n must be an int, got {n!r} ({type(n).__name__})")
    limit = _limit()
    if not 1 <= int(n) <= limit:
        raise ValueError(
            f"n must be between 1 and NUMBA_NUM_THREADS={limit} (the size of the thread "
            f"pool, fixed at start-up), got {int(n)}"
        )
    _local.n = int(n)


def get_num_threads() -> int:
    """Number of threads poolkit's kernels use (in the calling thread).

    Returns
    -------
    int
        Between 1 and ``NUMBA_NUM_THREADS``; the limit until :func:`set_num_threads`
        is called in this thread.

    Examples
    --------
    >>> import poolkit as pk
    >>> 1 <= pk.get_num_threads()
    True
    """
    n = getattr(_local, "n", None)
    if n is None:
        n = _local.n = _limit()
    return n


#: How long a pool thread watches for its next hand-over before it sleeps (seconds):
#: waking a sleeping thread costs about as much as a cache-resident pooling call
#: (``_spin``). Read at every parallel call; 0 always sleeps at once.
SPIN_SECONDS = 200e-6


@lru_cache(maxsize=1)
def _rounds_per_second() -> float:
    from ._spin import rounds_per_second

    return rounds_per_second()


def _spin_rounds() -> int:
    """:data:`SPIN_SECONDS` in rounds of :func:`poolkit._spin.spin_until`."""
    return int(SPIN_SECONDS * _rounds_per_second())


class _Worker:
    """One persistent thread that runs the parts handed to it, one at a time.

    A hand-over is a pair of locks used as one-shot signals (``go``: a part is ready,
    ``done``: it has run). Before sleeping on one, a thread spins briefly on a counter
    in ``flags`` (``[0]``: parts posted, ``[8]``: parts finished, a cache line apart),
    so back-to-back calls hand over without a wake-up. The hot path calls the compiled
    spin directly: every bytecode run there holds the GIL the other thread waits for.
    """

    def __init__(self) -> None:
        from ._spin import spin_until

        self.spin_until = spin_until
        self.rounds = _spin_rounds()  # the spin before the next part (set by start)
        self.job: tuple[Any, tuple, int, int] | None = None
        self.error: BaseException | None = None
        self.flags = np.zeros(16, np.int64)
        self.posted = 0
        self.go = threading.Lock()
        self.go.acquire()
        self.done = threading.Lock()
        self.done.acquire()
        threading.Thread(target=self._loop, daemon=True, name="poolkit-worker").start()

    def _loop(self) -> None:
        received, flags, spin_until = 0, self.flags, self.spin_until
        while True:
            received += 1
            spin_until(flags, 0, received, self.rounds)
            self.go.acquire()
            kernel, args, t0, t1 = self.job  # type: ignore[misc]
            try:
                kernel(*args, t0, t1)
            except BaseException as exc:  # handed back to the caller by wait()
                self.error = exc
            # drop the caller's arrays before signalling: held until the next call,
            # they outlived it (and a new output could not reuse the last one's memory)
            self.job = kernel = args = None
            flags[8] = received
            self.done.release()

    def start(self, kernel: Any, args: tuple, t0: int, t1: int, rounds: int) -> None:
        self.job = (kernel, args, t0, t1)
        self.rounds = rounds
        self.posted += 1
        self.flags[0] = self.posted
        self.go.release()

    def wait(self, rounds: int) -> BaseException | None:
        self.spin_until(self.flags, 8, self.posted, rounds)
        self.done.acquire()
        error, self.error = self.error, None
        return error


class ThreadPool:
    """Runs ``kernel(*args, t0, t1)`` over ``[0, n_tasks)`` split across threads.

    One parallel call at a time: a call that finds the pool busy (poolkit called from
    several threads at once, e.g. by dask's threaded scheduler) runs serially on its
    own thread instead of waiting, which is what such callers want anyway.
    """

    def __init__(self) -> None:
        self._busy = threading.Lock()
        self._workers: list[_Worker] = []
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        """A forked child inherits no threads (and maybe a held lock): start afresh."""
        self._busy = threading.Lock()
        self._workers = []

    def run(self, kernel: Any, args: tuple, n_tasks: int, n_parts: int) -> None:
        if n_parts <= 1 or not self._busy.acquire(blocking=False):
            kernel(*args, 0, n_tasks)
            return
        try:
            self._run_parts(kernel, args, n_tasks, n_parts)
        finally:
            self._busy.release()

    def _run_parts(self, kernel: Any, args: tuple, n_tasks: int, n_parts: int) -> None:
        while len(self._workers) < n_parts - 1:
            self._workers.append(_Worker())
        helpers = self._workers[: n_parts - 1]
        rounds = _spin_rounds()
        # post every other part, then run the first at once: between the two the
        # workers wait for the GIL this thread holds (start() cannot raise)
        for part, worker in enumerate(helpers, start=1):
            worker.start(kernel, args, n_tasks * part // n_parts,
                         n_tasks * (part + 1) // n_parts, rounds)
        try:
            kernel(*args, 0, n_tasks // n_parts)
        finally:
            # the workers read and write the caller's arrays: always wait for them
            errors = [worker.wait(rounds) for worker in helpers]
        for error in errors:
            if error is not None:
                raise error


#: The process's pool (workers start on the first parallel call).
POOL = ThreadPool()
