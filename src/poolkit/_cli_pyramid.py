"""``poolkit pyramid INPUT OUTPUT``: write an OME-Zarr (NGFF 0.5) pyramid with poolkit.dask.

Kept apart from :mod:`poolkit.cli` so that dask, zarr and tifffile are imported only by
this command. Every bad input is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from .cli import Parser, UsageError, positive_int

__all__ = ["main"]


def _chunks(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers (one per axis), got {text!r}"
        ) from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def build_parser() -> Parser:
    p = Parser(
        prog="poolkit pyramid",
        description="Write an OME-Zarr (NGFF 0.5) multiscale pyramid of a .zarr, .npy or "
        "TIFF image: each level max- or average-pools the previous one by --factor "
        "(ceil mode: edge pixels are kept), bit-identical to in-memory poolkit.",
    )
    p.add_argument("input", metavar="INPUT", help="a .zarr array (or OME-Zarr image), .npy "
                   "or .tif/.tiff file, 2 to 5 dims ordered t, c, z, y, x")
    p.add_argument("output", metavar="OUTPUT", help="the zarr v3 store to write (a path)")
    p.add_argument("--method", choices=("max", "avg"), default="max",
                   help="pooling of each level (default: max)")
    p.add_argument("--factor", type=positive_int, default=2, metavar="N",
                   help="downsampling factor per space axis, >= 2 (default: 2)")
    p.add_argument("--levels", type=positive_int, default=None, metavar="N",
                   help="number of levels including the input (default: until every space "
                   "axis is <= 256)")
    p.add_argument("--chunks", type=_chunks, default=None, metavar="C0,C1,...",
                   help="chunk shape of the stored levels, one size per axis (default: 1 "
                   "on t/c, 256 (2-D) or 64 (3-D) on space axes)")
    p.add_argument("--axes", default=None, metavar="AXES",
                   help="axis names, e.g. cyx (default by rank: yx, zyx, czyx, tczyx)")
    p.add_argument("--workers", type=positive_int, default=None, metavar="N",
                   help="run on a local dask.distributed cluster of N worker processes "
                   "(default: dask's threaded scheduler)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


#: axis names read from an OME-Zarr input, by id of the array returned by _open
_OME_AXES: dict[int, str] = {}


def _open(path: str) -> Any:
    """The input as a lazy dask array."""
    import dask.array as da

    if not os.path.exists(path):
        raise UsageError(f"poolkit pyramid: error: input not found: {path}")
    lower = path.lower().rstrip("/\\")
    try:
        if lower.endswith(".npy"):
            arr = np.load(path, mmap_mode="r")
            return da.from_array(arr, chunks=_input_chunks(arr.shape))
        if lower.endswith((".tif", ".tiff")):
            import tifffile
            import zarr

            store = tifffile.imread(path, aszarr=True)
            node = zarr.open(store, mode="r")
            if hasattr(node, "shape"):
                return da.from_zarr(node)
            return da.from_zarr(node["0"])  # a multi-resolution TIFF: its first level
        if lower.endswith(".zarr") or os.path.isdir(path):
            import zarr

            node = zarr.open(path, mode="r")
            if hasattr(node, "shape"):
                return da.from_zarr(node)
            attrs = node.attrs.asdict()
            ome = attrs.get("ome", attrs)
            scales = ome.get("multiscales")
            if scales:
                arr = da.from_zarr(node[scales[0]["datasets"][0]["path"]])
                _OME_AXES[id(arr)] = "".join(a["name"] for a in scales[0].get("axes", []))
                return arr
            raise ValueError("a zarr group that is not an OME-Zarr image")
    except UsageError:
        raise
    except Exception as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"poolkit pyramid: error: cannot read {path}: {text}") from None
    raise UsageError(
        f"poolkit pyramid: error: cannot read {path}: unknown format (expected .zarr, .npy, "
        ".tif or .tiff)"
    )


def _input_chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Read chunks of a memory-mapped .npy: whole rows of up to 1024 x 1024 tiles."""
    return tuple(1 for _ in shape[:-2]) + tuple(min(1024, s) for s in shape[-2:])


def _check(x: Any, args: argparse.Namespace) -> None:
    from . import _args
    from . import dask as pkd

    if x.ndim < 2 or x.ndim > 5:
        raise UsageError(
            f"poolkit pyramid: error: {args.input} has {x.ndim} dimension(s) (shape "
            f"{tuple(x.shape)}); an image needs 2 to 5 (axes t, c, z, y, x)"
        )
    if args.factor < 2:
        raise UsageError("poolkit pyramid: error: --factor must be at least 2")
    try:
        names = pkd.pyramid_axes(x.ndim, args.axes)
    except ValueError as exc:
        raise UsageError(f"poolkit pyramid: error: {exc}") from None
    nd = sum(n in "zyx" for n in names)
    try:  # the in-memory functions decide which dtypes are supported
        import dask.array as da

        pkd.pyramid_step(da.zeros((1,) * x.ndim, dtype=x.dtype), nd, args.factor, args.method)
    except TypeError:
        names_ = ", ".join(d.name for d in _args.MAX_POOL_DTYPES)
        raise UsageError(
            f"poolkit pyramid: error: {args.input} has dtype {x.dtype}, which {args.method} "
            f"pooling does not support; supported dtypes: {names_}"
        ) from None
    if args.chunks is not None and len(args.chunks) != x.ndim:
        raise UsageError(
            f"poolkit pyramid: error: --chunks needs {x.ndim} sizes (one per axis of "
            f"{args.input}), got {len(args.chunks)}"
        )


def main(argv: Sequence[str]) -> int:
    """Run ``poolkit pyramid``; returns the exit status (2 for a bad input)."""
    try:
        args = build_parser().parse_args(list(argv))
        if os.path.exists(args.output) and not args.overwrite:
            raise UsageError(
                f"poolkit pyramid: error: {args.output} exists; pass --overwrite to replace it"
            )
        if os.path.abspath(args.output) == os.path.abspath(args.input):
            raise UsageError("poolkit pyramid: error: OUTPUT must differ from INPUT")
        x = _open(args.input)
        if args.axes is None and _OME_AXES.get(id(x)):
            args.axes = _OME_AXES.pop(id(x))
        _check(x, args)
        return _write(x, args)
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return 2


def _write(x: Any, args: argparse.Namespace) -> int:
    from . import dask as pkd

    client = cluster = None
    if args.workers:
        import distributed

        cluster = distributed.LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None,
        )
        client = distributed.Client(cluster)
    try:
        shapes = pkd.pyramid(
            x, args.output, factor=args.factor, levels=args.levels, method=args.method,
            axes=args.axes, chunks=args.chunks, overwrite=args.overwrite,
            progress=not args.quiet,
        )
    finally:
        if client is not None:
            client.close()
            cluster.close()
    for level, shape in enumerate(shapes):
        print(f"level {level}: {shape}")
    print(f"wrote {args.output} ({len(shapes)} levels, OME-NGFF 0.5, method {args.method})")
    return 0
