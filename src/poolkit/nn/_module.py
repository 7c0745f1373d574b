"""Parameters, the module base class, :class:`Sequential`, and ``.npz`` save/load."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["Module", "Parameter", "Sequential", "as_generator"]


def as_generator(rng: np.random.Generator | int | None) -> np.random.Generator:
    """Return a ``numpy.random.Generator`` from a Generator, an int seed, or None.

    None gives a fresh generator seeded from the operating system; pass an int or a
    Generator for reproducible results. poolkit never touches NumPy's global random state.

    Examples
    --------
    >>> as_generator(0).integers(10) == as_generator(0).integers(10)
    True
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    raise TypeError(
        f"rng must be a numpy.random.Generator, an int seed or None, got {type(rng).__name__}"
    )


class Parameter:
    """A trainable array and its gradient.

    Layers fill ``grad`` in ``backward`` (overwriting it); optimisers read ``grad`` and
    update ``data`` in place.

    Parameters
    ----------
    data : ndarray
        Initial value; kept as given (no copy).

    Examples
    --------
    >>> import numpy as np
    >>> p = Parameter(np.zeros(3))
    >>> p.grad
    array([0., 0., 0.])
    """

    __slots__ = ("data", "grad")

    def __init__(self, data: np.ndarray) -> None:
        self.data = data
        self.grad = np.zeros_like(data)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


class Module:
    """Base class of the ``poolkit.nn`` layers.

    A module has ``forward(x)`` and ``backward(grad_output)`` (the gradient with respect to
    the input of the most recent forward), a ``training`` flag switched by :meth:`train` and
    :meth:`eval`, and named :class:`Parameter` objects found in its attributes.
    """

    training: bool = True

    def forward(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, grad_output: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    # --- parameters -------------------------------------------------------------------
    def named_parameters(self) -> list[tuple[str, Parameter]]:
        """``(name, Parameter)`` pairs in a fixed order (attribute definition order)."""
        return [(k, v) for k, v in vars(self).items() if isinstance(v, Parameter)]

    def parameters(self) -> list[Parameter]:
        """The trainable parameters, for an optimiser."""
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        """Set every parameter gradient to zero."""
        for p in self.parameters():
            p.grad[...] = 0

    # --- modes --------------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Switch to training mode (``mode=False``: evaluation mode); returns self."""
        self.training = bool(mode)
        return self

    def eval(self) -> Module:
        """Switch to evaluation mode (Dropout passes inputs through); returns self."""
        return self.train(False)

    # --- state ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of all parameter arrays, keyed by name (e.g. ``"0.weight"``)."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict[str, np.ndarray], source: str = "state") -> None:
        """Copy arrays into the parameters; names, shapes and dtypes must all match.

        Raises
        ------
        ValueError
            Naming ``source`` and the first mismatch.
        """
        params = dict(self.named_parameters())
        missing = sorted(set(params) - set(state))
        extra = sorted(set(state) - set(params))
        if missing or extra:
            raise ValueError(
                f"{source} does not match this model: missing parameters {missing}, "
                f"unexpected entries {extra}"
            )
        for name, p in params.items():
            arr = np.asarray(state[name])
            if arr.shape != p.data.shape:
                raise ValueError(
                    f"{source}: parameter {name!r} has shape {arr.shape}, the model expects "
                    f"{p.data.shape}"
                )
            p.data[...] = arr.astype(p.data.dtype, copy=False)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the parameters to an ``.npz`` file (``np.savez``; exact round trip).

        Examples
        --------
        >>> import tempfile, os
        >>> from poolkit.nn import Linear
        >>> layer = Linear(3, 2, rng=0)
        >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
        >>> layer.save(path)
        >>> other = Linear(3, 2, rng=1)
        >>> other.load(path)
        >>> bool((other.weight.data == layer.weight.data).all())
        True
        """
        with open(path, "wb") as fh:
            np.savez(fh, **self.state_dict())

    def load(self, path: str | os.PathLike[str]) -> None:
        """Load parameters saved by :meth:`save` into this (identically built) model.

        Raises
        ------
        FileNotFoundError, ValueError
            Naming the file when it is missing, not an ``.npz`` archive, or does not match.
        """
        name = os.fspath(path)
        if not os.path.isfile(name):
            raise FileNotFoundError(f"model file {name!r} does not exist")
        try:
            loaded = np.load(name, allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):
                raise ValueError("it holds a single array, not named parameters")
            with loaded as data:
                state = {k: data[k] for k in data.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise ValueError(f"model file {name!r} is not a readable .npz archive: {exc}") from None
        self.load_state_dict(state, source=f"model file {name!r}")


class Sequential(Module):
    """Layers applied one after another; backward runs them in reverse.

    Any object with ``forward`` and ``backward`` methods can be a layer (for example
    :class:`poolkit.MaxPool2d`); parameters are named ``"<position>.<name>"``.

    Examples
    --------
    >>> import numpy as np
    >>> from poolkit.nn import Sequential, Linear, ReLU
    >>> net = Sequential(Linear(4, 8, rng=0), ReLU(), Linear(8, 2, rng=1))
    >>> y = net(np.ones((5, 4)))
    >>> net.backward(np.ones_like(y)).shape
    (5, 4)
    >>> [name for name, _ in net.named_parameters()]
    ['0.weight', '0.bias', '2.weight', '2.bias']
    """

    def __init__(self, *layers: Any) -> None:
        for i, layer in enumerate(layers):
            if not (callable(getattr(layer, "forward", None)) and callable(
                getattr(layer, "backward", None)
            )):
                raise TypeError(
                    f"Sequential layer {i} must have forward() and backward() methods, got "
                    f"{type(layer).__name__}"
                )
        self.layers = list(layers)

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        for layer in reversed(self.layers):
            grad_output = layer.backward(grad_output)
        return grad_output

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        out: list[tuple[str, Parameter]] = []
        for i, layer in enumerate(self.layers):
            named = getattr(layer, "named_parameters", None)
            if named is not None:
                out.extend((f"{i}.{name}", p) for name, p in named())
        return out

    def train(self, mode: bool = True) -> Sequential:
        self.training = bool(mode)
        for layer in self.layers:
            if hasattr(layer, "train"):
                layer.train(mode)
        return self

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Any:
        return self.layers[i]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.layers)

    def __repr__(self) -> str:
        inner = "".join(f"\n  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential({inner}\n)"
