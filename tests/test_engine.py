"""The engine and the geometry rule shared by every family (docs/architecture.md)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import weakref

import numpy as np
import pytest
from onnx.reference import ReferenceEvaluator

import poolkit as pk
import poolkit.onnx as pkonnx
from onnx_spec import make_model
from poolkit import _engine
from poolkit._geometry import pooled_size

RNG = np.random.default_rng(3)


@pytest.mark.parametrize(
    "call",
    [
        lambda x: pk.adaptive_avg_pool2d(x, (8, 8)),  # the uniform sweep
        lambda x: pk.adaptive_avg_pool2d(x, 1),  # the plane mean
        lambda x: pk.global_avg_pool(x),
        lambda x: pk.max_pool2d(x, 3, 2, 1, return_indices=True),
        lambda x: pk.max_pool2d_backward(np.ones((4, 8, 16, 16), np.float32),
                                         pk.max_pool2d(x, 2, return_indices=True)[1], x.shape),
    ],
)
def test_serial_threshold_is_read_at_call_time(monkeypatch, call):
    """Every op takes its serial/parallel decision from _engine.SERIAL_WORK when called:
    forcing either side gives the same bits."""
    x = RNG.standard_normal((4, 8, 32, 32)).astype(np.float32)
    results = []
    for threshold in (0, 1 << 62):
        monkeypatch.setattr(_engine, "SERIAL_WORK", threshold)
        _engine.plans.clear()
        results.append(call(x))
    for a, b in zip(np.atleast_1d(results[0]), np.atleast_1d(results[1])):
        np.testing.assert_array_equal(a, b)


def test_onnx_global_average_pool_is_the_plane_mean():
    x = RNG.standard_normal((3, 16, 13, 17)).astype(np.float32)
    model = make_model("GlobalAveragePool", 22, x.shape)
    got = ReferenceEvaluator(model, new_ops=pkonnx.OPS).run(None, {"x": x})[0]
    np.testing.assert_array_equal(got.view(np.uint32), pk.global_avg_pool(x).view(np.uint32))


@pytest.mark.parametrize(
    "late, expected",
    [("all", 2), ("one", 4), ("keep", 5)],
)
def test_late_ceil_windows(late, expected):
    """L=3, k=1, s=2, pads (0, 5) with ceil_mode: poolkit drops every window starting in the
    right padding, ONNX from opset 22 only the last one, ONNX before 22 none."""
    assert pooled_size(3, 1, 2, 0, 5, 1, True, late) == expected
    assert pooled_size(3, 1, 2, 0, 5, 1, False, late) == 4


def test_uint16_comparable_round_trip():
    u = np.array([0, 1, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF], np.uint16)
    c = _engine.comparable(u)
    assert c.dtype == np.int16 and (np.diff(c.astype(np.int64)) > 0).all()
    np.testing.assert_array_equal(_engine.restore(c.copy(), u.dtype), u)


# ------------------------------------------------------------------ the thread pool


def _record_parts(parts, t0, t1):
    parts.append((t0, t1, threading.get_ident()))


def test_pool_splits_tasks_into_one_part_per_thread():
    from poolkit._threads import ThreadPool

    pool, parts = ThreadPool(), []
    pool.run(_record_parts, (parts,), 10, 3)
    assert sorted(p[:2] for p in parts) == [(0, 3), (3, 6), (6, 10)]
    assert len({p[2] for p in parts}) == 3  # the caller and two workers
    parts.clear()
    pool.run(_record_parts, (parts,), 10, 1)  # one part: the calling thread only
    assert parts == [(0, 10, threading.get_ident())]


def _fail_in_second_part(t0, t1):
    if t0 > 0:
        raise RuntimeError(f"part {t0}")


def test_pool_hands_a_worker_error_to_the_caller_and_keeps_working():
    from poolkit._threads import ThreadPool

    pool = ThreadPool()
    with pytest.raises(RuntimeError, match="part 5"):
        pool.run(_fail_in_second_part, (), 10, 2)
    parts = []
    pool.run(_record_parts, (parts,), 4, 2)  # the worker survived
    assert sorted(p[:2] for p in parts) == [(0, 2), (2, 4)]


def _touch(arr, t0, t1):
    arr[t0:t1] += 1


def test_pool_keeps_no_reference_to_a_finished_call_s_arrays():
    """Regression: each worker kept the last part's arguments (its loop variables) until
    the next call, so a caller's arrays outlived the call: a deleted input stayed in
    memory, and back-to-back calls alternated between two output buffers, one of them
    out of cache each time (NCHW (64,32,28,28) max backward at 2 threads: 0.69 ms
    against 0.38 ms into the same buffer)."""
    from poolkit._threads import ThreadPool

    pool = ThreadPool()
    for n_parts in (2, 3):
        arr = np.zeros(10)
        ref = weakref.ref(arr)
        pool.run(_touch, (arr,), 10, n_parts)
        assert arr.tolist() == [1.0] * 10
        del arr
        assert ref() is None


@pytest.mark.parametrize("spin_seconds", [0.0, 200e-6, 0.05])
def test_pool_hands_over_whether_its_threads_spin_or_sleep(monkeypatch, spin_seconds):
    """The spin is only a hint: with none (every hand-over sleeps on the locks), a short
    one, or one longer than the gap between calls, every part runs exactly once."""
    from poolkit import _threads
    from poolkit._threads import ThreadPool

    monkeypatch.setattr(_threads, "SPIN_SECONDS", spin_seconds)
    pool = ThreadPool()
    for n_tasks in (2, 7, 100, 3, 50):
        parts = []
        pool.run(_record_parts, (parts,), n_tasks, 2)
        assert sorted(p[:2] for p in parts) == [(0, n_tasks // 2), (n_tasks // 2, n_tasks)]
        time.sleep(0.002 if n_tasks == 100 else 0)  # let the worker fall asleep once


def test_spin_until_sees_a_flag_another_thread_sets():
    from poolkit._spin import rounds_per_second, spin_until

    flags = np.zeros(16, np.int64)
    assert not spin_until(flags, 8, 1, 1000)  # never set: gives up after its rounds
    rounds = int(5.0 * rounds_per_second())  # up to 5 s: ample for the setter below
    setter = threading.Timer(0.01, flags.__setitem__, (8, 1))
    setter.start()
    t = time.perf_counter()
    assert spin_until(flags, 8, 1, rounds)
    assert time.perf_counter() - t < 2.5  # returned on the store, not at the end
    setter.join()


def test_pool_busy_runs_a_concurrent_call_on_its_own_thread():
    """poolkit called from two threads at once (dask's threaded scheduler): the second
    call does not wait for the pool, it runs serially, with the same bits."""
    from poolkit._threads import ThreadPool

    pool, parts = ThreadPool(), []
    pool._busy.acquire()  # as if another thread's call were running
    try:
        pool.run(_record_parts, (parts,), 8, 2)
    finally:
        pool._busy.release()
    assert parts == [(0, 8, threading.get_ident())]


def test_parallel_results_do_not_depend_on_the_thread_count(monkeypatch):
    x = RNG.standard_normal((4, 16, 33, 35)).astype(np.float32)
    monkeypatch.setattr(_engine, "SERIAL_WORK", 0)
    before = pk.get_num_threads()
    results = []
    try:
        for n in sorted({1, min(2, pk._threads._limit())}):
            pk.set_num_threads(n)
            results.append((pk.max_pool2d(x, 3, 2, 1, return_indices=True),
                            pk.avg_pool2d(x, 3, 2, 1), pk.adaptive_avg_pool2d(x, (5, 7))))
    finally:
        pk.set_num_threads(before)
    for a, b in zip(results[0], results[-1]):
        for u, v in zip(np.atleast_1d(a), np.atleast_1d(b)):
            np.testing.assert_array_equal(u, v)


def test_set_num_threads_is_per_thread():
    before = pk.get_num_threads()
    seen = []
    try:
        pk.set_num_threads(1)
        t = threading.Thread(target=lambda: seen.append(pk.get_num_threads()))
        t.start()
        t.join()
        assert pk.get_num_threads() == 1
        assert seen == [pk._threads._limit()]
    finally:
        pk.set_num_threads(before)


def _python_prints(code: str) -> str:
    """What ``code`` prints when run in a fresh interpreter (stripped)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True).stdout.strip()


def test_kernel_modules_load_safely_from_many_threads_at_once():
    """Regression: threads touching a lazily imported kernel module at the same moment
    (dask's threaded scheduler, first call) all wait for the one import to finish; one
    used to see the half-initialised module (AttributeError)."""
    code = (
        "import threading, numpy as np\n"
        "from poolkit._kernels import LazyModule\n"
        "mods = [LazyModule(n) for n in ('max_rows', 'max_rows', 'max_rows', 'max_rows')]\n"
        "errors = []\n"
        "def touch(m):\n"
        "    try:\n"
        "        m.tables\n"
        "    except Exception as e:\n"
        "        errors.append(repr(e))\n"
        "ts = [threading.Thread(target=touch, args=(m,)) for m in mods]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\n"
        "print(errors)\n"
    )
    assert _python_prints(code) == "[]"


def test_pool_works_in_a_forked_child():
    """A child forked after the pool started its workers (multiprocessing's fork start
    method) has none of them: the pool notices and starts new ones instead of waiting on
    threads that do not exist."""
    code = (
        "import os, numpy as np, poolkit as pk\n"
        "from poolkit import _engine\n"
        "_engine.SERIAL_WORK = 0\n"
        "x = np.arange(4 * 8 * 16 * 16, dtype=np.float32).reshape(4, 8, 16, 16)\n"
        "want = pk.max_pool2d(x, 2)  # the parent's workers start here\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    ok = np.array_equal(pk.max_pool2d(x, 2), want)\n"
        "    os._exit(0 if ok else 3)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "print(os.waitstatus_to_exitcode(status))\n"
    )
    assert _python_prints(code) == "0"


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.uint8])
@pytest.mark.parametrize("shape", [(0,), (1,), (3, 5), (2, 7, 9), (4096, 33)])
def test_new_array_aligned_starts_on_a_cache_line(dtype, shape):
    a = _engine.new_array(shape, np.dtype(dtype), aligned=True)
    assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable
    if a.size:  # (an empty array has no data to align)
        assert a.ctypes.data % 64 == 0
    a[...] = 1  # the whole array is usable memory
    assert _engine.new_array(shape, np.dtype(dtype), aligned=False).shape == shape


def test_streaming_threshold_is_the_cache_and_read_at_call_time(monkeypatch):
    assert _engine.STREAM_BYTES >= 1 << 20  # a last-level cache, or the 32 MiB default
    x = RNG.standard_normal((2, 8, 64, 64)).astype(np.float32)
    xc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    calls = [lambda: pk.max_pool2d(x, 2, 2), lambda: pk.max_pool2d(xc, 3, 2, 1, channels_last=True),
             lambda: pk.max_pool2d(xc, 2, 2, channels_last=True, return_indices=True)]
    plain = [c() for c in calls]
    monkeypatch.setattr(_engine, "STREAM_BYTES", -1)  # every call streams
    for call, expected in zip(calls, plain):
        got = call()
        for g, e in zip(got if isinstance(got, tuple) else (got,),
                        expected if isinstance(expected, tuple) else (expected,)):
            assert g.ctypes.data % 64 == 0  # the output was allocated for streaming
            np.testing.assert_array_equal(g.view(np.uint8), e.view(np.uint8))


def test_only_runs_of_whole_vectors_stream(monkeypatch):
    """Regression: NCHW (2048,64,14,14) k2s2 streamed its 7-element output rows, so
    non-temporal and ordinary stores shared cache lines: 44 ms against 7.1 ms. A call
    streams only if every run of output its kernel stores (an output row; channels
    last, a pixel of values or indices) is whole 32-byte vectors."""
    assert _engine.streamable_bytes(100, 224, 0) == 100
    assert _engine.streamable_bytes(100, 28) == 0
    assert _engine.streamable_bytes(100, 32, 8) == 0
    monkeypatch.setattr(_engine, "STREAM_BYTES", -1)  # every call that can stream does
    chosen = []
    real = _engine.new_array

    def recording(shape, dtype, aligned):
        chosen.append(aligned)
        return real(shape, dtype, aligned)

    monkeypatch.setattr(_engine, "new_array", recording)
    for width, streams in [(14, False), (16, True), (30, False), (32, True)]:
        x = RNG.standard_normal((2, 3, width, width)).astype(np.float32)
        chosen.clear()
        pk.max_pool2d(x, 2, 2), pk.avg_pool2d(x, 2, 2)
        assert chosen == [streams, streams], width
    for chans, streams in [(6, False), (8, True), (12, False), (16, True)]:
        x = RNG.standard_normal((2, 10, 10, chans)).astype(np.float32)
        chosen.clear()
        pk.max_pool2d(x, 2, 2, channels_last=True), pk.avg_pool2d(x, 3, 2, 1, channels_last=True)
        pk.max_pool2d(x, 2, 2, channels_last=True, return_indices=True)
        assert chosen == [streams] * 4, chans


def test_last_level_cache_reads_the_largest_size_the_os_lists(tmp_path):
    for name, text in [("index0", "48K\n"), ("index2", "1024K\n"), ("index3", "32768K\n"),
                       ("index9", "garbage\n")]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "size").write_text(text)
    assert _engine.last_level_cache(str(tmp_path)) == 32 << 20
    (tmp_path / "index4").mkdir()
    (tmp_path / "index4" / "size").write_text("1G")
    assert _engine.last_level_cache(str(tmp_path)) == 1 << 30
    assert _engine.last_level_cache(str(tmp_path / "missing"), default=123) == 123
