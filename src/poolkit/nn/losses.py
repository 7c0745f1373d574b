"""Loss functions."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _args

__all__ = ["SoftmaxCrossEntropy", "log_softmax"]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable ``log(softmax(logits))`` over the last axis.

    Examples
    --------
    >>> import numpy as np
    >>> log_softmax(np.array([[0.0, 0.0], [1000.0, 0.0]])).round(4).tolist()  # no overflow
    [[-0.6931, -0.6931], [0.0, -1000.0]]
    """
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


class SoftmaxCrossEntropy:
    """Mean cross-entropy of softmax(logits) against integer class labels.

    ``forward(logits, targets)`` takes logits ``(N, K)`` and labels ``(N,)`` in ``[0, K)``
    and returns the mean loss (a Python float); ``backward(grad_output=1.0)`` returns
    ``d loss / d logits = (softmax(logits) - onehot(targets)) / N * grad_output``.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit.nn import SoftmaxCrossEntropy
    >>> loss = SoftmaxCrossEntropy()
    >>> round(loss(np.zeros((2, 4)), np.array([0, 3])), 6)  # log(4)
    1.386294
    >>> loss.backward()[0]
    array([-0.375,  0.125,  0.125,  0.125])
    """

    def __init__(self) -> None:
        self._probs: np.ndarray | None = None
        self._targets: np.ndarray | None = None

    def forward(self, logits: Any, targets: Any) -> float:
        z = _args.as_array(logits, "logits")
        if z.ndim != 2 or z.shape[0] == 0 or z.shape[1] == 0:
            raise ValueError(f"logits must have shape (N, K) with N, K >= 1, got {z.shape}")
        if z.dtype.kind != "f":
            raise TypeError(f"logits must be a floating array, got dtype {z.dtype}")
        t = _args.as_array(targets, "targets")
        if t.shape != (z.shape[0],) or t.dtype.kind not in "iu":
            raise ValueError(
                f"targets must be integer class labels of shape ({z.shape[0]},), got "
                f"shape {t.shape} and dtype {t.dtype}"
            )
        if t.size and (t.min() < 0 or t.max() >= z.shape[1]):
            raise ValueError(
                f"targets must lie in [0, {z.shape[1]}), got values from {t.min()} to {t.max()}"
            )
        logp = log_softmax(z)
        rows = np.arange(z.shape[0])
        self._probs = np.exp(logp)
        self._targets = t
        return float(-logp[rows, t].mean())

    __call__ = forward

    def backward(self, grad_output: float = 1.0) -> np.ndarray:
        if self._probs is None:
            raise RuntimeError("SoftmaxCrossEntropy.backward() called before forward()")
        n = self._probs.shape[0]
        grad = self._probs.copy()
        grad[np.arange(n), self._targets] -= 1
        return grad * (np.asarray(grad_output, grad.dtype) / n)

    def __repr__(self) -> str:
        return "SoftmaxCrossEntropy()"
