"""``poolkit compile``: the job list, its filters, and one real compile into a temp cache."""

from __future__ import annotations

import os
import subprocess
import sys

from poolkit import _precompile
from poolkit.cli import cache_location, main


def test_dry_run_lists_every_family_dtype_and_layout(capsys):
    assert main(["compile", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    jobs = lines[:-1]
    assert lines[-1].startswith(f"{len(jobs)} jobs; cache: ")
    assert "avg_pool float16 channels_last" in jobs
    assert "max_pool uint64 channels_first" in jobs
    assert {j.split()[0] for j in jobs} == set(_precompile.FAMILIES)
    assert len(jobs) == len(set(jobs)) == len(list(_precompile.jobs()))


def test_filters_and_usage_errors(capsys):
    assert main(["compile", "--dry-run", "--ops", "avg_pool", "--dtypes", "float32"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:-1] == ["avg_pool float32 channels_first", "avg_pool float32 channels_last"]
    assert main(["compile", "--ops", "nope"]) == 2
    assert "unknown family 'nope'" in capsys.readouterr().err
    assert main(["compile", "--dtypes", "complex64"]) == 2


def test_cache_location_follows_numba_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert cache_location() == str(tmp_path)


def test_compile_one_job_fills_a_fresh_cache(tmp_path):
    """``python -m poolkit compile`` on one cheap job writes numba cache files."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path),
               PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    run = subprocess.run(
        [sys.executable, "-m", "poolkit", "compile", "--ops", "adaptive_avg_pool",
         "--dtypes", "float64", "--layouts", "channels_first"],
        capture_output=True, text=True, env=env, timeout=110, check=True,
    )
    assert "[1/1] adaptive_avg_pool float64 channels_first" in run.stdout
    assert f"cache: {tmp_path}" in run.stdout
    cached = [f for _, _, files in os.walk(tmp_path) for f in files]
    assert any(f.endswith(".nbi") for f in cached) and any(f.endswith(".nbc") for f in cached)
