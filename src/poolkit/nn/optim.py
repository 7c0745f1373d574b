"""Optimisers: SGD (momentum, weight decay) and Adam, updating parameters in place."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ._module import Parameter

__all__ = ["SGD", "Adam", "Optimizer"]


def _check_float(value: float, name: str, low: float, high: float = np.inf,
                 low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    v = float(value)
    bad_low = v <= low if low_open else v < low
    if bad_low or not v < high or not np.isfinite(v):
        interval = f"{'(' if low_open else '['}{low}, {high})"
        raise ValueError(f"{name} must lie in {interval}, got {value}")
    return v


class Optimizer:
    """Base class: holds the parameter list; ``zero_grad`` and ``step``."""

    def __init__(self, params: Iterable[Parameter], lr: float) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError("the optimiser got an empty parameter list")
        for p in self.params:
            if not isinstance(p, Parameter):
                raise TypeError(
                    f"the optimiser expects poolkit.nn.Parameter objects, got {type(p).__name__}"
                )
        self.lr = _check_float(lr, "lr", 0.0, low_open=True)

    def zero_grad(self) -> None:
        """Set every parameter gradient to zero."""
        for p in self.params:
            p.grad[...] = 0

    def step(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with momentum and L2 weight decay (PyTorch's rule).

    ``g = grad + weight_decay * w``; ``v = momentum * v + g`` (``v = g`` on the first step);
    ``w -= lr * v`` (``nesterov``: ``w -= lr * (g + momentum * v)``).

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit.nn import Parameter, SGD
    >>> p = Parameter(np.array([1.0])); p.grad[:] = 2.0
    >>> SGD([p], lr=0.1).step(); p.data
    array([0.8])
    """

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 0.01,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        super().__init__(params, lr)
        self.momentum = _check_float(momentum, "momentum", 0.0, 1.0)
        self.weight_decay = _check_float(weight_decay, "weight_decay", 0.0)
        self.nesterov = bool(nesterov)
        self._velocity: list[np.ndarray | None] = [None] * len(self.params)

    def step(self) -> None:
        """Apply one update to every parameter from its current ``grad``."""
        for i, p in enumerate(self.params):
            g = p.grad + self.weight_decay * p.data if self.weight_decay else p.grad
            if self.momentum:
                v = self._velocity[i]
                v = g.copy() if v is None else self.momentum * v + g
                self._velocity[i] = v
                g = g + self.momentum * v if self.nesterov else v
            p.data -= (self.lr * g).astype(p.data.dtype, copy=False)


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction and optional L2 weight decay (PyTorch's rule).

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit.nn import Parameter, Adam
    >>> p = Parameter(np.array([1.0])); p.grad[:] = 5.0
    >>> Adam([p], lr=0.1).step(); p.data.round(6)  # the first step moves by lr
    array([0.9])
    """

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair of floats, got {betas!r}")
        self.beta1 = _check_float(betas[0], "betas[0]", 0.0, 1.0)
        self.beta2 = _check_float(betas[1], "betas[1]", 0.0, 1.0)
        self.eps = _check_float(eps, "eps", 0.0, low_open=True)
        self.weight_decay = _check_float(weight_decay, "weight_decay", 0.0)
        self.t = 0
        self._m = [np.zeros_like(p.data) for p in self.params]
        self._v = [np.zeros_like(p.data) for p in self.params]

    def step(self) -> None:
        """Apply one update to every parameter from its current ``grad``."""
        self.t += 1
        c1 = 1.0 - self.beta1**self.t
        c2 = 1.0 - self.beta2**self.t
        for p, m, v in zip(self.params, self._m, self._v):
            g = p.grad + self.weight_decay * p.data if self.weight_decay else p.grad
            m *= self.beta1
            m += (1.0 - self.beta1) * g
            v *= self.beta2
            v += (1.0 - self.beta2) * g * g
            update = self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps)
            p.data -= update.astype(p.data.dtype, copy=False)
