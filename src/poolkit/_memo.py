"""Small caches that keep per-call argument handling lean.

Validation is pure: the same arguments always validate (or fail) the same way. Calls
in a training loop repeat the same options and shapes, so their validated forms are
memoised here. Only arguments whose exact types make equality safe are cached
(``True == 1`` and ``1.0 == 1`` must not share an entry, since ints and bools validate
differently); anything else takes the full validation path every time.
"""

from __future__ import annotations

from typing import Any

_EXACT = (int, bool, float, str, type(None))


def simple_key(args: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """A cache key for ``args`` if all are exact ints/bools/floats/strs/None or tuples of
    exact ints.

    The key carries each argument's type, so ``True`` and ``1`` differ; tuples may hold
    exact ints only. Returns None when ``args`` cannot be cached safely.
    """
    types = []
    for a in args:
        t = type(a)
        if t is tuple:
            for v in a:
                if type(v) is not int:
                    return None
        elif t not in _EXACT:
            return None
        types.append(t)
    return (args, tuple(types))


class BoundedCache(dict):
    """A dict that forgets everything once it holds ``limit`` entries (cheap, bounded)."""

    def __init__(self, limit: int = 512) -> None:
        super().__init__()
        self.limit = limit

    def put(self, key: Any, value: Any) -> None:
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
