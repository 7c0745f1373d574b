"""Plumbing shared by every pooling layer class."""

from __future__ import annotations

from typing import Any


def compact(values: tuple[int, ...]) -> int | tuple[int, ...]:
    """``(3, 3)`` -> ``3`` for reprs, as PyTorch prints uniform sizes."""
    return values[0] if len(set(values)) == 1 else values


class Layer:
    """``__call__`` is ``forward``; ``backward`` needs a ``forward`` first."""

    def _require_forward(self, state: Any) -> None:
        if state is None:
            raise RuntimeError(
                f"{type(self).__name__}.backward() called before forward(): nothing to "
                "differentiate yet"
            )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)  # type: ignore[attr-defined]
