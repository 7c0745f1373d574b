"""A small NumPy convnet toolkit around poolkit's pooling layers.

Layers have ``forward(x)`` and ``backward(grad_output)``; parameters (:class:`Parameter`,
``.data`` and ``.grad``) are visible to the optimisers; models save to and load from
``.npz``. Randomness comes only from ``numpy.random.Generator`` objects you pass in.

Examples
--------
>>> import numpy as np
>>> from poolkit import nn
>>> net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, rng=0), nn.ReLU(), nn.MaxPool2d(2),
...                     nn.Flatten(), nn.Linear(4 * 4 * 4, 10, rng=1))
>>> loss_fn, opt = nn.SoftmaxCrossEntropy(), nn.Adam(net.parameters(), lr=1e-2)
>>> x, y = np.zeros((2, 1, 8, 8), np.float32), np.array([3, 7])
>>> loss = loss_fn(net(x), y)
>>> _ = net.backward(loss_fn.backward()); opt.step()
"""

from ..layers import MaxPool2d
from . import training
from ._module import Module, Parameter, Sequential, as_generator
from .layers import Conv2d, Dropout, Flatten, Linear, ReLU
from .losses import SoftmaxCrossEntropy, log_softmax
from .models import lenet
from .optim import SGD, Adam, Optimizer
from .training import cosine_lr, evaluate, train_epoch

__all__ = [
    "SGD",
    "Adam",
    "Conv2d",
    "Dropout",
    "Flatten",
    "Linear",
    "MaxPool2d",
    "Module",
    "Optimizer",
    "Parameter",
    "ReLU",
    "Sequential",
    "SoftmaxCrossEntropy",
    "as_generator",
    "cosine_lr",
    "evaluate",
    "lenet",
    "log_softmax",
    "train_epoch",
    "training",
]
