"""The ``poolkit`` command: train, show, bench, help and one-line usage errors."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from poolkit.cli import main

SRC = str(Path(__file__).resolve().parents[1] / "src")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ACCURACY_LINE = re.compile(r"test accuracy: (0\.\d{4}|1\.0000)")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    return env


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture
def small_npz(tmp_path):
    """A 3-class MNIST-format .npz that a tiny net learns in a few epochs."""
    rng = np.random.default_rng(0)

    def make(n):
        y = rng.integers(0, 3, n)
        x = rng.integers(0, 40, (n, 8, 8)).astype(np.uint8)
        for k in range(3):  # class k: a bright bar in row 2k + 1
            x[y == k, 2 * k + 1, 1:7] = 255
        return x, y

    (xtr, ytr), (xte, yte) = make(96), make(30)
    path = tmp_path / "bars.npz"
    np.savez(path, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    return path


def _last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def test_train_tiny_budget_on_digits(capsys):
    assert main(["train", "--epochs", "1", "--batch-size", "32", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "digits (1438 train / 359 test images, 8x8, 10 classes)" in out
    last = _last_line(out)
    assert ACCURACY_LINE.fullmatch(last)
    assert float(last.split(": ")[1]) > 0.7  # one epoch already learns something


def test_train_progress_plain_lines_and_tqdm_bar(small_npz, capsys, monkeypatch):
    argv = ["train", "--data", str(small_npz), "--epochs", "2", "--batch-size", "32"]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("epoch 1/2: loss ") and ", accuracy " in out[1]
    assert out[2].startswith("epoch 2/2: loss ")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # a terminal: tqdm bars
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "epoch 2/2" in captured.err and "3/3" in captured.err and "loss=" in captured.err
    assert "epoch 1/2: loss" not in captured.out


def test_train_is_deterministic_and_saves(tmp_path, small_npz, capsys):
    outs = []
    for name in ("a.npz", "b.npz"):
        code = main(["train", "--data", str(small_npz), "--epochs", "3", "--batch-size", "16",
                     "--optimizer", "sgd", "--lr", "0.05", "--seed", "7", "--save",
                     str(tmp_path / name)])
        assert code == 0
        outs.append(_last_line(capsys.readouterr().out))
    assert outs[0] == outs[1]
    assert float(outs[0].split(": ")[1]) >= 0.9
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    assert sorted(a.files) == ["0.bias", "0.weight", "3.bias", "3.weight", "7.bias", "7.weight"]
    for k in a.files:
        np.testing.assert_array_equal(a[k], b[k])


def test_train_result_does_not_depend_on_threads(small_npz, capsys):
    lines = []
    for threads in ("1", "2"):
        assert main(["train", "--data", str(small_npz), "--epochs", "2", "--batch-size", "8",
                     "--seed", "4", "--threads", threads]) == 0
        out = capsys.readouterr().out.splitlines()
        lines.append([line for line in out if line.startswith(("epoch", "test accuracy"))])
    assert lines[0] == lines[1]


def test_python_dash_m_train(small_npz):
    proc = subprocess.run(
        [sys.executable, "-m", "poolkit", "train", "--data", str(small_npz), "--epochs", "2"],
        capture_output=True, text=True, env=_env(), timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert ACCURACY_LINE.fullmatch(_last_line(proc.stdout))
    assert "Traceback" not in proc.stderr


def test_show_writes_a_png(tmp_path, capsys):
    out = tmp_path / "pool.png"
    assert main(["show", "--out", str(out)]) == 0
    assert png_size(out) == (1650, 616)
    assert "4x4 output" in capsys.readouterr().out


def test_show_with_npy_and_png_images(tmp_path, capsys):
    img = np.random.default_rng(0).permutation(100).reshape(10, 10).astype(np.float64)
    npy = tmp_path / "img.npy"
    np.save(npy, img)
    out = tmp_path / "a.png"
    assert main(["show", "--image", str(npy), "--kernel-size", "3", "--stride", "2",
                 "--padding", "1", "--out", str(out)]) == 0
    assert png_size(out)[0] > 0
    assert "-> 5x5 output" in capsys.readouterr().out
    # a PNG image, read back as an input (colour converted to grey)
    out2 = tmp_path / "b.png"
    assert main(["show", "--image", str(out), "--kernel-size", "40,60", "--out", str(out2)]) == 0
    assert png_size(out2)[0] > 0


def test_show_large_image_without_labels(tmp_path, capsys):
    npy = tmp_path / "large.npy"
    np.save(npy, np.random.default_rng(1).random((40, 30)))
    out = tmp_path / "large.png"
    assert main(["show", "--image", str(npy), "--stride", "1", "--out", str(out)]) == 0
    assert png_size(out) == (1650, 616)
    assert "-> 39x29 output" in capsys.readouterr().out


def test_import_poolkit_stays_light():
    code = (
        "import sys, poolkit, poolkit.nn, poolkit.cli, poolkit.data, poolkit.viz, "
        "poolkit.testing; print(sorted(m for m in ('sklearn', 'matplotlib', 'tqdm') "
        "if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize("command", [[], ["train"], ["show"]])
def test_help(command, capsys):
    assert main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: poolkit")
    if command == ["train"]:
        for option in ("--epochs", "--batch-size", "--lr", "--optimizer", "--seed", "--data",
                       "--save", "test accuracy"):
            assert option in out
    if command == ["show"]:
        for option in ("--out", "--image", "--kernel-size", "--stride", "--padding"):
            assert option in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "poolkit: error: choose a command"),
        (["fly"], "poolkit: error: argument COMMAND: invalid choice: 'fly'"),
        (["train", "--epochs", "0"], "argument --epochs: expected a positive integer, got '0'"),
        (["train", "--lr", "fast"], "argument --lr: expected a positive number, got 'fast'"),
        (["train", "--lr", "inf"], "argument --lr: expected a positive number, got 'inf'"),
        (["train", "--lr", "nan"], "argument --lr: expected a positive number, got 'nan'"),
        (["train", "--seed", "-1"], "argument --seed: expected an integer >= 0, got '-1'"),
        (["train", "--threads", "2.5"], "argument --threads: expected a positive integer"),
        (["train", "--optimizer", "rmsprop"], "argument --optimizer: invalid choice"),
        (["train", "--bogus"], "unrecognized arguments: --bogus"),
        (["train", "--data", "/no/such/mnist.npz"], "data file '/no/such/mnist.npz' does not"),
        (["show", "--kernel-size", "2,2,2"], "expected an integer or two comma-separated"),
        (["show", "--kernel-size", "2", "--padding", "2"], "padding must be at most half"),
        (["show", "--image", "/no/such.png"], "image file '/no/such.png' does not exist"),
        (["show", "--index", "5000"], "index must lie in [0, 1797)"),
    ],
)
def test_bad_options_give_one_line_errors(argv, message, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert message in lines[0]
    assert "Traceback" not in captured.err


def test_bad_option_via_python_dash_m():
    proc = subprocess.run([sys.executable, "-m", "poolkit", "show", "--stride", "x"],
                          capture_output=True, text=True, env=_env(), timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "poolkit show: error: argument --stride: expected an integer or two comma-separated "
        "integers (H,W), got 'x'"
    )


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_load_image_channel_layouts(tmp_path, channels):
    from poolkit.viz import load_image

    img = np.random.default_rng(0).random((5, 6, channels))
    path = tmp_path / "c.npy"
    np.save(path, img)
    out = load_image(path)
    assert out.shape == (5, 6)
    expected = img[..., 0] if channels < 3 else img[..., :3] @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(out, expected)


def test_bad_image_shape_is_named(tmp_path, capsys):
    path = tmp_path / "cube.npy"
    np.save(path, np.zeros((3, 4, 5, 6)))
    assert main(["show", "--image", str(path)]) == 2
    err = capsys.readouterr().err
    assert "cube.npy' must hold a 2-D (H, W) image" in err and len(err.strip().splitlines()) == 1


def test_malformed_image_is_named(tmp_path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    assert main(["show", "--image", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "broken.png' could not be read" in err and len(err.strip().splitlines()) == 1


def test_bench_missing_module_is_a_one_line_error(monkeypatch, capsys):
    import poolkit

    monkeypatch.setitem(sys.modules, "poolkit.bench", None)  # makes the import fail
    # ... also when another test imported it already (``from . import bench`` would
    # otherwise find the package attribute)
    monkeypatch.delattr(poolkit, "bench", raising=False)
    assert main(["bench", "--quick"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "poolkit.bench is not available" in err[0]


def test_bench_quick_runs():
    """Uses poolkit.bench.main(argv) -> int (written in the performance issue)."""
    proc = subprocess.run([sys.executable, "-m", "poolkit", "bench", "--quick"],
                          capture_output=True, text=True, env=_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("argv", [["--bogus"], ["--threads", "0"], ["--repeat", "x"]])
def test_bench_bad_options_are_one_line_errors(argv):
    """Regression: the bench sub-command printed argparse's usage block plus the error."""
    proc = subprocess.run([sys.executable, "-m", "poolkit", "bench", *argv],
                          capture_output=True, text=True, env=_env(), timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("poolkit bench: error:"), proc.stderr
