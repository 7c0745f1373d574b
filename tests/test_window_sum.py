"""The separable window sums behind dilated average pooling and poolkit.onnx."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from poolkit._geometry import Geometry
from poolkit._window_sum import window_counts, window_sums, window_sums_transpose


@st.composite
def geometries(draw):
    nd = draw(st.integers(1, 3))
    dims = []
    for _ in range(nd):
        k, s, d = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
        length = draw(st.integers(1, 6))
        pb, pe = draw(st.integers(0, 3)), draw(st.integers(0, 3))
        extra = draw(st.integers(0, 2))  # windows past the padded end (ONNX ceil before 22)
        n = max(1, (length + pb + pe - d * (k - 1) - 1) // s + 1 + extra)
        dims.append((length, k, s, pb, pe, d, n))
    cols = list(zip(*dims))
    return Geometry(*(tuple(c) for c in cols))


def brute_sums(x, geom):
    out = np.zeros(x.shape[:2] + geom.out_size)
    counts = np.zeros(geom.out_size, dtype=np.int64), np.zeros(geom.out_size, dtype=np.int64)
    for o in itertools.product(*(range(n) for n in geom.out_size)):
        taps = [[o[j] * geom.stride[j] - geom.pad_begin[j] + t * geom.dilation[j]
                 for t in range(geom.kernel[j])] for j in range(len(o))]
        inside = [[q for q in tj if 0 <= q < geom.in_size[j]] for j, tj in enumerate(taps)]
        padded = [[q for q in tj if -geom.pad_begin[j] <= q < geom.in_size[j] + geom.pad_end[j]]
                  for j, tj in enumerate(taps)]
        for pos in itertools.product(*inside):
            out[(slice(None), slice(None), *o)] += x[(slice(None), slice(None), *pos)]
        counts[0][o] = np.prod([len(v) for v in inside])
        counts[1][o] = np.prod([len(v) for v in padded])
    return out, counts


@settings(max_examples=80, deadline=None)
@given(geom=geometries(), seed=st.integers(0, 2**16))
def test_window_sums_counts_and_adjoint(geom, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 3, *geom.in_size))
    want, (inside, padded) = brute_sums(x, geom)
    np.testing.assert_allclose(window_sums(x, geom), want, atol=1e-12)
    np.testing.assert_array_equal(window_counts(geom, False)[0, 0], inside)
    np.testing.assert_array_equal(window_counts(geom, True)[0, 0], padded)
    g = rng.standard_normal((2, 3, *geom.out_size))
    back = window_sums_transpose(g, geom)
    assert back.shape == x.shape
    np.testing.assert_allclose(np.vdot(window_sums(x, geom), g), np.vdot(x, back), rtol=1e-10)
