"""The public API, locked: every public function, layer class and public method of
``poolkit``, ``poolkit.nn``, ``poolkit.onnx`` and ``poolkit.testing`` keeps its signature
(``inspect.signature``: names, order, kinds, defaults, annotations) and its docstring.

The expected values are in ``public_api.txt`` beside this file (one ``name<TAB>signature
<TAB>docstring digest`` row each). A deliberate API or docstring change rewrites it with
``PYTHONPATH=src python tests/test_public_api.py --write``; the diff then shows what changed.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import poolkit
import poolkit.nn
import poolkit.onnx
import poolkit.testing

TABLE = Path(__file__).with_name("public_api.txt")
MODULES = {"poolkit": poolkit, "poolkit.nn": poolkit.nn, "poolkit.onnx": poolkit.onnx,
           "poolkit.testing": poolkit.testing}


def _public() -> Iterator[tuple[str, Callable]]:
    """Every public callable, and the public methods poolkit defines on public classes."""
    for module_name, module in MODULES.items():
        for name in module.__all__:
            obj = getattr(module, name)
            if not callable(obj) or inspect.ismodule(obj):
                continue
            yield f"{module_name}.{name}", obj
            if inspect.isclass(obj):
                for attr, value in sorted(inspect.getmembers(obj)):
                    if attr.startswith("_") or not callable(value):
                        continue
                    if getattr(value, "__module__", "").split(".")[0] == "poolkit":
                        yield f"{module_name}.{name}.{attr}", value


def _signature(obj: Callable) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):  # a class with no Python-level signature
        return "-"


def _row(name: str, obj: Callable) -> str:
    digest = hashlib.sha256((obj.__doc__ or "").encode()).hexdigest()[:16]
    return f"{name}\t{_signature(obj)}\t{digest}"


def _expected() -> dict[str, tuple[str, str]]:
    rows = (line.split("\t") for line in TABLE.read_text().splitlines() if line)
    return {name: (sig, digest) for name, sig, digest in rows}


def test_every_public_name_is_listed():
    assert sorted(name for name, _ in _public()) == sorted(_expected())


def test_signatures_are_unchanged():
    expected = _expected()
    changed = {name: (_signature(obj), expected[name][0]) for name, obj in _public()
               if name in expected and _signature(obj) != expected[name][0]}
    assert not changed, changed


def test_docstrings_are_unchanged():
    expected = _expected()
    changed = [name for name, obj in _public()
               if name in expected and _row(name, obj).split("\t")[2] != expected[name][1]]
    assert not changed, changed


def test_signatures_bind_like_the_functions():
    """The layer constructors and rank wrappers accept exactly what their signatures say."""
    sig = inspect.signature(poolkit.avg_pool2d_backward)
    assert list(sig.parameters)[-1] == "out"
    assert all(p.kind is p.POSITIONAL_OR_KEYWORD for p in sig.parameters.values())
    assert poolkit.MaxPool2d(2, 2, 0, 1, False, True).params.return_indices


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        TABLE.write_text("".join(_row(name, obj) + "\n" for name, obj in _public()))
    else:
        print("usage: PYTHONPATH=src python tests/test_public_api.py --write")
