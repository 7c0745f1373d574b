"""Convnet layers with forward and backward: Conv2d, Linear, ReLU, Flatten, Dropout.

Every layer remembers what its ``backward`` needs from the most recent ``forward``;
``backward(grad_output)`` returns the gradient with respect to that forward's input and
stores parameter gradients in ``Parameter.grad`` (overwriting them).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .. import _args
from ..layers import MaxPool2d
from ._module import Module, Parameter, as_generator

__all__ = ["Conv2d", "Dropout", "Flatten", "Linear", "MaxPool2d", "ReLU"]


def _float_dtype(dtype: Any) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def _positive_int(value: Any, name: str) -> int:
    return _args.int_tuple(value, 1, name, minimum=1)[0]


def _init_weights(layer: Module, shape: tuple[int, ...], bias: Any, rng: Any,
                  dtype: Any) -> None:
    """``layer.weight`` of ``shape``, uniform in +-sqrt(6 / fan_in) (fan_in: the product of
    ``shape[1:]``), and ``layer.bias``: zeros of ``shape[0]``, or None without ``bias``."""
    dt = _float_dtype(dtype)
    gen = as_generator(rng)
    bound = np.sqrt(6.0 / math.prod(shape[1:]))
    layer.weight = Parameter(gen.uniform(-bound, bound, shape).astype(dt))
    layer.bias = Parameter(np.zeros(shape[0], dt)) if _args.check_bool(bias, "bias") else None


def _float_input(x: Any, name: str = "x") -> np.ndarray:
    arr = _args.as_array(x, name)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float64)
    return arr


def _need_forward(layer: Module, state: Any) -> None:
    if state is None:
        raise RuntimeError(f"{type(layer).__name__}.backward() called before forward()")


def _check_grad(grad_output: Any, shape: tuple[int, ...], layer: Module) -> np.ndarray:
    g = _float_input(grad_output, "grad_output")
    if g.shape != shape:
        raise ValueError(
            f"{type(layer).__name__}.backward: grad_output must have the forward output's "
            f"shape {shape}, got {g.shape}"
        )
    return g


class Conv2d(Module):
    """2-D convolution (cross-correlation, as PyTorch) with stride and zero padding.

    Input ``(N, C_in, H, W)``, output ``(N, C_out, H_out, W_out)`` with
    ``H_out = (H + 2*padding - kernel_size) // stride + 1`` (likewise W). Forward is one
    matrix product over an im2col matrix built from a strided (no-loop) window view;
    backward is two matrix products plus a col2im scatter that loops only over the
    ``kernel_h * kernel_w`` kernel offsets, never over pixels.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size, stride, padding : int or (int, int)
    bias : bool
    rng : numpy.random.Generator, int or None
        Source of the He-uniform initial weights (bound ``sqrt(6 / fan_in)``); bias starts at 0.
    dtype : float32 (default) or float64

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit.nn import Conv2d
    >>> conv = Conv2d(1, 4, 3, padding=1, rng=0)
    >>> y = conv(np.zeros((2, 1, 8, 8), np.float32))
    >>> y.shape
    (2, 4, 8, 8)
    >>> conv.backward(np.ones_like(y)).shape
    (2, 1, 8, 8)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        bias: bool = True,
        rng: np.random.Generator | int | None = None,
        dtype: Any = np.float32,
    ) -> None:
        self.in_channels = _positive_int(in_channels, "in_channels")
        self.out_channels = _positive_int(out_channels, "out_channels")
        self.kernel_size = _args.int_tuple(kernel_size, 2, "kernel_size", minimum=1)
        self.stride = _args.int_tuple(stride, 2, "stride", minimum=1)
        self.padding = _args.int_tuple(padding, 2, "padding", minimum=0)
        _init_weights(self, (self.out_channels, self.in_channels, *self.kernel_size), bias, rng,
                      dtype)
        self._cols: np.ndarray | None = None
        self._in_shape: tuple[int, ...] = ()
        self._out_shape: tuple[int, ...] = ()

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        """Spatial output size for an ``h x w`` input."""
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _float_input(x)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"x must have shape (N, {self.in_channels}, H, W) for Conv2d with "
                f"in_channels={self.in_channels}, got shape {x.shape}"
            )
        n, c, h, w = x.shape
        oh, ow = self.output_size(h, w)
        if oh < 1 or ow < 1:
            raise ValueError(
                f"x with spatial size {(h, w)} is smaller than the padded kernel "
                f"(kernel_size={self.kernel_size}, padding={self.padding})"
            )
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
        win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :oh, :ow]
        # (N, OH, OW, C, kh, kw) -> rows of the im2col matrix (one copy, done by reshape)
        cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw)
        wmat = self.weight.data.reshape(self.out_channels, -1)
        out = cols @ wmat.T
        if self.bias is not None:
            out += self.bias.data
        self._cols = cols
        self._in_shape = x.shape
        self._out_shape = (n, self.out_channels, oh, ow)
        return np.ascontiguousarray(out.reshape(n, oh, ow, self.out_channels).transpose(0, 3, 1, 2))

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        _need_forward(self, self._cols)
        g = _check_grad(grad_output, self._out_shape, self)
        n, c, h, w = self._in_shape
        _, o, oh, ow = self._out_shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        gm = g.transpose(0, 2, 3, 1).reshape(n * oh * ow, o)
        self.weight.grad = (gm.T @ self._cols).reshape(self.weight.data.shape).astype(
            self.weight.data.dtype, copy=False
        )
        if self.bias is not None:
            self.bias.grad = gm.sum(axis=0).astype(self.bias.data.dtype, copy=False)
        dcols = (gm @ self.weight.data.reshape(o, -1)).reshape(n, oh, ow, c, kh, kw)
        dcols = dcols.transpose(0, 3, 4, 5, 1, 2)  # (N, C, kh, kw, OH, OW)
        dxp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dcols.dtype)
        for i in range(kh):  # col2im: one strided add per kernel offset
            for j in range(kw):
                dxp[:, :, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw] += dcols[
                    :, :, i, j
                ]
        return dxp[:, :, ph : ph + h, pw : pw + w]

    def __repr__(self) -> str:
        return (
            f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None})"
        )


class Linear(Module):
    """Fully connected layer ``y = x @ weight.T + bias``; input ``(N, in)``, output ``(N, out)``.

    Weights are He-uniform (bound ``sqrt(6 / in_features)``) from ``rng``; bias starts at 0.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit.nn import Linear
    >>> fc = Linear(3, 2, rng=0)
    >>> fc(np.ones((4, 3), np.float32)).shape
    (4, 2)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        rng: np.random.Generator | int | None = None,
        dtype: Any = np.float32,
    ) -> None:
        self.in_features = _positive_int(in_features, "in_features")
        self.out_features = _positive_int(out_features, "out_features")
        _init_weights(self, (self.out_features, self.in_features), bias, rng, dtype)
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _float_input(x)
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(
                f"x must have shape (N, {self.in_features}) for Linear with "
                f"in_features={self.in_features}, got shape {x.shape}"
            )
        self._x = x
        out = x @ self.weight.data.T
        if self.bias is not None:
            out += self.bias.data
        return out

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        _need_forward(self, self._x)
        g = _check_grad(grad_output, (self._x.shape[0], self.out_features), self)
        self.weight.grad = (g.T @ self._x).astype(self.weight.data.dtype, copy=False)
        if self.bias is not None:
            self.bias.grad = g.sum(axis=0).astype(self.bias.data.dtype, copy=False)
        return g @ self.weight.data

    def __repr__(self) -> str:
        return f"Linear({self.in_features}, {self.out_features}, bias={self.bias is not None})"


class ReLU(Module):
    """``max(x, 0)`` elementwise; the gradient passes where ``x > 0``.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit.nn import ReLU
    >>> r = ReLU()
    >>> r(np.array([-1.0, 2.0]))
    array([0., 2.])
    >>> r.backward(np.array([5.0, 5.0]))
    array([0., 5.])
    """

    def __init__(self) -> None:
        self._mask: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _float_input(x)
        self._mask = x > 0
        return np.where(self._mask, x, x.dtype.type(0))

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        _need_forward(self, self._mask)
        g = _check_grad(grad_output, self._mask.shape, self)
        return np.where(self._mask, g, g.dtype.type(0))

    def __repr__(self) -> str:
        return "ReLU()"


class Flatten(Module):
    """Reshape ``(N, *dims)`` to ``(N, prod(dims))``; backward reshapes back.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit.nn import Flatten
    >>> Flatten()(np.zeros((2, 3, 4, 4))).shape
    (2, 48)
    """

    def __init__(self) -> None:
        self._shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _float_input(x)
        if x.ndim < 1:
            raise ValueError("x must have a batch dimension, got a 0-d array")
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        _need_forward(self, self._shape)
        n = self._shape[0]
        g = _check_grad(grad_output, (n, int(np.prod(self._shape[1:], dtype=np.int64))), self)
        return g.reshape(self._shape)

    def __repr__(self) -> str:
        return "Flatten()"


class Dropout(Module):
    """Inverted dropout: in training mode zero each element with probability ``p`` and scale
    the rest by ``1 / (1 - p)``; in evaluation mode (``eval()``) pass the input through.

    Parameters
    ----------
    p : float in [0, 1)
    rng : numpy.random.Generator, int or None
        Source of the masks (each training-mode forward draws a new one).

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit.nn import Dropout
    >>> d = Dropout(0.5, rng=0)
    >>> y = d(np.ones((2, 4)))
    >>> sorted(set(y.ravel().tolist()))
    [0.0, 2.0]
    >>> d.eval()(np.ones(3))
    array([1., 1., 1.])
    """

    def __init__(self, p: float = 0.5, rng: np.random.Generator | int | None = None) -> None:
        if isinstance(p, bool) or not isinstance(p, (int, float, np.floating, np.integer)):
            raise TypeError(f"p must be a float in [0, 1), got {type(p).__name__}")
        if not 0.0 <= float(p) < 1.0:
            raise ValueError(f"p must be a float in [0, 1), got {p}")
        self.p = float(p)
        self.rng = as_generator(rng)
        self._scale: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _float_input(x)
        if self.training and self.p > 0:
            keep = self.rng.random(x.shape) >= self.p
            self._scale = keep.astype(x.dtype) / x.dtype.type(1.0 - self.p)
        else:
            self._scale = np.ones(x.shape, x.dtype)
        return x * self._scale

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        _need_forward(self, self._scale)
        return _check_grad(grad_output, self._scale.shape, self) * self._scale

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"
