"""Thread count of poolkit's compiled kernels.

poolkit's kernels run on numba's thread pool. Its size is fixed when numba starts, from
the ``NUMBA_NUM_THREADS`` environment variable (default: the number of CPU cores);
:func:`set_num_threads` chooses how many of those threads the kernels use.
"""

from __future__ import annotations

import numbers

__all__ = ["get_num_threads", "set_num_threads"]


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
    import numba

    numba.set_num_threads(int(n))


def get_num_threads() -> int:
    """Number of threads poolkit's kernels use (in the calling thread).

    Returns
    -------
    int
        Between 1 and ``NUMBA_NUM_THREADS``.

    Examples
    --------
    >>> import poolkit as pk
    >>> 1 <= pk.get_num_threads()
    True
    """
    import numba

    return int(numba.get_num_threads())
