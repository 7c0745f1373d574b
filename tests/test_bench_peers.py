"""``poolkit bench --peers`` and ``--cold``: the peer benchmark's table and its checks."""

from __future__ import annotations

import importlib.util
import re
import sys

import pytest

import poolkit as pk
from poolkit import bench_cold, bench_peers
from poolkit.cli import main

QUICK = ["bench", "--peers", "--quick", "--threads", "1", "--repeat", "1"]
MS = re.compile(r"^\d+\.\d+$")
HAVE_TORCH = importlib.util.find_spec("torch") is not None
HAVE_ORT = (
    importlib.util.find_spec("onnxruntime") is not None
    and importlib.util.find_spec("onnx") is not None
)


def _table(out: str) -> tuple[list[str], dict[str, list[str]]]:
    """Header cells and {row label: cells} of the markdown table in ``out``."""
    lines = [ln for ln in out.splitlines() if ln.startswith("| ")]
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    header, body = cells[0], cells[1:]
    return header, {f"{r[0]} @{r[1]}": dict(zip(header, r)) for r in body}


def test_quick_peer_table_has_every_row_and_peer(capsys):
    assert main(QUICK) == 0
    out = capsys.readouterr().out
    header, rows = _table(out)
    assert header[:2] == ["row", "thr"]
    assert all(p in header for p in bench_peers.PEERS)
    assert "poolkit vs fastest NCHW peer" in header
    want = [r.label + (" (DRAM)" if r.dram else "") for r in bench_peers.peer_rows(quick=True)]
    assert len(want) == 17 and sorted(k[:-3] for k in rows) == sorted(want)
    assert "of copy bw" in out and "GB/s" in out
    for key, row in rows.items():
        assert MS.match(row["poolkit"]) and MS.match(row["poolkit CL"]), row
        if HAVE_TORCH:
            assert MS.match(row["torch"]) and MS.match(row["torch CL"]), row
            assert re.match(r"^\d+\.\d\dx vs (ort|torch)", row["poolkit vs fastest NCHW peer"])
            assert re.match(r"^\d+\.\d\dx vs torch CL$", row["poolkit CL vs torch CL"])
        backward = key.startswith("max backward")
        assert (
            MS.match(row["onnxruntime"])
            if HAVE_ORT and not backward
            else (row["onnxruntime"] == "-")
        )
        if "(DRAM)" in key:
            assert re.match(r"^\d+% / \d+%$", row["of copy bw (pk / pk CL)"]), row
        else:
            assert row["of copy bw (pk / pk CL)"] == "-"


def test_missing_onnxruntime_is_skipped_with_a_note(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes the import fail
    argv = [*QUICK, "--rows", "max values", "--rows", "global", "--no-torch", "--clock", "cpu"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    _, rows = _table(out)
    assert len(rows) == 5 and all(r["onnxruntime"] == "-" for r in rows.values())
    assert all(r["torch"] == "-" for r in rows.values())
    assert "onnxruntime not importable" in out and "clock: process CPU time" in out


def test_a_peer_that_disagrees_fails_the_run(monkeypatch, capsys):
    real = pk.max_pool2d

    def wrong_channels_last(*args, **kwargs):
        res = real(*args, **kwargs)
        if kwargs.get("channels_last"):
            res = res + 1 if not isinstance(res, tuple) else (res[0] + 1, res[1])
        return res

    monkeypatch.setattr(pk, "max_pool2d", wrong_channels_last)
    argv = [
        *QUICK,
        "--rows",
        "max values (8,8",
        "--no-torch",
        "--no-onnxruntime",
        "--sample-ms",
        "0",
    ]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "PEERS DISAGREE" in out and "poolkit CL: " in out and "MISMATCH" in out


@pytest.mark.parametrize("argv", [["--threads", "x"], ["--repeat", "0"], ["--rows", "nope"]])
def test_peer_bad_options_are_one_line_errors(argv, capsys):
    assert main(["bench", "--peers", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("poolkit bench --peers: error:"), err


def test_interleaved_best_alternates_and_returns_every_peer():
    order = []
    calls = {n: (lambda n=n: order.append(n)) for n in "abc"}
    times = bench_peers.interleaved_best(calls, repeat=3, sample=0, budget=0, warm=False)
    assert sorted(times) == ["a", "b", "c"] and all(t >= 0 for t in times.values())
    timed = order[6:]  # after the two warm-up calls of each
    assert timed == list("abcbcacab")  # rotated every round
    order.clear()
    bench_peers.interleaved_best(calls, repeat=3, sample=0, budget=0)
    assert order[6:] == list("aabbccbbccaaccaabb")  # an untimed call before each sample


def test_cold_table_and_errors(monkeypatch, capsys):
    seen = []

    def fake(op, cache_dir, shape):
        seen.append(cache_dir)
        return {"import": 0.1, "first": 2.0, "first_cpu": 1.9, "second": 0.001}

    monkeypatch.setattr(bench_cold, "cold_call", fake)
    assert main(["bench", "--cold", "--runs", "2", "--ops", "avg_pool2d"]) == 0
    out = capsys.readouterr().out
    assert out.count("| avg_pool2d") == 2 and len(set(seen)) == 2  # a new cache per run
    assert main(["bench", "--cold", "--ops", "bogus"]) == 2
    assert "unknown operation" in capsys.readouterr().err
