"""poolkit.dask.pyramid and ``poolkit pyramid``: levels bit-identical to in-memory pooling,
OME-NGFF 0.5 metadata validated with ome-zarr-models, and every bad command-line input."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import zarr
from ome_zarr_models.v05.image import Image

import poolkit as pk
import poolkit.dask as pkd
from poolkit.cli import main


def _levels(path):
    group = zarr.open_group(path, mode="r")
    Image.from_zarr(group)  # raises if the group is not a valid NGFF 0.5 image
    ms = group.attrs.asdict()["ome"]["multiscales"][0]
    return group, ms, [np.asarray(group[d["path"]]) for d in ms["datasets"]]


def _pool(a, nd, method, factor=2):
    lead = a.ndim - nd
    work = a[None] if lead == 0 else a
    k = (factor,) * nd
    if method == "max":
        out = pk.max_pool(work, k, k, ceil_mode=True)
    else:
        out = {2: pk.avg_pool2d, 3: pk.avg_pool3d}[nd](work, k, k, ceil_mode=True)
        if a.dtype.kind in "iu":
            info = np.iinfo(a.dtype)
            out = np.clip(np.rint(out), info.min, info.max).astype(a.dtype)
        else:
            out = out.astype(a.dtype)
    return out[0] if lead == 0 else out


@pytest.mark.parametrize(
    "shape, axes, dtype, method",
    [
        ((37, 50), None, np.float32, "max"),
        ((2, 37, 50), "cyx", np.uint8, "avg"),
        ((9, 17, 20), None, np.float64, "avg"),
        ((1, 2, 5, 9, 11), None, np.int16, "max"),
    ],
)
def test_pyramid_levels_and_metadata(tmp_path, shape, axes, dtype, method):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 50).astype(dtype)
    path = tmp_path / "img.zarr"
    import dask.array as da

    shapes = pkd.pyramid(da.from_array(x, chunks=7), str(path), levels=4, method=method,
                         axes=axes, chunks=(1,) * (len(shape) - 2) + (8, 8) if len(shape) > 2
                         else (8, 8), scale=None)
    group, ms, levels = _levels(path)
    assert [lv.shape for lv in levels] == shapes
    names = [a["name"] for a in ms["axes"]]
    nd = sum(n in "zyx" for n in names)
    assert_equal = np.testing.assert_array_equal
    assert_equal(levels[0], x)
    for lv in range(1, 4):
        want = _pool(levels[lv - 1], nd, method)
        assert levels[lv].dtype == want.dtype
        assert levels[lv].tobytes() == want.tobytes()
        # ceil mode keeps the edge: every level is ceil(L / 2^l)
        assert levels[lv].shape[-nd:] == tuple(-(-s // 2**lv) for s in shape[-nd:])
    for lv, d in enumerate(ms["datasets"]):
        scale = d["coordinateTransformations"][0]["scale"]
        assert scale[-nd:] == [2.0**lv] * nd
        assert all(v == 1.0 for v in scale[:-nd])
        if lv:
            tr = d["coordinateTransformations"][1]["translation"]
            assert tr[-nd:] == [(2.0**lv - 1) / 2] * nd
    types = {a["name"]: a["type"] for a in ms["axes"]}
    assert all(types[n] == "space" for n in names[-nd:])
    assert group["0"].metadata.dimension_names == tuple(names)


def test_pyramid_default_levels_and_overwrite(tmp_path):
    path = str(tmp_path / "p.zarr")
    x = np.zeros((600, 300), np.float32)
    shapes = pkd.pyramid(x, path)
    assert shapes == [(600, 300), (300, 150), (150, 75)]
    with pytest.raises(FileExistsError):
        pkd.pyramid(x, path)
    assert pkd.pyramid(x, path, overwrite=True, levels=2) == shapes[:2]
    with pytest.raises(ValueError):
        pkd.pyramid(x, str(tmp_path / "q.zarr"), method="median")
    with pytest.raises(ValueError):
        pkd.pyramid(x, str(tmp_path / "r.zarr"), axes="xy")


# --------------------------------------------------------------------------- CLI


def _run(capsys, *argv):
    code = main(["pyramid", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_npy_tiff_zarr(tmp_path, capsys):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 200, (3, 70, 45)).astype(np.uint8)
    np.save(tmp_path / "a.npy", x)
    code, out, err = _run(capsys, tmp_path / "a.npy", tmp_path / "a.zarr", "--axes", "cyx",
                          "--levels", "3", "--chunks", "1,16,16")
    assert code == 0, err
    _, _ms, levels = _levels(tmp_path / "a.zarr")
    assert levels[1].tobytes() == _pool(x, 2, "max").tobytes()
    assert "level 2: (3, 18, 12)" in out
    t = rng.standard_normal((33, 40)).astype(np.float32)
    tifffile.imwrite(tmp_path / "t.tif", t)
    code, out, err = _run(capsys, tmp_path / "t.tif", tmp_path / "t.zarr", "--method", "avg",
                          "--quiet")
    assert code == 0, err
    _, _, levels = _levels(tmp_path / "t.zarr")
    np.testing.assert_array_equal(levels[0], t)
    # an OME-Zarr input keeps its axes (c is not pooled)
    code, out, err = _run(capsys, tmp_path / "a.zarr", tmp_path / "b.zarr", "--quiet",
                          "--levels", "2")
    assert code == 0, err
    assert "level 1: (3, 35, 23)" in out


def test_cli_workers(tmp_path, capsys):
    np.save(tmp_path / "w.npy", np.arange(40 * 30, dtype=np.float32).reshape(40, 30))
    code, _out, err = _run(capsys, tmp_path / "w.npy", tmp_path / "w.zarr", "--workers", "1",
                          "--levels", "2")
    assert code == 0, err
    _, _, levels = _levels(tmp_path / "w.zarr")
    assert levels[1].tobytes() == _pool(levels[0], 2, "max").tobytes()


@pytest.mark.parametrize(
    "make, extra, message",
    [
        (None, (), "input not found"),
        (lambda p: p.write_text("junk"), (), "cannot read"),
        (lambda p: np.save(p, np.zeros(5, np.float32)), (), "1 dimension"),
        (lambda p: np.save(p, np.zeros((4, 4), np.complex64)), (), "supported dtypes: float16"),
        (lambda p: np.save(p, np.zeros((4, 4), np.float32)), ("--chunks", "1,2,3"), "--chunks"),
        (lambda p: np.save(p, np.zeros((4, 4), np.float32)), ("--factor", "1"), "--factor"),
        (lambda p: np.save(p, np.zeros((4, 4), np.float32)), ("--levels", "0"), "--levels"),
        (lambda p: np.save(p, np.zeros((4, 4), np.float32)), ("--method", "median"),
         "--method"),
        (lambda p: np.save(p, np.zeros((4, 4), np.float32)), ("--axes", "cx"), "axes"),
    ],
)
def test_cli_bad_inputs(tmp_path, capsys, make, extra, message):
    src = tmp_path / "in.npy"
    if make is not None:
        make(src)
    code, _out, err = _run(capsys, src, tmp_path / "out.zarr", *extra)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1, err


def test_cli_existing_output_and_unknown_format(tmp_path, capsys):
    np.save(tmp_path / "a.npy", np.zeros((8, 8), np.float32))
    (tmp_path / "out.zarr").mkdir()
    code, _, err = _run(capsys, tmp_path / "a.npy", tmp_path / "out.zarr")
    assert code == 2 and "--overwrite" in err
    code, _, err = _run(capsys, tmp_path / "a.npy", tmp_path / "out.zarr", "--overwrite",
                        "--quiet")
    assert code == 0, err
    (tmp_path / "a.txt").write_text("1 2 3")
    code, _, err = _run(capsys, tmp_path / "a.txt", tmp_path / "o2.zarr")
    assert code == 2 and "unknown format" in err
