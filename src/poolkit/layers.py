"""Stateful pooling layers: every class on one base, :class:`Layer`.

A layer validates its options once, in its constructor; ``forward`` (also ``layer(x)``)
runs the family's function and remembers what ``backward`` needs (the input shape, the
argmax indices, or the input itself for Lp pooling); ``backward(grad_output, out=None)``
returns the gradient with respect to that input.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from inspect import Parameter, signature
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from . import _args, _indices
from ._ops import adaptive, argmax, avg_pool, fractional, global_pool, lp_pool, max_pool, unpool
from ._ops.avg_pool import AvgPoolParams
from ._ops.lp_pool import LpPoolParams
from ._ops.max_pool import MaxPoolParams
from ._ops.params import IndexedParams, PoolParams, with_options
from ._ops.unpool import UnpoolParams

__all__ = [
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AdaptiveAvgPool3d",
    "AdaptiveMaxPool1d",
    "AdaptiveMaxPool2d",
    "AdaptiveMaxPool3d",
    "AvgPool1d",
    "AvgPool2d",
    "AvgPool3d",
    "FractionalMaxPool2d",
    "FractionalMaxPool3d",
    "GlobalAvgPool",
    "GlobalLpPool",
    "GlobalMaxPool",
    "LPPool1d",
    "LPPool2d",
    "LPPool3d",
    "MaxPool1d",
    "MaxPool2d",
    "MaxPool3d",
    "MaxUnpool1d",
    "MaxUnpool2d",
    "MaxUnpool3d",
]


def compact(values: tuple[int, ...]) -> int | tuple[int, ...]:
    """``(3, 3)`` -> ``3`` for reprs, as PyTorch prints uniform sizes."""
    return values[0] if len(set(values)) == 1 else values


def _padding_repr(spec: Any) -> object:
    """A parsed padding as the user would write it (PyTorch ints compacted)."""
    return compact(spec.begin) if spec.pytorch else spec.describe()


class Layer:
    """Base of every pooling layer.

    Subclasses set ``_state`` (what ``backward`` needs) in ``forward`` and list their
    non-default options in :meth:`_options` for the repr. ``layer(x)`` is
    ``layer.forward(x)``; ``backward`` before any ``forward`` is a RuntimeError.

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> layer = pk.MaxPool2d(2)
    >>> layer
    MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
    >>> layer.backward(np.ones((1, 1, 1, 1)))
    Traceback (most recent call last):
    ...
    RuntimeError: MaxPool2d.backward() called before forward(): nothing to differentiate yet
    """

    _nd = 0
    _state: Any = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def forward(self, x: ArrayLike) -> Any:  # pragma: no cover - every layer overrides
        raise NotImplementedError

    def _saved(self) -> Any:
        """The state of the last ``forward``."""
        if self._state is None:
            raise RuntimeError(
                f"{type(self).__name__}.backward() called before forward(): nothing to "
                "differentiate yet"
            )
        return self._state

    def _options(self) -> list[str]:  # pragma: no cover - every layer overrides
        return []

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(self._options())})"


def _rank_layer(base: type, name: str, what: str, example: str) -> type:
    """The layer class ``name`` (e.g. ``"AvgPool2d"``) of one rank: ``base`` with its rank,
    a docstring naming its function and the doctest ``example``."""
    nd = int(name[-2])
    function = re.sub(r"(?<!^)([A-Z])", r"_\1", name[:-2]).lower().replace("l_p", "lp")
    doc = (f"{nd}-D {what} layer. Options as :func:`poolkit.{function}{nd}d`.\n\n"
           f"    Examples\n    --------\n    >>> import numpy as np, poolkit as pk\n"
           + "".join(f"    {line}\n" for line in example.strip().splitlines()) + "    ")
    return type(name, (base,), {"__doc__": doc, "_nd": nd, "__module__": __name__,
                                "__qualname__": name})


def _parsing_init(params: type[PoolParams]) -> Callable[..., None]:
    """A layer constructor taking its family's options (those of its functions, declared
    by ``params``) and keeping them validated in ``self.params``."""

    def __init__(self: Layer, *options: Any, **kw: Any) -> None:
        self.params = params.of(self._nd, options, kw)

    return with_options(__init__, params.options())


def _options_of(function: Callable[..., Any]) -> list[Parameter]:
    """The parameters of a layer's ``function`` after its input: the layer's options."""
    return list(signature(function).parameters.values())[1:]


def _flag(name: str, value: bool) -> list[str]:
    """``["name=True"]`` for an option that is off by default and set."""
    return [f"{name}=True"] if value else []


def _layout_options(p: IndexedParams) -> list[str]:
    """``channels_last`` and the index layout, where not the defaults."""
    layout = _indices.layout_repr(p.index_format, p.storage_order)
    return _flag("channels_last", p.channels_last) + ([layout[2:]] if layout else [])


# ---------------------------------------------------------------------------- max pooling


class _MaxPoolNd(Layer):
    """Max pooling layer; ``forward`` keeps the indices so ``backward`` can route."""

    __init__ = _parsing_init(MaxPoolParams)

    def forward(self, x: ArrayLike) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Pool ``x`` and remember where each maximum came from.

        Returns the pooled array, or ``(pooled, indices)`` with ``return_indices=True``.
        """
        p = self.params
        out, idx = max_pool.pool(x, p, want_indices=True, convert=False)
        shape = tuple(np.shape(x))
        self._state = (idx, shape)
        if not p.return_indices:
            return out
        return out, p.indices_from_plane(idx, shape)

    def backward(self, grad_output: ArrayLike, out: np.ndarray | None = None) -> np.ndarray:
        """Gradient with respect to the input of the most recent ``forward``."""
        idx, shape = self._saved()
        if np.shape(grad_output) != idx.shape:
            raise ValueError(
                f"grad_output must have the shape of the last forward output "
                f"{idx.shape}, got {np.shape(grad_output)}"
            )
        return max_pool.backward(grad_output, idx, shape, self._nd, self.params.channels_last,
                                 out=out)

    def _options(self) -> list[str]:
        p = self.params
        return [
            f"kernel_size={compact(p.kernel)}", f"stride={compact(p.stride)}",
            f"padding={_padding_repr(p.padding)!r}", f"dilation={compact(p.dilation)}",
            f"ceil_mode={p.ceil_mode}", *_flag("return_indices", p.return_indices),
        ] + _layout_options(p)


MaxPool1d = _rank_layer(_MaxPoolNd, "MaxPool1d", "max pooling", """
>>> layer = pk.MaxPool1d(2)
>>> y = layer(np.array([[[1.0, 3.0, 2.0, 0.0]]]))
>>> layer.backward(np.ones_like(y))
array([[[0., 1., 1., 0.]]])
""")


MaxPool2d = _rank_layer(_MaxPoolNd, "MaxPool2d", "max pooling", """
>>> layer = pk.MaxPool2d(3, stride=2, padding=1)
>>> x = np.random.default_rng(0).standard_normal((8, 4, 16, 16)).astype(np.float32)
>>> y = layer(x)
>>> y.shape
(8, 4, 8, 8)
>>> layer.backward(np.ones_like(y)).shape
(8, 4, 16, 16)
""")


MaxPool3d = _rank_layer(_MaxPoolNd, "MaxPool3d", "max pooling", """
>>> pk.MaxPool3d(2)(np.zeros((1, 2, 4, 4, 4))).shape
(1, 2, 2, 2, 2)
""")


# ------------------------------------------------------------------------ average pooling


class _FamilyBackward(Layer):
    """A layer whose ``backward`` is its family's: ``family.backward(grad_output, saved,
    params, out)``, ``saved`` what ``forward`` kept (the input shape, or the input)."""

    _family: Any

    def backward(self, grad_output: ArrayLike, out: np.ndarray | None = None) -> np.ndarray:
        """Gradient with respect to the input of the most recent ``forward``."""
        return self._family.backward(grad_output, self._saved(), self.params, out)


class _AvgPoolNd(_FamilyBackward):
    """Average pooling layer; remembers the input shape for ``backward``."""

    __init__ = _parsing_init(AvgPoolParams)
    _family = avg_pool

    def forward(self, x: ArrayLike) -> np.ndarray:
        """Pool ``x`` (see :func:`poolkit.avg_pool2d`) and remember its shape."""
        out = avg_pool.pool(x, self.params)
        self._state = tuple(np.shape(x))
        return out

    def _options(self) -> list[str]:
        p = self.params
        return [
            f"kernel_size={compact(p.kernel)}", f"stride={compact(p.stride)}",
            f"padding={_padding_repr(p.padding)!r}", f"ceil_mode={p.ceil_mode}",
            f"count_include_pad={p.count_include_pad}",
        ] + ([f"dilation={compact(p.dilation)}"] if p.dilated else []) + (
            [f"divisor_override={p.divisor_override}"] if p.divisor_override else []
        ) + _flag("channels_last", p.channels_last)


AvgPool1d = _rank_layer(_AvgPoolNd, "AvgPool1d", "average pooling", """
>>> layer = pk.AvgPool1d(2)
>>> layer(np.array([[[1.0, 3.0, 2.0, 0.0]]]))
array([[[2., 1.]]])
>>> layer.backward(np.ones((1, 1, 2)))
array([[[0.5, 0.5, 0.5, 0.5]]])
""")


AvgPool2d = _rank_layer(_AvgPoolNd, "AvgPool2d", "average pooling", """
>>> layer = pk.AvgPool2d(3, stride=2, padding=1)
>>> layer(np.zeros((8, 4, 16, 16), np.float32)).shape
(8, 4, 8, 8)
""")


AvgPool3d = _rank_layer(_AvgPoolNd, "AvgPool3d", "average pooling", """
>>> pk.AvgPool3d(2)(np.ones((1, 2, 4, 4, 4))).shape
(1, 2, 2, 2, 2)
""")


# ----------------------------------------------------------------------------- Lp pooling


class _LPPoolNd(_FamilyBackward):
    """Lp pooling layer; keeps the input for ``backward``."""

    __init__ = _parsing_init(LpPoolParams)
    _family = lp_pool

    def forward(self, x: ArrayLike) -> np.ndarray:
        """Pool ``x`` (see :func:`poolkit.lp_pool2d`) and keep it for ``backward``."""
        out = lp_pool.pool(x, self.params)
        self._state = np.asarray(x)
        return out

    def _options(self) -> list[str]:
        a = self.params.avg
        text = [f"norm_type={self.params.norm_type:g}", f"kernel_size={compact(a.kernel)}",
                f"stride={compact(a.stride)}", f"ceil_mode={a.ceil_mode}"]
        if self.params.extended:
            text.append(f"padding={_padding_repr(a.padding)!r}")
            if a.dilated:
                text.append(f"dilation={compact(a.dilation)}")
        return text + _flag("channels_last", a.channels_last)


LPPool1d = _rank_layer(_LPPoolNd, "LPPool1d", "Lp pooling", """
>>> pk.LPPool1d(2, 2)(np.array([[[3.0, 4.0]]]))
array([[[5.]]])
""")


LPPool2d = _rank_layer(_LPPoolNd, "LPPool2d", "Lp pooling", """
>>> pk.LPPool2d(2, 2)(np.ones((1, 1, 4, 4)))[0, 0]
array([[2., 2.],
       [2., 2.]])
""")


LPPool3d = _rank_layer(_LPPoolNd, "LPPool3d", "Lp pooling", """
>>> pk.LPPool3d(1, 2)(np.ones((1, 1, 2, 2, 2))).ravel()
array([8.])
""")


# ----------------------------------------------------------------------- adaptive pooling


def _size_repr(sizes: Any) -> str:
    return repr(tuple(sizes)) if isinstance(sizes, (tuple, list)) else repr(sizes)


class _AdaptiveAvgPoolNd(Layer):
    """Adaptive average pooling layer; remembers the input shape for ``backward``."""

    def __init__(self, output_size: Any, channels_last: bool = False) -> None:
        adaptive.check_output_size(output_size, self._nd)
        self.output_size = output_size
        self.channels_last = _args.check_bool(channels_last, "channels_last")

    def forward(self, x: ArrayLike) -> np.ndarray:
        """Pool ``x`` (see :func:`poolkit.adaptive_avg_pool2d`)."""
        out = adaptive.avg_pool(x, self._nd, self.output_size, self.channels_last)
        self._state = tuple(np.shape(x))
        return out

    def backward(self, grad_output: ArrayLike, out: np.ndarray | None = None) -> np.ndarray:
        """Gradient with respect to the input of the most recent ``forward``."""
        return adaptive.avg_backward(grad_output, self._saved(), self._nd, self.channels_last,
                                     out)

    def _options(self) -> list[str]:
        return [f"output_size={_size_repr(self.output_size)}",
                *_flag("channels_last", self.channels_last)]


class _AdaptiveMaxPoolNd(Layer):
    """Adaptive max pooling layer; keeps the indices for ``backward``."""

    def __init__(
        self, output_size: Any, return_indices: bool = False, channels_last: bool = False
    ) -> None:
        adaptive.check_output_size(output_size, self._nd)
        self.output_size = output_size
        self.return_indices = _args.check_bool(return_indices, "return_indices")
        self.channels_last = _args.check_bool(channels_last, "channels_last")

    def forward(self, x: ArrayLike) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Pool ``x`` (see :func:`poolkit.adaptive_max_pool2d`) and remember the argmax."""
        out, idx = adaptive.max_pool(x, self._nd, self.output_size, self.channels_last)
        self._state = (idx, tuple(np.shape(x)))
        return (out, idx) if self.return_indices else out

    def backward(self, grad_output: ArrayLike, out: np.ndarray | None = None) -> np.ndarray:
        """Gradient with respect to the input of the most recent ``forward``."""
        idx, shape = self._saved()
        return argmax.backward(grad_output, idx, shape, self._nd, self.channels_last,
                                        out)

    def _options(self) -> list[str]:
        return [f"output_size={_size_repr(self.output_size)}",
                *_flag("return_indices", self.return_indices),
                *_flag("channels_last", self.channels_last)]


_ADAPTIVE_EXAMPLE = """
>>> layer = pk.{name}({size})
>>> layer(np.zeros((2, 3{fours}))).shape[-1]
2
"""


def _adaptive_layer(kind: str, base: type, nd: int) -> type:
    name = f"Adaptive{kind}Pool{nd}d"
    size = "(1,) * " + str(nd - 1) + " + (2,)" if nd > 1 else "2"
    example = _ADAPTIVE_EXAMPLE.format(name=name, size=size, fours=", 4" * nd)
    return _rank_layer(base, name, f"adaptive {kind.lower()} pooling", example)


AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d = (
    _adaptive_layer("Avg", _AdaptiveAvgPoolNd, nd) for nd in (1, 2, 3)
)
AdaptiveMaxPool1d, AdaptiveMaxPool2d, AdaptiveMaxPool3d = (
    _adaptive_layer("Max", _AdaptiveMaxPoolNd, nd) for nd in (1, 2, 3)
)


# ------------------------------------------------------------------------- global pooling


class GlobalAvgPool(Layer):
    """Global average pooling layer (see :func:`poolkit.global_avg_pool`).

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> pk.GlobalAvgPool(keepdims=False)(np.ones((2, 3, 4, 4))).shape
    (2, 3)
    """

    def __init__(self, keepdims: bool = True, channels_last: bool = False) -> None:
        self.keepdims = _args.check_bool(keepdims, "keepdims")
        self.channels_last = _args.check_bool(channels_last, "channels_last")

    def forward(self, x: ArrayLike) -> np.ndarray:
        """Average every plane of ``x``."""
        out = global_pool.global_avg_pool(x, self.keepdims, self.channels_last)
        self._state = tuple(np.shape(x))
        return out

    def backward(self, grad_output: ArrayLike, out: np.ndarray | None = None) -> np.ndarray:
        """Gradient with respect to the input of the most recent ``forward``."""
        return global_pool.global_avg_pool_backward(grad_output, self._saved(),
                                                    self.channels_last, out)

    def _options(self) -> list[str]:
        return [f"keepdims={self.keepdims}", *_flag("channels_last", self.channels_last)]


class GlobalMaxPool(GlobalAvgPool):
    """Global max pooling layer (see :func:`poolkit.global_max_pool`).

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> layer = pk.GlobalMaxPool()
    >>> layer(np.arange(4.0).reshape(1, 1, 2, 2)).ravel()
    array([3.])
    >>> layer.backward(np.ones((1, 1, 1, 1))).ravel()
    array([0., 0., 0., 1.])
    """

    def forward(self, x: ArrayLike) -> np.ndarray:
        """Max of every plane of ``x``; remembers the argmax."""
        out, idx = global_pool.global_max_pool(x, self.keepdims, True, self.channels_last)
        self._state = (idx, tuple(np.shape(x)))
        return out

    def backward(self, grad_output: ArrayLike, out: np.ndarray | None = None) -> np.ndarray:
        """Gradient with respect to the input of the most recent ``forward``."""
        idx, shape = self._saved()
        return global_pool.global_max_pool_backward(grad_output, idx, shape,
                                                    self.channels_last, out)


class GlobalLpPool(Layer):
    """Global Lp pooling layer (see :func:`poolkit.global_lp_pool`).

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> pk.GlobalLpPool(2.0, keepdims=False)(np.array([[[3.0, 4.0]]]))
    array([[5.]])
    """

    def __init__(self, p: float = 2.0, keepdims: bool = True, channels_last: bool = False):
        self.p = _args.check_norm_type(p)
        self.keepdims = _args.check_bool(keepdims, "keepdims")
        self.channels_last = _args.check_bool(channels_last, "channels_last")

    def forward(self, x: ArrayLike) -> np.ndarray:
        """Lp norm of every plane of ``x``."""
        out = global_pool.global_lp_pool(x, self.p, self.keepdims, self.channels_last)
        self._state = np.asarray(x)
        return out

    def backward(self, grad_output: ArrayLike, out: np.ndarray | None = None) -> np.ndarray:
        """Gradient with respect to the input of the most recent ``forward``."""
        return global_pool.global_lp_pool_backward(grad_output, self._saved(), self.p,
                                                   self.channels_last, out)

    def _options(self) -> list[str]:
        return [f"p={self.p:g}", f"keepdims={self.keepdims}",
                *_flag("channels_last", self.channels_last)]


# --------------------------------------------------------------------- fractional pooling


class _FractionalMaxPoolNd(Layer):
    """Fractional max pooling layer: new samples from ``rng`` at every ``forward``
    (unless fixed ``random_samples`` were given)."""

    @partial(with_options, options=_options_of(fractional.fractional_max_pool2d))
    def __init__(self, *options: Any, **kw: Any) -> None:
        bound = signature(type(self).__init__).bind(self, *options, **kw)
        bound.apply_defaults()
        o, nd = bound.arguments, self._nd
        self.kernel = _args.int_tuple(o["kernel_size"], nd, "kernel_size", minimum=1)
        if (o["output_size"] is None) == (o["output_ratio"] is None):
            raise ValueError(
                f"{type(self).__name__} needs exactly one of output_size and output_ratio"
            )
        self.output_size = (
            None if o["output_size"] is None
            else _args.int_tuple(o["output_size"], nd, "output_size", minimum=1)
        )
        self.output_ratio = (
            None if o["output_ratio"] is None else fractional.ratio_tuple(o["output_ratio"], nd)
        )
        self.return_indices = _args.check_bool(o["return_indices"], "return_indices")
        rng = o["rng"]
        if rng is not None and not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator or None, got {rng!r}")
        self.rng = np.random.default_rng() if rng is None else rng
        self.random_samples = o["random_samples"]

    def forward(self, x: ArrayLike) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Pool ``x`` (see :func:`poolkit.fractional_max_pool2d`) and remember the argmax."""
        out, idx = fractional.pool(
            x, self._nd, self.kernel, self.output_size, self.output_ratio,
            self.random_samples, self.rng,
        )
        self._state = (idx, tuple(np.shape(x)))
        return (out, idx) if self.return_indices else out

    def backward(self, grad_output: ArrayLike, out: np.ndarray | None = None) -> np.ndarray:
        """Gradient with respect to the input of the most recent ``forward``."""
        idx, shape = self._saved()
        return argmax.backward(grad_output, idx, shape, self._nd, False, out)

    def _options(self) -> list[str]:
        size = (
            f"output_size={self.output_size}" if self.output_size is not None
            else f"output_ratio={self.output_ratio}"
        )
        return [f"kernel_size={self.kernel}", size, *_flag("return_indices",
                                                           self.return_indices)]


_FRACTIONAL = "fractional max pooling"
FractionalMaxPool2d = _rank_layer(
    _FractionalMaxPoolNd, "FractionalMaxPool2d", _FRACTIONAL, """
>>> layer = pk.FractionalMaxPool2d(2, output_ratio=0.5, rng=np.random.default_rng(0))
>>> layer(np.zeros((1, 3, 10, 10))).shape
(1, 3, 5, 5)
""")


FractionalMaxPool3d = _rank_layer(
    _FractionalMaxPoolNd, "FractionalMaxPool3d", _FRACTIONAL, """
>>> layer = pk.FractionalMaxPool3d(2, output_size=3, rng=np.random.default_rng(0))
>>> layer(np.zeros((1, 2, 6, 6, 6))).shape
(1, 2, 3, 3, 3)
""")


# -------------------------------------------------------------------------- max unpooling


class _MaxUnpoolNd(Layer):
    """Max unpooling layer; ``forward(x, indices, output_size=None)``."""

    __init__ = _parsing_init(UnpoolParams)

    def forward(
        self, x: ArrayLike, indices: ArrayLike, output_size: tuple[int, ...] | None = None
    ) -> np.ndarray:
        """Unpool ``x`` at ``indices`` (see :func:`poolkit.max_unpool2d`)."""
        out = unpool.unpool(x, indices, self.params, output_size)
        self._state = (np.asarray(indices), tuple(np.shape(x)))
        return out

    def backward(self, grad_output: ArrayLike, out: np.ndarray | None = None) -> np.ndarray:
        """Gradient with respect to ``x`` of the most recent ``forward``."""
        idx, shape = self._saved()
        return unpool.backward(grad_output, idx, shape, self.params, out)

    def _options(self) -> list[str]:
        p = self.params
        return [
            f"kernel_size={compact(p.kernel)}", f"stride={compact(p.stride)}",
            f"padding={_padding_repr(p.padding)!r}",
        ] + _layout_options(p)


MaxUnpool1d = _rank_layer(_MaxUnpoolNd, "MaxUnpool1d", "max unpooling", """
>>> pk.MaxUnpool1d(2)(np.array([[[5.0, 7.0]]]), np.array([[[1, 2]]]))
array([[[0., 5., 7., 0.]]])
""")


MaxUnpool2d = _rank_layer(_MaxUnpoolNd, "MaxUnpool2d", "max unpooling", """
>>> x = np.random.default_rng(0).standard_normal((1, 1, 4, 4))
>>> y, i = pk.max_pool2d(x, 2, return_indices=True)
>>> pk.MaxUnpool2d(2)(y, i).shape
(1, 1, 4, 4)
""")


MaxUnpool3d = _rank_layer(_MaxUnpoolNd, "MaxUnpool3d", "max unpooling", """
>>> pk.MaxUnpool3d(2)(np.ones((1, 1, 1, 1, 1)), np.zeros((1, 1, 1, 1, 1), int)).shape
(1, 1, 2, 2, 2)
""")
