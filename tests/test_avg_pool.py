"""Average pooling: differential tests against PyTorch 2.13 CPU, the reference, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import poolkit as pk
from _family import (
    assert_same,
    channels_last,
    check_gradient,
    from_channels_last,
    raises_both,
    random_input,
    t,
)
from poolkit import _reference as ref

F = torch.nn.functional
N_CONFIGS = 72


def _config(rng, nd):
    kernel = tuple(int(k) for k in rng.integers(1, 5, nd))
    stride = tuple(int(s) for s in rng.integers(1, 4, nd))
    padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
    size = tuple(int(max(k, 1) + rng.integers(0, 9)) for k in kernel)
    return kernel, stride, padding, size


def _torch_avg(nd, x, kernel, stride, padding, ceil, cip, div):
    fn = getattr(F, f"avg_pool{nd}d")
    if nd == 1:
        return fn(x, kernel, stride, padding, ceil, cip)
    return fn(x, kernel, stride, padding, ceil, cip, div)


def test_random_configs_match_torch_values_and_gradients():
    """Seeded random configurations: values and layer gradients bit-identical to PyTorch."""
    rng = np.random.default_rng(20261121)
    compared = 0
    for i in range(N_CONFIGS):
        nd = 1 + i % 3
        dtype = [np.float32, np.float64, np.float16][(i // 3) % 3]
        if nd == 3 and dtype == np.float16:
            dtype = np.float32  # PyTorch has no CPU float16 avg_pool3d
        kernel, stride, padding, size = _config(rng, nd)
        ceil = bool(rng.integers(0, 2))
        cip = bool(rng.integers(0, 2))
        div = int(rng.integers(1, 7)) if nd > 1 and rng.integers(0, 4) == 0 else None
        batched = bool(rng.integers(0, 4))
        shape = ((2, 3) if batched else (3,)) + size
        x = random_input(rng, shape, dtype, ties=i % 4 == 0, nan=i % 7 == 0)
        # channels-last in float32 only: every layout x dtype pair is a separate numba compile
        layout_cl = batched and nd > 1 and dtype == np.float32 and i % 2 == 0
        layer = getattr(pk, f"AvgPool{nd}d")(
            kernel, stride, padding, ceil, cip, div, channels_last=layout_cl
        )
        tx = t(x, grad=True)
        try:
            expected = _torch_avg(nd, tx, kernel, stride, padding, ceil, cip, div)
        except RuntimeError:
            with pytest.raises(ValueError):
                layer(channels_last(x) if layout_cl else x)
            continue
        got = layer(channels_last(x) if layout_cl else x)
        got_cf = from_channels_last(got) if layout_cl else got
        assert_same(np.ascontiguousarray(got_cf), expected.detach().numpy())
        g = random_input(rng, expected.shape, dtype)
        expected.backward(t(g))
        dx = layer.backward(channels_last(g) if layout_cl else g)
        dx_cf = from_channels_last(dx) if layout_cl else dx
        assert_same(np.ascontiguousarray(dx_cf), tx.grad.numpy())
        compared += 1
    assert compared >= N_CONFIGS * 0.9


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int32, np.uint8])
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_matches_reference(nd, dtype):
    rng = np.random.default_rng(nd * 100 + np.dtype(dtype).num)
    kernel = (3, 2, 3)[:nd]
    stride = (2, 1, 2)[:nd]
    padding = (1, 1, 0)[:nd]
    x = random_input(rng, (2, 2) + (5, 4, 6)[:nd], dtype, ties=True)
    for ceil, cip, div in ((False, True, None), (True, False, None), (True, True, 5)):
        y = getattr(pk, f"avg_pool{nd}d")(x, kernel, stride, padding, ceil, cip, div)
        assert_same(y, ref.avg_pool(x, kernel, stride, padding, ceil, cip, div))
        if x.dtype.kind == "f":
            g = random_input(rng, y.shape, dtype)
            dx = getattr(pk, f"avg_pool{nd}d_backward")(
                g, x.shape, kernel, stride, padding, ceil, cip, div
            )
            expected = ref.avg_pool_backward(g, x.shape, kernel, stride, padding, ceil, cip, div)
            assert_same(dx, expected)


def test_integer_input_gives_float64_average():
    x = np.array([[[1, 2, 4, 7]]], dtype=np.int64)
    y = pk.avg_pool1d(x, 2)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, [[[1.5, 5.5]]])


def test_channels_last_and_strided_views_match_contiguous():
    rng = np.random.default_rng(5)
    x = random_input(rng, (2, 3, 9, 10), np.float32)
    base = pk.avg_pool2d(x, 3, 2, 1, ceil_mode=True)
    assert_same(pk.avg_pool2d(x[:, :, ::1, :], 3, 2, 1, ceil_mode=True), base)
    wide = np.zeros((2, 3, 9, 20), np.float32)
    wide[..., ::2] = x
    assert_same(pk.avg_pool2d(wide[..., ::2], 3, 2, 1, ceil_mode=True), base)
    cl = pk.avg_pool2d(channels_last(x), 3, 2, 1, ceil_mode=True, channels_last=True)
    assert_same(np.ascontiguousarray(from_channels_last(cl)), base)


def test_input_not_mutated_and_batch_zero():
    x = np.ones((0, 2, 4, 4), np.float32)
    assert pk.avg_pool2d(x, 2).shape == (0, 2, 2, 2)
    y = np.arange(16.0).reshape(1, 1, 4, 4)
    before = y.copy()
    pk.avg_pool2d(y, 3, 1, 1)
    assert_same(y, before)


def test_finite_difference_gradient():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 2, 7, 6))
    opts = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
    check_gradient(
        lambda a: pk.avg_pool2d(a, **opts),
        lambda g: pk.avg_pool2d_backward(g, x.shape, **opts),
        x,
        rng,
    )


def test_rejections_match_torch():
    x = np.zeros((1, 2, 6, 6), np.float32)
    tx = t(x)
    cases = [
        dict(kernel_size=2, padding=2),  # padding > kernel/2
        dict(kernel_size=0),
        dict(kernel_size=2, stride=0),
        dict(kernel_size=7),  # output size < 1
        dict(kernel_size=2, divisor_override=0),
        dict(kernel_size=(2, 2, 2)),
    ]
    for kw in cases:
        raises_both(lambda kw=kw: pk.avg_pool2d(x, **kw), lambda kw=kw: F.avg_pool2d(tx, **kw))
    raises_both(lambda: pk.avg_pool2d(x[0, 0], 2), lambda: F.avg_pool2d(tx[0, 0], 2))
    raises_both(
        lambda: pk.avg_pool2d(np.zeros((1, 0, 4, 4)), 2),
        lambda: F.avg_pool2d(torch.zeros(1, 0, 4, 4), 2),
    )


def test_error_messages_name_the_argument():
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(ValueError, match="padding"):
        pk.avg_pool2d(x, 2, padding=2)
    with pytest.raises(TypeError, match="ceil_mode"):
        pk.avg_pool2d(x, 2, ceil_mode=1)
    with pytest.raises(TypeError, match="divisor_override"):
        pk.avg_pool2d(x, 2, divisor_override=2.5)
    with pytest.raises(ValueError, match="divisor_override"):
        pk.avg_pool2d(x, 2, divisor_override=0)
    with pytest.raises(TypeError, match="dtypes"):
        pk.avg_pool2d(x.astype(bool), 2)
    with pytest.raises(ValueError, match="grad_output"):
        pk.avg_pool2d_backward(np.zeros((1, 1, 3, 3)), x.shape, 2)
    with pytest.raises(TypeError, match="input_shape"):
        pk.avg_pool2d_backward(np.zeros((1, 1, 2, 2)), 16, 2)
    with pytest.raises(RuntimeError, match="before forward"):
        pk.AvgPool2d(2).backward(np.zeros((1, 1, 2, 2)))


def test_layer_repr_and_call():
    layer = pk.AvgPool2d(3, stride=2, padding=1, count_include_pad=False, divisor_override=4)
    assert repr(layer) == (
        "AvgPool2d(kernel_size=3, stride=2, padding=1, ceil_mode=False, "
        "count_include_pad=False, divisor_override=4)"
    )
    x = np.ones((1, 1, 4, 4))
    assert_same(layer(x), layer.forward(x))


@settings(max_examples=30, deadline=None)
@given(
    size=st.integers(1, 9),
    kernel=st.integers(1, 4),
    stride=st.integers(1, 3),
    data=st.data(),
)
def test_property_constant_input_averages_to_itself(size, kernel, stride, data):
    """Without padding in the divisor, the average of a constant is that constant."""
    if kernel > size:
        return
    pad = data.draw(st.integers(0, kernel // 2))
    ceil = data.draw(st.booleans())
    x = np.full((1, 2, size), 1.25)
    y = pk.avg_pool1d(x, kernel, stride, pad, ceil, count_include_pad=False)
    np.testing.assert_array_equal(y, np.full_like(y, 1.25))
    assert y.shape[-1] == ref.window_count(size, kernel, stride, pad, pad, 1, ceil)


# ------------------------------------------------------------------------------------
# stride-2 rows read straight from the input (float32, C-contiguous, windows of at most
# 3 rows); float16, float64, channels-last, strided views and deeper windows keep the
# phase buffer. Every path is compared bit for bit with the reference and PyTorch.
# ------------------------------------------------------------------------------------


def _special_input(rng, shape, dtype) -> np.ndarray:
    """Normal values with -0.0, NaN, +-inf and huge values (float32 sums overflow)."""
    x = rng.standard_normal(shape).astype(dtype)
    u = rng.random(shape)
    x[u < 0.06] = -0.0
    x[(u >= 0.06) & (u < 0.07)] = np.nan
    x[(u >= 0.07) & (u < 0.075)] = np.inf
    x[(u >= 0.075) & (u < 0.08)] = -np.inf
    x[(u >= 0.08) & (u < 0.12)] = np.finfo(dtype).max / 2
    return x


def _ref(x, *args):
    """The reference, quiet about the overflows the huge values are there to cause."""
    with np.errstate(over="ignore", invalid="ignore"):
        return ref.avg_pool(x, *args)


def _layouts(x: np.ndarray):
    """(name, array, channels_last flag, to-channels-first) for the layouts of ``x``."""
    wide = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)
    wide[..., ::2] = x
    yield "contiguous", x, False, lambda y: y
    yield "strided", wide[..., ::2], False, lambda y: y
    if x.ndim >= 3:
        yield "channels_last", channels_last(x), True, from_channels_last


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("kw", [1, 2, 3, 4, 5])
def test_stride2_rows_match_reference_in_every_layout(dtype, kw):
    """Odd and even widths, padding on both sides, ceil_mode, both divisor rules and an
    override, 1 to 3 window rows (top/bottom rows clipped by padding) and widths with
    no interior output at all."""
    rng = np.random.default_rng(400 + kw + 10 * np.dtype(dtype).itemsize)
    kh = 1 + kw % 3
    for width in (kw, kw + 1, 2 * kw + 3, 37, 40):
        x = _special_input(rng, (2, 3, 5, width), dtype)
        for pw in range(kw // 2 + 1):
            ph = min(pw, kh // 2)
            for ceil, cip, div in ((False, True, None), (True, False, None), (True, True, 3)):
                args = ((kh, kw), (2, 2), (ph, pw), ceil, cip, div)
                expected = _ref(x, *args)
                for name, arr, cl, back in _layouts(x):
                    got = pk.avg_pool2d(arr, *args, channels_last=cl)
                    assert_same(np.ascontiguousarray(back(got)), expected), (name, width, pw)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stride2_rows_1d_and_3d_match_reference(dtype):
    """1-D rows, and 3-D windows of 3, 9 and 4 window rows (the vector row kernels take
    every depth; strided inputs take the phase buffer)."""
    rng = np.random.default_rng(41 + np.dtype(dtype).itemsize)
    x1 = _special_input(rng, (2, 3, 35), dtype)
    for k, p in ((2, 1), (3, 0), (3, 1), (4, 2)):
        for ceil in (False, True):
            expected = _ref(x1, (k,), (2,), (p,), ceil, False)
            assert_same(pk.avg_pool1d(x1, k, 2, p, ceil, False), expected)
    x3 = _special_input(rng, (2, 2, 4, 5, 17), dtype)
    for kernel, stride, padding in (
        ((1, 3, 3), (1, 2, 2), (0, 1, 1)),  # 3 rows
        ((3, 1, 3), (2, 1, 2), (1, 0, 1)),  # 3 depth rows
        ((3, 3, 3), (2, 2, 2), (1, 1, 1)),  # 9 rows
        ((2, 2, 2), (2, 2, 2), (0, 0, 0)),  # 4 rows
    ):
        for ceil, cip, div in ((False, True, None), (True, False, None), (True, True, 7)):
            args = (kernel, stride, padding, ceil, cip, div)
            assert_same(pk.avg_pool3d(x3, *args), _ref(x3, *args))
            assert_same(pk.avg_pool3d(x3[..., ::-1], *args), _ref(x3[..., ::-1], *args))


def test_stride2_rows_match_torch_seeded():
    """Random stride-2 configurations with special values against PyTorch, bit for bit."""
    rng = np.random.default_rng(20261122)
    compared = 0
    for i in range(60):
        nd = 1 + i % 3
        dtype = (np.float32, np.float64)[(i // 3) % 2]
        kernel = tuple(int(k) for k in rng.integers(1, 6, nd))
        stride = tuple(int(s) for s in rng.integers(1, 4, nd - 1)) + (2,)
        padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
        size = tuple(int(k + rng.integers(0, 6)) for k in kernel[:-1]) + (
            int(kernel[-1] + rng.integers(0, 50)),
        )
        ceil, cip = bool(rng.integers(0, 2)), bool(rng.integers(0, 2))
        div = int(rng.integers(1, 10)) if nd > 1 and rng.integers(0, 3) == 0 else None
        x = _special_input(rng, (2, 3) + size, dtype)
        args = (kernel, stride, padding, ceil, cip) + ((div,) if nd > 1 else ())
        try:
            expected = getattr(F, f"avg_pool{nd}d")(t(x), *args)
        except RuntimeError:
            continue
        assert_same(getattr(pk, f"avg_pool{nd}d")(x, *args), expected.numpy())
        compared += 1
    assert compared >= 50


def test_stride2_rows_same_bits_for_any_thread_count():
    """Many (n, c) planes split over threads or not: identical output."""
    rng = np.random.default_rng(8)
    x = _special_input(rng, (3, 70, 21, 45), np.float32)
    before = pk.get_num_threads()
    try:
        results = []
        for n in sorted({1, pk._threads._limit()}):
            pk.set_num_threads(n)
            results.append(pk.avg_pool2d(x, 3, 2, 1, ceil_mode=True))
    finally:
        pk.set_num_threads(before)
    for y in results[1:]:
        assert_same(y, results[0])
    assert_same(results[0], F.avg_pool2d(t(x), 3, 2, 1, ceil_mode=True).numpy())


@settings(max_examples=80, deadline=None)
@given(
    width=st.integers(1, 70),
    kw=st.integers(1, 5),
    rows=st.integers(1, 3),
    ceil=st.booleans(),
    cip=st.booleans(),
    dtype=st.sampled_from([np.float32, np.float64]),
    data=st.data(),
)
def test_property_stride2_widths_around_the_vector_loops(width, kw, rows, ceil, cip, dtype, data):
    """Widths 1..70 put 0 to 35 interior outputs on each side of the 16-lane vector loop
    and its minimum trip count; every padding and window height."""
    pw = data.draw(st.integers(0, kw // 2))
    ph = data.draw(st.integers(0, rows // 2))
    height = data.draw(st.integers(max(1, rows - 2 * ph), 6))
    if width + 2 * pw < kw:  # no output column: rejected, tested elsewhere
        return
    seed = data.draw(st.integers(0, 2**32 - 1))
    x = _special_input(np.random.default_rng(seed), (1, 2, height, width), dtype)
    args = ((rows, kw), (data.draw(st.integers(1, 3)), 2), (ph, pw), ceil, cip)
    assert_same(pk.avg_pool2d(x, *args), _ref(x, *args))
