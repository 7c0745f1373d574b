"""poolkit.dask at scale: a zarr array on local disk larger than the workers' memory.

Not run in CI. Writes a random ``(1, 1, S, S)`` array (``--size`` GB, default 8) to a zarr
store, starts a ``LocalCluster`` of 2 worker processes x 1 thread with a memory limit each
(default 1.5 GiB), and times, on the same array and scheduler:

* poolkit.dask max and average pooling at k2s2 and k3s2p1 (k3s2p1 with both owner
  rules: the default window start, and ``owner="stride"``, whose regular output chunks
  ``to_zarr`` stores without a rechunk), and a 5-level pyramid;
* the floor: ``x[..., ::2, ::2]`` stored (the same reads and writes, no pooling);
* ``da.coarsen(np.max / np.mean)`` and xarray-multiscale ``windowed_max/windowed_mean``
  (k == s only), and dask-image ``maximum_filter`` + ``[..., ::2, ::2]`` (k3s2p1).

Every result is stored to a zarr array on disk (nothing is gathered in memory). Reported:
wall time, tasks, peak cluster memory (distributed's ``MemorySampler``, summed over the
workers) and, for poolkit, bitwise spot checks of three output tiles against in-memory
poolkit on the matching input region.

Usage: ``python benchmarks/bench_dask.py [--size GB] [--dtype float32] [--dir /tmp]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time

import dask.array as da
import numpy as np

import poolkit as pk
import poolkit.dask as pkd


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=float, default=8.0, help="input size in GB (default 8)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64", "uint8",
                                                          "int16", "uint16"))
    p.add_argument("--dir", default="/tmp", help="where the zarr stores go (default /tmp)")
    p.add_argument("--chunk", type=int, default=2048, help="spatial chunk side (2048)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--memory-limit", default="1.5GiB")
    p.add_argument("--levels", type=int, default=5)
    p.add_argument("--skip-baselines", action="store_true")
    p.add_argument("--keep", action="store_true", help="keep the input store")
    p.add_argument("--only", default="", help="run only the rows whose label contains one "
                   "of these comma-separated words (e.g. 'k3s2p1,floor'; default: all)")
    return p.parse_args()


def _make_input(path: str, side: int, dtype: np.dtype, chunk: int) -> da.Array:
    if os.path.exists(path):
        arr = da.from_zarr(path)
        if arr.shape == (1, 1, side, side) and arr.dtype == dtype:
            return arr
        shutil.rmtree(path)
    rng = da.random.default_rng(0)
    x = rng.standard_normal((1, 1, side, side), chunks=(1, 1, chunk, chunk), dtype=np.float32)
    if dtype.kind == "f":
        x = x.astype(dtype)
    else:
        info = np.iinfo(dtype)
        x = da.clip(x * 1000 + (0 if info.min < 0 else 2000), info.min, info.max).astype(dtype)
    da.to_zarr(x, path, compressors=None)
    return da.from_zarr(path)


def _spot_check(x: np.ndarray, got, kind: str, k: int, s: int, p: int, m: int = 64) -> bool:
    """Three output tiles (top-left, interior, bottom-right) vs in-memory poolkit."""
    out_h, out_w = got.shape[-2:]
    fn = pk.max_pool2d if kind == "max" else pk.avg_pool2d
    ok = True
    for a in (0, out_h // 2, out_h - m):
        b = a if a < out_w - m else out_w - m
        lo_r, lo_c = a * s - p, b * s - p
        hi_r, hi_c = (a + m - 1) * s - p + k, (b + m - 1) * s - p + k
        pads = []
        sl = []
        for lo, hi, length in ((lo_r, hi_r, x.shape[-2]), (lo_c, hi_c, x.shape[-1])):
            pads.append((max(0, -lo), max(0, hi - length)))
            sl.append(slice(max(lo, 0), min(hi, length)))
        region = np.asarray(x[0:1, 0:1, sl[0], sl[1]])
        ref = fn(region, k, s, tuple(pads))
        tile = np.asarray(got[0:1, 0:1, a:a + m, b:b + m])
        ok &= ref.shape == tile.shape and ref.tobytes() == tile.tobytes()
    return bool(ok)


def main() -> None:
    args = _parse()
    from distributed import Client, LocalCluster
    from distributed.diagnostics import MemorySampler

    dtype = np.dtype(args.dtype)
    side = int((args.size * 1e9 / dtype.itemsize) ** 0.5) // args.chunk * args.chunk
    base = os.path.join(args.dir, "poolkit_bench_dask")
    os.makedirs(base, exist_ok=True)
    src_path = os.path.join(base, f"input_{args.dtype}_{side}.zarr")
    print(f"disk: {shutil.disk_usage(args.dir).free / 1e9:.0f} GB free in {args.dir}")
    t0 = time.perf_counter()
    x = _make_input(src_path, side, dtype, args.chunk)
    print(f"input: {x.shape} {x.dtype} = {x.nbytes / 1e9:.2f} GB, chunks {x.chunksize}, "
          f"on disk at {src_path} ({time.perf_counter() - t0:.0f} s to make/open)")
    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                           memory_limit=args.memory_limit, host="127.0.0.1",
                           dashboard_address=None)
    client = Client(cluster)
    limit = sum(w["memory_limit"] for w in client.scheduler_info()["workers"].values())
    print(f"cluster: {args.workers} workers x 1 thread, {args.memory_limit} each "
          f"({limit / 2**30:.1f} GiB total; the input is {x.nbytes / limit:.1f}x that)")
    # warm-up: import poolkit and load the compiled kernels in every worker
    small = da.from_array(np.zeros((1, 1, 64, 64), dtype), chunks=32)
    client.compute([pkd.max_pool2d(small, 3, 2, 1), pkd.avg_pool2d(small, 3, 2, 1),
                    pkd.max_pool2d(small, 2), pkd.avg_pool2d(small, 2)], sync=True)
    ms = MemorySampler()
    rows = []

    wanted = [w for w in args.only.split(",") if w]

    def run(label: str, arr: da.Array, check=None) -> None:
        if wanted and not any(w in label for w in wanted):
            return
        out_path = os.path.join(base, "out.zarr")
        shutil.rmtree(out_path, ignore_errors=True)
        tasks = len(dict(arr.__dask_graph__()))
        t = time.perf_counter()
        with ms.sample(label):
            da.to_zarr(arr, out_path, compressors=None)
        wall = time.perf_counter() - t
        spot = ""
        if check is not None:
            spot = "yes" if _spot_check(x, da.from_zarr(out_path), *check) else "NO"
        rows.append([label, f"{wall:.1f}", str(tasks), spot, label])
        print(f"  {label}: {wall:.1f} s, {tasks} tasks {spot}", flush=True)

    # the floor every k2s2 row stands on: read the input, write a quarter-size output
    run("floor: x[..., ::2, ::2] (read + write, no pooling)", x[..., ::2, ::2])
    for kind in ("max", "avg"):
        fn = pkd.max_pool2d if kind == "max" else pkd.avg_pool2d
        run(f"poolkit.dask {kind} k2s2", fn(x, 2), (kind, 2, 2, 0))
        if not args.skip_baselines:
            red = np.max if kind == "max" else np.mean
            run(f"da.coarsen(np.{red.__name__}) k2s2",
                da.coarsen(red, x, {2: 2, 3: 2}, trim_excess=True))
            from xarray_multiscale import windowed_max, windowed_mean

            wred = windowed_max if kind == "max" else windowed_mean
            run(f"xarray-multiscale {wred.__name__} k2s2",
                x.map_blocks(lambda b, w=wred: w(b, (1, 1, 2, 2)),
                             chunks=x.chunks[:2] + tuple(tuple(c // 2 for c in cs)
                                                         for cs in x.chunks[2:]),
                             dtype=x.dtype if kind == "max" else np.float64
                             if dtype.kind != "f" else dtype))
        run(f"poolkit.dask {kind} k3s2p1", fn(x, 3, 2, 1), (kind, 3, 2, 1))
        # the stride owner: regular output chunks, so to_zarr stores them without a rechunk
        run(f"poolkit.dask {kind} k3s2p1 owner=stride", fn(x, 3, 2, 1, owner="stride"),
            (kind, 3, 2, 1))
        if kind == "max" and not args.skip_baselines:
            from dask_image import ndfilters

            cval = -np.inf if dtype.kind == "f" else np.iinfo(dtype).min
            filt = ndfilters.maximum_filter(x, size=(1, 1, 3, 3), mode="constant", cval=cval)
            run("dask-image maximum_filter + [..., ::2, ::2] k3s2p1", filt[..., ::2, ::2])
    pyr_path = os.path.join(base, "pyramid.zarr")
    if not wanted or "pyramid" in wanted:
        t = time.perf_counter()
        with ms.sample("poolkit.dask.pyramid (max, 5 levels)"):
            shapes = pkd.pyramid(x, pyr_path, levels=args.levels, axes="tcyx",
                                 overwrite=True, chunks=(1, 1, 1024, 1024))
        wall = time.perf_counter() - t
        rows.append([f"poolkit.dask.pyramid max, {args.levels} levels", f"{wall:.1f}", "-",
                     "sides " + " ".join(f"{s[-1]}" for s in shapes),
                     "poolkit.dask.pyramid (max, 5 levels)"])
        print(f"  pyramid: {wall:.1f} s -> {shapes}")
    peaks = {label: max(v for _, v in samples) for label, samples in ms.samples.items()}
    print()
    print(f"| operation | wall s | tasks | peak cluster memory GiB (limit {limit / 2**30:.1f}) "
          "| bitwise spot check |")
    print("|---|---:|---:|---:|---|")
    for label, wall, tasks, spot, key in rows:
        print(f"| {label} | {wall} | {tasks} | {peaks[key] / 2**30:.2f} | {spot} |")
    client.close()
    cluster.close()
    shutil.rmtree(os.path.join(base, "out.zarr"), ignore_errors=True)
    shutil.rmtree(pyr_path, ignore_errors=True)
    if not args.keep:
        shutil.rmtree(src_path, ignore_errors=True)


if __name__ == "__main__":
    main()
