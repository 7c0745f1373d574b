"""poolkit.data: bundled digits split, IDX (raw and gzip) and .npz loaders, malformed files."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from poolkit.data import DataError, load_dataset, load_digits, load_idx, load_mnist

_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D,
          np.float64: 0x0E}


def idx_bytes(arr: np.ndarray) -> bytes:
    """Encode an array in the IDX format (big-endian header and data)."""
    code = _CODES[arr.dtype.type]
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_idx(path, arr, compress=False):
    data = idx_bytes(arr)
    if compress:
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def make_mnist_dir(tmp_path, compress, n_train=12, n_test=5, size=6, dot_names=False):
    rng = np.random.default_rng(0)
    d = tmp_path / ("gz" if compress else "raw")
    d.mkdir()
    suffix = ".gz" if compress else ""
    sep = "." if dot_names else "-"
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
        y = rng.integers(0, 10, n, dtype=np.uint8)
        write_idx(d / f"{split}-images{sep}idx3-ubyte{suffix}", x, compress)
        write_idx(d / f"{split}-labels{sep}idx1-ubyte{suffix}", y, compress)
        arrays[split] = (x, y)
    return d, arrays


@pytest.mark.parametrize("dtype", list(_CODES))
@pytest.mark.parametrize("compress", [False, True])
def test_load_idx_round_trip(tmp_path, dtype, compress):
    arr = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    if dtype == np.uint8:
        arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = write_idx(tmp_path / "a.idx", arr, compress)
    out = load_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("dot_names", [False, True])
def test_load_mnist_directory(tmp_path, compress, dot_names):
    d, arrays = make_mnist_dir(tmp_path, compress, dot_names=dot_names)
    ds = load_mnist(d)
    assert ds.x_train.shape == (12, 1, 6, 6) and ds.x_test.shape == (5, 1, 6, 6)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    np.testing.assert_allclose(ds.x_train[:, 0], arrays["train"][0] / np.float32(255), rtol=1e-6)
    np.testing.assert_array_equal(ds.y_test, arrays["t10k"][1])
    assert load_dataset(d).x_train.shape == ds.x_train.shape


def test_load_mnist_npz(tmp_path):
    rng = np.random.default_rng(1)
    arrays = {
        "x_train": rng.integers(0, 256, (10, 7, 7), dtype=np.uint8),
        "y_train": rng.integers(0, 3, 10),
        "x_test": rng.integers(0, 256, (4, 7, 7), dtype=np.uint8),
        "y_test": np.array([0, 1, 2, 2]),
    }
    path = tmp_path / "fashion.npz"
    np.savez(path, **arrays)
    ds = load_mnist(path)
    assert ds.name == "fashion" and ds.image_shape == (1, 7, 7) and ds.num_classes == 3
    np.testing.assert_array_equal(ds.y_train, arrays["y_train"])
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0


def test_digits_split_is_deterministic_stratified_and_disjoint():
    a, b = load_digits(), load_digits()
    assert a.x_train.shape == (1438, 1, 8, 8) and a.x_test.shape == (359, 1, 8, 8)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    assert a.x_train.min() == 0.0 and a.x_train.max() == 1.0
    counts = np.bincount(a.y_test, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38  # 20% of each class (174..183 images)
    train_rows = {row.tobytes() for row in a.x_train}
    overlap = sum(row.tobytes() in train_rows for row in a.x_test)
    assert overlap <= 2  # only the dataset's own duplicate images could coincide
    assert a.num_classes == 10


# --- malformed or missing files: DataError naming the file -------------------------------


def test_missing_files_are_named(tmp_path):
    with pytest.raises(DataError, match=r"nothing\.npz' does not exist"):
        load_mnist(tmp_path / "nothing.npz")
    with pytest.raises(DataError, match=r"absent-idx1-ubyte' does not exist"):
        load_idx(tmp_path / "absent-idx1-ubyte")
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    with pytest.raises(DataError, match=r"empty_dir' has no train-images-idx3-ubyte"):
        load_mnist(empty)


def test_directory_missing_one_file(tmp_path):
    d, _ = make_mnist_dir(tmp_path, compress=True)
    (d / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="has no t10k-labels-idx1-ubyte"):
        load_mnist(d)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x00\x00\x08", "is not an IDX file"),
        (b"\x01\x02\x08\x01\x00\x00\x00\x01\x05", "is not an IDX file"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "is not an IDX file"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x02", "truncated IDX header"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02", r"promises shape \(5,\)"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x01\x01\x02", "holds 10 bytes"),
    ],
)
def test_malformed_idx(tmp_path, content, message):
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(content)
    with pytest.raises(DataError, match=f"bad-idx1-ubyte'.*{message}"):
        load_idx(path)


def test_truncated_gzip_is_named(tmp_path):
    path = tmp_path / "cut-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.arange(50, dtype=np.uint8)))[:20])
    with pytest.raises(DataError, match=r"cut-idx1-ubyte\.gz' is not a readable"):
        load_idx(path)


def test_labels_not_matching_images(tmp_path):
    d, _ = make_mnist_dir(tmp_path, compress=False)
    write_idx(d / "train-labels-idx1-ubyte", np.zeros(3, np.uint8))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte'.*shape \(12,\)"):
        load_mnist(d)


def test_images_with_wrong_rank(tmp_path):
    d, _ = make_mnist_dir(tmp_path, compress=False)
    write_idx(d / "t10k-images-idx3-ubyte", np.zeros((5, 36), np.uint8))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte'.*images must have shape"):
        load_mnist(d)


def test_train_and_test_image_sizes_must_agree(tmp_path):
    d, _ = make_mnist_dir(tmp_path, compress=False)
    write_idx(d / "t10k-images-idx3-ubyte", np.zeros((5, 8, 8), np.uint8))
    with pytest.raises(DataError, match="differ in shape"):
        load_mnist(d)


def test_malformed_npz(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(DataError, match=r"bad\.npz' is not a readable \.npz"):
        load_mnist(bad)
    npy = tmp_path / "single.npy"
    np.save(npy, np.zeros(3))
    with pytest.raises(DataError, match=r"single\.npy' is not an \.npz archive"):
        load_mnist(npy)
    partial = tmp_path / "partial.npz"
    np.savez(partial, x_train=np.zeros((2, 8, 8)), y_train=np.zeros(2, int))
    with pytest.raises(DataError, match=r"partial\.npz' lacks the arrays \['x_test', 'y_test'\]"):
        load_mnist(partial)
    floats = tmp_path / "floatlabels.npz"
    np.savez(floats, x_train=np.zeros((2, 8, 8)), y_train=np.zeros(2), x_test=np.zeros((1, 8, 8)),
             y_test=np.zeros(1, int))
    with pytest.raises(DataError, match=r"floatlabels\.npz' \(y_train\).*non-negative integers"):
        load_mnist(floats)
