"""The examples in public docstrings run and print what they claim."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import poolkit


def _public_modules():
    """Every public module, plus the family modules of poolkit._ops, where the public
    functions are defined (doctest only runs examples of a module's own objects)."""
    names = ["poolkit"]
    for info in pkgutil.walk_packages(poolkit.__path__, "poolkit."):
        leaf = info.name.rsplit(".", 1)[-1]
        family = info.name.startswith("poolkit._ops.")
        if (family or not leaf.startswith("_")) and leaf not in {"__main__"}:
            names.append(info.name)
    return names


@pytest.mark.parametrize("name", _public_modules())
def test_docstring_examples(name):
    try:
        module = importlib.import_module(name)
    except ImportError as exc:  # an optional extra (e.g. onnx) missing is a real failure here
        raise AssertionError(f"cannot import {name}: {exc}") from exc
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


def test_every_public_function_has_an_example():
    missing = [
        name
        for name in poolkit.__all__
        if callable(getattr(poolkit, name)) and ">>>" not in (getattr(poolkit, name).__doc__ or "")
    ]
    assert not missing, f"public callables without a docstring example: {missing}"
