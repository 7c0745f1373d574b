"""One base for every family's validated options, with one memoised parse."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .._geometry import PaddingSpec
from .._memo import BoundedCache, simple_key

#: Validated options by (class, exact-typed raw arguments); see :mod:`poolkit._memo`.
_PARSED = BoundedCache(512)


class PoolParams:
    """Validated, input-independent options of one pooling call.

    Subclasses are frozen dataclasses that implement :meth:`_parse` (validate the raw
    arguments, raising the messages of :mod:`poolkit._args`). :meth:`parse` memoises it:
    a training loop repeating the same options validates them once.
    """

    #: False for options that must validate on every call.
    _memo: ClassVar[bool] = True

    @classmethod
    def _parse(cls, *args: Any) -> PoolParams:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def parse(cls, *args: Any) -> Any:
        """Validate ``args`` (memoised for exact-typed ints, bools, floats, strs, None)."""
        key = simple_key(args) if cls._memo else None
        if key is not None:
            key = (cls, key)
            hit = _PARSED.get(key)
            if hit is not None:
                return hit
        parsed = cls._parse(*args)
        if key is not None:
            _PARSED.put(key, parsed)
        return parsed


@dataclass(frozen=True)
class WindowParams(PoolParams):
    """The fields every sliding-window family starts with (their ``_parse`` fills them from
    ``_args.kernel_and_stride`` and a :class:`PaddingSpec`)."""

    nd: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: PaddingSpec
