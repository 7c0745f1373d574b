"""The window engine of ``_kernels/max_pool.py`` against the loop reference, called directly.

The plans send it only what the vector kernels do not take (a W stride above 2, planes
of 2**31 elements or more), so here its two range kernels get every stride, strided
views, 3-D windows with padding, dilation and ceil_mode, and the dtypes of every scan
(floats with NaN, +-0.0 and +-inf, float16 bits, signed and unsigned integers).
"""

from __future__ import annotations

import numpy as np
import pytest

from poolkit import _engine
from poolkit import _reference as ref
from poolkit._kernels import max_pool as kernels


def _input(rng, shape, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        pool = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 2.0])
    else:
        info = np.iinfo(dtype)
        pool = np.array([info.min, info.max, 0, 1, 2, info.max - 1])
    return rng.choice(pool, size=shape).astype(dtype)


@pytest.mark.parametrize("dtype", ["float32", "float16", "int32", "uint8"])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("seed", range(8))
def test_window_engine_matches_reference(seed, channels_last, dtype):
    rng = np.random.default_rng(seed)
    kernel = tuple(int(k) for k in rng.integers(1, 4, 3))
    stride = tuple(int(s) for s in rng.integers(1, 5, 3))
    dilation = tuple(int(d) for d in rng.integers(1, 3, 3))
    padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
    ceil_mode = bool(seed % 2)
    spatial = tuple(dilation[j] * (kernel[j] - 1) + 1 + int(rng.integers(0, 4 if j < 2 else 25))
                    for j in range(3))
    x = _input(rng, (2, 3) + spatial, dtype)
    if seed % 3 == 0:
        x = np.flip(x, -1)  # a strided view
    if channels_last:
        x = np.moveaxis(x, 1, -1)
    y_ref, i_ref = ref.max_pool(x, kernel, stride, padding, dilation, ceil_mode, channels_last)
    x5 = _engine.comparable(x)
    kp = _engine.kernel_table(kernel, stride, padding, dilation)
    fill = _engine.lowest(x5.dtype)
    for want in (True, False):
        out = np.full(y_ref.shape, 7, x5.dtype)
        idx = np.full(y_ref.shape, 7, np.int64)
        if channels_last:
            n_tasks = out.shape[0] * out.shape[1] * out.shape[2]
            kernels.forward_nhwc_range(x5, out, idx, kp, fill, want, 0, n_tasks)
        else:
            n_tasks = out.shape[0] * out.shape[1] * out.shape[2] * out.shape[3]
            kernels.forward_nchw_range(x5, out, idx, kp, fill, want, 0, n_tasks)
        y = _engine.restore(out, x.dtype)
        np.testing.assert_array_equal(y.view(np.uint8), np.ascontiguousarray(y_ref).view(np.uint8))
        if want:
            np.testing.assert_array_equal(idx, i_ref)
        else:
            assert (idx == 7).all()
