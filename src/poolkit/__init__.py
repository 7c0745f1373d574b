"""poolkit: exact, fast pooling layers for NumPy.

The whole pooling family (max, average, Lp, adaptive, global and fractional max pooling,
max unpooling) for 1-D, 2-D, 3-D (max pooling: any rank), forward and backward,
bit-compatible with PyTorch's CPU kernels and the ONNX operators, on compiled numba
kernels: as functions (:mod:`poolkit.functional`) and layers (:mod:`poolkit.layers`).
Semantics: docs/semantics.md; the code's map: docs/architecture.md.
"""

from . import functional, layers
from ._threads import get_num_threads as get_num_threads
from ._threads import set_num_threads as set_num_threads
from .functional import *  # noqa: F403
from .layers import *  # noqa: F403

__version__ = "0.1.0"

__all__ = sorted(
    [n for n in functional.__all__ if n not in ("IntOrTuple", "Padding")]
    + layers.__all__
    + ["__version__", "get_num_threads", "set_num_threads"]
)
