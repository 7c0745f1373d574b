"""Property tests: the compiled max pooling equals the slow loop reference.

hypothesis draws shapes, window options, layouts, dtypes and values full of ties, NaN
and +-inf; production and reference must agree bit for bit (values, indices, gradients).
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import poolkit as pk
from _torch_oracle import assert_bits_equal
from poolkit import _reference as ref
from poolkit._geometry import pooled_size

DTYPES = ["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8"]
FLOAT_SPECIALS = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0]


@st.composite
def pool_case(draw, max_nd: int = 3):
    nd = draw(st.integers(1, max_nd))
    kernel = tuple(draw(st.lists(st.integers(1, 3), min_size=nd, max_size=nd)))
    stride = tuple(draw(st.lists(st.integers(1, 3), min_size=nd, max_size=nd)))
    dilation = tuple(draw(st.lists(st.integers(1, 2), min_size=nd, max_size=nd)))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    ceil_mode = draw(st.booleans())
    size_cap = {1: 9, 2: 6, 3: 4, 4: 3}[nd]
    spatial = []
    for j in range(nd):
        need = dilation[j] * (kernel[j] - 1) + 1 - 2 * padding[j]
        spatial.append(draw(st.integers(max(1, need), max(1, need) + size_cap)))
    spatial = tuple(spatial)
    outs = [
        pooled_size(
            spatial[j], kernel[j], stride[j], padding[j], padding[j], dilation[j], ceil_mode
        )
        for j in range(nd)
    ]
    if min(outs) < 1:
        ceil_mode = False
    batched = draw(st.booleans())
    channels = draw(st.integers(1, 3))
    lead = (draw(st.integers(1, 2)),) if batched else ()
    channels_last = draw(st.booleans())
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape_cf = lead + (channels,) + spatial
    n = int(np.prod(shape_cf))
    if dtype.kind == "f":
        pool = st.one_of(st.sampled_from(FLOAT_SPECIALS), st.integers(-3, 3).map(float))
        flat = np.array(draw(st.lists(pool, min_size=n, max_size=n)), dtype=dtype)
    else:
        info = np.iinfo(dtype)
        pool = st.one_of(st.sampled_from([int(info.min), int(info.max)]), st.integers(-2, 2))
        flat = np.array([v for v in draw(st.lists(pool, min_size=n, max_size=n))])
        flat = np.clip(flat, info.min, info.max).astype(dtype)
    x_cf = flat.reshape(shape_cf)
    x = np.moveaxis(x_cf, -nd - 1, -1) if channels_last else x_cf
    if draw(st.booleans()):  # a non-contiguous view with the same values
        x = np.flip(x, axis=-1).copy()
        x = np.flip(x, axis=-1)
    return dict(
        x=x,
        nd=nd,
        kernel=kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        ceil_mode=ceil_mode,
        channels_last=channels_last,
    )


def _pk(case):
    return pk.max_pool(
        case["x"],
        case["kernel"],
        case["stride"],
        case["padding"],
        case["dilation"],
        case["ceil_mode"],
        return_indices=True,
        channels_last=case["channels_last"],
    )


def _ref(case):
    return ref.max_pool(
        case["x"],
        case["kernel"],
        case["stride"],
        case["padding"],
        case["dilation"],
        case["ceil_mode"],
        case["channels_last"],
    )


@settings(max_examples=250, deadline=None)
@given(pool_case())
def test_forward_matches_reference(case):
    try:
        y, idx = _pk(case)
    except ValueError:
        # the only legal refusal: an empty output (reference produces a 0-sized axis)
        assert 0 in _ref(case)[0].shape
        return
    y_ref, idx_ref = _ref(case)
    assert_bits_equal(y, y_ref, "values")
    np.testing.assert_array_equal(idx, idx_ref)


@settings(max_examples=150, deadline=None)
@given(pool_case(max_nd=4))
def test_backward_matches_reference(case):
    if case["x"].dtype.kind != "f":
        return
    try:
        y, idx = _pk(case)
    except ValueError:
        return
    rng = np.random.default_rng(0)
    g = rng.standard_normal(y.shape).astype(y.dtype)
    dx = pk.max_pool_backward(
        g, idx, case["x"].shape, channels_last=case["channels_last"], spatial_dims=case["nd"]
    )
    dx_ref = ref.max_pool_backward(g, idx, case["x"].shape, case["nd"], case["channels_last"])
    assert_bits_equal(dx, dx_ref, "gradient")


@settings(max_examples=60, deadline=None)
@given(pool_case(max_nd=4))
def test_any_rank_matches_reference(case):
    """The general max_pool (rank > 3 uses the any-rank kernel) equals the reference."""
    try:
        y, idx = _pk(case)
    except ValueError:
        return
    y_ref, idx_ref = _ref(case)
    assert_bits_equal(y, y_ref, "values")
    np.testing.assert_array_equal(idx, idx_ref)


@settings(max_examples=60, deadline=None)
@given(pool_case())
def test_indices_point_at_the_value_and_never_into_padding(case):
    try:
        y, idx = _pk(case)
    except ValueError:
        return
    nd, x = case["nd"], case["x"]
    x_cf = np.moveaxis(x, -1, -nd - 1) if case["channels_last"] else x
    y_cf = np.moveaxis(y, -1, -nd - 1) if case["channels_last"] else y
    i_cf = np.moveaxis(idx, -1, -nd - 1) if case["channels_last"] else idx
    planes = x_cf.reshape((-1, int(np.prod(x_cf.shape[-nd:]))))
    flat_idx = i_cf.reshape(planes.shape[0], -1)
    flat_y = y_cf.reshape(planes.shape[0], -1)
    valid = flat_idx >= 0
    assert (flat_idx < planes.shape[1]).all()
    gathered = np.take_along_axis(planes, np.where(valid, flat_idx, 0), axis=1)
    assert_bits_equal(np.where(valid, gathered, flat_y), flat_y, "value at index")


def test_finite_difference_gradients():
    """Central differences on tie-free inputs agree with the analytic backward."""
    rng = np.random.default_rng(3)
    for nd, kw in [
        (1, dict(kernel_size=3, stride=2, padding=1)),
        (2, dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2))),
        (2, dict(kernel_size=3, stride=1, padding=1, ceil_mode=True)),  # overlapping
        (3, dict(kernel_size=2, stride=1)),
    ]:
        shape = (2, 2) + (6,) * nd
        x = rng.permutation(np.prod(shape)).reshape(shape).astype(np.float64) * 0.1
        fn = getattr(pk, f"max_pool{nd}d")
        y, idx = fn(x, return_indices=True, **kw)
        g = rng.standard_normal(y.shape)
        dx = getattr(pk, f"max_pool{nd}d_backward")(g, idx, x.shape)
        eps = 1e-4  # far below the 0.1 gap between values: no winner changes
        num = np.empty_like(x)
        for i in np.ndindex(x.shape):
            xp, xm = x.copy(), x.copy()
            xp[i] += eps
            xm[i] -= eps
            num[i] = ((fn(xp, **kw) * g).sum() - (fn(xm, **kw) * g).sum()) / (2 * eps)
        np.testing.assert_allclose(dx, num, rtol=1e-6, atol=1e-8)


def test_overlapping_windows_accumulate():
    x = np.array([[[0.0, 5.0, 1.0, 2.0]]])
    y, idx = pk.max_pool1d(x, 3, stride=1, padding=1, return_indices=True)
    np.testing.assert_array_equal(y, [[[5.0, 5.0, 5.0, 2.0]]])
    dx = pk.max_pool1d_backward(np.array([[[1.0, 10.0, 100.0, 1000.0]]]), idx, x.shape)
    np.testing.assert_array_equal(dx, [[[0.0, 111.0, 0.0, 1000.0]]])


def test_semantics_examples():
    # last NaN wins, first max wins ties, -0.0 vs 0.0 tie keeps the first
    y, i = pk.max_pool1d(np.array([[1.0, np.nan, 3.0, np.nan]]), 4, return_indices=True)
    assert np.isnan(y[0, 0]) and i[0, 0] == 3
    y, i = pk.max_pool1d(np.array([[2.0, 7.0, 7.0, 1.0]]), 4, return_indices=True)
    assert y[0, 0] == 7 and i[0, 0] == 1
    y, i = pk.max_pool1d(np.array([[-0.0, 0.0]]), 2, return_indices=True)
    assert np.signbit(y[0, 0]) and i[0, 0] == 0
    # padding never wins, even against the dtype minimum / -inf
    y, i = pk.max_pool1d(np.array([[-128, -128]], dtype=np.int8), 2, 1, 1, return_indices=True)
    np.testing.assert_array_equal(y, [[-128, -128, -128]])
    np.testing.assert_array_equal(i, [[0, 0, 1]])
    y, i = pk.max_pool1d(np.array([[-np.inf, -np.inf]]), 2, 1, 1, return_indices=True)
    np.testing.assert_array_equal(i, [[0, 0, 1]])
    # a window with no input element (dilation over padding): -inf and index -1
    y, i = pk.max_pool1d(np.array([[4.0]]), 2, 1, 1, 2, return_indices=True)
    assert y[0, 0] == -np.inf and i[0, 0] == -1
    dx = pk.max_pool1d_backward(np.ones_like(y), i, (1, 1))
    np.testing.assert_array_equal(dx, [[0.0]])


def test_dtypes_preserved_and_input_untouched():
    rng = np.random.default_rng(1)
    for dt in DTYPES:
        x = (rng.standard_normal((2, 3, 5, 5)) * 10).astype(dt)
        before = x.copy()
        y = pk.max_pool2d(x, 2)
        assert y.dtype == x.dtype
        np.testing.assert_array_equal(x, before)
        if np.dtype(dt).kind == "f":
            dx = pk.max_pool2d_backward(
                np.ones_like(y), pk.max_pool2d(x, 2, return_indices=True)[1], x.shape
            )
            assert dx.dtype == x.dtype


def test_array_likes_and_unbatched():
    nested = [[[1, 2, 3, 4], [5, 6, 7, 8]]]  # (C=1, H=2, W=4) unbatched
    y = pk.max_pool2d(nested, 2)
    np.testing.assert_array_equal(y, [[[6, 8]]])
    assert y.dtype == np.asarray(nested).dtype
    y = pk.max_pool1d(((1.0, 3.0, 2.0, 0.5),), 2)  # tuple of tuples, unbatched (C, L)
    np.testing.assert_array_equal(y, [[3.0, 2.0]])


def test_channels_last_equals_channels_first():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 9, 8)).astype(np.float32)
    y_cf, i_cf = pk.max_pool2d(x, 3, 2, 1, return_indices=True)
    y_cl, i_cl = pk.max_pool2d(
        np.moveaxis(x, 1, -1), 3, 2, 1, return_indices=True, channels_last=True
    )
    np.testing.assert_array_equal(np.moveaxis(y_cl, -1, 1), y_cf)
    np.testing.assert_array_equal(np.moveaxis(i_cl, -1, 1), i_cf)
