"""poolkit.dask against in-memory poolkit: bit-identical values, indices and gradients
for random configurations x chunkings, laziness, task counts and a LocalCluster run.

The tally of (configuration, chunking) pairs checked per operation is written to the
file named by ``POOLKIT_DASK_TALLY`` (if set) and printed by ``test_zz_tally`` (``-s``).
"""

from __future__ import annotations

import inspect
import json
import os
from collections import Counter

import dask
import dask.array as da
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import poolkit as pk
import poolkit.dask as pkd

TALLY: Counter = Counter()
SETTINGS = settings(
    max_examples=int(os.environ.get("POOLKIT_DASK_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
    # shrinking a failure of these tests takes minutes: report the first failing example
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
)


@pytest.fixture(autouse=True)
def _sync_scheduler():
    with dask.config.set(scheduler="synchronous"):
        yield


def bits_equal(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return np.ascontiguousarray(a).view(np.uint8).tobytes() == np.ascontiguousarray(
        b
    ).view(np.uint8).tobytes()


def assert_bits(actual, expected, what=""):
    actual = np.asarray(actual)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    assert actual.dtype == expected.dtype, (what, actual.dtype, expected.dtype)
    assert bits_equal(actual, expected), what


# --------------------------------------------------------------------------- strategies


def _partition(draw, length: int, mode: str, stride: int, halo: int) -> tuple[int, ...]:
    if mode == "one":
        return (length,)
    if mode == "ones":
        return (1,) * length
    if mode in ("stride", "halo"):
        size = max(1, halo) if mode == "halo" else stride * draw(st.integers(1, 3))
        full, rest = divmod(length, size)
        return (size,) * full + ((rest,) if rest else ())
    sizes = []
    left = length
    while left:
        v = draw(st.integers(1, max(1, min(left, 5))))
        sizes.append(v)
        left -= v
    return tuple(sizes)


CHUNK_MODES = ("one", "ones", "stride", "stride", "halo", "halo", "random", "random")


@st.composite
def pool_case(draw, family: str):
    nd = draw(st.sampled_from((1, 2, 2, 3)))
    batched = draw(st.booleans())
    cl = draw(st.booleans())
    top = {1: 13, 2: 9, 3: 5}[nd]
    spatial = tuple(draw(st.integers(1, top)) for _ in range(nd))
    k = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    s = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dil = tuple(draw(st.sampled_from((1, 1, 2))) for _ in range(nd)) if family != "unpool" \
        else (1,) * nd
    form = draw(st.sampled_from(("zero", "int", "pairs", "same", "same_lower", "valid")
                                if family != "unpool" else ("zero", "int", "pairs")))
    if form == "zero":
        padding = 0
    elif form == "int":
        padding = tuple(draw(st.integers(0, kk // 2)) for kk in k)
    elif form == "pairs":
        padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in k)
    else:
        padding = form
    ceil = draw(st.booleans()) if family != "unpool" else False
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    if family == "max":
        dtype = draw(st.sampled_from((np.float32, np.float64, np.float16, np.int16, np.uint8)))
    elif family == "avg":
        dtype = draw(st.sampled_from((np.float32, np.float64, np.float16, np.int32)))
    else:
        dtype = draw(st.sampled_from((np.float32, np.float64, np.float16)))
    shape = ((n,) if batched else ()) + ((c,) if not cl else ()) + spatial + (
        (c,) if cl else ())
    if cl:
        shape = ((n,) if batched else ()) + spatial + (c,)
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    if np.dtype(dtype).kind == "f":
        x = rng.standard_normal(shape).astype(dtype)
        if draw(st.booleans()):  # ties, zeros of both signs, NaN/inf
            x = np.round(x * 2).astype(dtype)
            flat = x.reshape(-1)
            for val in (np.nan, np.inf, -0.0):
                if flat.size and draw(st.booleans()):
                    flat[draw(st.integers(0, flat.size - 1))] = val
    else:
        x = rng.integers(-3 if np.dtype(dtype).kind == "i" else 0, 4, shape).astype(dtype)
    lead = (0 if batched else -1, shape.index(c) if not cl else len(shape) - 1)
    chunkings = []
    for _ in range(2):
        chunks = []
        spatial_axes = (
            range(len(shape) - nd - 1, len(shape) - 1) if cl else range(len(shape) - nd,
                                                                        len(shape))
        )
        for ax, length in enumerate(shape):
            if ax in spatial_axes:
                j = ax - spatial_axes[0]
                mode = draw(st.sampled_from(CHUNK_MODES))
                chunks.append(_partition(draw, length, mode, s[j], dil[j] * (k[j] - 1)))
            else:
                chunks.append((1,) * length if draw(st.integers(0, 3)) == 0 else (length,))
        chunkings.append(tuple(chunks))
    del lead
    owner = draw(st.sampled_from(("window_start", "stride")))
    return dict(nd=nd, x=x, k=k, s=s, dil=dil, padding=padding, ceil=ceil, cl=cl,
                chunkings=chunkings, rng=rng, owner=owner)


def _expect(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs), None
    except (ValueError, TypeError) as exc:
        return None, exc


# --------------------------------------------------------------------------- max


@SETTINGS
@given(pool_case("max"), st.sampled_from(("plane", "global")), st.sampled_from((0, 1)))
def test_max_pool_bitwise(case, index_format, storage_order):
    nd, x = case["nd"], case["x"]
    kw = dict(kernel_size=case["k"], stride=case["s"], padding=case["padding"],
              dilation=case["dil"], ceil_mode=case["ceil"], channels_last=case["cl"],
              index_format=index_format, storage_order=storage_order)
    fwd = {1: pk.max_pool1d, 2: pk.max_pool2d, 3: pk.max_pool3d}[nd]
    dfwd = getattr(pkd, fwd.__name__)
    ref, err = _expect(fwd, x, return_indices=True, **kw)
    if err is not None:
        with pytest.raises(type(err)):
            dfwd(da.from_array(x, chunks=case["chunkings"][0]), return_indices=True, **kw)
        TALLY["max: rejected configs (same error)"] += 1
        return
    out, idx = ref
    gdtype = out.dtype if out.dtype.kind == "f" else np.float64
    g = case["rng"].standard_normal(out.shape).astype(gdtype)
    bw = {1: pk.max_pool1d_backward, 2: pk.max_pool2d_backward, 3: pk.max_pool3d_backward}[nd]
    ref_dx = bw(g, idx, x.shape, case["cl"], index_format, storage_order)
    for chunks in case["chunkings"]:
        dx = da.from_array(x, chunks=chunks)
        v, i = dfwd(dx, return_indices=True, owner=case["owner"], **kw)
        plain = dfwd(dx, **{**kw, "index_format": "plane", "storage_order": 0},
                     owner=case["owner"])
        dg = da.from_array(g, chunks=v.chunks)
        dbw = getattr(pkd, bw.__name__)(dg, i, x.shape, case["cl"], index_format,
                                        storage_order)
        assert dbw.chunks == dx.chunks
        # geometry given explicitly, indices not from poolkit.dask, other grad chunking
        di = da.from_array(idx, chunks=2)
        dbw2 = getattr(pkd, bw.__name__)(
            da.from_array(g, chunks=2), di, x.shape, case["cl"], index_format, storage_order,
            chunks=chunks, kernel_size=case["k"], stride=case["s"], padding=case["padding"],
            dilation=case["dil"], ceil_mode=case["ceil"])
        got = dask.compute(v, i, plain, dbw, dbw2)
        for a, b, what in zip(got, (out, idx, out, ref_dx, ref_dx),
                              ("values", "indices", "values alone", "backward",
                               "backward (explicit geometry)")):
            assert_bits(a, b, what)
        TALLY["max forward+indices+backward: configs x chunkings"] += 1
        TALLY[f"max: owner={case['owner']}"] += 1


# --------------------------------------------------------------------------- avg


@SETTINGS
@given(pool_case("avg"), st.booleans(), st.sampled_from((None, None, 3, -2)))
def test_avg_pool_bitwise(case, count_include_pad, divisor_override):
    nd, x = case["nd"], case["x"]
    kw = dict(kernel_size=case["k"], stride=case["s"], padding=case["padding"],
              ceil_mode=case["ceil"], count_include_pad=count_include_pad,
              divisor_override=divisor_override, channels_last=case["cl"],
              dilation=case["dil"])
    fwd = {1: pk.avg_pool1d, 2: pk.avg_pool2d, 3: pk.avg_pool3d}[nd]
    bw = {1: pk.avg_pool1d_backward, 2: pk.avg_pool2d_backward, 3: pk.avg_pool3d_backward}[nd]
    dfwd, dbw = getattr(pkd, fwd.__name__), getattr(pkd, bw.__name__)
    out, err = _expect(fwd, x, **kw)
    if err is not None:
        with pytest.raises(type(err)):
            dfwd(da.from_array(x, chunks=case["chunkings"][0]), **kw)
        TALLY["avg: rejected configs (same error)"] += 1
        return
    g = case["rng"].standard_normal(out.shape).astype(out.dtype)
    ref_dx = bw(g, x.shape, **kw)
    for chunks in case["chunkings"]:
        dx = da.from_array(x, chunks=chunks)
        y = dfwd(dx, **kw, owner=case["owner"])
        gx = dbw(da.from_array(g, chunks=y.chunks), x.shape, **kw)
        assert gx.chunks == dx.chunks
        gx2 = dbw(da.from_array(g, chunks=2), x.shape, **kw, chunks=chunks)
        got = dask.compute(y, gx, gx2)
        for a, b, what in zip(got, (out, ref_dx, ref_dx),
                              ("forward", "backward", "backward (other grad chunks)")):
            assert_bits(a, b, what)
        TALLY["avg forward+backward: configs x chunkings"] += 1
        TALLY[f"avg: owner={case['owner']}"] += 1


# --------------------------------------------------------------------------- lp


@SETTINGS
@given(pool_case("lp"), st.sampled_from((1.0, 2.0, 3.0, 0.5, 2.5)))
def test_lp_pool_bitwise(case, norm_type):
    nd, x = case["nd"], case["x"]
    kw = dict(stride=case["s"], ceil_mode=case["ceil"], channels_last=case["cl"],
              padding=case["padding"], dilation=case["dil"])
    fwd = {1: pk.lp_pool1d, 2: pk.lp_pool2d, 3: pk.lp_pool3d}[nd]
    out, err = _expect(fwd, x, norm_type, case["k"], **kw)
    dfwd = getattr(pkd, fwd.__name__)
    if err is not None:
        with pytest.raises(type(err)):
            dfwd(da.from_array(x, chunks=case["chunkings"][0]), norm_type, case["k"], **kw)
        TALLY["lp: rejected configs (same error)"] += 1
        return
    for chunks in case["chunkings"]:
        got = dfwd(da.from_array(x, chunks=chunks), norm_type, case["k"], **kw,
                   owner=case["owner"])
        assert_bits(got.compute(), out, "lp forward")
        TALLY["lp forward: configs x chunkings"] += 1
        TALLY[f"lp: owner={case['owner']}"] += 1


# --------------------------------------------------------------------------- unpool


@SETTINGS
@given(pool_case("unpool"), st.sampled_from(("plane", "global")), st.sampled_from((0, 1)),
       st.booleans())
def test_max_unpool_bitwise(case, index_format, storage_order, given_size):
    nd, x = case["nd"], case["x"]
    pad = case["padding"]
    kw = dict(kernel_size=case["k"], stride=case["s"], padding=pad,
              channels_last=case["cl"], index_format=index_format,
              storage_order=storage_order)
    fwd = {1: pk.max_pool1d, 2: pk.max_pool2d, 3: pk.max_pool3d}[nd]
    res, err = _expect(fwd, x, return_indices=True, **kw)
    if err is not None:
        return
    y, idx = res
    un = {1: pk.max_unpool1d, 2: pk.max_unpool2d, 3: pk.max_unpool3d}[nd]
    unb = {1: pk.max_unpool1d_backward, 2: pk.max_unpool2d_backward,
           3: pk.max_unpool3d_backward}[nd]
    spatial = x.shape[-nd - 1:-1] if case["cl"] else x.shape[-nd:]
    size = spatial if given_size else None
    ref, err = _expect(un, y, idx, output_size=size, **kw)
    out_spatial = None if ref is None else (
        ref.shape[-nd - 1:-1] if case["cl"] else ref.shape[-nd:])
    if err is not None or out_spatial != spatial:
        # poolkit.dask needs each index inside its window: the unpooled plane must be
        # the pooled input's (a smaller one re-reads the flat indices elsewhere)
        TALLY["unpool: rejected configs"] += 1
        return
    g = case["rng"].standard_normal(ref.shape).astype(y.dtype if y.dtype.kind == "f"
                                                      else np.float64)
    ref_b = unb(g, idx, y.shape, **kw)
    for chunks in case["chunkings"]:
        # chunk the pooled array like a forward of x with this chunking would
        dy, di = getattr(pkd, fwd.__name__)(da.from_array(x, chunks=chunks),
                                            return_indices=True, **kw)
        up = getattr(pkd, un.__name__)(dy, di, output_size=size, **kw)
        gb = getattr(pkd, unb.__name__)(da.from_array(g, chunks=up.chunks), di, y.shape, **kw)
        assert gb.chunks == di.chunks
        gb1 = getattr(pkd, unb.__name__)(da.from_array(g, chunks=2), di.rechunk(1), y.shape,
                                         **kw)
        got = dask.compute(up, gb, gb1)
        for a, b, what in zip(got, (ref, ref_b, ref_b),
                              ("unpool", "unpool backward", "unpool backward (size-1)")):
            assert_bits(a, b, what)
        TALLY["unpool forward+backward: configs x chunkings"] += 1


def test_max_backward_without_geometry():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 13, 10)).astype(np.float32)
    y, idx = pk.max_pool2d(x, 3, 2, 1, return_indices=True)
    g = rng.standard_normal(y.shape).astype(np.float32)
    got = pkd.max_pool2d_backward(da.from_array(g, chunks=(1, 2, 3, 2)),
                                  da.from_array(idx, chunks=(1, 2, 3, 2)), x.shape,
                                  chunks=(1, 1, 5, 4))
    assert got.chunks == ((1, 1), (1, 1, 1), (5, 5, 3), (4, 4, 2))
    assert_bits(got.compute(), pk.max_pool2d_backward(g, idx, x.shape))


def test_unpool_rejects_indices_outside_their_window():
    x = np.arange(8.0).reshape(1, 1, 8)
    idx = np.array([[[7, 2, 4, 6]]])  # the first points outside its window
    dx = da.from_array(x[..., :4], chunks=2)
    with pytest.raises(ValueError, match="window"):
        pkd.max_unpool1d(dx, da.from_array(idx, chunks=2), 2).compute()


# --------------------------------------------------------------------------- whole planes


@pytest.mark.parametrize("chunks", [(1, 1, 3, 4), (2, 3, 7, 9), (1, 3, 1, 9)])
@pytest.mark.parametrize("cl", [False, True])
def test_global_and_adaptive_bitwise(chunks, cl):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 7, 9)).astype(np.float32)
    if cl:
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
        chunks = (chunks[0], chunks[2], chunks[3], chunks[1])
    dx = da.from_array(x, chunks=chunks)
    for keep in (True, False):
        v, i = pkd.global_max_pool(dx, keep, True, cl)
        rv, ri = pk.global_max_pool(x, keep, True, cl)
        assert_bits(v.compute(), rv)
        assert_bits(i.compute(), ri)
        assert_bits(pkd.global_avg_pool(dx, keep, cl).compute(), pk.global_avg_pool(x, keep, cl))
        assert_bits(pkd.global_lp_pool(dx, 3.0, keep, cl).compute(),
                    pk.global_lp_pool(x, 3.0, keep, cl))
        g = rng.standard_normal(rv.shape).astype(np.float32)
        assert_bits(pkd.global_max_pool_backward(da.from_array(g), i, x.shape, cl).compute(),
                    pk.global_max_pool_backward(g, ri, x.shape, cl))
        assert_bits(pkd.global_avg_pool_backward(da.from_array(g), x.shape, cl).compute(),
                    pk.global_avg_pool_backward(g, x.shape, cl))
    for size in ((3, 4), (7, 9), (1, None), 5):
        v, i = pkd.adaptive_max_pool2d(dx, size, True, cl)
        rv, ri = pk.adaptive_max_pool2d(x, size, True, cl)
        assert_bits(v.compute(), rv)
        assert_bits(i.compute(), ri)
        assert_bits(pkd.adaptive_avg_pool2d(dx, size, channels_last=cl).compute(),
                    pk.adaptive_avg_pool2d(x, size, cl))
    TALLY["global/adaptive: configs x chunkings"] += 2 * 6 + 4 * 3


def test_adaptive_1d_3d():
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 6, 7))
    dx = da.from_array(x, chunks=(1, 1, 2, 3, 4))
    assert_bits(pkd.adaptive_avg_pool3d(dx, (2, 3, 4)).compute(),
                pk.adaptive_avg_pool3d(x, (2, 3, 4)))
    assert_bits(pkd.adaptive_max_pool3d(dx, 3).compute(), pk.adaptive_max_pool3d(x, 3))
    x1 = x[:, :, 0, 0]
    dx1 = da.from_array(x1, chunks=(1, 1, 2))
    assert_bits(pkd.adaptive_max_pool1d(dx1, 3, return_indices=True)[1].compute(),
                pk.adaptive_max_pool1d(x1, 3, return_indices=True)[1])


def test_max_pool_any_rank():
    x = np.random.default_rng(1).standard_normal((1, 2, 4, 5, 3, 6)).astype(np.float32)
    dx = da.from_array(x, chunks=(1, 1, 2, 2, 3, 4))
    v, i = pkd.max_pool(dx, (2, 3, 2, 2), stride=(1, 2, 1, 2), padding=1, ceil_mode=True,
                        return_indices=True)
    rv, ri = pk.max_pool(x, (2, 3, 2, 2), stride=(1, 2, 1, 2), padding=1, ceil_mode=True,
                         return_indices=True)
    assert_bits(v.compute(), rv)
    assert_bits(i.compute(), ri)
    g = np.ones_like(rv)
    assert_bits(pkd.max_pool_backward(da.from_array(g, chunks=v.chunks), i, x.shape).compute(),
                pk.max_pool_backward(g, ri, x.shape))


# --------------------------------------------------------------------------- structure


def test_import_poolkit_does_not_import_dask():
    import subprocess
    import sys

    code = "import sys, poolkit; print('dask' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True)
    assert out.stdout.strip() == "False"


_EXPR_CHECK = """
import numpy as np, dask, dask.array as da, poolkit as pk, poolkit.dask as pkd
assert type(da.zeros(2)).__module__.startswith("dask.array._array_expr")
x = np.random.default_rng(0).standard_normal((2, 3, 17, 13)).astype(np.float32)
dx = da.from_array(x, chunks=(1, 2, 5, 4))
v, i = pkd.max_pool2d(dx, 3, 2, 1, return_indices=True, ceil_mode=True)
a = pkd.avg_pool2d(dx, 3, 2, "same")
gx = pkd.max_pool2d_backward(da.ones_like(v), i, x.shape)
ga = pkd.avg_pool2d_backward(da.ones_like(a), x.shape, 3, 2, "same")
got = dask.compute(v, i, a, gx, ga, scheduler="sync")
rv, ri = pk.max_pool2d(x, 3, 2, 1, return_indices=True, ceil_mode=True)
ra = pk.avg_pool2d(x, 3, 2, "same")
want = (rv, ri, ra, pk.max_pool2d_backward(np.ones_like(rv), ri, x.shape),
        pk.avg_pool2d_backward(np.ones_like(ra), x.shape, 3, 2, "same"))
assert all(g.tobytes() == w.tobytes() and g.dtype == w.dtype for g, w in zip(got, want))
print("ok")
"""


def test_array_expression_backend():
    """The graphs use public dask API only: dask's array-expression backend runs them."""
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path),
           "DASK_ARRAY__QUERY_PLANNING": "True"}
    out = subprocess.run([sys.executable, "-c", _EXPR_CHECK], capture_output=True, text=True,
                         env=env)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_graph_building_is_lazy():
    calls = []

    def counted(block):
        calls.append(block.shape)
        return block

    x = da.random.default_rng(0).standard_normal((2, 3, 40, 40), chunks=(1, 3, 9, 11))
    x = x.astype(np.float32).map_blocks(counted, dtype=np.float32,
                                        meta=np.empty((0,) * 4, np.float32))
    y, idx = pkd.max_pool2d(x, 3, 2, 1, return_indices=True)
    a = pkd.avg_pool2d(x, 3, 2, 1, ceil_mode=True)
    gx = pkd.max_pool2d_backward(da.ones_like(y), idx, x.shape)
    ga = pkd.avg_pool2d_backward(da.ones_like(a), x.shape, 3, 2, 1, ceil_mode=True)
    lp = pkd.lp_pool2d(x, 2.0, 3, 2)
    un = pkd.max_unpool2d(y, idx, 3, 2, 1, output_size=(40, 40))
    ub = pkd.max_unpool2d_backward(da.ones_like(un), idx, y.shape, 3, 2, 1)
    g = pkd.global_avg_pool(x)
    ad = pkd.adaptive_max_pool2d(x, 5)
    assert calls == []
    dask.compute(y, idx, a, gx, ga, lp, un, ub, g, ad)
    assert calls


def _tasks(arr) -> int:
    (opt,) = dask.optimize(arr)
    return len(dict(opt.__dask_graph__()))


def test_task_counts():
    x = da.zeros((1, 1, 512, 512), chunks=(1, 1, 64, 64), dtype=np.float32)
    n_in = x.npartitions  # 64
    halo = pkd.max_pool2d(x, 3, 2, 1)
    by_stride = pkd.max_pool2d(x, 3, 2, 1, owner="stride")
    aligned = pkd.max_pool2d(x, 2)
    avg = pkd.avg_pool2d(x, 3, 2, 1)
    bw = pkd.avg_pool2d_backward(da.zeros(avg.shape, chunks=avg.chunks), x.shape, 3, 2, 1)
    counts = {
        "input": _tasks(x),
        "max k3s2p1": _tasks(halo),
        "max k3s2p1 owner=stride": _tasks(by_stride),
        "max k2s2 (aligned)": _tasks(aligned),
        "avg k3s2p1": _tasks(avg),
        "avg k3s2p1 backward": _tasks(bw),
    }
    counts = {k: v - counts["input"] if k != "input" else v for k, v in counts.items()}
    TALLY.update({f"tasks per input chunk, {k}": round(v / n_in, 2) for k, v in counts.items()})
    assert counts["max k2s2 (aligned)"] <= n_in  # one task per chunk
    assert counts["max k3s2p1"] <= 6 * n_in
    assert counts["max k3s2p1 owner=stride"] <= 6 * n_in
    assert counts["avg k3s2p1"] <= 6 * n_in
    assert counts["avg k3s2p1 backward"] <= 8 * n_in
    assert aligned.npartitions == n_in and halo.npartitions == n_in


def test_tasks_run_poolkit_on_one_thread(monkeypatch):
    """The scheduler runs one task per core: a task must not also split its kernels over
    poolkit's threads (4 busy threads on 2 cores under 2 dask workers)."""
    from poolkit import _engine, _threads

    parts = []
    real = _threads.POOL.run

    def record(kernel, args, n_tasks, n_parts):
        parts.append(n_parts)
        real(kernel, args, n_tasks, n_parts)

    monkeypatch.setattr(_threads.POOL, "run", record)
    monkeypatch.setattr(_engine, "SERIAL_WORK", 0)  # every call asks the pool
    x = np.arange(2 * 3 * 12 * 12, dtype=np.float32).reshape(2, 3, 12, 12)
    before = pk.get_num_threads()
    pk.set_num_threads(2 if _threads._limit() >= 2 else 1)
    try:
        want = pk.max_pool2d(x, 3, 2, 1)
        assert parts == [pk.get_num_threads()]  # in memory: every thread asked for
        parts.clear()
        dx = da.from_array(x, chunks=(1, 2, 6, 5))
        got = [pkd.max_pool2d(dx, 3, 2, 1), pkd.global_avg_pool(dx),
               pkd.avg_pool2d_backward(da.ones((2, 3, 6, 6), chunks=3), x.shape, 3, 2, 1)]
        with dask.config.set(scheduler="threads", num_workers=2):
            out = dask.compute(*got)
        assert_bits(out[0], want)
        assert parts and set(parts) == {1}
        assert pk.get_num_threads() == (2 if _threads._limit() >= 2 else 1)  # restored
    finally:
        pk.set_num_threads(before)


def test_small_chunks_are_merged_explicitly():
    x = da.zeros((1, 1, 20), chunks=((1,), (1,), (1, 1, 5, 1, 12)))
    plan = pkd.plan_chunks(x, 5, stride=1)
    assert plan["merged"]
    assert all(c >= plan["halo"][0] for c in plan["input_chunks"][0])
    y = pkd.max_pool1d(x, 5, stride=1)
    assert_bits(y.compute(), pk.max_pool1d(np.zeros((1, 1, 20)), 5, stride=1))


@pytest.mark.parametrize("geometry", [dict(kernel_size=3, stride=2, padding=1),
                                      dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
                                      dict(kernel_size=5, stride=3, padding=2, dilation=1),
                                      dict(kernel_size=2, stride=2, padding="same")])
def test_stride_owner_gives_regular_output_chunks(geometry):
    """owner="stride": input chunks that are multiples of the stride give output chunks
    of chunk // stride but the last, with a left halo of the begin pad;
    the default owner gives the first chunk the windows that start in the begin pad."""
    s = geometry["stride"]
    x = np.arange(2 * 61 * 47, dtype=np.float32).reshape(1, 2, 61, 47) % 13
    dx = da.from_array(x, chunks=(1, 1, 4 * s, 3 * s))
    y = pkd.max_pool2d(dx, owner="stride", **geometry)
    for axis, chunk in ((2, 4), (3, 3)):
        assert y.chunks[axis][:-1] == (chunk,) * (len(y.chunks[axis]) - 1)
        assert y.chunks[axis][-1] >= 1  # what is left (a merged last input chunk: more)
    assert_bits(y.compute(), pk.max_pool2d(x, **geometry))
    plan = pkd.plan_chunks(dx, geometry["kernel_size"], stride=s,
                           padding=geometry["padding"], owner="stride")
    assert plan["output_chunks"] == y.chunks[2:]
    if geometry["padding"] == 1:
        assert plan["left_halo"] == (1, 1)
        assert pkd.plan_chunks(dx, 3, stride=2, padding=1)["left_halo"] == (0, 0)
        assert pkd.max_pool2d(dx, **geometry).chunks[2][0] == 5  # the begin pad's window


def test_owner_is_documented_with_its_choices():
    """Every function taking ``owner=`` lists its two choices in its docstring (an f-string
    docstring once turned the braces into a tuple repr)."""
    line = '    owner : {"window_start", "stride"}, default "window_start"'
    with_owner = [name for name in pkd.__all__
                  if "owner" in inspect.signature(getattr(pkd, name)).parameters]
    assert len(with_owner) == 11  # max_pool, max/avg/lp_pool1d-3d, plan_chunks
    for name in with_owner:
        assert line in getattr(pkd, name).__doc__.splitlines(), name


def test_errors():
    x0 = da.zeros((1, 1, 8, 8), chunks=4)
    with pytest.raises(ValueError, match=r"owner must be one of \('window_start', 'stride'\)"):
        pkd.max_pool2d(x0, 3, 2, 1, owner="center")
    with pytest.raises(ValueError, match="owner must be one of"):
        pkd.plan_chunks(x0, 3, owner=None)
    x = da.zeros((1, 1, 8, 8), chunks=4)
    with pytest.raises(TypeError, match="dask array"):
        pkd.max_pool2d(np.zeros((1, 1, 8, 8)), 2)
    with pytest.raises(ValueError):
        pkd.max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError):
        pkd.max_pool2d(da.zeros((8, 8)), 2)
    with pytest.raises(TypeError):
        pkd.max_pool2d(x.astype(np.complex64), 2)
    with pytest.raises(ValueError):
        pkd.avg_pool2d(x, 9)


def test_local_cluster():
    distributed = __import__("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None,
    ) as cluster, distributed.Client(cluster) as client:
        rng = np.random.default_rng(7)
        x = rng.standard_normal((2, 3, 61, 47)).astype(np.float32)
        dx = da.from_array(x, chunks=(1, 2, 16, 13))
        y, idx = pkd.max_pool2d(dx, 3, 2, 1, return_indices=True, ceil_mode=True)
        gx = pkd.max_pool2d_backward(da.ones_like(y), idx, x.shape)
        a = pkd.avg_pool2d(dx, 3, 2, 1, count_include_pad=False)
        ga = pkd.avg_pool2d_backward(da.ones_like(a), x.shape, 3, 2, 1,
                                     count_include_pad=False)
        got = client.compute([y, idx, gx, a, ga], sync=True)
        ry, ri = pk.max_pool2d(x, 3, 2, 1, return_indices=True, ceil_mode=True)
        ra = pk.avg_pool2d(x, 3, 2, 1, count_include_pad=False)
        want = [ry, ri, pk.max_pool2d_backward(np.ones_like(ry), ri, x.shape), ra,
                pk.avg_pool2d_backward(np.ones_like(ra), x.shape, 3, 2, 1,
                                       count_include_pad=False)]
        for g, w in zip(got, want):
            assert_bits(g, w)
        # two worker processes of one thread each, asked of the scheduler (not its
        # cached scheduler_info(), whose "workers" can come back empty)
        assert sorted(client.nthreads().values()) == [1, 1]
        assert len(cluster.workers) == 2
    TALLY["LocalCluster (2 procs x 1 thread) runs, bitwise"] += 1


def test_zz_tally():
    print("\npoolkit.dask differential tally:")
    for key, value in sorted(TALLY.items()):
        print(f"  {key}: {value}")
    path = os.environ.get("POOLKIT_DASK_TALLY")
    if path:
        with open(path, "w") as fh:
            json.dump(dict(TALLY), fh, indent=1)


# --- the top-level functions and the layers, given a dask array ---------------------


def test_top_level_functions_return_the_lazy_dask_result():
    import poolkit.dask as pkd

    x = np.random.default_rng(5).standard_normal((2, 3, 17, 12)).astype(np.float32)
    dx = da.from_array(x, chunks=(1, 2, 5, 7))
    calls = []
    counted = dx.map_blocks(lambda b: (calls.append(1), b)[1], dtype=dx.dtype,
                            meta=np.empty((0,) * 4, np.float32))
    lazy = pk.max_pool2d(counted, 3, stride=2, padding=1)
    assert isinstance(lazy, da.Array) and not calls  # building the graph computed nothing
    assert lazy.name == pkd.max_pool2d(counted, 3, stride=2, padding=1).name
    np.testing.assert_array_equal(lazy.compute(), pk.max_pool2d(x, 3, stride=2, padding=1))
    avg = pk.avg_pool2d(dx, 2)
    assert isinstance(avg, da.Array)
    np.testing.assert_array_equal(avg.compute(), pk.avg_pool2d(x, 2))
    y, idx = pk.max_pool2d(dx, 2, return_indices=True)
    g = pk.max_pool2d_backward(da.ones_like(y), idx, x.shape)
    assert isinstance(g, da.Array)
    ym, im = pk.max_pool2d(x, 2, return_indices=True)
    np.testing.assert_array_equal(g.compute(), pk.max_pool2d_backward(np.ones_like(ym), im,
                                                                      x.shape))


def test_layers_reject_dask_arrays_naming_poolkit_dask():
    dx = da.zeros((1, 1, 4, 4), chunks=2)
    for layer in (pk.MaxPool2d(2), pk.AvgPool2d(2), pk.AdaptiveAvgPool2d(1), pk.GlobalMaxPool()):
        with pytest.raises(TypeError, match=r"poolkit\.dask"):
            layer(dx)


# --- the public API: each function takes the parameters of its in-memory namesake --------

_MAX = ("x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, "
        "return_indices=False, channels_last=False, index_format='plane', storage_order=0")
_MAX_BW = ("chunks=None, kernel_size=None, stride=None, padding=0, dilation=1, "
           "ceil_mode=False")
_AVG = ("kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, "
        "divisor_override=None, channels_last=False, dilation=1")
_UNPOOL = "kernel_size, stride=None, padding=0"
_OWNER = "owner='window_start'"
_LAYOUT = "channels_last=False, index_format='plane', storage_order=0"
#: the parameters (names, kinds, defaults) of every function of poolkit.dask: locked, so
#: that a change of the in-memory signatures, which poolkit.dask reads, is deliberate
API = {
    "max_pool": f"{_MAX}, *, {_OWNER}",
    "max_pool_backward": "grad_output, indices, input_shape, channels_last=False, "
    f"spatial_dims=None, index_format='plane', storage_order=0, *, {_MAX_BW}",
    "global_max_pool": "x, keepdims=True, return_indices=False, channels_last=False",
    "global_avg_pool": "x, keepdims=True, channels_last=False",
    "global_lp_pool": "x, p=2.0, keepdims=True, channels_last=False",
    "global_max_pool_backward": "grad_output, indices, input_shape, channels_last=False, *, "
    "chunks=None",
    "global_avg_pool_backward": "grad_output, input_shape, channels_last=False, *, chunks=None",
    "plan_chunks": "x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, "
    f"channels_last=False, spatial_dims=None, *, {_OWNER}",
    "pyramid": "x, store, *, factor=2, levels=None, method='max', axes=None, chunks=None, "
    "scale=None, unit='micrometer', name=None, overwrite=False, progress=False",
    "pyramid_levels": "shape, factor=2, target=256",
}
for _nd in (1, 2, 3):
    API.update({
        f"max_pool{_nd}d": f"{_MAX}, *, {_OWNER}",
        f"max_pool{_nd}d_backward": f"grad_output, indices, input_shape, {_LAYOUT}, *, {_MAX_BW}",
        f"avg_pool{_nd}d": f"x, {_AVG}, *, {_OWNER}",
        f"avg_pool{_nd}d_backward": f"grad_output, input_shape, {_AVG}, *, chunks=None",
        f"lp_pool{_nd}d": "x, norm_type, kernel_size, stride=None, ceil_mode=False, "
        f"channels_last=False, padding=0, dilation=1, *, {_OWNER}",
        f"max_unpool{_nd}d": f"x, indices, {_UNPOOL}, output_size=None, {_LAYOUT}, *, "
        "chunks=None",
        f"max_unpool{_nd}d_backward": f"grad_output, indices, input_shape, {_UNPOOL}, "
        f"{_LAYOUT}, *, chunks=None",
        f"adaptive_max_pool{_nd}d": "x, output_size, return_indices=False, channels_last=False",
        f"adaptive_avg_pool{_nd}d": "x, output_size, channels_last=False",
    })


def _plain(fn) -> str:
    """The parameters of ``fn`` without annotations."""
    sig = inspect.signature(fn)
    params = [p.replace(annotation=p.empty) for p in sig.parameters.values()]
    return str(sig.replace(parameters=params, return_annotation=sig.empty))[1:-1]


def test_public_api_is_locked():
    assert sorted(pkd.__all__) == sorted(API)
    for name, params in API.items():
        assert _plain(getattr(pkd, name)) == params, name
        assert getattr(pkd, name).__name__ == name


def test_each_function_takes_the_parameters_of_its_in_memory_namesake():
    dask_only = {"plan_chunks", "pyramid", "pyramid_levels"}
    for name in sorted(set(pkd.__all__) - dask_only):
        memory = [p for p in inspect.signature(getattr(pk, name)).parameters.values()
                  if p.name != "out"]  # a dask result is always a new array
        params = list(inspect.signature(getattr(pkd, name)).parameters.values())
        fields = [(p.name, p.kind, p.default) for p in params[: len(memory)]]
        assert fields == [(p.name, p.kind, p.default) for p in memory], name
        # what follows is dask's own: keyword-only
        assert all(p.kind is p.KEYWORD_ONLY for p in params[len(memory):]), name
    with pytest.raises(TypeError, match=r"max_pool2d\(\) missing a required argument"):
        pkd.max_pool2d(da.zeros((1, 1, 4, 4)))
    with pytest.raises(TypeError, match=r"avg_pool1d_backward\(\) got an unexpected"):
        pkd.avg_pool1d_backward(da.zeros((1, 1, 2)), (1, 1, 4), 2, out=None)
