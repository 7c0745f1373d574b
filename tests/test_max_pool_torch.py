"""Differential tests: poolkit max pooling vs torch.nn.functional.max_pool{1,2,3}d.

Several hundred seeded random configurations per run cover sizes, kernel, stride,
padding, dilation, ceil_mode, batched/unbatched, channels_last, non-contiguous views,
dtypes, ties, NaN and +-inf. Values, indices and gradients must be bit-identical, and
every configuration PyTorch rejects must be rejected by poolkit too.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import poolkit as pk
from _torch_oracle import (
    assert_bits_equal,
    from_channels_first,
    to_channels_first,
    torch_max_pool,
)

FUNCS = {1: pk.max_pool1d, 2: pk.max_pool2d, 3: pk.max_pool3d}
BACKWARDS = {1: pk.max_pool1d_backward, 2: pk.max_pool2d_backward, 3: pk.max_pool3d_backward}
DTYPES = [np.float32, np.float64, np.float16, np.int8, np.int16, np.int32, np.int64, np.uint8]
CONFIGS_PER_DIM = 220
SEED = 20261121


def _values(rng: np.random.Generator, shape: tuple[int, ...], dtype) -> np.ndarray:
    """Random values with a chosen flavour: plain, many ties, or NaN/inf sprinkled in."""
    flavour = rng.choice(["plain", "ties", "special"], p=[0.4, 0.35, 0.25])
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if flavour == "ties":
            return rng.integers(max(info.min, -2), 3, size=shape).astype(dtype)
        # extremes included: the dtype minimum must still win against padding
        return rng.integers(info.min, int(info.max) + 1, size=shape, dtype=dtype)
    if flavour == "ties":
        x = rng.integers(-2, 3, size=shape).astype(dtype)
        # signed zeros: -0.0 and 0.0 tie, the first one must win
        x[rng.random(shape) < 0.2] = -0.0
        return x
    x = rng.standard_normal(shape).astype(dtype)
    if flavour == "special":
        r = rng.random(shape)
        x[r < 0.15] = np.nan
        x[(r >= 0.15) & (r < 0.3)] = np.inf
        x[(r >= 0.3) & (r < 0.5)] = -np.inf
    return x


def _random_config(rng: np.random.Generator, nd: int) -> dict:
    max_size = {1: 12, 2: 9, 3: 6}[nd]
    kernel = tuple(int(k) for k in rng.integers(1, 5, size=nd))
    stride = None if rng.random() < 0.25 else tuple(int(s) for s in rng.integers(1, 4, size=nd))
    dilation = tuple(int(d) for d in rng.integers(1, 4, size=nd)) if rng.random() < 0.4 else 1
    padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
    if rng.random() < 0.08:  # beyond PyTorch's limit: both must reject
        padding = tuple(k // 2 + 1 for k in kernel)
    spatial = tuple(int(s) for s in rng.integers(1, max_size + 1, size=nd))
    batched = rng.random() < 0.75
    lead = (
        ((int(rng.integers(0, 3)) if rng.random() < 0.1 else int(rng.integers(1, 3))),)
        if batched
        else ()
    )
    shape_cf = lead + (int(rng.integers(1, 4)),) + spatial
    return dict(
        kernel_size=kernel if rng.random() < 0.7 else kernel[0],
        stride=stride,
        padding=padding,
        dilation=dilation,
        ceil_mode=bool(rng.random() < 0.5),
        channels_last=bool(rng.random() < 0.3),
        non_contiguous=bool(rng.random() < 0.3),
        dtype=DTYPES[int(rng.integers(len(DTYPES)))],
        shape_cf=shape_cf,
    )


def _make_input(rng, cfg, nd):
    """Build the poolkit input (maybe channels-last, maybe a strided view)."""
    shape_cf = cfg["shape_cf"]
    if cfg["non_contiguous"]:
        big = _values(rng, shape_cf[:-1] + (shape_cf[-1] * 2,), cfg["dtype"])
        x_cf = big[..., ::2]
    else:
        x_cf = _values(rng, shape_cf, cfg["dtype"])
    x = from_channels_first(x_cf, nd, cfg["channels_last"])
    return x, x_cf


def _run_one(rng: np.random.Generator, nd: int) -> str:
    cfg = _random_config(rng, nd)
    x, x_cf = _make_input(rng, cfg, nd)
    x_before = x.copy()
    kw = dict(
        kernel_size=cfg["kernel_size"],
        stride=cfg["stride"],
        padding=cfg["padding"],
        dilation=cfg["dilation"],
        ceil_mode=cfg["ceil_mode"],
    )
    torch_kw = dict(kw, stride=cfg["stride"] if cfg["stride"] is not None else None)
    if torch_kw["stride"] is None:
        del torch_kw["stride"]
    torch_error = None
    try:
        ref = torch_max_pool(x_cf, nd, None, **torch_kw)
    except RuntimeError as exc:
        torch_error = exc
    if torch_error is not None:
        with pytest.raises(ValueError):
            FUNCS[nd](x, return_indices=True, channels_last=cfg["channels_last"], **kw)
        return "rejected"

    y, idx = FUNCS[nd](x, return_indices=True, channels_last=cfg["channels_last"], **kw)
    np.testing.assert_array_equal(x, x_before)  # input never mutated
    y_ref = from_channels_first(ref[0], nd, cfg["channels_last"])
    idx_ref = from_channels_first(ref[1], nd, cfg["channels_last"])
    assert_bits_equal(y, y_ref, f"values {cfg}")
    empty_window = idx == -1
    # PyTorch gives windows with no input element an out-of-plane index; poolkit gives -1
    np.testing.assert_array_equal(idx[~empty_window], idx_ref[~empty_window], f"indices {cfg}")
    y_plain = FUNCS[nd](x, channels_last=cfg["channels_last"], **kw)
    assert_bits_equal(y_plain, y, "values without indices")

    if np.dtype(cfg["dtype"]).kind == "f" and not empty_window.any():
        g = rng.standard_normal(y.shape).astype(cfg["dtype"])
        g_cf = to_channels_first(g, nd, cfg["channels_last"])
        _, _, grad_ref = torch_max_pool(x_cf, nd, g_cf, **torch_kw)
        dx = BACKWARDS[nd](g, idx, x.shape, channels_last=cfg["channels_last"])
        assert_bits_equal(
            dx, from_channels_first(grad_ref, nd, cfg["channels_last"]), f"gradient {cfg}"
        )
        return "checked+grad"
    return "checked"


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_differential_against_torch(nd):
    rng = np.random.default_rng(SEED + nd)
    tally: dict[str, int] = {}
    for _ in range(CONFIGS_PER_DIM):
        outcome = _run_one(rng, nd)
        tally[outcome] = tally.get(outcome, 0) + 1
    print(f"\n{nd}-D differential tally vs torch {torch.__version__}: {tally}")
    # the generator must actually exercise all three outcomes
    assert tally.get("checked+grad", 0) > CONFIGS_PER_DIM // 5
    assert tally.get("rejected", 0) > 0


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_layer_matches_torch_module(nd):
    """The layer's forward/backward equal torch.nn.MaxPoolNd with autograd."""
    rng = np.random.default_rng(nd)
    shape = (2, 3) + (7,) * nd
    x = rng.standard_normal(shape).astype(np.float32)
    layer = getattr(pk, f"MaxPool{nd}d")(3, stride=2, padding=1)
    module = getattr(torch.nn, f"MaxPool{nd}d")(3, stride=2, padding=1)
    y = layer(x)
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = module(xt)
    assert_bits_equal(y, yt.detach().numpy(), "layer values")
    g = rng.standard_normal(y.shape).astype(np.float32)
    yt.backward(torch.from_numpy(g))
    assert_bits_equal(layer.backward(g), xt.grad.numpy(), "layer gradient")


def test_channels_last_against_torch_channels_last_kernel():
    """PyTorch's channels_last memory format runs a different kernel: same answers."""
    rng = np.random.default_rng(7)
    x = rng.integers(-3, 4, size=(2, 9, 11, 5)).astype(np.float32)  # NHWC, many ties
    x[0, 1, 2, :] = np.nan
    xt = torch.from_numpy(np.moveaxis(x, -1, 1)).contiguous(memory_format=torch.channels_last)
    xt.requires_grad_(True)
    yt, it = torch.nn.functional.max_pool2d(xt, 3, 2, 1, return_indices=True)
    y, idx = pk.max_pool2d(x, 3, 2, 1, return_indices=True, channels_last=True)
    assert_bits_equal(y, np.moveaxis(yt.detach().numpy(), 1, -1), "values")
    np.testing.assert_array_equal(idx, np.moveaxis(it.numpy(), 1, -1))
    g = rng.standard_normal(y.shape).astype(np.float32)
    yt.backward(torch.from_numpy(np.moveaxis(g, -1, 1)))
    dx = pk.max_pool2d_backward(g, idx, x.shape, channels_last=True)
    assert_bits_equal(dx, np.moveaxis(xt.grad.numpy(), 1, -1), "gradient")


@pytest.mark.parametrize(
    "nd, shape, kwargs",
    [
        (2, (1, 1, 5, 5), dict(kernel_size=3, padding=2)),
        (2, (1, 1, 5, 5), dict(kernel_size=2, stride=0)),
        (2, (1, 1, 5, 5), dict(kernel_size=0)),
        (2, (1, 1, 5, 5), dict(kernel_size=2, dilation=0)),
        (2, (1, 1, 5, 5), dict(kernel_size=2, padding=-1)),
        (2, (1, 1, 5, 5), dict(kernel_size=6)),
        (2, (1, 1, 5, 5), dict(kernel_size=(2, 2, 2))),
        (2, (5, 5), dict(kernel_size=2)),
        (2, (1, 1, 0, 5), dict(kernel_size=2)),
        (2, (1, 0, 5, 5), dict(kernel_size=2)),
        (1, (1, 1, 3), dict(kernel_size=5)),
        (1, (1, 1, 4), dict(kernel_size=2, dilation=3, padding=2)),
        (3, (1, 1, 4, 4), dict(kernel_size=2)),
        (3, (1, 1, 1, 4, 4), dict(kernel_size=2)),
    ],
)
def test_matching_rejections(nd, shape, kwargs):
    """Explicit configurations PyTorch rejects: poolkit rejects them as well."""
    x = np.zeros(shape, dtype=np.float32)
    with pytest.raises(RuntimeError):
        torch_max_pool(x, nd, None, **kwargs)
    with pytest.raises((ValueError, TypeError)):
        FUNCS[nd](x, **kwargs)


def test_empty_batch_accepted_like_torch():
    x = np.zeros((0, 2, 5, 5), dtype=np.float32)
    y, idx = pk.max_pool2d(x, 2, return_indices=True)
    yt, _, _ = torch_max_pool(x, 2, None, kernel_size=2)
    assert y.shape == yt.shape == (0, 2, 2, 2)
    assert pk.max_pool2d_backward(y, idx, x.shape).shape == x.shape
