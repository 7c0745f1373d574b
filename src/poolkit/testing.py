"""Testing helpers: a finite-difference gradient checker for layers and functions.

:func:`gradcheck` compares the analytic gradient of a layer's (or a function's) ``backward``
with central finite differences of its ``forward``, for the input and, on layers, for every
parameter. Point it at your own layers, too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["GradcheckError", "gradcheck"]


class GradcheckError(AssertionError):
    """Analytic and numerical gradients disagree (the message gives the worst entry)."""


def _forward_fn(target: Any) -> Callable[[np.ndarray], np.ndarray]:
    if callable(getattr(target, "forward", None)) and callable(getattr(target, "backward", None)):
        return target.forward
    if callable(target):
        return target
    raise TypeError(
        "gradcheck needs a layer with forward() and backward() methods, or a function "
        f"together with backward=...; got {type(target).__name__}"
    )


def _params_of(target: Any) -> list[tuple[str, Any]]:
    named = getattr(target, "named_parameters", None)
    return list(named()) if callable(named) else []


def _sample(size: int, max_checks: int | None, rng: np.random.Generator) -> np.ndarray:
    if max_checks is None or size <= max_checks:
        return np.arange(size)
    return np.sort(rng.choice(size, max_checks, replace=False))


def gradcheck(
    layer_or_function: Any,
    x: Any,
    *,
    backward: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    max_checks: int | None = 200,
    check_params: bool = True,
    seed: int = 0,
    raise_exception: bool = True,
) -> bool:
    """Check ``backward`` against central finite differences of ``forward``.

    The check projects the output onto fixed random weights ``r`` (so the scalar is
    ``L(x) = sum(r * forward(x))``), takes the analytic gradient as ``backward(r)`` and compares
    it entry by entry with ``(L(x + eps e_i) - L(x - eps e_i)) / (2 eps)``.

    Parameters
    ----------
    layer_or_function : layer or callable
        A layer: any object with ``forward(x)`` and ``backward(grad_output)`` (the gradient
        with respect to the input of the most recent forward); its parameters (from
        ``named_parameters()``, objects with ``.data`` and ``.grad``) are checked too. Or a
        function ``f(x) -> y``, given together with ``backward``.
    x : array_like
        The input; converted to float64 (the check needs the precision).
    backward : callable, optional
        For a function: ``backward(x, grad_output) -> grad_x``.
    eps, atol, rtol : float
        Step and tolerances: entry ``i`` passes if ``|a - n| <= atol + rtol * |n|``.
    max_checks : int or None
        Check at most this many randomly chosen entries per array (None: all of them).
    check_params : bool
        Also check parameter gradients of a layer. Parameters are temporarily converted to
        float64 and restored (values and dtypes) afterwards.
    seed : int
        Seed of the projection weights and of the entry sample.
    raise_exception : bool
        Raise :class:`GradcheckError` on a mismatch (default) instead of returning False.

    Returns
    -------
    bool
        True when every checked entry agrees.

    Notes
    -----
    ``forward`` must be deterministic: a layer that draws randomness on every call (Dropout in
    training mode) needs its randomness fixed, e.g. by wrapping it in a function that builds
    it with the same seed each time.

    Max pooling is differentiable only away from ties: give it distinct values that differ by
    much more than ``eps`` (a random permutation of a range works well).

    Examples
    --------
    >>> import numpy as np, poolkit as pk
    >>> from poolkit.testing import gradcheck
    >>> x = np.random.default_rng(0).permutation(64).reshape(1, 1, 8, 8) / 8.0
    >>> gradcheck(pk.MaxPool2d(3, stride=2, padding=1), x)
    True
    >>> gradcheck(np.tanh, np.linspace(-1, 1, 5), backward=lambda x, g: g * (1 - np.tanh(x)**2))
    True
    """
    forward = _forward_fn(layer_or_function)
    is_layer = forward is not layer_or_function
    if not is_layer and backward is None:
        raise TypeError("gradcheck of a plain function needs backward=callable(x, grad_output)")
    x = np.array(x, dtype=np.float64)  # a private copy: perturbed in place below
    rng = np.random.default_rng(seed)
    params = _params_of(layer_or_function) if (is_layer and check_params) else []
    saved = [(p, p.data, p.grad) for _, p in params]
    try:
        for _, p in params:
            p.data = np.array(p.data, dtype=np.float64)
        y = np.asarray(forward(x), dtype=np.float64)
        r = rng.standard_normal(y.shape)
        if is_layer:
            grad_x = np.asarray(layer_or_function.backward(r.copy()), dtype=np.float64)
        else:
            grad_x = np.asarray(backward(x, r.copy()), dtype=np.float64)
        if grad_x.shape != x.shape:
            raise GradcheckError(
                f"backward returned a gradient of shape {grad_x.shape}, the input has {x.shape}"
            )
        checks = [("input", x, grad_x)]
        checks += [(f"parameter {name!r}", p.data, np.array(p.grad, np.float64))
                   for name, p in params]

        def loss() -> float:
            return float(np.sum(r * np.asarray(forward(x), dtype=np.float64)))

        for label, arr, analytic in checks:
            if analytic.shape != arr.shape:
                raise GradcheckError(f"{label}: gradient shape {analytic.shape} != {arr.shape}")
            flat, aflat = arr.reshape(-1), analytic.reshape(-1)
            worst = None
            for i in _sample(flat.size, max_checks, rng):
                old = flat[i]
                flat[i] = old + eps
                plus = loss()
                flat[i] = old - eps
                minus = loss()
                flat[i] = old
                numeric = (plus - minus) / (2 * eps)
                err = abs(aflat[i] - numeric) - (atol + rtol * abs(numeric))
                if err > 0 and (worst is None or err > worst[0]):
                    worst = (err, i, aflat[i], numeric)
            if worst is not None:
                _, i, a, n = worst
                where = np.unravel_index(i, arr.shape)
                message = (
                    f"gradcheck failed for the {label} gradient at index {tuple(map(int, where))}:"
                    f" analytic {a:.8g}, numerical {n:.8g} (atol={atol}, rtol={rtol}, eps={eps})"
                )
                if raise_exception:
                    raise GradcheckError(message)
                return False
        return True
    finally:
        for p, data, grad in saved:
            p.data, p.grad = data, grad
