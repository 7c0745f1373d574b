"""Mini-batch training helpers used by ``poolkit train`` (and usable on their own)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .losses import SoftmaxCrossEntropy
from .optim import Optimizer

__all__ = ["cosine_lr", "evaluate", "minibatches", "train_epoch"]


def minibatches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Shuffled index batches covering ``range(n)`` once (the last one may be short).

    Examples
    --------
    >>> import numpy as np
    >>> [b.tolist() for b in minibatches(5, 2, np.random.default_rng(0))]
    [[2, 4], [3, 0], [1]]
    """
    perm = rng.permutation(n)
    for start in range(0, n, batch_size):
        yield perm[start : start + batch_size]


def cosine_lr(base_lr: float, step: int, total_steps: int) -> float:
    """Cosine decay from ``base_lr`` at step 0 towards 0 at ``total_steps``.

    Examples
    --------
    >>> [round(cosine_lr(1.0, s, 4), 3) for s in range(5)]
    [1.0, 0.854, 0.5, 0.146, 0.0]
    """
    fraction = min(step, total_steps) / max(total_steps, 1)
    return float(0.5 * base_lr * (1.0 + np.cos(np.pi * fraction)))


def evaluate(
    model: Any, x: np.ndarray, y: np.ndarray, batch_size: int = 512
) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` on ``(x, y)`` in evaluation mode.

    The model's training flag is restored afterwards.

    Parameters
    ----------
    model : layer with ``forward`` (e.g. :class:`Sequential`)
    x : (N, ...) inputs
    y : (N,) integer labels

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit.nn import Linear
    >>> fc = Linear(2, 2, rng=0)
    >>> fc.weight.data[:] = np.eye(2)
    >>> loss, acc = evaluate(fc, np.eye(2, dtype=np.float32), np.array([0, 1]))
    >>> acc
    1.0
    """
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    loss_fn = SoftmaxCrossEntropy()
    total_loss, correct = 0.0, 0
    for start in range(0, len(y), batch_size):
        logits = model.forward(x[start : start + batch_size])
        yb = y[start : start + batch_size]
        total_loss += loss_fn(logits, yb) * len(yb)
        correct += int((logits.argmax(axis=1) == yb).sum())
    if hasattr(model, "train"):
        model.train(was_training)
    return total_loss / len(y), correct / len(y)


def train_epoch(
    model: Any,
    optimizer: Optimizer,
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    rng: np.random.Generator,
    lr_at: Callable[[], float] | None = None,
    on_batch: Callable[[float, float], None] | None = None,
) -> tuple[float, float]:
    """One pass over ``(x, y)`` in shuffled mini-batches; returns mean loss and accuracy.

    ``lr_at()`` (if given) sets ``optimizer.lr`` before every step; ``on_batch(loss, acc)``
    is called after every step with the running means (for progress bars).

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit import nn
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2, rng=0))
    >>> x = np.eye(4, dtype=np.float32).reshape(4, 1, 2, 2); y = np.array([0, 0, 1, 1])
    >>> opt = nn.SGD(net.parameters(), lr=0.5)
    >>> first, _ = train_epoch(net, opt, x, y, 2, np.random.default_rng(0))
    >>> later = [train_epoch(net, opt, x, y, 2, np.random.default_rng(i))[0] for i in range(20)]
    >>> later[-1] < first
    True
    """
    model.train()
    loss_fn = SoftmaxCrossEntropy()
    seen, loss_sum, correct = 0, 0.0, 0
    for idx in minibatches(len(y), batch_size, rng):
        logits = model.forward(x[idx])
        loss = loss_fn(logits, y[idx])
        model.backward(loss_fn.backward())
        if lr_at is not None:
            optimizer.lr = lr_at()
        optimizer.step()
        seen += len(idx)
        loss_sum += loss * len(idx)
        correct += int((logits.argmax(axis=1) == y[idx]).sum())
        if on_batch is not None:
            on_batch(loss_sum / seen, correct / seen)
    return loss_sum / seen, correct / seen
