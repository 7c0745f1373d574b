"""Ready-made networks."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _args
from ..layers import MaxPool2d
from ._module import Sequential, as_generator
from .layers import Conv2d, Flatten, Linear, ReLU

__all__ = ["lenet"]


def lenet(
    in_channels: int = 1,
    image_size: int | tuple[int, int] = 8,
    num_classes: int = 10,
    channels: tuple[int, int] = (16, 32),
    rng: np.random.Generator | int | None = None,
    dtype: Any = np.float32,
) -> Sequential:
    """A LeNet-style convnet whose pooling layers are :class:`poolkit.MaxPool2d`.

    ``conv3x3(pad 1) -> ReLU -> MaxPool2d(2) -> conv3x3(pad 1) -> ReLU -> MaxPool2d(2)
    -> Flatten -> Linear``. Input ``(N, in_channels, H, W)``, output logits
    ``(N, num_classes)``.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit.nn import lenet
    >>> net = lenet(image_size=8, rng=0)
    >>> net(np.zeros((3, 1, 8, 8), np.float32)).shape
    (3, 10)
    """
    h, w = _args.int_tuple(image_size, 2, "image_size", minimum=4)
    c1, c2 = _args.int_tuple(channels, 2, "channels", minimum=1)
    gen = as_generator(rng)
    fh, fw = h // 2 // 2, w // 2 // 2
    return Sequential(
        Conv2d(in_channels, c1, 3, padding=1, rng=gen, dtype=dtype),
        ReLU(),
        MaxPool2d(2),
        Conv2d(c1, c2, 3, padding=1, rng=gen, dtype=dtype),
        ReLU(),
        MaxPool2d(2),
        Flatten(),
        Linear(c2 * fh * fw, num_classes, rng=gen, dtype=dtype),
    )
