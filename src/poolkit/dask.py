"""Pooling on Dask arrays: lazy, chunk by chunk, bit-identical to the in-memory functions.

``poolkit.dask`` mirrors the functional API (same names, same arguments) with dask
arrays in and out; nothing is computed until the result is. Install it with
``pip install "poolkit[dask]"``; ``import poolkit`` never imports dask.

How chunks map to tasks (see ``docs/dask.md``):

* Padding (``"same"`` included) is resolved once, from the global shape.
* Forward passes: every output belongs to the one task whose input chunk holds its window
  start (clamped into the input). A task reads its chunk plus a halo on the right only
  (``map_overlap`` with per-axis depth ``(0, H)``, ``boundary="none"``, ``trim=False``,
  ``allow_rechunk=False``), ``H`` being how far its last window reaches past the chunk.
  It calls the in-memory function on exactly the region its windows cover, with explicit
  ``(begin, end)`` pads (the global begin pad only on the first chunk, the global end pad
  only where the region reaches the global end), so it computes exactly its outputs, with
  the same arithmetic as one in-memory call. Where no window crosses a chunk edge
  (``kernel == stride``, no padding, chunks multiples of the stride) the halo is empty and
  each chunk is one ``map_blocks`` task. ``owner="stride"`` gives output ``i`` to the
  chunk holding ``i * stride`` instead (a halo of the begin pad on the left): input
  chunks that are multiples of the stride then give regular output chunks, which
  ``to_zarr`` stores without a rechunk; the same bits either way.
* A chunk smaller than the halo (or owning no window) is merged with its neighbour: the
  input is rechunked explicitly to the merged chunking (:func:`plan_chunks` shows it),
  never silently by dask.
* Backward passes *gather*: every gradient chunk pulls the output gradients (and
  indices) of the windows that reach it, in output order, and runs the in-memory backward
  on them, so sums happen in the in-memory order (an overlap-add of per-chunk gradients
  would not be bitwise).
* Global and adaptive pooling bring the spatial axes to one chunk (a plane mean split
  across chunks would not be bitwise); batch and channel chunks are kept.
* Each task runs poolkit's kernels on its own thread only: the scheduler supplies the
  parallelism (one task per core), so tasks do not oversubscribe the cores.

Examples
--------
>>> import numpy as np, dask.array as da, poolkit.dask as pkd
>>> x = da.from_array(np.arange(64.0).reshape(1, 1, 8, 8), chunks=(1, 1, 3, 5))
>>> y = pkd.max_pool2d(x, 3, stride=2, padding=1)
>>> y.shape
(1, 1, 4, 4)
>>> bool((y.compute() == __import__("poolkit").max_pool2d(x.compute(), 3, 2, 1)).all())
True
"""

from __future__ import annotations

import functools
import inspect
import math
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import dask.array as da
import numpy as np

import poolkit as _pk
from poolkit import _args
from poolkit._geometry import pooled_size
from poolkit._indices import IndexLayout
from poolkit._ops.unpool import UnpoolParams
from poolkit._types import IntOrTuple, Padding  # noqa: F401 (the annotations of the signatures)

Chunks = Any  # anything ``dask.array.Array.rechunk`` accepts


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class _Layout:
    """Axis roles of an ``(N, C, *spatial)`` / ``(C, *spatial)`` / channels-last array."""

    ndim: int
    nd: int
    channels_last: bool

    @property
    def batched(self) -> bool:
        return self.ndim == self.nd + 2

    @property
    def spatial(self) -> tuple[int, ...]:
        first = self.ndim - self.nd - 1 if self.channels_last else self.ndim - self.nd
        return tuple(range(first, first + self.nd))

    @property
    def chan(self) -> int:
        return self.ndim - 1 if self.channels_last else (1 if self.batched else 0)


def _layout(shape: tuple[int, ...], nd: int, channels_last: Any, name: str = "x") -> _Layout:
    cl = _args.check_bool(channels_last, "channels_last")
    _args.check_input(tuple(shape), nd, name, cl)
    return _Layout(len(shape), nd, cl)


def _require_dask(x: Any, name: str = "x") -> da.Array:
    if not isinstance(x, da.Array):
        raise TypeError(
            f"{name} must be a dask array (poolkit.dask); got {type(x).__name__}: use "
            "dask.array.from_array, or the in-memory poolkit functions for NumPy arrays"
        )
    if any(math.isnan(c) for cs in x.chunks for c in cs):
        raise ValueError(
            f"{name} has unknown chunk sizes; call {name}.compute_chunk_sizes() first"
        )
    return x


# --------------------------------------------------------------------------- 1-D windows


@dataclass(frozen=True)
class _Win:
    """The global windows of one spatial axis (pads already resolved)."""

    length: int
    kernel: int
    stride: int
    pb: int
    pe: int
    dilation: int
    ceil: bool
    out: int

    @property
    def span(self) -> int:
        return self.dilation * (self.kernel - 1) + 1

    def start(self, o: int) -> int:
        return o * self.stride - self.pb

    def end(self, o: int) -> int:
        return o * self.stride - self.pb + self.span

    def clamped(self) -> tuple[np.ndarray, np.ndarray]:
        """Clamped ``[lo, hi)`` input extent of every window."""
        starts = np.arange(self.out, dtype=np.int64) * self.stride - self.pb
        lo = np.clip(starts, 0, self.length - 1)
        hi = np.clip(starts + self.span, 1, self.length)
        return lo, hi

    def has_empty(self) -> bool:
        """Does any window hold no input element (PyTorch padding with dilation)?"""
        head = min(self.out, self.pb // self.stride + 2)
        tail = max(head, self.out - (self.span + self.pe) // self.stride - 2)
        for o in list(range(head)) + list(range(tail, self.out)):
            start = self.start(o)
            t = 0 if start >= 0 else (-start + self.dilation - 1) // self.dilation
            if t >= self.kernel or start + t * self.dilation >= self.length:
                return True
        return False


def _bounds(sizes: Sequence[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


@dataclass
class _Src:
    """One source array's chunking along an axis and the range each task needs."""

    bounds: np.ndarray  # chunk starts plus the total length
    need: list[tuple[int, int]]

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(int(v) for v in np.diff(self.bounds))

    def depth(self) -> tuple[int, int]:
        """(left, right) halo: how far the tasks' ranges reach past their chunks."""
        return self._depth

    @functools.cached_property
    def _depth(self) -> tuple[int, int]:  # bounds and need never change once built
        left = max([0] + [int(self.bounds[q]) - lo for q, (lo, hi) in enumerate(self.need)
                          if hi > lo])
        right = max([0] + [hi - int(self.bounds[q + 1]) for q, (lo, hi) in
                           enumerate(self.need) if hi > lo])
        return left, right

    def bad_chunk(self) -> int | None:
        """First chunk that is empty or smaller than the halo (dask's requirement)."""
        depth = max(self.depth())
        sizes = self.sizes
        for q, size in enumerate(sizes):
            if size < max(1, depth):
                return q
        return None


@dataclass
class _AxisPlan:
    drive: tuple[int, ...]  # chunk sizes of the axis the tasks are laid out on
    out: tuple[int, ...]  # task output block sizes
    srcs: list[_Src]
    loc: list[dict]  # per task: the local problem


def _plan_axis(sizes: Sequence[int], build: Callable[[list[int]], _AxisPlan]) -> _AxisPlan:
    """Build an axis plan, merging a chunk with its neighbour while one is too small."""
    sizes = [int(v) for v in sizes]
    while True:
        plan = build(sizes)
        bad = next((q for q in (s.bad_chunk() for s in plan.srcs) if q is not None), None)
        if bad is None and all(v >= 1 for v in plan.out):
            return plan
        if bad is None:
            bad = next(q for q, v in enumerate(plan.out) if v < 1)
        if len(sizes) == 1:  # cannot happen: one chunk needs no halo
            raise AssertionError("poolkit.dask: no valid chunking")
        j = bad if bad + 1 < len(sizes) else bad - 1
        sizes[j : j + 2] = [sizes[j] + sizes[j + 1]]


#: The forward owner rules (``owner=``): an output belongs to the chunk holding its
#: window start, or its stride point ``o * stride`` (both clamped into the input).
_OWNERS = ("window_start", "stride")


def _check_owner(owner: Any) -> str:
    if owner not in _OWNERS:
        raise ValueError(f"owner must be one of {_OWNERS}, got {owner!r}")
    return owner


def _anchors(w: _Win, owner: str) -> np.ndarray:
    """Per output, the input position whose chunk owns it (nondecreasing)."""
    if owner == "window_start":
        return w.clamped()[0]
    return np.clip(np.arange(w.out, dtype=np.int64) * w.stride, 0, w.length - 1)


def _forward_axis(w: _Win, sizes: list[int], pref=None, owner: str = "window_start"
                  ) -> _AxisPlan:
    """Owner rule: a task computes the windows whose anchor (:func:`_anchors`: the
    clamped window start, or the stride point) lies in its chunk."""
    bounds = _bounds(sizes)
    lo = _anchors(w, owner)
    out, need, loc = [], [], []
    m = len(sizes)
    for q in range(m):
        i0 = int(np.searchsorted(lo, bounds[q], "left")) if q else 0
        i1 = w.out if q == m - 1 else int(np.searchsorted(lo, bounds[q + 1], "left"))
        i1 = max(i1, i0)
        out.append(i1 - i0)
        if i1 == i0:
            need.append((int(bounds[q]), int(bounds[q])))
            loc.append({})
            continue
        r0 = max(w.start(i0), 0)
        r1 = min(w.end(i1 - 1), w.length)
        at_end = r1 == w.length
        need.append((r0, r1))
        loc.append(
            dict(r0=r0, r1=r1, pads=(r0 - w.start(i0), w.pe if at_end else 0),
                 ceil=w.ceil and at_end, n=i1 - i0)
        )
    return _AxisPlan(tuple(sizes), tuple(out), [_Src(bounds, need)], loc)


def _covering(w: _Win, bounds: np.ndarray) -> list[tuple[int, int]]:
    """Per target chunk ``[a, b)``: the windows ``[lo, hi)`` whose clamped extent meets it."""
    lo_ext, hi_ext = w.clamped()
    res = []
    m = len(bounds) - 1
    for q in range(m):
        a, b = int(bounds[q]), int(bounds[q + 1])
        lo = int(np.searchsorted(hi_ext, a, "right"))
        hi = w.out if q == m - 1 else int(np.searchsorted(lo_ext, b, "left"))
        res.append((lo, max(lo, hi)))
    return res


def _gather_bounds(cover: list[tuple[int, int]], total: int) -> np.ndarray:
    """Source chunk starts: each task's first needed element (non-decreasing)."""
    starts = [0]
    for lo, _ in cover[1:]:
        starts.append(max(starts[-1], lo))
    return np.array(starts + [total], dtype=np.int64)


def _region(w: _Win, lo: int, hi: int) -> dict:
    """Local problem of the windows ``[lo, hi)``: the input region they cover, the pads
    that make local window ``j`` global window ``lo + j``, and the local window count."""
    r0 = max(w.start(lo), 0)
    r1 = min(w.end(hi - 1), w.length)
    at_end = r1 == w.length
    pads = (r0 - w.start(lo), w.pe if at_end else 0)
    ceil = w.ceil and at_end
    count = pooled_size(r1 - r0, w.kernel, w.stride, pads[0], pads[1], w.dilation, ceil)
    return dict(r0=r0, r1=r1, pads=pads, ceil=ceil, lo=lo, hi=hi, count=count)


def _gather_src(cover, total: int, pref: Sequence[int] | None, m: int) -> _Src:
    """The source chunking of a gather: the source's own chunks where every task's range
    fits in its chunk plus a halo no larger than a chunk (no rechunk), else chunks that
    start at each task's first needed element."""
    if pref is not None and len(pref) == m:
        src = _Src(_bounds(pref), cover)
        if src.bad_chunk() is None:
            return src
    return _Src(_gather_bounds(cover, total), cover)


def _cover_axis(w: _Win, sizes: list[int], pref=None, region=None) -> _AxisPlan:
    """A target chunk gathers the windows that reach it, each task's local problem given
    by ``region``: the gradient of pooling (:func:`_region`) or max unpooling's output
    (:func:`_unpool_region`, where the windows are those of the pooling being inverted)."""
    bounds = _bounds(sizes)
    cover = _covering(w, bounds)
    src = _gather_src(cover, w.out, pref, len(sizes))
    loc = []
    for q, (lo, hi) in enumerate(cover):
        info = region(w, lo, hi) if hi > lo else dict(lo=lo, hi=hi)
        info.update(a=int(bounds[q]), b=int(bounds[q + 1]))
        loc.append(info)
    return _AxisPlan(tuple(sizes), tuple(sizes), [src, src], loc)


def _unpool_region(w: _Win, lo: int, hi: int) -> dict:
    """Unpooling windows ``[lo, hi)`` (no dilation): region and pads that make the local
    default output size exactly the region."""
    r0 = max(w.start(lo), 0)
    r1 = min(w.end(hi - 1), w.length)
    return dict(r0=r0, r1=r1, pads=(r0 - w.start(lo), w.end(hi - 1) - r1), lo=lo, hi=hi)


def _unpool_backward_axis(w: _Win, sizes: list[int], pref=None) -> _AxisPlan:
    """Backward of unpooling: a chunk of unpooled inputs ``[oa, ob)`` gathers every input
    whose window meets theirs (a later one may overwrite the same slot) and the
    gradient over those windows."""
    bounds = _bounds(sizes)
    lo_ext, hi_ext = w.clamped()
    need_idx, need_g, loc = [], [], []
    for q in range(len(sizes)):
        oa, ob = int(bounds[q]), int(bounds[q + 1])
        s0, s1 = int(lo_ext[oa]), int(hi_ext[ob - 1])
        lo = int(np.searchsorted(hi_ext, s0, "right"))
        hi = int(np.searchsorted(lo_ext, s1, "left"))
        lo, hi = min(lo, oa), max(hi, ob)
        info = _unpool_region(w, lo, hi)
        info.update(a=oa, b=ob)
        need_idx.append((lo, hi))
        need_g.append((info["r0"], info["r1"]))
        loc.append(info)
    src_g = _gather_src(need_g, w.length, pref, len(sizes))
    src_i = _Src(bounds, need_idx)
    return _AxisPlan(tuple(sizes), tuple(sizes), [src_g, src_i], loc)


# --------------------------------------------------------------------------- plans


@dataclass
class _Plan:
    layout: _Layout
    shape: tuple[int, ...]  # the shape of the array the tasks are laid out on
    axes: list[_AxisPlan]  # per spatial axis
    single: bool  # every spatial axis one chunk: tasks make the plain in-memory call

    def src_chunks(self, i: int, base: tuple[tuple[int, ...], ...]) -> tuple:
        chunks = list(base)
        for j, ax in enumerate(self.layout.spatial):
            chunks[ax] = self.axes[j].srcs[i].sizes
        return tuple(chunks)

    def src_depth(self, i: int) -> dict[int, tuple[int, int]]:
        return {ax: self.axes[j].srcs[i].depth() for j, ax in enumerate(self.layout.spatial)}

    def out_chunks(self, base: tuple[tuple[int, ...], ...]) -> tuple:
        chunks = list(base)
        for j, ax in enumerate(self.layout.spatial):
            chunks[ax] = self.axes[j].out
        return tuple(chunks)


def _make_plan(layout, shape, spatial_chunks, wins, kind, force_single=False,
               pref=None, owner: str = "window_start") -> _Plan:
    build = {
        "forward": functools.partial(_forward_axis, owner=owner),
        "gather": functools.partial(_cover_axis, region=_region),
        "unpool": functools.partial(_cover_axis, region=_unpool_region),
        "unpool_backward": _unpool_backward_axis,
    }[kind]
    single = force_single or any(w.has_empty() for w in wins if kind != "unpool_backward")
    axes = []
    for j, w in enumerate(wins):
        sizes = [shape[layout.spatial[j]]] if single else spatial_chunks[j]
        p = None if pref is None else pref[j]
        axes.append(_plan_axis(sizes, lambda s, w=w, p=p: build(w, s, p)))
    single = single or all(len(a.drive) == 1 for a in axes)
    return _Plan(layout, tuple(shape), axes, single)


def _resolve(in_spatial, kernel, stride, padding, dilation, ceil_mode) -> list[_Win]:
    """Global windows per axis; raises the in-memory errors for bad options."""
    spec = _args.parse_padding(padding, kernel)
    geom = _args.build_geometry(in_spatial, kernel, stride, spec, dilation, ceil_mode)
    return [
        _Win(*dims, bool(ceil_mode), out)
        for *dims, out in zip(geom.in_size, geom.kernel, geom.stride, geom.pad_begin,
                              geom.pad_end, geom.dilation, geom.out_size)
    ]


#: forward plans by output name: lets a backward recover the forward's chunking
_FORWARDS: OrderedDict[str, dict] = OrderedDict()


def _remember(arr: da.Array, info: dict) -> None:
    _FORWARDS.pop(arr.name, None)
    _FORWARDS[arr.name] = info  # the most recent last
    while len(_FORWARDS) > 512:
        _FORWARDS.popitem(last=False)


def _find_forward(match: Callable[[dict], bool]) -> dict | None:
    for info in reversed(_FORWARDS.values()):
        if match(info):
            return info
    return None


def _plan_chunks(args) -> dict:
    """:func:`plan_chunks`, on its bound arguments."""
    x, kernel_size, spatial_dims = _require_dask(args.x), args.kernel_size, args.spatial_dims
    if spatial_dims is not None:
        nd = spatial_dims
    elif isinstance(kernel_size, (tuple, list)):
        nd = len(kernel_size)
    else:
        nd = x.ndim - 2
    lay = _layout(x.shape, nd, args.channels_last)
    kernel, strides, dil = _pool_ints(nd, kernel_size, args.stride, args.dilation)
    wins = _resolve(_spatial(x.shape, lay), kernel, strides, args.padding, dil, args.ceil_mode)
    plan = _make_plan(lay, x.shape, [x.chunks[a] for a in lay.spatial], wins, "forward",
                      owner=_check_owner(args.owner))
    drive = tuple(a.drive for a in plan.axes)
    return dict(
        input_chunks=drive,
        output_chunks=tuple(a.out for a in plan.axes),
        halo=tuple(a.srcs[0].depth()[1] for a in plan.axes),
        left_halo=tuple(a.srcs[0].depth()[0] for a in plan.axes),
        merged=drive != tuple(x.chunks[a] for a in lay.spatial),
    )


def _spatial(shape, lay: _Layout) -> tuple[int, ...]:
    return tuple(shape[a] for a in lay.spatial)


def _pool_ints(nd, kernel_size, stride, dilation):
    kernel, strides = _args.kernel_and_stride(kernel_size, stride, nd)
    return kernel, strides, _args.int_tuple(dilation, nd, "dilation", minimum=1)


# --------------------------------------------------------------------------- running


def _block_offsets(chunks: tuple[tuple[int, ...], ...], block_id: tuple[int, ...]):
    return tuple(int(sum(c[:b])) for c, b in zip(chunks, block_id))


def _on_one_thread(func: Callable) -> Callable:
    """``func`` with poolkit's kernels kept on the calling thread: the scheduler already
    runs one task per core, and a task splitting itself over poolkit's threads as well
    would oversubscribe the cores (results never depend on the thread count)."""

    @functools.wraps(func)  # keeps the signature: dask looks for ``block_id`` in it
    def task(*blocks, **kw):
        before = _pk.get_num_threads()
        _pk.set_num_threads(1)
        try:
            return func(*blocks, **kw)
        finally:
            _pk.set_num_threads(before)

    return task


def _run(func, sources, depths, plan: _Plan, out_chunks, dtype) -> da.Array:
    """map_overlap (or map_blocks where no halo is needed) of ``func`` over sources."""
    func = _on_one_thread(func)
    meta = np.empty((0,) * len(out_chunks), dtype=dtype)
    if len(sources) == 1 and all(d == (0, 0) for dep in depths for d in dep.values()):
        return da.map_blocks(func, *sources, chunks=out_chunks, dtype=dtype, meta=meta)
    return da.map_overlap(
        func, *sources, depth=list(depths), boundary="none", trim=False,
        allow_rechunk=False, align_arrays=False, chunks=out_chunks, dtype=dtype, meta=meta,
    )


def _field(block: np.ndarray, name: str) -> np.ndarray:
    return np.ascontiguousarray(block[name])


def _fields(rec: da.Array, dtype) -> tuple[da.Array, da.Array]:
    """Values and indices of a (values, int64 indices) record array, by ``map_blocks``
    (field access of dask's array-expression backend is not implemented)."""
    out = []
    for name, dt in (("v", np.dtype(dtype)), ("i", np.dtype(np.int64))):
        out.append(rec.map_blocks(_field, name, dtype=dt,
                                  meta=np.empty((0,) * rec.ndim, dtype=dt)))
    return out[0], out[1]


def _take(block: np.ndarray, axis: int, start: int, stop: int) -> np.ndarray:
    sel = [slice(None)] * block.ndim
    sel[axis] = slice(start, stop)
    return block[tuple(sel)]


def _pad_zeros(block: np.ndarray, axis: int, size: int) -> np.ndarray:
    if block.shape[axis] >= size:
        return block
    widths = [(0, 0)] * block.ndim
    widths[axis] = (0, size - block.shape[axis])
    return np.pad(block, widths)


# --- index layouts (plane / global, row- or column-major), per task: poolkit._indices --


def _index_layout(lay: _Layout, shape, fmt: str, order: int) -> IndexLayout:
    """The layout of indices into a whole array of ``shape``."""
    return IndexLayout(tuple(shape), lay.nd, lay.batched, lay.channels_last, fmt, order)


def _block_start(lay: _Layout, chunks, block_id) -> tuple[int, int]:
    """Batch and channel of the first element of a block."""
    offs = _block_offsets(chunks, block_id)
    return (offs[0] if lay.batched else 0, offs[lay.chan])


def _global_coords(idx, layout: IndexLayout, start: tuple[int, int]):
    """Global spatial coordinates (tuple of arrays) and the valid mask of a block of
    indices in ``layout`` (checked as the in-memory conversion checks them)."""
    plane = layout.to_plane(np.asarray(idx), start, check=True)
    valid = plane >= 0
    spatial = _args.spatial_shape(layout.in_shape, layout.nd, layout.channels_last)
    return np.unravel_index(np.where(valid, plane, 0), spatial), valid


# --------------------------------------------------------------------------- forward


def _probe(fn: Callable, dtype, kernel, dil, **kw):
    """Run the in-memory function once on a tiny array: validates the dtype and every
    option the tasks pass through, and gives the output dtype."""
    x = np.zeros((1, 1) + tuple(d * (k - 1) + 1 for k, d in zip(kernel, dil)), dtype=dtype)
    out = fn(x, **kw)
    return out


def _pool_forward(args, memory: Callable, nd: int | None, kind: str):
    """The forward of max / avg / Lp pooling; ``args`` holds the arguments of the in-memory
    function ``memory``, which every task calls on its region."""
    if nd is None:  # the general max_pool
        nd = _args.spatial_ndim_of(args.kernel_size)
    norm_type = _args.check_norm_type(args.norm_type) if kind == "lp" else None
    x = _require_dask(args.x)
    padding, ceil_mode = args.padding, args.ceil_mode
    lay = _layout(x.shape, nd, args.channels_last)
    kernel, strides, dil = _pool_ints(nd, args.kernel_size, args.stride, args.dilation)
    _args.check_bool(ceil_mode, "ceil_mode")
    ret = _args.check_bool(getattr(args, "return_indices", False), "return_indices")
    fmt, order = _args.check_index_format(getattr(args, "index_format", "plane"),
                                          getattr(args, "storage_order", 0))
    in_spatial = _spatial(x.shape, lay)
    wins = _resolve(in_spatial, kernel, strides, padding, dil, ceil_mode)
    out_spatial = tuple(w.out for w in wins)
    extended = False
    if kind == "max":
        probe = _probe(memory, x.dtype, kernel, dil, kernel_size=kernel, dilation=dil,
                       return_indices=ret)
        out_dtype = (probe[0] if ret else probe).dtype

        def call(arr, pads, ceil, local=False):
            out = memory(arr, kernel, strides, pads, dil, ceil, ret, lay.channels_last)
            return out if ret else (out, None)
    elif kind == "avg":
        cip, div = args.count_include_pad, args.divisor_override
        probe = _probe(memory, x.dtype, kernel, dil, kernel_size=kernel,
                       count_include_pad=cip, divisor_override=div, dilation=dil)
        out_dtype = probe.dtype

        def call(arr, pads, ceil, local=False):
            return memory(arr, kernel, strides, pads, ceil, cip, div, lay.channels_last,
                          dil), None
    else:  # lp
        probe = _probe(memory, x.dtype, kernel, dil, norm_type=norm_type, kernel_size=kernel,
                       dilation=dil)
        out_dtype = probe.dtype
        spec = _args.parse_padding(padding, kernel)
        extended = (spec.mode != "explicit" or any(spec.begin) or any(spec.end)
                    or any(d != 1 for d in dil))

        def call(arr, pads, ceil, local=False):
            if local and extended and all(p == (0, 0) for p in pads):
                # a harmless end pad keeps the separable (padded) Lp path of the global
                # call: it only adds windows past this task's, which are sliced off
                j = next(j for j in range(nd) if kernel[j] > 1)
                pads = tuple((p[0], p[1] + (i == j)) for i, p in enumerate(pads))
            return memory(arr, norm_type, kernel, strides, ceil, lay.channels_last, pads,
                          dil), None

    # Lp with padding but only 1-wide kernels: no harmless pad exists; whole planes
    force_single = extended and all(k == 1 for k in kernel)
    plan = _make_plan(lay, x.shape, [x.chunks[a] for a in lay.spatial], wins, "forward",
                      force_single, owner=_check_owner(args.owner))
    src = x.rechunk(plan.src_chunks(0, x.chunks))
    out_chunks = plan.out_chunks(src.chunks)
    layout = _index_layout(lay, x.shape, fmt, order)
    src_chunks = src.chunks

    def task(block, block_id=None):
        if plan.single:
            out, idx = call(block, padding, ceil_mode)
            locs = None
        else:
            locs = []
            pads = []
            arr = block
            for j, ax in enumerate(lay.spatial):
                info = plan.axes[j].loc[block_id[ax]]
                a = _src_start(plan.axes[j].srcs[0], block_id[ax])  # left halo included
                arr = _take(arr, ax, info["r0"] - a, info["r1"] - a)
                pads.append(info["pads"])
                locs.append(info)
            # ceil per axis: an axis that does not reach the end takes exactly its windows
            # with ceil_mode=False (its count is exact), so one flag serves every axis
            ceil_any = any(info["ceil"] for info in locs)
            out, idx = call(np.ascontiguousarray(arr), tuple(pads), ceil_any, local=True)
            for j, ax in enumerate(lay.spatial):
                out = _take(out, ax, 0, locs[j]["n"])
                if idx is not None:
                    idx = _take(idx, ax, 0, locs[j]["n"])
        if idx is None:
            return out
        idx = _globalise(idx, block, locs, block_id, src_chunks)
        rec = np.empty(out.shape, dtype=[("v", out.dtype), ("i", np.int64)])
        rec["v"] = out
        rec["i"] = idx
        return rec

    def _globalise(idx, block, locs, block_id, chunks):
        if locs is None and layout.plain:
            return idx
        l_spatial = tuple(
            (locs[j]["r1"] - locs[j]["r0"]) if locs else block.shape[ax]
            for j, ax in enumerate(lay.spatial)
        )
        valid = idx >= 0
        coords = np.unravel_index(np.where(valid, idx, 0), l_spatial)
        if locs:
            coords = tuple(cd + locs[j]["r0"] for j, cd in enumerate(coords))
        plane = np.where(valid, np.ravel_multi_index(coords, in_spatial), -1)
        return layout.from_plane(plane, _block_start(lay, chunks, block_id))

    if ret:
        rec_dtype = np.dtype([("v", out_dtype), ("i", np.int64)])
        rec = _run(task, [src], [plan.src_depth(0)], plan, out_chunks, rec_dtype)
        vals, idx = _fields(rec, out_dtype)
        info = dict(kind="max", lay=lay, in_shape=tuple(x.shape), in_chunks=x.chunks,
                    wins=wins, fmt=fmt, order=order, out_chunks=out_chunks)
        _remember(idx, info)
        _remember(vals, info)
        return vals, idx
    out = _run(task, [src], [plan.src_depth(0)], plan, out_chunks, out_dtype)
    _remember(out, dict(kind=kind, lay=lay, in_shape=tuple(x.shape), in_chunks=x.chunks,
                        wins=wins, out_chunks=out_chunks))
    assert out.shape == tuple(
        out_spatial[lay.spatial.index(a)] if a in lay.spatial else x.shape[a]
        for a in range(x.ndim)
    )
    return out


# --------------------------------------------------------------------------- gathering


def _src_start(src: _Src, q: int) -> int:
    """Global start of task ``q``'s block of this source (its left halo included)."""
    return int(src.bounds[q]) - (src.depth()[0] if q else 0)


def _derived_input_chunks(w: _Win, out_chunks: tuple[int, ...]) -> tuple[int, ...]:
    """Input chunking whose owner rule gives ``out_chunks``: each chunk starts at the
    (clamped) start of its first window."""
    starts = [0]
    for i0 in np.cumsum(out_chunks)[:-1]:
        a = min(max(int(i0) * w.stride - w.pb, 0), w.length)
        if a > starts[-1]:
            starts.append(a)
    return tuple(int(v) for v in np.diff(starts + [w.length]))


def _lead_chunks(base: tuple, lay: _Layout, spatial: Sequence[tuple[int, ...]]) -> tuple:
    chunks = list(base)
    for j, ax in enumerate(lay.spatial):
        chunks[ax] = tuple(spatial[j])
    return tuple(chunks)


def _check_shape(input_shape: Any, ndim: int) -> tuple[int, ...]:
    shape = _args.check_shape_arg(input_shape, "input_shape")
    if len(shape) != ndim:
        raise ValueError(
            f"input_shape must have as many dimensions as grad_output ({ndim}), "
            f"got input_shape={shape}"
        )
    return shape


def _gradient_target(grad, shape, lay, wins, chunks, registered) -> tuple:
    """Chunks of the returned gradient: ``chunks``, else the forward input's."""
    if chunks is not None:
        return tuple(da.core.normalize_chunks(chunks, shape, dtype=grad.dtype))
    if registered is not None:
        return tuple(registered["in_chunks"])
    spatial = [
        _derived_input_chunks(w, grad.chunks[ax]) if w is not None else (shape[ax],)
        for w, ax in zip(wins, lay.spatial)
    ]
    return _lead_chunks(tuple(grad.chunks), lay, spatial)


def _gather_run(task, sources, plan: _Plan, lead_base: tuple, dtype, target: tuple):
    """Rechunk the sources to the plan, run the tasks and bring the result to ``target``."""
    srcs = []
    depths = []
    for i, s in enumerate(sources):
        srcs.append(s.rechunk(plan.src_chunks(i, _lead_only(s.chunks, plan.layout,
                                                            lead_base))))
        depths.append(plan.src_depth(i))
    out_chunks = plan.out_chunks(lead_base)
    out = _run(task, srcs, depths, plan, out_chunks, dtype)
    return out if out.chunks == target else out.rechunk(target)


def _lead_only(chunks, lay: _Layout, lead_base: tuple) -> tuple:
    """``chunks`` with the batch/channel axes of ``lead_base``."""
    res = list(chunks)
    for ax in range(lay.ndim):
        if ax not in lay.spatial:
            res[ax] = lead_base[ax]
    return tuple(res)


def _gather_windows(plan: _Plan, block_id, blocks, which: Sequence[int]):
    """Slice each source block to the windows its task needs. Returns the blocks, the
    per-axis local infos and the shape of the task's output chunk (None when no window
    reaches it: the output is zeros)."""
    locs = []
    out = list(blocks)
    for j, ax in enumerate(plan.layout.spatial):
        q = block_id[ax]
        info = plan.axes[j].loc[q]
        locs.append(info)
        for i in which:
            src = plan.axes[j].srcs[i]
            lo, hi = src.need[q]
            start = _src_start(src, q)
            out[i] = _take(out[i], ax, lo - start, hi - start)
    chunk_shape = list(out[0].shape)
    for j, ax in enumerate(plan.layout.spatial):
        chunk_shape[ax] = locs[j]["b"] - locs[j]["a"]
    reached = all(info["hi"] > info["lo"] for info in locs)
    return [np.ascontiguousarray(b) for b in out], locs, tuple(chunk_shape), reached


def _index_source(indices: Any, shape: tuple[int, ...], like: str) -> da.Array:
    """The ``indices`` argument: an integer dask array of ``shape`` (that of ``like``)."""
    ix = _require_dask(indices, "indices")
    if ix.dtype.kind not in "iu":
        raise TypeError(f"indices must be an integer array, got dtype {ix.dtype}")
    if ix.shape != tuple(shape):
        raise ValueError(f"indices must have the shape of {like} {tuple(shape)}, got {ix.shape}")
    return ix


def _float_grad(grad_output: Any) -> da.Array:
    grad = _require_dask(grad_output, "grad_output")
    _args.check_dtype(np.empty(0, grad.dtype), "grad_output", _args.FLOAT_DTYPES)
    return grad


def _place(chunk_shape, dtype, region, lay, locs):
    """Zeros of ``chunk_shape`` with the part of ``region`` that lies in the chunk."""
    res = np.zeros(chunk_shape, dtype=dtype)
    dst = [slice(None)] * len(chunk_shape)
    srcsel = [slice(None)] * len(chunk_shape)
    for j, ax in enumerate(lay.spatial):
        info = locs[j]
        lo, hi = max(info["a"], info["r0"]), min(info["b"], info["r1"])
        if hi <= lo:
            return res
        dst[ax] = slice(lo - info["a"], hi - info["a"])
        srcsel[ax] = slice(lo - info["r0"], hi - info["r0"])
    res[tuple(dst)] = region[tuple(srcsel)]
    return res


# --------------------------------------------------------------------------- max backward


def _spatial_dims(input_shape: Any, spatial_dims: Any) -> int:
    """The rank of the general max_pool_backward: ``spatial_dims``, else that of a batched
    ``input_shape`` (as :func:`poolkit.max_pool_backward` infers it)."""
    if spatial_dims is not None:
        return _args.int_tuple(spatial_dims, 1, "spatial_dims", minimum=1)[0]
    rank = len(_args.check_shape_arg(input_shape, "input_shape"))
    if rank < 3:
        raise ValueError(
            "input_shape must have at least 3 dimensions (N, C, *spatial) when "
            f"spatial_dims is not given, got {tuple(input_shape)}"
        )
    return rank - 2


def _max_backward(args, memory: Callable, nd: int | None):
    """The gathering backward of max pooling (``memory``: the in-memory backward)."""
    rank = {}  # the general backward is told the rank
    if nd is None:
        nd = rank["spatial_dims"] = _spatial_dims(args.input_shape, args.spatial_dims)
    grad = _float_grad(args.grad_output)
    idx = _index_source(args.indices, grad.shape, "grad_output")
    shape = _check_shape(args.input_shape, grad.ndim)
    lay = _layout(shape, nd, args.channels_last, "input_shape")
    fmt, order = _args.check_index_format(args.index_format, args.storage_order)
    if any(shape[a] != grad.shape[a] for a in range(grad.ndim) if a not in lay.spatial):
        raise ValueError(
            f"grad_output {grad.shape} and input_shape {shape} must agree on the batch and "
            "channel dimensions"
        )
    registered = _FORWARDS.get(idx.name)
    if registered is not None and (registered["in_shape"] != shape or
                                   registered["lay"] != lay):
        registered = None
    wins = None
    if args.kernel_size is not None:
        kernel, strides, dil = _pool_ints(nd, args.kernel_size, args.stride, args.dilation)
        wins = _resolve(_spatial(shape, lay), kernel, strides, args.padding, dil,
                        args.ceil_mode)
    elif registered is not None:
        wins = registered["wins"]
    if wins is not None and tuple(w.out for w in wins) != _spatial(grad.shape, lay):
        raise ValueError(
            f"grad_output {grad.shape} does not have the pooled size of input_shape "
            f"{shape} for the given geometry"
        )
    target = _gradient_target(grad, shape, lay, wins or [None] * nd, args.chunks, registered)
    lead = _lead_only(tuple(grad.chunks), lay, tuple(target))
    if wins is None:  # geometry unknown: every plane in one task (still bitwise)
        axes = []
        for ax in lay.spatial:
            whole = _Src(np.array([0, grad.shape[ax]]), [(0, grad.shape[ax])])
            axes.append(_AxisPlan((shape[ax],), (shape[ax],), [whole, whole],
                                  [dict(a=0, b=shape[ax], lo=0, hi=grad.shape[ax])]))
        plan = _Plan(lay, shape, axes, True)
    else:
        plan = _make_plan(lay, shape, [target[a] for a in lay.spatial], wins, "gather",
                          pref=[grad.chunks[a] for a in lay.spatial])
        if any(w.has_empty() for w in wins):
            plan.single = True
    layout = _index_layout(lay, shape, fmt, order)

    def task(g, ix, block_id=None):
        (g, ix), locs, chunk_shape, reached = _gather_windows(plan, block_id, [g, ix], (0, 1))
        if not reached:
            return np.zeros(chunk_shape, dtype=g.dtype)
        coords, valid = _global_coords(ix, layout, _block_start(lay, lead, block_id))
        inside = valid.copy()
        local = []
        for j in range(nd):
            cj = coords[j] - locs[j]["a"]
            inside &= (cj >= 0) & (cj < chunk_shape[lay.spatial[j]])
            local.append(np.where(inside, cj, 0))
        l_spatial = tuple(chunk_shape[a] for a in lay.spatial)
        flat = np.where(inside, np.ravel_multi_index(tuple(local), l_spatial), -1)
        return memory(g, flat, chunk_shape, lay.channels_last, **rank)

    return _gather_run(task, [grad, idx], plan, lead, grad.dtype, target)


# --------------------------------------------------------------------------- avg backward


def _avg_backward(args, memory: Callable, nd: int):
    """The gathering backward of average pooling (``memory``: the in-memory backward)."""
    grad = _float_grad(args.grad_output)
    shape = _check_shape(args.input_shape, grad.ndim)
    lay = _layout(shape, nd, args.channels_last, "input_shape")
    kernel, strides, dil = _pool_ints(nd, args.kernel_size, args.stride, args.dilation)
    padding, ceil_mode, divisor = args.padding, args.ceil_mode, args.divisor_override
    _args.check_bool(ceil_mode, "ceil_mode")
    cip = _args.check_bool(args.count_include_pad, "count_include_pad")
    _args.check_divisor_override(divisor)
    wins = _resolve(_spatial(shape, lay), kernel, strides, padding, dil, ceil_mode)
    expected = tuple(
        wins[lay.spatial.index(a)].out if a in lay.spatial else shape[a]
        for a in range(len(shape))
    )
    if tuple(grad.shape) != expected:
        raise ValueError(
            f"grad_output must have the shape of the forward output {expected}, "
            f"got shape {tuple(grad.shape)}"
        )
    registered = _find_forward(
        lambda info: info["kind"] == "avg" and info["in_shape"] == shape
        and info["lay"] == lay and info["wins"] == wins
        and tuple(info["out_chunks"]) == tuple(grad.chunks)
    )
    target = _gradient_target(grad, shape, lay, wins, args.chunks, registered)
    lead = _lead_only(tuple(grad.chunks), lay, target)
    plan = _make_plan(lay, shape, [target[a] for a in lay.spatial], wins, "gather",
                      pref=[grad.chunks[a] for a in lay.spatial])

    def task(g, block_id=None):
        if plan.single:
            full = list(g.shape)
            for ax in lay.spatial:
                full[ax] = shape[ax]
            return memory(g, tuple(full), kernel, strides, padding, ceil_mode, cip, divisor,
                          lay.channels_last, dil)
        (g,), locs, chunk_shape, reached = _gather_windows(plan, block_id, [g], (0,))
        if not reached:
            return np.zeros(chunk_shape, dtype=g.dtype)
        region = list(g.shape)
        for j, ax in enumerate(lay.spatial):
            g = _pad_zeros(g, ax, locs[j]["count"])
            region[ax] = locs[j]["r1"] - locs[j]["r0"]
        pads = tuple(info["pads"] for info in locs)
        ceil = any(info["ceil"] for info in locs)
        res = memory(g, tuple(region), kernel, strides, pads, ceil, cip, divisor,
                     lay.channels_last, dil)
        return _place(chunk_shape, g.dtype, res, lay, locs)

    return _gather_run(task, [grad], plan, lead, grad.dtype, target)


# --------------------------------------------------------------------------- unpooling


def _unpool_wins(in_spatial, out_spatial, p: UnpoolParams) -> list[_Win]:
    return [
        _Win(o, k, s, b, e, 1, False, n)
        for o, k, s, b, e, n in zip(out_spatial, p.kernel, p.stride, p.padding.begin,
                                    p.padding.end, in_spatial)
    ]


def _unpool_params(args, nd: int) -> UnpoolParams:
    """The unpooling options, validated as the in-memory functions validate them."""
    return UnpoolParams.parse(nd, args.kernel_size, args.stride, args.padding,
                              args.channels_last, args.index_format, args.storage_order)


def _local_indices(ix, lay: _Layout, layout: IndexLayout, start, locs, pos_axis):
    """Indices of the unpooled plane -> row-major indices of the task's region; checks
    that every index lies inside its own window (as max pooling produces them)."""
    coords, valid = _global_coords(ix, layout, start)
    if not valid.all():
        spatial = _args.spatial_shape(layout.in_shape, layout.nd, layout.channels_last)
        raise _args.index_range_error("indices", math.prod(spatial), spatial)
    local = []
    region = []
    for j, ax in enumerate(lay.spatial):
        info, w = locs[j], pos_axis[j]
        shape = [1] * ix.ndim
        shape[ax] = ix.shape[ax]
        pos = (np.arange(ix.shape[ax], dtype=np.int64) + info["lo"]).reshape(shape)
        start = pos * w.stride - w.pb
        if np.any((coords[j] < start) | (coords[j] >= start + w.kernel)):
            raise ValueError(
                "indices: poolkit.dask max unpooling needs every index inside its own "
                "pooling window (as max pooling with the same kernel_size, stride and "
                "padding returns them); some index lies outside its window"
            )
        local.append(coords[j] - info["r0"])
        region.append(info["r1"] - info["r0"])
    return np.ravel_multi_index(tuple(local), tuple(region))


def _unpool(args, memory: Callable, nd: int):
    """Max unpooling: every output chunk gathers the inputs whose windows reach it."""
    p = _unpool_params(args, nd)
    x = _require_dask(args.x)
    _args.check_dtype(np.empty(0, x.dtype), "x")
    lay = _layout(x.shape, nd, p.channels_last)
    ix = _index_source(args.indices, x.shape, "x")
    in_spatial = _spatial(x.shape, lay)
    out_spatial = p.out_size(in_spatial, args.output_size, x.ndim)
    out_shape = list(x.shape)
    for j, ax in enumerate(lay.spatial):
        out_shape[ax] = out_spatial[j]
    out_shape = tuple(out_shape)
    wins = _unpool_wins(in_spatial, out_spatial, p)
    if args.chunks is not None:
        target = tuple(da.core.normalize_chunks(args.chunks, out_shape, dtype=x.dtype))
    else:
        target = _lead_chunks(tuple(x.chunks), lay, [
            _derived_input_chunks(w, x.chunks[ax]) for w, ax in zip(wins, lay.spatial)
        ])
    lead = _lead_only(tuple(x.chunks), lay, target)
    plan = _make_plan(lay, out_shape, [target[a] for a in lay.spatial], wins, "unpool",
                      pref=[x.chunks[a] for a in lay.spatial])
    layout = _index_layout(lay, out_shape, p.index_format, p.storage_order)

    def task(xb, ib, block_id=None):
        (xb, ib), locs, chunk_shape, reached = _gather_windows(plan, block_id, [xb, ib],
                                                               (0, 1))
        if not reached:
            return np.zeros(chunk_shape, dtype=xb.dtype)
        flat = _local_indices(ib, lay, layout, _block_start(lay, lead, block_id), locs,
                              wins)
        pads = tuple(info["pads"] for info in locs)
        res = memory(xb, flat, p.kernel, p.stride, pads, None, lay.channels_last)
        return _place(chunk_shape, xb.dtype, res, lay, locs)

    return _gather_run(task, [x, ix], plan, lead, x.dtype, target)


def _unpool_backward(args, memory: Callable, nd: int):
    """The backward of max unpooling, gathered per chunk of the unpooled input."""
    p = _unpool_params(args, nd)
    grad = _float_grad(args.grad_output)
    shape = _check_shape(args.input_shape, grad.ndim)
    lay = _layout(shape, nd, p.channels_last, "input_shape")
    ix = _index_source(args.indices, shape, "x")
    in_spatial = _spatial(shape, lay)
    out_spatial = _spatial(grad.shape, lay)
    try:
        p.out_size(in_spatial, out_spatial, len(shape))
    except ValueError as exc:
        raise ValueError(f"grad_output has an impossible unpooled size: {exc}") from None
    wins = _unpool_wins(in_spatial, out_spatial, p)
    target = (tuple(da.core.normalize_chunks(args.chunks, shape, dtype=grad.dtype))
              if args.chunks is not None else tuple(ix.chunks))
    lead = _lead_only(tuple(grad.chunks), lay, target)
    plan = _make_plan(lay, shape, [target[a] for a in lay.spatial], wins, "unpool_backward",
                      pref=[grad.chunks[a] for a in lay.spatial])
    unpooled = tuple(grad.shape[a] if a in lay.spatial else shape[a] for a in range(len(shape)))
    layout = _index_layout(lay, unpooled, p.index_format, p.storage_order)

    def task(g, ib, block_id=None):
        (g, ib), locs, _, _ = _gather_windows(plan, block_id, [g, ib], (0, 1))
        flat = _local_indices(ib, lay, layout, _block_start(lay, lead, block_id), locs,
                              wins)
        pads = tuple(info["pads"] for info in locs)
        res = memory(g, flat, tuple(ib.shape), p.kernel, p.stride, pads, lay.channels_last)
        for j, ax in enumerate(lay.spatial):
            res = _take(res, ax, locs[j]["a"] - locs[j]["lo"], locs[j]["b"] - locs[j]["lo"])
        return res

    return _gather_run(task, [grad, ix], plan, lead, grad.dtype, target)


# --------------------------------------------------------------------------- public API
#
# Every public function mirrors the in-memory function of the same name: it takes that
# function's parameters (read from its signature, so the two cannot drift apart), binds a
# call as the in-memory function would, and hands the bound arguments to one generic
# implementation per family (``_pool_forward``, ``_max_backward``, ...), which calls the
# in-memory function on each task's region.

_SHAPE_DOC = {
    1: ("(N, C, L)", "(C, L)"),
    2: ("(N, C, H, W)", "(C, H, W)"),
    3: ("(N, C, D, H, W)", "(C, D, H, W)"),
}

_KEYWORD = inspect.Parameter.KEYWORD_ONLY
#: ``chunks=``: the chunking of a gathered result, a keyword only poolkit.dask has
_CHUNKS = inspect.Parameter("chunks", _KEYWORD, default=None, annotation="Chunks")
#: ``owner=``: which task computes each output of a windowed forward pass
_OWNER = inspect.Parameter("owner", _KEYWORD, default="window_start", annotation="str")
#: its entry in the Parameters section of those functions' docstrings
_OWNER_DOC = f"""    owner : {{{", ".join(f'"{o}"' for o in _OWNERS)}}}, default "window_start"
        Which task computes each output: the one whose input chunk holds the output's
        window start (a halo on the right only), or the one holding its stride point
        ``i * stride`` (a halo of the begin pad on the left, the rest on the right):
        then input chunks that are multiples of the stride give regular output chunks
        (``chunk // stride``), which ``to_zarr`` writes without a rechunk. The same
        bits either way."""


def _dask_annotation(annotation: Any) -> Any:
    """An in-memory annotation with dask arrays in place of NumPy ones."""
    if not isinstance(annotation, str):
        return annotation
    return annotation.replace("np.ndarray", "da.Array").replace("ArrayLike", "da.Array")


#: the names of the public functions, in order of definition (``__all__``: at the end)
_PUBLIC: list[str] = []


def _public(name: str, impl: Callable, doc: str, params: list[inspect.Parameter],
            returns: str | None = None, **facts: Any):
    """The public ``poolkit.dask.<name>`` with the parameters ``params`` (which
    ``inspect.signature`` and ``help`` show): a call binds its arguments to them
    (defaults filled in) and returns ``impl(args, **facts)``, ``args`` holding each
    argument as an attribute."""
    if returns is None:
        returns = ("da.Array | tuple[da.Array, da.Array]"
                   if any(p.name == "return_indices" for p in params) else "da.Array")
    signature = inspect.Signature(params, return_annotation=returns)

    def public(*args: Any, **kwargs: Any) -> Any:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{name}() {exc}") from None
        bound.apply_defaults()
        return impl(SimpleNamespace(**bound.arguments), **facts)

    public.__name__ = public.__qualname__ = name
    public.__doc__ = doc
    public.__signature__ = signature
    public.__annotations__ = {p.name: p.annotation for p in params} | {"return": returns}
    _PUBLIC.append(name)
    return public


def _parameters(name: str, keep: Sequence[str] | None = None) -> list[inspect.Parameter]:
    """The parameters of the in-memory ``poolkit.<name>`` (only ``keep``, if given; never
    ``out``: a dask result is always a new array), annotated for dask arrays."""
    own = inspect.signature(getattr(_pk, name)).parameters.values()
    return [p.replace(annotation=_dask_annotation(p.annotation)) for p in own
            if p.name != "out" and (keep is None or p.name in keep)]


def _mirror(name: str, impl: Callable, doc: str, *extra: inspect.Parameter, **facts: Any):
    """The dask version of the in-memory ``poolkit.<name>``: its parameters, then the
    keyword-only ``extra``; runs ``impl(args, memory=poolkit.<name>, **facts)``."""
    return _public(name, impl, doc, _parameters(name) + list(extra),
                   memory=getattr(_pk, name), **facts)


def _geometry_keywords(forward: str) -> list[inspect.Parameter]:
    """The geometry options of the in-memory ``forward`` as keyword-only parameters, with
    ``kernel_size`` optional: how a max backward is told the windows."""
    params = inspect.signature(getattr(_pk, forward)).parameters
    out = []
    for name in ("kernel_size", "stride", "padding", "dilation", "ceil_mode"):
        p = params[name].replace(kind=_KEYWORD)
        if name == "kernel_size":
            p = p.replace(default=None, annotation=f"{p.annotation} | None")
        out.append(p)
    return out


def _numpydoc(summary: str, parameters: str, returns: str, examples: str) -> str:
    """A numpydoc docstring: ``summary`` (and any further paragraphs), then the sections
    Parameters, Returns and Examples (their bodies written indented by four spaces)."""
    return (f"{summary}\n\n    Parameters\n    ----------\n{parameters}\n\n"
            f"    Returns\n    -------\n{returns}\n\n    Examples\n    --------\n{examples}\n    ")


#: the first line of every example
_IMPORTS = "    >>> import numpy as np, dask.array as da, poolkit.dask as pkd"

plan_chunks = _public("plan_chunks", _plan_chunks, _numpydoc(
    """How a pooling of ``x`` maps to tasks (no computation).""",
    """    x : dask.array.Array
        The pooling input, ``(N, C, *spatial)`` or ``(C, *spatial)`` (channels last with
        ``channels_last=True``).
    kernel_size, stride, padding, dilation, ceil_mode, channels_last
        As in :func:`max_pool`.
    spatial_dims : int, optional
        Number of spatial dims; default ``len(kernel_size)`` for a tuple, else
        ``x.ndim - 2``.
    owner : {"window_start", "stride"}, default "window_start"
        The owner rule, as in :func:`max_pool`.""",
    """    dict
        ``input_chunks`` (the spatial chunking the tasks run on, after merging chunks
        smaller than the halo), ``output_chunks``, ``halo`` (per spatial axis, the
        right-hand depth read from the next chunk), ``left_halo`` (the left-hand depth
        read from the previous chunk: 0 with ``owner="window_start"``) and ``merged``
        (whether the input had to be rechunked).""",
    """    >>> import dask.array as da, poolkit.dask as pkd
    >>> x = da.zeros((1, 1, 10, 10), chunks=(1, 1, 4, 5))
    >>> plan = pkd.plan_chunks(x, (3, 3), stride=2, padding=1)
    >>> plan["halo"], plan["input_chunks"]  # rows: the 2-row last chunk is merged
    ((2, 1), ((4, 6), (5, 5)))"""),
    # the geometry options of max_pool, then the rank
    _parameters("max_pool", ("x", "kernel_size", "stride", "padding", "dilation",
                             "ceil_mode", "channels_last"))
    + [inspect.Parameter("spatial_dims", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                         default=None, annotation="int | None"), _OWNER],
    returns="dict")

max_pool = _mirror("max_pool", _pool_forward, _numpydoc(
    """Max pooling of a dask array over any number of trailing spatial dimensions.

    Lazy and bit-identical to :func:`poolkit.max_pool` for every option and any input
    chunking (see the module docstring for the chunk/task rule).""",
    f"""    x : dask.array.Array
        ``(N, C, *spatial)`` or ``(C, *spatial)``; ``(N, *spatial, C)`` or
        ``(*spatial, C)`` with ``channels_last=True``. Any chunking.
    kernel_size, stride, padding, dilation, ceil_mode, return_indices, channels_last, \
index_format, storage_order
        As in :func:`poolkit.max_pool`; indices are global (into the whole input plane,
        or the whole input with ``index_format="global"``).
{_OWNER_DOC}""",
    """    out : dask.array.Array
        The pooled array; its spatial chunks are the windows each input chunk owns.
    indices : dask.array.Array of int64, optional
        With ``return_indices=True``, chunked like ``out``.""",
    f"""{_IMPORTS}
    >>> x = da.from_array(np.arange(16.0).reshape(1, 1, 4, 4), chunks=2)
    >>> pkd.max_pool(x, (2, 2)).compute()[0, 0]
    array([[ 5.,  7.],
           [13., 15.]])"""), _OWNER, nd=None, kind="max")


def _make_max(nd: int):
    first, unbatched = _SHAPE_DOC[nd]
    pool = _mirror(f"max_pool{nd}d", _pool_forward, _numpydoc(
        f"""{nd}-D max pooling of a dask array, lazy and bit-identical to
    :func:`poolkit.max_pool{nd}d`.""",
        f"""    x : dask.array.Array
        ``{first}`` or ``{unbatched}`` (channels last with ``channels_last=True``), any
        chunking.
    kernel_size, stride, padding, dilation, ceil_mode, return_indices, channels_last, \
index_format, storage_order
        As in :func:`poolkit.max_pool{nd}d`. Indices are global: into the whole input
        plane (or the whole input with ``index_format="global"``).
{_OWNER_DOC}""",
        """    out : dask.array.Array
        Pooled values; spatial chunks: the windows each input chunk owns.
    indices : dask.array.Array of int64, optional
        With ``return_indices=True``.""",
        f"""{_IMPORTS}
    >>> x = da.from_array(np.arange(6.0).reshape((1, 1) + (1,) * {nd - 1} + (6,)), chunks=2)
    >>> pkd.max_pool{nd}d(x, (1,) * {nd - 1} + (2,)).compute().ravel()
    array([1., 3., 5.])"""), _OWNER, nd=nd, kind="max")
    backward = _mirror(f"max_pool{nd}d_backward", _max_backward, _numpydoc(
        f"""Gradient of :func:`max_pool{nd}d` (dask), gathered per chunk.

    Every gradient chunk pulls the output gradients and indices of the windows that reach
    it and runs :func:`poolkit.max_pool{nd}d_backward` on them, in output order: the result
    is bit-identical to the in-memory backward.""",
        f"""    grad_output, indices : dask.array.Array
        Shaped like the forward output; ``indices`` as the forward returned them.
    input_shape : tuple of int
        Shape of the forward input.
    channels_last, index_format, storage_order
        As in :func:`poolkit.max_pool{nd}d_backward`.
    chunks : optional
        Chunking of the returned gradient; default: the forward input's chunking when
        ``indices`` comes from :func:`max_pool{nd}d` (else derived from the windows).
    kernel_size, stride, padding, dilation, ceil_mode : optional
        The forward geometry. Not needed when ``indices`` comes from
        :func:`max_pool{nd}d`; without either, each plane is one task.""",
        """    grad_input : dask.array.Array
        Shape ``input_shape``, dtype of ``grad_output``.""",
        f"""{_IMPORTS}
    >>> x = da.from_array(np.array([1.0, 3.0, 2.0, 0.0]).reshape((1, 1) + (1,) * {nd - 1}
    ...                   + (4,)), chunks=2)
    >>> y, idx = pkd.max_pool{nd}d(x, (1,) * {nd - 1} + (2,), return_indices=True)
    >>> pkd.max_pool{nd}d_backward(da.ones_like(y), idx, x.shape).compute().ravel()
    array([0., 1., 1., 0.])"""), _CHUNKS, *_geometry_keywords(f"max_pool{nd}d"), nd=nd)
    return pool, backward


max_pool1d, max_pool1d_backward = _make_max(1)
max_pool2d, max_pool2d_backward = _make_max(2)
max_pool3d, max_pool3d_backward = _make_max(3)

max_pool_backward = _mirror("max_pool_backward", _max_backward, _numpydoc(
    """Gradient of :func:`max_pool` (dask), any number of spatial dims.""",
    """    grad_output, indices : dask.array.Array
        Shaped like the forward output.
    input_shape : tuple of int
        Shape of the forward input.
    channels_last, spatial_dims, index_format, storage_order
        As in :func:`poolkit.max_pool_backward`.
    chunks, kernel_size, stride, padding, dilation, ceil_mode : optional
        As in :func:`max_pool2d_backward`.""",
    """    grad_input : dask.array.Array
        Shape ``input_shape``.""",
    f"""{_IMPORTS}
    >>> x = da.from_array(np.array([[[[1.0, 3.0], [2.0, 0.0]]]]), chunks=1)
    >>> y, idx = pkd.max_pool(x, (2, 2), return_indices=True)
    >>> pkd.max_pool_backward(da.ones_like(y), idx, x.shape).compute()[0, 0]
    array([[0., 1.],
           [0., 0.]])"""), _CHUNKS, *_geometry_keywords("max_pool"), nd=None)


def _make_avg(nd: int):
    first, unbatched = _SHAPE_DOC[nd]
    pool = _mirror(f"avg_pool{nd}d", _pool_forward, _numpydoc(
        f"""{nd}-D average pooling of a dask array, bit-identical to
    :func:`poolkit.avg_pool{nd}d` for any chunking.

    Each task runs the in-memory kernel on exactly its windows (explicit per-chunk pads),
    so sums, the divisor rules (``count_include_pad``, the ceil overhang past the end
    padding, ``divisor_override``) and the rounding are the in-memory ones.""",
        f"""    x : dask.array.Array
        ``{first}`` or ``{unbatched}`` (channels last with ``channels_last=True``).
    kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, \
channels_last, dilation
        As in :func:`poolkit.avg_pool{nd}d`.
{_OWNER_DOC}""",
        """    dask.array.Array
        Pooled array (float64 for integer inputs, as in memory).""",
        f"""{_IMPORTS}
    >>> x = da.from_array(np.arange(4.0).reshape((1, 1) + (1,) * {nd - 1} + (4,)), chunks=1)
    >>> pkd.avg_pool{nd}d(x, (1,) * {nd - 1} + (2,)).compute().ravel()
    array([0.5, 2.5])"""), _OWNER, nd=nd, kind="avg")
    backward = _mirror(f"avg_pool{nd}d_backward", _avg_backward, _numpydoc(
        f"""Gradient of :func:`avg_pool{nd}d` (dask), gathered per chunk.""",
        f"""    grad_output : dask.array.Array
        Shaped like the forward output.
    input_shape, kernel_size, stride, padding, ceil_mode, count_include_pad, \
divisor_override, channels_last, dilation
        As in :func:`poolkit.avg_pool{nd}d_backward`.
    chunks : optional
        Chunking of the returned gradient; default: the forward input's (when
        ``grad_output`` is chunked like a :func:`avg_pool{nd}d` output), else derived.""",
        """    dask.array.Array
        Shape ``input_shape``, bit-identical to the in-memory backward.""",
        f"""{_IMPORTS}
    >>> g = da.ones((1, 1) + (1,) * {nd - 1} + (2,), chunks=1)
    >>> shape = (1, 1) + (1,) * {nd - 1} + (4,)
    >>> k = (1,) * {nd - 1} + (2,)
    >>> pkd.avg_pool{nd}d_backward(g, shape, k).compute().ravel()
    array([0.5, 0.5, 0.5, 0.5])"""), _CHUNKS, nd=nd)
    return pool, backward


avg_pool1d, avg_pool1d_backward = _make_avg(1)
avg_pool2d, avg_pool2d_backward = _make_avg(2)
avg_pool3d, avg_pool3d_backward = _make_avg(3)


def _make_lp(nd: int):
    first, unbatched = _SHAPE_DOC[nd]
    return _mirror(f"lp_pool{nd}d", _pool_forward, _numpydoc(
        f"""{nd}-D power-average (Lp) pooling of a dask array, bit-identical to
    :func:`poolkit.lp_pool{nd}d`.""",
        f"""    x : dask.array.Array
        ``{first}`` or ``{unbatched}``, float16/32/64.
    norm_type, kernel_size, stride, ceil_mode, channels_last, padding, dilation
        As in :func:`poolkit.lp_pool{nd}d`.
{_OWNER_DOC}""",
        "    dask.array.Array",
        f"""{_IMPORTS}
    >>> x = da.from_array(np.array([3.0, 4.0]).reshape((1, 1) + (1,) * {nd - 1} + (2,)),
    ...                   chunks=1)
    >>> pkd.lp_pool{nd}d(x, 2, (1,) * {nd - 1} + (2,)).compute().ravel()
    array([5.])"""), _OWNER, nd=nd, kind="lp")


lp_pool1d = _make_lp(1)
lp_pool2d = _make_lp(2)
lp_pool3d = _make_lp(3)


def _make_unpool(nd: int):
    first, unbatched = _SHAPE_DOC[nd]
    unpool = _mirror(f"max_unpool{nd}d", _unpool, _numpydoc(
        f"""{nd}-D max unpooling of dask arrays, bit-identical to
    :func:`poolkit.max_unpool{nd}d`.

    Every output chunk gathers the inputs whose windows reach it (in input order, so the
    last write wins as in memory). Each index must lie inside its own pooling window, as
    max pooling with the same ``kernel_size``, ``stride`` and ``padding`` returns them
    (checked; a ValueError otherwise).""",
        f"""    x, indices : dask.array.Array
        ``{first}`` or ``{unbatched}``, chunked alike.
    kernel_size, stride, padding, output_size, channels_last, index_format, storage_order
        As in :func:`poolkit.max_unpool{nd}d`.
    chunks : optional
        Chunking of the output; default: each chunk starts where the windows of an input
        chunk start.""",
        "    dask.array.Array",
        f"""{_IMPORTS}
    >>> x = da.from_array(np.array([1.0, 3.0, 2.0, 0.0]).reshape((1, 1) + (1,) * {nd - 1}
    ...                   + (4,)), chunks=2)
    >>> k = (1,) * {nd - 1} + (2,)
    >>> y, idx = pkd.max_pool{nd}d(x, k, return_indices=True)
    >>> pkd.max_unpool{nd}d(y, idx, k).compute().ravel()
    array([0., 3., 2., 0.])"""), _CHUNKS, nd=nd)
    backward = _mirror(f"max_unpool{nd}d_backward", _unpool_backward, _numpydoc(
        f"""Gradient of :func:`max_unpool{nd}d` (dask), bit-identical to
    :func:`poolkit.max_unpool{nd}d_backward`.""",
        f"""    grad_output : dask.array.Array
        Shaped like the unpooled output.
    indices : dask.array.Array
        The unpooling indices (shape ``input_shape``).
    input_shape, kernel_size, stride, padding, channels_last, index_format, storage_order
        As in :func:`poolkit.max_unpool{nd}d_backward`.
    chunks : optional
        Chunking of the returned gradient; default: the chunking of ``indices``.""",
        """    dask.array.Array
        Shape ``input_shape``.""",
        f"""{_IMPORTS}
    >>> idx = da.from_array(np.array([1, 2]).reshape((1, 1) + (1,) * {nd - 1} + (2,)))
    >>> g = da.arange(4.0).reshape((1, 1) + (1,) * {nd - 1} + (4,))
    >>> k = (1,) * {nd - 1} + (2,)
    >>> pkd.max_unpool{nd}d_backward(g, idx, idx.shape, k).compute().ravel()
    array([1., 2.])"""), _CHUNKS, nd=nd)
    return unpool, backward


max_unpool1d, max_unpool1d_backward = _make_unpool(1)
max_unpool2d, max_unpool2d_backward = _make_unpool(2)
max_unpool3d, max_unpool3d_backward = _make_unpool(3)


# --------------------------------------------------------------------------- whole planes


def _whole_planes(x: da.Array, lay: _Layout, fn, out_spatial, dtype, keep=True, rec=False):
    """Run ``fn`` per block with the spatial axes in one chunk (documented: a plane
    reduction split across chunks would not be bitwise)."""
    x = x.rechunk({ax: -1 for ax in lay.spatial})
    chunks = list(x.chunks)
    for j, ax in enumerate(lay.spatial):
        chunks[ax] = (out_spatial[j],)
    if not keep:
        chunks = [c for a, c in enumerate(chunks) if a not in lay.spatial]
    odtype = np.dtype([("v", dtype), ("i", np.int64)]) if rec else dtype

    def task(block):
        res = fn(block)
        if not rec:
            return res
        out = np.empty(res[0].shape, dtype=odtype)
        out["v"], out["i"] = res
        return out

    meta = np.empty((0,) * len(chunks), dtype=odtype)
    kw = {} if keep else dict(drop_axis=list(lay.spatial))
    res = da.map_blocks(_on_one_thread(task), x, chunks=tuple(chunks), dtype=odtype, meta=meta,
                        **kw)
    return _fields(res, dtype) if rec else res


def _plane_forward(args, memory: Callable, nd: int | None = None):
    """Global (``nd=None``: every dim after N and C) and adaptive pooling: ``memory`` on
    whole planes, given the call's other arguments as they are."""
    x = _require_dask(args.x)
    if nd is None:
        if x.ndim < 3:
            raise ValueError(
                f"x must have at least 3 dimensions (N, C, *spatial) for global pooling, "
                f"got shape {x.shape}"
            )
        nd = x.ndim - 2
    lay = _layout(x.shape, nd, args.channels_last)
    keep = _args.check_bool(getattr(args, "keepdims", True), "keepdims")
    ret = _args.check_bool(getattr(args, "return_indices", False), "return_indices")
    options = {k: v for k, v in vars(args).items() if k != "x"}
    probe_options = dict(options)
    if "output_size" in options:  # adaptive
        sizes = _args.check_adaptive_output_size(args.output_size, _spatial(x.shape, lay))
        probe_options["output_size"] = 1
    else:
        sizes = (1,) * nd
    probe = memory(np.zeros((1, 1) + (1,) * nd, x.dtype), **probe_options)
    dtype = (probe[0] if isinstance(probe, tuple) else probe).dtype
    return _whole_planes(x, lay, lambda b: memory(b, **options), sizes, dtype, keep, ret)


def _global_backward(args, memory: Callable):
    """The backward of global pooling: ``memory`` on whole planes."""
    grad = _require_dask(args.grad_output, "grad_output")
    shape = _args.check_shape_arg(args.input_shape, "input_shape")
    if len(shape) < 3:
        raise ValueError(f"input_shape must have at least 3 dimensions, got {shape}")
    lay = _layout(shape, len(shape) - 2, args.channels_last, "input_shape")
    keep = grad.ndim == len(shape)
    srcs = [grad]
    if hasattr(args, "indices"):
        srcs.append(_require_dask(args.indices, "indices"))
    lead_axes = [a for a in range(len(shape)) if a not in lay.spatial]
    out_chunks = [None] * len(shape)
    for a in range(len(shape)):
        if a in lay.spatial:
            out_chunks[a] = (shape[a],)
    for i, a in enumerate(lead_axes):
        out_chunks[a] = grad.chunks[a if keep else i]
    srcs = [s.rechunk({a: -1 for a in range(s.ndim) if a in lay.spatial}) for s in srcs]
    srcs = [srcs[0]] + [s.rechunk(srcs[0].chunks) for s in srcs[1:]]
    meta = np.empty((0,) * len(shape), dtype=grad.dtype)

    def task(*blocks):
        full = list(shape)
        for i, a in enumerate(lead_axes):
            full[a] = blocks[0].shape[a if keep else i]
        return memory(*blocks, tuple(full), args.channels_last)

    kw = {} if keep else dict(new_axis=list(lay.spatial))
    res = da.map_blocks(_on_one_thread(task), *srcs, chunks=tuple(out_chunks),
                        dtype=grad.dtype, meta=meta, **kw)
    if args.chunks is not None:
        res = res.rechunk(da.core.normalize_chunks(args.chunks, shape, dtype=grad.dtype))
    return res


global_max_pool = _mirror("global_max_pool", _plane_forward, _numpydoc(
    """Max over all spatial dims of a dask array (:func:`poolkit.global_max_pool`).

    The spatial axes are brought to one chunk (batch and channel chunks are kept), so a
    task pools whole planes.""",
    """    x : dask.array.Array
        ``(N, C, *spatial)`` (``(N, *spatial, C)`` with ``channels_last=True``).
    keepdims, return_indices, channels_last
        As in :func:`poolkit.global_max_pool`.""",
    """    out : dask.array.Array
    indices : dask.array.Array, optional""",
    f"""{_IMPORTS}
    >>> x = da.from_array(np.array([[[1.0, 4.0], [3.0, 2.0]]])[None], chunks=1)
    >>> pkd.global_max_pool(x, keepdims=False).compute()
    array([[4.]])"""))

global_avg_pool = _mirror("global_avg_pool", _plane_forward, _numpydoc(
    """Mean over all spatial dims of a dask array (:func:`poolkit.global_avg_pool`).

    Bitwise only with whole planes in a task: the spatial axes are brought to one chunk
    (a mean of per-chunk partial sums would round differently).""",
    """    x : dask.array.Array
        ``(N, C, *spatial)`` (``(N, *spatial, C)`` with ``channels_last=True``).
    keepdims, channels_last
        As in :func:`poolkit.global_avg_pool`.""",
    "    dask.array.Array",
    f"""{_IMPORTS}
    >>> x = da.from_array(np.arange(8.0).reshape(2, 1, 4), chunks=1)
    >>> pkd.global_avg_pool(x, keepdims=False).compute()
    array([[1.5],
           [5.5]])"""))

global_lp_pool = _mirror("global_lp_pool", _plane_forward, _numpydoc(
    """Lp norm over all spatial dims of a dask array (:func:`poolkit.global_lp_pool`),
    whole planes per task.""",
    """    x : dask.array.Array
        ``(N, C, *spatial)``.
    p, keepdims, channels_last
        As in :func:`poolkit.global_lp_pool`.""",
    "    dask.array.Array",
    f"""{_IMPORTS}
    >>> x = da.from_array(np.array([3.0, 4.0]).reshape(1, 1, 2), chunks=1)
    >>> pkd.global_lp_pool(x, 2.0, keepdims=False).compute()
    array([[5.]])"""))

global_avg_pool_backward = _mirror("global_avg_pool_backward", _global_backward, _numpydoc(
    """Gradient of :func:`global_avg_pool` (dask): whole planes per task.""",
    """    grad_output : dask.array.Array
        ``(N, C, 1, ..., 1)`` or ``(N, C)``.
    input_shape, channels_last
        As in :func:`poolkit.global_avg_pool_backward`.
    chunks : optional
        Chunking of the result; default: whole planes, batch/channel chunks of
        ``grad_output``.""",
    "    dask.array.Array",
    """    >>> import dask.array as da, poolkit.dask as pkd
    >>> pkd.global_avg_pool_backward(da.ones((1, 1)), (1, 1, 4)).compute()
    array([[[0.25, 0.25, 0.25, 0.25]]])"""), _CHUNKS)

global_max_pool_backward = _mirror("global_max_pool_backward", _global_backward, _numpydoc(
    """Gradient of :func:`global_max_pool` (dask): whole planes per task.""",
    """    grad_output, indices : dask.array.Array
        As the forward returned them.
    input_shape, channels_last
        As in :func:`poolkit.global_max_pool_backward`.
    chunks : optional
        Chunking of the result.""",
    "    dask.array.Array",
    f"""{_IMPORTS}
    >>> x = da.from_array(np.array([1.0, 3.0]).reshape(1, 1, 2))
    >>> y, i = pkd.global_max_pool(x, return_indices=True)
    >>> pkd.global_max_pool_backward(da.ones_like(y), i, x.shape).compute()
    array([[[0., 1.]]])"""), _CHUNKS)


def _make_adaptive(nd: int, kind: str):
    first, unbatched = _SHAPE_DOC[nd]
    extra = ", return_indices" if kind == "max" else ""
    return _mirror(f"adaptive_{kind}_pool{nd}d", _plane_forward, _numpydoc(
        f"""{nd}-D adaptive {kind} pooling of a dask array (same arguments as
    :func:`poolkit.adaptive_{kind}_pool{nd}d`).

    The spatial axes are brought to one chunk (adaptive windows are spread over the whole
    plane); batch and channel chunks are kept, one task per block.""",
        f"""    x : dask.array.Array
        ``{first}`` or ``{unbatched}``.
    output_size{extra}, channels_last
        As in :func:`poolkit.adaptive_{kind}_pool{nd}d`.""",
        f"""    dask.array.Array{" (and indices)" if kind == "max" else ""}""",
        f"""{_IMPORTS}
    >>> x = da.from_array(np.arange(4.0).reshape((1, 1) + (1,) * {nd - 1} + (4,)), chunks=1)
    >>> pkd.adaptive_{kind}_pool{nd}d(x, (1,) * {nd - 1} + (2,)).compute().ravel()
    array({"[1., 3.]" if kind == "max" else "[0.5, 2.5]"})"""), nd=nd)


adaptive_max_pool1d = _make_adaptive(1, "max")
adaptive_max_pool2d = _make_adaptive(2, "max")
adaptive_max_pool3d = _make_adaptive(3, "max")
adaptive_avg_pool1d = _make_adaptive(1, "avg")
adaptive_avg_pool2d = _make_adaptive(2, "avg")
adaptive_avg_pool3d = _make_adaptive(3, "avg")


# --------------------------------------------------------------------------- pyramids

_AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
_DEFAULT_AXES = {2: "yx", 3: "zyx", 4: "czyx", 5: "tczyx"}


def pyramid_axes(ndim: int, axes: Any) -> list[str]:
    """The OME-NGFF axis names of a pyramid's image (``axes`` checked, or the default for
    ``ndim``), as :func:`pyramid` uses them; ``ValueError`` names what is wrong.

    Examples
    --------
    >>> pyramid_axes(3, None)
    ['z', 'y', 'x']
    """
    if axes is None:
        if ndim not in _DEFAULT_AXES:
            raise ValueError(
                f"x must have 2 to 5 dimensions for an OME-Zarr image, got {ndim}"
            )
        return list(_DEFAULT_AXES[ndim])
    names = [str(a).lower() for a in axes]
    if len(names) != ndim:
        raise ValueError(f"axes must name each of the {ndim} dimensions of x, got {axes!r}")
    order = "tczyx"
    if len(set(names)) != ndim or any(n not in order for n in names) or names != sorted(
        names, key=order.index
    ):
        raise ValueError(
            f"axes must be distinct names from 't', 'c', 'z', 'y', 'x' in that order "
            f"(OME-NGFF), got {axes!r}"
        )
    if not any(_AXIS_TYPES[n] == "space" for n in names) or sum(
        _AXIS_TYPES[n] == "space" for n in names
    ) < 2:
        raise ValueError(f"axes must include 2 or 3 space axes ('z', 'y', 'x'), got {axes!r}")
    return names


def pyramid_levels(shape: Sequence[int], factor: int = 2, target: int = 256) -> int:
    """Default number of levels: halve (by ``factor``, rounding up) until every spatial
    size is at most ``target``.

    Parameters
    ----------
    shape : sequence of int
        Spatial sizes of level 0.
    factor : int, default 2
    target : int, default 256

    Returns
    -------
    int
        At least 1.

    Examples
    --------
    >>> pyramid_levels((1000, 700))
    3
    """
    sizes = list(shape)
    levels = 1
    while max(sizes) > target and max(sizes) > 1:
        sizes = [-(-v // factor) for v in sizes]
        levels += 1
    return levels


def pyramid_step(arr: da.Array, nd: int, factor: int, method: str) -> da.Array:
    """One pyramid step of :func:`pyramid` (lazy) on ``(..., *spatial)`` with 0 to 2
    leading axes: ``method`` pooling by ``factor`` over the last ``nd`` axes, ceil_mode.

    Examples
    --------
    >>> import dask.array as da
    >>> pyramid_step(da.ones((5, 5)), 2, 2, "max").shape
    (3, 3)
    """
    lead = arr.ndim - nd
    work = arr[None] if lead == 0 else arr
    k = (factor,) * nd
    if method == "max":
        out = max_pool(work, k, k, ceil_mode=True)
    else:
        out = {1: avg_pool1d, 2: avg_pool2d, 3: avg_pool3d}[nd](work, k, k, ceil_mode=True)
        if arr.dtype.kind in "iu":
            info = np.iinfo(arr.dtype)
            out = da.clip(da.rint(out), info.min, info.max).astype(arr.dtype)
        elif out.dtype != arr.dtype:
            out = out.astype(arr.dtype)
    return out[0] if lead == 0 else out


def _store(arr: da.Array, target: Any, progress: bool, label: str) -> None:
    """Compute ``arr`` into ``target`` (a zarr array), with a progress bar if asked."""
    if not progress:
        da.store(arr, target, lock=False)
        return
    import sys

    client = None
    try:
        from distributed import default_client

        client = default_client()
    except (ImportError, ValueError):
        pass
    print(label, file=sys.stderr)
    if client is not None:
        from distributed import progress as dprogress

        fut = client.compute(da.store(arr, target, lock=False, compute=False))
        dprogress(fut)
        fut.result()
        print(file=sys.stderr)
        return
    from dask.diagnostics import ProgressBar

    with ProgressBar(out=sys.stderr):
        da.store(arr, target, lock=False)


def pyramid(
    x: Any,
    store: Any,
    *,
    factor: int = 2,
    levels: int | None = None,
    method: str = "max",
    axes: Any = None,
    chunks: Any = None,
    scale: Sequence[float] | None = None,
    unit: str | None = "micrometer",
    name: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> list[tuple[int, ...]]:
    """Write an OME-NGFF 0.5 multiscale image (a zarr v3 group) of ``x``.

    Level 0 is ``x``; level ``l + 1`` pools level ``l`` (read back from the store, so
    every graph stays one level deep) by ``factor`` along each space axis with
    ``ceil_mode=True``: a partial window at an edge is kept (pooled over the pixels it
    has), never cropped. Each level is bit-identical to in-memory poolkit pooling of the
    previous one.

    Parameters
    ----------
    x : dask.array.Array or array_like
        2 to 5 dimensions, axes ``t, c, z, y, x`` in that order (a subset); NumPy arrays
        are wrapped with :func:`dask.array.from_array`.
    store : str, path or zarr store
        Where to write the group (zarr v3).
    factor : int, default 2
        Downsampling factor (kernel and stride) of every space axis.
    levels : int, optional
        Number of levels, level 0 included; default :func:`pyramid_levels`.
    method : {"max", "avg"}, default "max"
        ``"avg"`` keeps the dtype: integers are rounded to nearest (float64 means first).
    axes : str or sequence of str, optional
        Axis names; default ``yx``, ``zyx``, ``czyx`` or ``tczyx`` by rank.
    chunks : optional
        Chunks of every stored level (capped at the level's shape); default 1 along
        ``t``/``c``, 256 (2 space axes) or 64 (3) along space axes.
    scale : sequence of float, optional
        Level-0 pixel size of each space axis (default 1).
    unit : str or None, default "micrometer"
        Unit of the space axes (an NGFF unit name), or None for none.
    name : str, optional
        The multiscale's name.
    overwrite : bool, default False
        Replace an existing store; otherwise an existing one raises FileExistsError.
    progress : bool, default False
        Show a progress bar per level (dask's ``ProgressBar``, or distributed's
        ``progress`` when a distributed client is active).

    Returns
    -------
    list of tuple of int
        Shape of each level.

    Notes
    -----
    Metadata: ``attributes["ome"] = {"version": "0.5", "multiscales": [...]}`` with the
    axes (type, unit), the dataset paths ``"0"``, ``"1"``, ... and per level a ``scale``
    of ``pixel * factor**l`` and a ``translation`` of ``pixel * (factor**l - 1) / 2`` on
    space axes: a level-``l`` pixel covers ``factor**l`` level-0 pixels, so its centre
    lies ``(factor**l - 1) / 2`` level-0 pixels after theirs.

    Examples
    --------
    >>> import numpy as np, tempfile, os, poolkit.dask as pkd
    >>> path = os.path.join(tempfile.mkdtemp(), "img.zarr")
    >>> pkd.pyramid(np.arange(25, dtype=np.float32).reshape(5, 5), path, levels=3)
    [(5, 5), (3, 3), (2, 2)]
    """
    import zarr

    if not isinstance(x, da.Array):
        x = da.from_array(np.asarray(x))
    names = pyramid_axes(x.ndim, axes)
    f = _args.int_tuple(factor, 1, "factor", minimum=2)[0]
    if method not in ("max", "avg"):
        raise ValueError(f"method must be 'max' or 'avg', got {method!r}")
    space = [i for i, n in enumerate(names) if _AXIS_TYPES[n] == "space"]
    nd = len(space)
    if space != list(range(x.ndim - nd, x.ndim)):
        raise ValueError("the space axes must be the last axes")
    n_levels = pyramid_levels(x.shape[-nd:], f) if levels is None else _args.int_tuple(
        levels, 1, "levels", minimum=1)[0]
    pixel = [1.0] * nd if scale is None else [float(v) for v in scale]
    if len(pixel) != nd:
        raise ValueError(f"scale must give one pixel size per space axis ({nd}), got {scale}")
    # probe the dtype (raises the in-memory TypeError for unsupported ones)
    pyramid_step(da.zeros((1,) * x.ndim, dtype=x.dtype), nd, f, method)
    if chunks is None:
        base = tuple(1 if _AXIS_TYPES[n] != "space" else (256 if nd == 2 else 64)
                     for n in names)
    else:
        base = _args.int_tuple(chunks, x.ndim, "chunks", minimum=1)
    if isinstance(store, (str, os.PathLike)) and os.path.exists(store) and not overwrite:
        raise FileExistsError(f"{os.fspath(store)} exists; pass overwrite=True to replace it")
    root = zarr.open_group(store, mode="w" if overwrite else "w-", zarr_format=3)
    shapes = []
    cur = x
    datasets = []
    for level in range(n_levels):
        if level:
            prev = da.from_zarr(root[str(level - 1)])
            cur = pyramid_step(prev, nd, f, method)
        level_chunks = tuple(min(c, s) for c, s in zip(base, cur.shape))
        cur = cur.rechunk(level_chunks)
        arr = root.create_array(str(level), shape=cur.shape, dtype=cur.dtype,
                                chunks=level_chunks, dimension_names=names)
        _store(cur, arr, progress, f"level {level}/{n_levels - 1} {cur.shape}")
        shapes.append(tuple(int(v) for v in cur.shape))
        mult = f**level
        sc, tr = [], []
        for n in names:
            if _AXIS_TYPES[n] == "space":
                j = [m for m in names if _AXIS_TYPES[m] == "space"].index(n)
                sc.append(pixel[j] * mult)
                tr.append(pixel[j] * (mult - 1) / 2)
            else:
                sc.append(1.0)
                tr.append(0.0)
        transforms = [{"type": "scale", "scale": sc}]
        if level:
            transforms.append({"type": "translation", "translation": tr})
        datasets.append({"path": str(level), "coordinateTransformations": transforms})
    axes_meta = []
    for n in names:
        entry = {"name": n, "type": _AXIS_TYPES[n]}
        if _AXIS_TYPES[n] == "space" and unit:
            entry["unit"] = unit
        axes_meta.append(entry)
    multiscale = {"axes": axes_meta, "datasets": datasets}
    if name is not None:
        multiscale["name"] = name
    multiscale["type"] = "max pooling" if method == "max" else "average pooling"
    multiscale["metadata"] = {
        "method": f"poolkit.dask.{'max_pool' if method == 'max' else 'avg_pool'}",
        "kwargs": {"kernel_size": f, "stride": f, "ceil_mode": True},
    }
    root.attrs["ome"] = {"version": "0.5", "multiscales": [multiscale]}
    return shapes


#: the functions of the in-memory API that have a dask version, and the dask-only ones
__all__ = sorted(_PUBLIC + ["pyramid", "pyramid_levels"])
