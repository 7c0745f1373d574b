"""poolkit: exact, fast pooling layers for NumPy.

Max pooling forward and backward for 1-D, 2-D, 3-D (and any rank), bit-compatible with
PyTorch, as functions (:mod:`poolkit.functional`) and layers (:mod:`poolkit.layers`).
"""

from ._threads import get_num_threads, set_num_threads
from .functional import (
    max_pool,
    max_pool1d,
    max_pool1d_backward,
    max_pool2d,
    max_pool2d_backward,
    max_pool3d,
    max_pool3d_backward,
    max_pool_backward,
)
from .layers import MaxPool1d, MaxPool2d, MaxPool3d

__version__ = "0.1.0"

__all__ = [
    "MaxPool1d",
    "MaxPool2d",
    "MaxPool3d",
    "__version__",
    "get_num_threads",
    "max_pool",
    "max_pool1d",
    "max_pool1d_backward",
    "max_pool2d",
    "max_pool2d_backward",
    "max_pool3d",
    "max_pool3d_backward",
    "max_pool_backward",
    "set_num_threads",
]
