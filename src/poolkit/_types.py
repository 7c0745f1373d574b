"""Type aliases of the public signatures (imports nothing from poolkit)."""

from __future__ import annotations

#: A size argument: one int for every spatial dimension, or one int per dimension.
IntOrTuple = int | tuple[int, ...]
#: Every accepted ``padding`` form: an int, per-dim ints, per-dim (begin, end) pairs, or
#: "valid" / "same" / "same_lower" (docs/semantics.md §3).
Padding = int | tuple[int, ...] | tuple[tuple[int, int], ...] | str

__all__ = ["IntOrTuple", "Padding"]
