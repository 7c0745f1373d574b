"""Datasets for the demo: scikit-learn's bundled digits, and MNIST-format files you have.

* :func:`load_digits` - the 1,797 8x8 handwritten digits that ship with scikit-learn (no
  download), split deterministically (stratified, fixed seed) into 1,438 train / 359 test.
* :func:`load_idx` - one IDX file (the MNIST / Fashion-MNIST format), gzipped or not.
* :func:`load_mnist` - a directory holding the four MNIST-format files
  (``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``, ``t10k-...``), or an
  ``.npz`` archive with ``x_train, y_train, x_test, y_test`` (the Keras ``mnist.npz`` layout).

Every loader raises :class:`DataError` (a ``ValueError``) naming the file when it is missing
or malformed. Images come back as float32 ``(N, 1, H, W)`` scaled to [0, 1]; labels int64.
"""

from __future__ import annotations

import gzip
import os
import re
import zipfile
from dataclasses import dataclass

import numpy as np

__all__ = ["DataError", "Dataset", "load_dataset", "load_digits", "load_idx", "load_mnist"]

#: IDX type codes -> big-endian NumPy dtypes.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


class DataError(ValueError):
    """A dataset file is missing or malformed; the message names the file."""


@dataclass(frozen=True)
class Dataset:
    """Train and test arrays: images ``(N, 1, H, W)`` float32 in [0, 1], labels int64."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def num_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={self.x_train.shape[0]}, test={self.x_test.shape[0]}, "
            f"image_shape={self.image_shape}, classes={self.num_classes})"
        )


def _stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        n_test = round(len(idx) * test_fraction)
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def load_digits(test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """scikit-learn's bundled 8x8 digits, split stratified and deterministically.

    Pixel values 0..16 are scaled to [0, 1]. With the defaults: 1,438 train, 359 test images.
    Needs scikit-learn (the ``demo`` extra).

    Examples
    --------
    >>> from poolkit.data import load_digits
    >>> ds = load_digits()
    >>> ds.x_train.shape, ds.x_test.shape
    ((1438, 1, 8, 8), (359, 1, 8, 8))
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError:
        raise ImportError(
            "the bundled digits dataset needs scikit-learn: pip install 'poolkit[demo]'"
        ) from None
    bunch = _sk_load_digits()
    x = (bunch.images.astype(np.float32) / np.float32(16.0))[:, None]
    y = bunch.target.astype(np.int64)
    tr, te = _stratified_split(y, test_fraction, seed)
    return Dataset("digits", x[tr], y[tr], x[te], y[te])


def _read_bytes(path: str) -> bytes:
    if not os.path.exists(path):
        raise DataError(f"data file {path!r} does not exist")
    if not os.path.isfile(path):
        raise DataError(f"data file {path!r} is not a regular file")
    with open(path, "rb") as fh:
        head = fh.read(2)
    try:
        if head == b"\x1f\x8b":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        with open(path, "rb") as fh:
            return fh.read()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"data file {path!r} is not a readable (gzip) file: {exc}") from None


def load_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file (gzipped or raw) into an array of its stored dtype and shape.

    Raises
    ------
    DataError
        If the file is missing, its magic number is wrong, or its size does not match the
        header.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from poolkit.data import load_idx
    >>> path = os.path.join(tempfile.mkdtemp(), "labels-idx1-ubyte")
    >>> with open(path, "wb") as fh:
    ...     _ = fh.write(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1]))
    >>> load_idx(path)
    array([7, 2, 1], dtype=uint8)
    """
    name = os.fspath(path)
    raw = _read_bytes(name)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(
            f"data file {name!r} is not an IDX file: expected a magic number 00 00 <type> <ndim> "
            f"with type one of {sorted(hex(k) for k in _IDX_DTYPES)}, got {raw[:4].hex(' ')!r}"
        )
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"data file {name!r}: truncated IDX header ({len(raw)} bytes)")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(
            f"data file {name!r}: the IDX header promises shape {shape} ({expected} bytes in "
            f"all) but the file holds {len(raw)} bytes"
        )
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _as_images(arr: np.ndarray, source: str) -> np.ndarray:
    if arr.ndim == 3:
        arr = arr[:, None]
    if arr.ndim != 4 or arr.shape[1] != 1 or arr.shape[0] == 0 or min(arr.shape[2:]) < 4:
        raise DataError(
            f"{source}: images must have shape (N, H, W) or (N, 1, H, W) with N >= 1 and "
            f"H, W >= 4, got {arr.shape}"
        )
    if arr.dtype.kind not in "uif":
        raise DataError(f"{source}: images must be numeric, got dtype {arr.dtype}")
    x = arr.astype(np.float32)
    if arr.dtype.kind in "ui" or x.max() > 1.0:
        x /= np.float32(255.0)
    return x


def _as_labels(arr: np.ndarray, n: int, source: str) -> np.ndarray:
    if arr.ndim != 1 or arr.shape[0] != n:
        raise DataError(f"{source}: labels must have shape ({n},) to match the images, got "
                        f"{arr.shape}")
    if arr.dtype.kind not in "ui" or (arr.size and arr.min() < 0):
        raise DataError(f"{source}: labels must be non-negative integers, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def _find_idx(directory: str, split: str, kind: str) -> str:
    rank = 3 if kind == "images" else 1
    pattern = re.compile(rf"^{split}-{kind}[-.]idx{rank}-ubyte(\.gz)?$")
    hits = sorted(f for f in os.listdir(directory) if pattern.match(f))
    if not hits:
        raise DataError(
            f"data directory {directory!r} has no {split}-{kind}-idx{rank}-ubyte[.gz] file "
            "(expected the four MNIST-format files)"
        )
    return os.path.join(directory, hits[0])


def load_mnist(path: str | os.PathLike[str]) -> Dataset:
    """Load MNIST / Fashion-MNIST from a directory of IDX files or from an ``.npz`` archive.

    Raises
    ------
    DataError
        Naming the file that is missing or malformed.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from poolkit.data import load_mnist
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.npz")
    >>> np.savez(path, x_train=np.zeros((3, 8, 8), np.uint8), y_train=np.array([0, 1, 2]),
    ...          x_test=np.zeros((1, 8, 8), np.uint8), y_test=np.array([1]))
    >>> load_mnist(path)
    Dataset('tiny', train=3, test=1, image_shape=(1, 8, 8), classes=3)
    """
    name = os.fspath(path)
    if os.path.isdir(name):
        arrays = {}
        for split, key in (("train", "train"), ("t10k", "test")):
            img_path = _find_idx(name, split, "images")
            lab_path = _find_idx(name, split, "labels")
            x = _as_images(load_idx(img_path), f"data file {img_path!r}")
            arrays[f"x_{key}"] = x
            arrays[f"y_{key}"] = _as_labels(load_idx(lab_path), x.shape[0],
                                            f"data file {lab_path!r}")
        if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
            raise DataError(f"data directory {name!r}: train and test images differ in shape")
        return Dataset(os.path.basename(os.path.normpath(name)), **arrays)
    if not os.path.exists(name):
        raise DataError(f"data file {name!r} does not exist")
    source = f"data file {name!r}"
    try:
        loaded = np.load(name, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DataError(f"{source} is not an .npz archive (it holds a single array)")
        with loaded as data:
            missing = [k for k in _NPZ_KEYS if k not in data.files]
            if missing:
                raise DataError(
                    f"{source} lacks the arrays {missing}; expected {list(_NPZ_KEYS)}, "
                    f"found {data.files}"
                )
            raw = {k: data[k] for k in _NPZ_KEYS}
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{source} is not a readable .npz archive: {exc}") from None
    arrays = {}
    for key in ("train", "test"):
        x = _as_images(raw[f"x_{key}"], f"{source} (x_{key})")
        arrays[f"x_{key}"] = x
        arrays[f"y_{key}"] = _as_labels(raw[f"y_{key}"], x.shape[0], f"{source} (y_{key})")
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise DataError(f"{source}: x_train and x_test images differ in shape")
    return Dataset(os.path.splitext(os.path.basename(name))[0], **arrays)


def load_dataset(path: str | os.PathLike[str] | None = None) -> Dataset:
    """The bundled digits when ``path`` is None, else :func:`load_mnist` on ``path``.

    Examples
    --------
    >>> from poolkit.data import load_dataset
    >>> load_dataset()
    Dataset('digits', train=1438, test=359, image_shape=(1, 8, 8), classes=10)
    """
    return load_digits() if path is None else load_mnist(path)
