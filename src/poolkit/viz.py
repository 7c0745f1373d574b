"""Pictures of max pooling: forward (which value each window keeps) and backward routing.

:func:`pooling_routing` computes, with :class:`poolkit.MaxPool2d`, which input pixel each
output cell routes its gradient to; :func:`plot_pooling` draws it (needs matplotlib, the
``demo`` extra; imported only when called). ``poolkit show`` is the command-line front end.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from .layers import MaxPool2d

__all__ = ["PoolingRouting", "load_image", "plot_pooling", "pooling_routing", "sample_image"]

# Text labels and arrows are drawn only while the picture stays readable.
_MAX_LABELLED_PIXELS = 24 * 24
_MAX_ARROWS = 100


@dataclass(frozen=True)
class PoolingRouting:
    """Forward and backward of a 2-D max pooling on one image.

    Attributes
    ----------
    image : (H, W) float64
    pooled : (OH, OW) the pooled image
    winner : (OH, OW) int64, flat index ``h*W + w`` of the pixel each output cell keeps
    grad : (H, W) ``MaxPool2d.backward`` of an all-ones gradient: how many output cells
        route their gradient to each pixel (0 = no gradient)
    """

    image: np.ndarray
    pooled: np.ndarray
    winner: np.ndarray
    grad: np.ndarray
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]

    def sources(self) -> dict[int, list[int]]:
        """For every pixel that gets gradient: the output cells (flat ``i*OW + j``) feeding it."""
        out: dict[int, list[int]] = {}
        for cell, pix in enumerate(self.winner.ravel().tolist()):
            out.setdefault(pix, []).append(cell)
        return out


def pooling_routing(
    image: np.ndarray, kernel_size: Any = 2, stride: Any = None, padding: Any = 0
) -> PoolingRouting:
    """Pool a 2-D image with :class:`poolkit.MaxPool2d` and record the backward routing.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit.viz import pooling_routing
    >>> r = pooling_routing(np.arange(16.0).reshape(4, 4), 2)
    >>> r.pooled
    array([[ 5.,  7.],
           [13., 15.]])
    >>> r.winner
    array([[ 5,  7],
           [13, 15]])
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2:
        raise ValueError(f"image must be 2-D (H, W), got shape {img.shape}")
    layer = MaxPool2d(kernel_size, stride=stride, padding=padding, return_indices=True)
    pooled, idx = layer.forward(img[None])
    grad = layer.backward(np.ones_like(pooled))
    p = layer.params
    # the leading pads drawn around the image (padding in any form, resolved for it)
    pad_begin, _ = p.padding.resolve(img.shape, p.kernel, p.stride, p.dilation)
    return PoolingRouting(
        img, pooled[0], idx[0], grad[0], tuple(p.kernel), tuple(p.stride), tuple(pad_begin)
    )


def sample_image(index: int = 0) -> np.ndarray:
    """Image ``index`` of scikit-learn's bundled digits, scaled to [0, 1] (8x8).

    Examples
    --------
    >>> from poolkit.viz import sample_image
    >>> sample_image(0).shape
    (8, 8)
    """
    from .data import load_digits

    ds = load_digits()
    images = np.concatenate([ds.x_train, ds.x_test])[:, 0]
    if not 0 <= index < len(images):
        raise ValueError(f"index must lie in [0, {len(images)}), got {index}")
    return images[index].astype(np.float64)


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a PNG or ``.npy`` file as a 2-D float64 image (colour is converted to grey,
    alpha is dropped).

    Raises
    ------
    ValueError
        Naming the file when it is missing, unreadable, or not a 2-D / RGB(A) image.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from poolkit.viz import load_image
    >>> path = os.path.join(tempfile.mkdtemp(), "rgb.npy")
    >>> np.save(path, np.ones((4, 5, 3)))
    >>> load_image(path).shape
    (4, 5)
    """
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise ValueError(f"image file {name!r} does not exist")
    try:
        if name.lower().endswith(".npy"):
            arr = np.load(name, allow_pickle=False)
        else:
            import matplotlib.image as mpimg

            arr = mpimg.imread(name)
    except Exception as exc:  # any decoder failure: report it against the file
        raise ValueError(f"image file {name!r} could not be read: {exc}") from None
    arr = np.asarray(arr)
    if arr.dtype.kind not in "uif":
        raise ValueError(f"image file {name!r} must hold numbers, got dtype {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        arr = arr[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    elif arr.ndim == 3 and arr.shape[2] in (1, 2):  # grey, or grey + alpha
        arr = arr[..., 0]
    if arr.ndim != 2 or min(arr.shape) < 1:
        raise ValueError(
            f"image file {name!r} must hold a 2-D (H, W) image or (H, W, 1|2|3|4) channels, "
            f"got shape {arr.shape}"
        )
    return arr.astype(np.float64)


def _cell_colours(n: int) -> np.ndarray:
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    order = [*range(0, 20, 2), *range(1, 20, 2)]  # saturated colours first
    return np.array([cmap(order[k % 20])[:3] for k in range(n)])


def plot_pooling(r: PoolingRouting, path: str | os.PathLike[str], title: str | None = None) -> None:
    """Draw input, pooled output and backward routing side by side and save a PNG.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from poolkit.viz import plot_pooling, pooling_routing
    >>> path = os.path.join(tempfile.mkdtemp(), "pool.png")
    >>> plot_pooling(pooling_routing(np.arange(36.0).reshape(6, 6), 3, stride=2, padding=1), path)
    >>> open(path, "rb").read(4)
    b'\\x89PNG'
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import ConnectionPatch, Rectangle

    h, w = r.image.shape
    oh, ow = r.pooled.shape
    n_cells = oh * ow
    colours = _cell_colours(n_cells)
    small = h * w <= _MAX_LABELLED_PIXELS
    (kh, kw), (sh, sw), (ph, pw) = r.kernel_size, r.stride, r.padding

    fig, axes = plt.subplots(1, 3, figsize=(15, 5.6), gridspec_kw={"width_ratios": [1, 1, 1]})
    ax_in, ax_out, ax_back = axes
    lo, hi = float(r.image.min()), float(r.image.max())

    # 1. input with every pooling window outlined in its output cell's colour
    ax_in.imshow(r.image, cmap="gray", vmin=lo, vmax=hi)
    ax_in.set_title(
        f"input {h}x{w}\n"
        + ("(each window outlined in its output cell's colour)" if n_cells <= _MAX_ARROWS else "")
    )
    if n_cells <= _MAX_ARROWS:
        for cell in range(n_cells):
            i, j = divmod(cell, ow)
            inset = 0.06 + 0.1 * ((i + j) % 2)
            ax_in.add_patch(
                Rectangle(
                    (j * sw - pw - 0.5 + inset, i * sh - ph - 0.5 + inset),
                    kw - 2 * inset,
                    kh - 2 * inset,
                    fill=False,
                    lw=1.6,
                    ec=colours[cell],
                )
            )
    if ph or pw:
        ax_in.add_patch(
            Rectangle((-pw - 0.5, -ph - 0.5), w + 2 * pw, h + 2 * ph, fc="#dfe8f3", ls="--",
                      ec="0.5", lw=1, zorder=-1)
        )
        ax_in.text(-pw - 0.5, h + ph - 0.3, "padding (never wins)", color="0.4", fontsize=8,
                   va="top")
    ax_in.set_xlim(-pw - 0.5, w + pw - 0.5)
    ax_in.set_ylim(h + ph - 0.5 + (0.8 if ph or pw else 0.0), -ph - 0.5)

    # 2. pooled output, cells framed in their colours (labelled while there are few cells)
    ax_out.imshow(r.pooled, cmap="gray", vmin=lo, vmax=hi)
    labelled = n_cells <= _MAX_ARROWS
    ax_out.set_title(
        f"max-pooled output {oh}x{ow}\n" + ("(cell number, kept value)" if labelled else "")
    )
    for cell in range(n_cells if labelled else 0):
        i, j = divmod(cell, ow)
        v = r.pooled[i, j]
        ax_out.add_patch(Rectangle((j - 0.45, i - 0.45), 0.9, 0.9, fill=False, lw=3,
                                   ec=colours[cell]))
        ax_out.text(j, i, f"#{cell}\n{v:.3g}", ha="center", va="center", fontsize=8,
                    color="white" if v < (lo + hi) / 2 else "black")

    # 3. backward routing: pixels coloured by the output cell(s) sending them gradient
    sources = r.sources()
    rgb = np.full((h, w, 3), 0.93)
    for pix, cells in sources.items():
        rgb[divmod(pix, w)] = colours[cells].mean(axis=0)
    ax_back.imshow(rgb)
    n_recv = len(sources)
    ax_back.set_title(
        f"backward: gradient routing\n{n_recv} of {h * w} input pixels receive gradient; "
        "grey pixels get 0"
    )
    if small:
        for pix, cells in sources.items():
            y, x = divmod(pix, w)
            label = "+".join(f"#{c}" for c in cells)
            if len(cells) > 1:
                label += f"\n(x{len(cells)}, adds up)"
            ax_back.text(x, y, label, ha="center", va="center", fontsize=7, color="black")
    if n_cells <= _MAX_ARROWS:
        for cell in range(n_cells):
            i, j = divmod(cell, ow)
            y, x = divmod(int(r.winner[i, j]), w)
            fig.add_artist(
                ConnectionPatch(
                    xyA=(j, i), coordsA=ax_out.transData, xyB=(x, y), coordsB=ax_back.transData,
                    arrowstyle="-|>", color=colours[cell], lw=1.0, alpha=0.8, mutation_scale=10,
                    shrinkB=4,
                )
            )
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    def compact(v: tuple[int, int]) -> str:
        return str(v[0]) if v[0] == v[1] else str(v)

    fig.suptitle(
        title
        or (
            f"poolkit.MaxPool2d(kernel_size={compact(r.kernel_size)}, "
            f"stride={compact(r.stride)}, padding={compact(r.padding)})\n"
            "forward keeps each window's maximum (the first one on ties); backward sends each "
            "output cell's gradient to that one pixel (arrows), everything else gets zero"
        ),
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    fig.savefig(os.fspath(path), dpi=110)
    plt.close(fig)
