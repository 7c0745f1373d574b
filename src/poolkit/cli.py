"""The ``poolkit`` command: ``train``, ``show``, ``bench``, ``compile`` and ``pyramid``.

Heavy demo dependencies (scikit-learn, matplotlib, tqdm) are imported only inside the
command that needs them. Usage errors print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

__all__ = ["main"]

_EPILOG_TRAIN = """\
The network: Conv2d(32, 3x3, pad 1) -> ReLU -> poolkit.MaxPool2d(2) -> Conv2d(64, 3x3,
pad 1) -> ReLU -> poolkit.MaxPool2d(2) -> Flatten -> Linear.

Default data: scikit-learn's bundled 8x8 digits (1,797 images, fixed stratified 80/20
split). With --data: a directory holding the four MNIST/Fashion-MNIST IDX files
(train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-...), or an .npz
with x_train, y_train, x_test, y_test.

The last line printed is 'test accuracy: 0.xxxx'; the same seed gives the same result.
"""

_EPILOG_SHOW = """\
The picture has three panels: the input image with every pooling window outlined in the
colour of its output cell; the max-pooled output; and the backward routing, where each input
pixel that receives gradient is painted in the colour of the output cell(s) sending it, with
an arrow from each output cell to the one pixel its gradient flows to.
"""


class UsageError(Exception):
    """A bad command line or input file: reported in one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors raise :class:`UsageError` (one line, exit
    status 2) instead of printing argparse's usage block."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: error: {message}")


def number(
    convert: Callable[[str], Any], accept: Callable[[Any], bool], expected: str
) -> Callable[[str], Any]:
    """An argparse type: ``convert(text)`` where that succeeds and ``accept`` holds for
    it, else the error ``expected <expected>, got '<text>'``.

    Examples
    --------
    >>> number(int, lambda v: v % 2 == 0, "an even integer")("4")
    4
    """

    def parse(text: str) -> Any:
        try:
            value = convert(text)
            ok = accept(value)
        except ValueError:
            ok = False
        if not ok:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


positive_int = number(int, lambda v: v >= 1, "a positive integer")
_nonneg_int = number(int, lambda v: v >= 0, "an integer >= 0")
_positive_float = number(float, lambda v: 0 < v < float("inf"), "a positive number")


def _int_or_pair(text: str) -> int | tuple[int, int]:
    """``"3"`` -> 3, ``"3,2"`` -> (3, 2)."""
    parts = text.split(",")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an integer or two comma-separated integers (H,W), got {text!r}"
        ) from None
    if len(values) not in (1, 2):
        raise argparse.ArgumentTypeError(
            f"expected an integer or two comma-separated integers (H,W), got {text!r}"
        )
    return values[0] if len(values) == 1 else (values[0], values[1])


def _build_parser() -> Parser:
    parser = Parser(
        prog="poolkit",
        description="poolkit: exact, fast max pooling for NumPy - a convnet demo, a picture "
        "of the layer, and benchmarks.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    t = sub.add_parser(
        "train",
        help="train a small LeNet-style convnet whose pooling is poolkit.MaxPool2d",
        description="Train a LeNet-style convnet (poolkit.nn, pooling by poolkit.MaxPool2d)\n"
        "and report its test accuracy.",
        epilog=_EPILOG_TRAIN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    t.add_argument("--epochs", type=positive_int, default=30, metavar="N",
                   help="passes over the training set (default: 30)")
    t.add_argument("--batch-size", type=positive_int, default=64, metavar="N",
                   help="images per mini-batch (default: 64)")
    t.add_argument("--lr", type=_positive_float, default=3e-3,
                   help="initial learning rate, decayed to 0 on a cosine schedule "
                   "(default: 0.003)")
    t.add_argument("--optimizer", choices=("adam", "sgd"), default="adam",
                   help="adam, or sgd with momentum 0.9 (default: adam)")
    t.add_argument("--seed", type=_nonneg_int, default=0, metavar="N",
                   help="seed for initial weights and shuffling (default: 0)")
    t.add_argument("--data", metavar="PATH", default=None,
                   help="MNIST-format data: a directory of IDX files (gzipped or raw) or an .npz "
                   "(default: scikit-learn's bundled digits)")
    t.add_argument("--save", metavar="FILE", default=None,
                   help="save the trained parameters to this .npz file")
    t.add_argument("--threads", type=positive_int, default=1, metavar="N",
                   help="CPU threads for the pooling kernels and BLAS; the demo network is "
                   "small, so 1 is fastest (default: 1)")

    s = sub.add_parser(
        "show",
        help="draw max pooling forward and its backward gradient routing to a PNG",
        description="Draw a sample image, its max-pooled output, and the backward routing\n"
        "(which input pixels receive gradient, and from which output cell) to a PNG.",
        epilog=_EPILOG_SHOW,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--out", metavar="FILE", default="pooling.png",
                   help="PNG file to write (default: pooling.png)")
    s.add_argument("--image", metavar="FILE", default=None,
                   help="a PNG or .npy image to pool (colour is converted to grey; default: a "
                   "digit from scikit-learn's bundled dataset)")
    s.add_argument("--index", type=_nonneg_int, default=0, metavar="I",
                   help="which bundled digit to draw when --image is not given (default: 0)")
    s.add_argument("--kernel-size", type=_int_or_pair, default=2, metavar="K",
                   help="window size: K or KH,KW (default: 2)")
    s.add_argument("--stride", type=_int_or_pair, default=None, metavar="S",
                   help="window step: S or SH,SW (default: the kernel size)")
    s.add_argument("--padding", type=_int_or_pair, default=0, metavar="P",
                   help="implicit -inf padding on each side: P or PH,PW, at most half the "
                   "kernel (default: 0)")

    # --- poolkit pyramid (poolkit.dask): parsed by poolkit._cli_pyramid ---
    sub.add_parser(
        "pyramid",
        help="write an OME-Zarr pyramid of a .zarr/.npy/TIFF image with poolkit.dask "
        "(see 'poolkit pyramid --help')",
        add_help=False,
    )
    c = sub.add_parser(
        "compile",
        help="precompile every kernel into numba's cache (for Docker images and CI)",
        description="Run every pooling family on tiny inputs of every dtype and layout,\n"
        "so that numba compiles each kernel variant once and writes it to its cache;\n"
        "later processes load it instead of compiling.",
        epilog="The cache: NUMBA_CACHE_DIR if set; else __pycache__ beside the kernels\n"
        "(poolkit/_kernels/) when writable; else numba's user cache (~/.cache/numba).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument("--dry-run", action="store_true", help="list the jobs, compile nothing")
    c.add_argument("--ops", metavar="FAMILY", action="append", default=None,
                   help="only this family (repeatable): " + ", ".join(_FAMILY_NAMES))
    c.add_argument("--dtypes", metavar="DTYPE", action="append", default=None,
                   help="only this dtype (repeatable), e.g. float32")
    c.add_argument("--layouts", metavar="LAYOUT", action="append", default=None,
                   choices=("channels_first", "channels_last"), help="only this layout")

    sub.add_parser(
        "bench",
        help="benchmark poolkit's pooling against the alternatives (see 'poolkit bench --help')",
        add_help=False,
    )
    return parser


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    """Limit poolkit's kernels and BLAS to ``n`` threads while the block runs."""
    import numba

    from . import get_num_threads, set_num_threads

    previous = get_num_threads()
    set_num_threads(min(n, int(numba.config.NUMBA_NUM_THREADS)))
    try:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # BLAS keeps its own default
            yield
        else:
            with threadpool_limits(limits=n):
                yield
    finally:
        set_num_threads(previous)


class _Progress:
    """A tqdm bar per epoch on a terminal (when tqdm is installed), else one plain line per
    epoch on stdout (also when output goes to a file or a pipe, where bars only add noise)."""

    def __init__(self, epochs: int, batches: int) -> None:
        self.epochs, self.batches = epochs, batches
        tqdm = None
        if sys.stderr.isatty():
            try:
                from tqdm import tqdm
            except ImportError:
                pass
        self._tqdm = tqdm
        self._bar: Any = None

    def start(self, epoch: int) -> None:
        if self._tqdm is not None:
            width = len(str(self.epochs))
            self._bar = self._tqdm(
                total=self.batches, desc=f"epoch {epoch:>{width}}/{self.epochs}", unit="batch",
                file=sys.stderr, leave=True, dynamic_ncols=True,
            )

    def batch(self, loss: float, acc: float) -> None:
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(loss=f"{loss:.4f}", acc=f"{acc:.4f}", refresh=False)

    def end(self, epoch: int, loss: float, acc: float) -> None:
        if self._bar is not None:
            self._bar.close()
        else:
            print(f"epoch {epoch}/{self.epochs}: loss {loss:.4f}, accuracy {acc:.4f}", flush=True)


def _cmd_train(args: argparse.Namespace) -> int:
    import numpy as np

    from . import nn
    from .data import DataError, load_dataset

    start = time.perf_counter()
    try:
        ds = load_dataset(args.data)
    except (DataError, ImportError) as exc:
        raise UsageError(f"poolkit train: error: {exc}") from None
    rng = np.random.default_rng(args.seed)
    _, h, w = ds.image_shape
    model = nn.lenet(1, (h, w), ds.num_classes, channels=(32, 64), rng=rng)
    if args.optimizer == "adam":
        opt: nn.Optimizer = nn.Adam(model.parameters(), lr=args.lr)
    else:
        opt = nn.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    n = len(ds.y_train)
    batches = -(-n // args.batch_size)
    total = args.epochs * batches
    step = 0

    def lr_at() -> float:
        nonlocal step
        step += 1
        return nn.training.cosine_lr(args.lr, step - 1, total)

    print(
        f"poolkit train: {ds.name} ({n} train / {len(ds.y_test)} test images, {h}x{w}, "
        f"{ds.num_classes} classes); LeNet with poolkit.MaxPool2d; {args.optimizer} "
        f"lr {args.lr:g} (cosine), {args.epochs} epochs of {batches} batches, seed {args.seed}",
        flush=True,
    )
    progress = _Progress(args.epochs, batches)
    with _threads(args.threads):
        for epoch in range(1, args.epochs + 1):
            progress.start(epoch)
            loss, acc = nn.training.train_epoch(
                model, opt, ds.x_train, ds.y_train, args.batch_size, rng, lr_at, progress.batch
            )
            progress.end(epoch, loss, acc)
        test_loss, test_acc = nn.training.evaluate(model, ds.x_test, ds.y_test)
    if args.save:
        try:
            model.save(args.save)
        except OSError as exc:
            raise UsageError(f"poolkit train: error: cannot write {args.save!r}: {exc}") from None
        print(f"saved model parameters to {args.save}")
    print(f"test loss: {test_loss:.4f}  ({time.perf_counter() - start:.1f} s)")
    print(f"test accuracy: {test_acc:.4f}", flush=True)
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from . import viz

    try:
        if args.image is not None:
            image = viz.load_image(args.image)
            source = args.image
        else:
            image = viz.sample_image(args.index)
            source = f"bundled digit #{args.index}"
        routing = viz.pooling_routing(image, args.kernel_size, args.stride, args.padding)
    except (ValueError, TypeError, ImportError) as exc:
        raise UsageError(f"poolkit show: error: {exc}") from None
    try:
        viz.plot_pooling(routing, args.out)
    except OSError as exc:
        raise UsageError(f"poolkit show: error: cannot write {args.out!r}: {exc}") from None
    oh, ow = routing.pooled.shape
    print(
        f"wrote {args.out}: {source} ({image.shape[0]}x{image.shape[1]}) -> {oh}x{ow} output; "
        f"{len(routing.sources())} input pixels receive gradient"
    )
    return 0


def _cmd_bench(argv: list[str]) -> int:
    try:
        from . import bench
    except ImportError as exc:
        raise UsageError(
            f"poolkit bench: error: the benchmark module poolkit.bench is not available ({exc})"
        ) from None
    return int(bench.main(argv) or 0)


def _cmd_pyramid(argv: list[str]) -> int:
    try:
        from . import _cli_pyramid
    except ImportError as exc:  # dask, zarr or tifffile missing
        raise UsageError(
            f"poolkit pyramid: error: needs the dask extra: pip install 'poolkit[dask]' ({exc})"
        ) from None
    return _cli_pyramid.main(argv)


_FAMILY_NAMES = ("max_pool", "avg_pool", "lp_pool", "adaptive_avg_pool", "adaptive_max_pool",
                 "global_pool", "fractional_max_pool")


def cache_location() -> str:
    """Where numba's cache of poolkit's kernels is (or will be) written.

    ``NUMBA_CACHE_DIR`` when set; else ``__pycache__`` beside the kernel sources when
    that directory can be written (numba's in-tree locator); else numba's user-wide
    cache directory (``~/.cache/numba/...`` on Linux), as numba falls back to it.
    """
    import os

    env = os.environ.get("NUMBA_CACHE_DIR")
    if env:
        return env
    kernels = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_kernels")
    tree = os.path.join(kernels, "__pycache__")
    probe = tree if os.path.isdir(tree) else kernels
    if os.access(probe, os.W_OK):
        return tree
    from numba.misc.appdirs import AppDirs

    return AppDirs(appname="numba", appauthor=False).user_cache_dir


def _cmd_compile(args: argparse.Namespace) -> int:
    from . import _precompile

    for name in args.ops or ():
        if name not in _precompile.FAMILIES:
            raise UsageError(f"poolkit compile: error: unknown family {name!r} "
                              f"(choose from {', '.join(_precompile.FAMILIES)})")
    for name in args.dtypes or ():
        if name not in _precompile.DTYPES:
            raise UsageError(f"poolkit compile: error: unknown dtype {name!r}")
    todo = list(_precompile.jobs(args.ops, args.dtypes, args.layouts))
    if args.dry_run:
        for job in todo:
            print(job.label)
        print(f"{len(todo)} jobs; cache: {cache_location()}")
        return 0
    bar = None
    if sys.stderr.isatty():
        try:
            from tqdm import tqdm
        except ImportError:
            pass
        else:
            bar = tqdm(total=len(todo), unit="job", file=sys.stderr, dynamic_ncols=True)
    start = time.perf_counter()
    width = len(str(len(todo)))
    for i, job in enumerate(todo, 1):
        if bar is not None:
            bar.set_description(job.label)
        else:
            print(f"[{i:>{width}}/{len(todo)}] {job.label}", flush=True)
        _precompile.run_job(job)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    print(f"compiled {len(todo)} jobs in {time.perf_counter() - start:.1f} s; "
          f"cache: {cache_location()}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``poolkit`` command line; returns the exit status.

    Examples
    --------
    >>> main(["show", "--kernel-size", "x"])  # prints a one-line error on stderr
    2
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = _build_parser()
    try:
        if args_list and args_list[0] == "pyramid":
            return _cmd_pyramid(args_list[1:])
        if args_list and args_list[0] == "bench":
            return _cmd_bench(args_list[1:])
        args = parser.parse_args(args_list)
        if args.command is None:
            parser.error("choose a command: train, show, bench, compile or pyramid "
                         "(see 'poolkit --help')")
        if args.command == "train":
            return _cmd_train(args)
        if args.command == "compile":
            return _cmd_compile(args)
        return _cmd_show(args)
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help, or a bench module that exits
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 2)
    except KeyboardInterrupt:
        print("poolkit: interrupted", file=sys.stderr)
        return 130
