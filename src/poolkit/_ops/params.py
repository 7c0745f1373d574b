"""One base for every family's validated options, with one memoised parse, and the one
place a family lists its options.

A family declares its options once, as the parameters of its ``*Params._parse`` after
``nd`` (names, order, defaults, annotations). Its public functions, their ``*_backward``
and its layer take them from there: each is written ``f(lead, *options, **kw)``, hands
``options`` and ``kw`` straight to :meth:`PoolParams.parse` (memoised on the raw
arguments, so a repeated call validates nothing and binds nothing), and shows the full
signature through :func:`with_options` (``inspect.signature``, ``help``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from inspect import Parameter, signature
from typing import Any, ClassVar, TypeVar

import numpy as np
from numpy.typing import ArrayLike

from .. import _args, _docs, _indices
from .._geometry import PaddingSpec
from .._memo import BoundedCache, simple_key
from .._types import IntOrTuple, Padding

#: Validated options by (class, exact-typed raw arguments); see :mod:`poolkit._memo`.
_PARSED = BoundedCache(512)

F = TypeVar("F", bound=Callable[..., Any])

#: The ``out`` every ``*_backward`` ends with.
OUT = Parameter("out", Parameter.POSITIONAL_OR_KEYWORD, default=None,
                annotation="np.ndarray | None")


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
    def parse(cls, nd: int | None, *options: Any, **kw: Any) -> Any:
        """Validate ``options`` for ``nd`` spatial dims, positional or by name as the
        family's functions take them (memoised for exact-typed ints, bools, floats, strs,
        None)."""
        return cls.of(nd, options, kw)

    @classmethod
    def of(cls, nd: int | None, options: tuple[Any, ...], kw: dict[str, Any]) -> Any:
        """:meth:`parse` of a call's ``*options`` and ``**kw`` as they came."""
        key = None
        if cls._memo:
            key = simple_key(options + tuple(kw.values())) if kw else simple_key(options)
        if key is not None:
            key = (cls, nd, tuple(kw), key) if kw else (cls, nd, key)
            hit = _PARSED.get(key)
            if hit is not None:
                return hit
        parsed = cls._parse(nd, *options, **kw)
        if key is not None:
            _PARSED.put(key, parsed)
        return parsed

    @classmethod
    def options(cls) -> tuple[Parameter, ...]:
        """The family's options: the parameters of :meth:`_parse` after ``nd``."""
        return tuple(signature(cls._parse).parameters.values())[1:]


def with_options(fn: F, options: Sequence[Parameter]) -> F:
    """Show ``fn(lead..., *options, **kw)`` as ``fn(lead..., <options>)``: its named
    parameters, then ``options``, and its return annotation."""
    own = signature(fn)
    lead = [p for p in own.parameters.values() if p.kind is Parameter.POSITIONAL_OR_KEYWORD]
    fn.__signature__ = own.replace(parameters=[*lead, *options])  # type: ignore[attr-defined]
    return fn


def take(options: tuple[Any, ...], kw: dict[str, Any], i: int, name: str,
         required: bool = False) -> tuple[tuple[Any, ...], Any]:
    """Pull the argument ``name`` (default None) that stands ``i``-th among a public
    function's options but is no option (``out``, unpooling's ``output_size``) out of
    ``options`` (positional) or ``kw`` (by name): ``(the other options, its value)``."""
    if len(options) > i:
        if name in kw:
            raise TypeError(f"got multiple values for argument {name!r}")
        return options[:i] + options[i + 1 :], options[i]
    if required and name not in kw:
        raise TypeError(f"missing a required argument: {name!r}")
    return options, kw.pop(name, None)


def rank_functions(cls: type[PoolParams], name: str, forward: Callable[..., Any],
                   backward: Callable[..., Any], second: tuple[str, str],
                   docs: tuple[str, str]) -> tuple[Callable[..., Any], ...]:
    """For 1, 2 and 3 spatial dims: ``name{nd}d(x, <options>)`` = ``forward(x, params)``
    and ``name{nd}d_backward(grad_output, <second>, <options>, out=None)`` = ``backward(
    grad_output, second, params, out)``; the options those of ``cls``, ``second`` a
    (name, annotation) pair, the docstrings the rank templates ``docs``."""
    options = cls.options()
    lead = Parameter(second[0], Parameter.POSITIONAL_OR_KEYWORD, annotation=second[1])

    def for_rank(nd: int) -> tuple[Callable[..., Any], Callable[..., Any]]:
        def pool_nd(x: ArrayLike, *args: Any, **kw: Any) -> np.ndarray:
            return forward(x, cls.of(nd, args, kw))

        def backward_nd(grad_output: ArrayLike, *args: Any, **kw: Any) -> np.ndarray:
            args, value = take(args, kw, 0, lead.name, required=True)
            args, out = take(args, kw, len(options), "out")
            return backward(grad_output, value, cls.of(nd, args, kw), out)

        with_options(backward_nd, [lead, *options, OUT])
        return (_docs.for_rank(with_options(pool_nd, options), f"{name}{nd}d", docs[0], nd),
                _docs.for_rank(backward_nd, f"{name}{nd}d_backward", docs[1], nd))

    return tuple(f for nd in (1, 2, 3) for f in for_rank(nd))


@dataclass(frozen=True)
class WindowParams(PoolParams):
    """The fields every sliding-window family starts with, from the options every one of
    them starts with (``kernel_size, stride, padding``); a family's :meth:`_more` takes
    and validates the options that follow."""

    nd: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: PaddingSpec

    #: The annotation of ``padding`` in the public signatures.
    _padding_type: ClassVar[str] = "Padding"

    @classmethod
    def _parse(
        cls,
        nd: int | None,
        kernel_size: IntOrTuple,
        stride: IntOrTuple | None = None,
        padding: Padding = 0,
        *more: Any,
        **kw: Any,
    ) -> Any:
        """``nd`` None: as many spatial dims as ``kernel_size`` has."""
        if nd is None:
            nd = _args.spatial_ndim_of(kernel_size)
        kernel, strides = _args.kernel_and_stride(kernel_size, stride, nd)
        return cls(nd, kernel, strides, cls._padding(padding, nd, kernel),
                   *cls._more(nd, *more, **kw))

    @staticmethod
    def _padding(padding: Any, nd: int, kernel: tuple[int, ...]) -> PaddingSpec:
        return _args.parse_padding(padding, kernel)

    @classmethod
    def _more(cls, nd: int) -> tuple[Any, ...]:  # pragma: no cover - abstract
        """The remaining fields, in field order, from the options after ``padding``."""
        raise NotImplementedError

    @classmethod
    def options(cls) -> tuple[Parameter, ...]:
        window = list(signature(WindowParams._parse).parameters.values())[1:4]
        window[2] = window[2].replace(annotation=cls._padding_type)
        return (*window, *list(signature(cls._more).parameters.values())[1:])


@dataclass(frozen=True)
class IndexedParams(WindowParams):
    """A window family whose indices come in a layout (max pooling, max unpooling)."""

    channels_last: bool
    index_format: str
    storage_order: int

    def indices_to_plane(self, idx: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """Indices in this layout as plane row-major ones, for arrays of ``shape``."""
        return _indices.to_plane(idx, shape, self.nd, len(shape) == self.nd + 2,
                                 self.channels_last, self.index_format, self.storage_order)

    def indices_from_plane(self, idx: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """Plane row-major indices in this layout, for arrays of ``shape``."""
        return _indices.from_plane(idx, shape, self.nd, len(shape) == self.nd + 2,
                                   self.channels_last, self.index_format, self.storage_order)
