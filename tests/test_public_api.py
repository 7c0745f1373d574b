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

import numpy as np
import pytest

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


def _all_ways(fn, lead, options):
    """``fn`` called with ``options`` (name -> value, in signature order) positionally,
    by name, and half and half: the results must agree."""
    names = list(options)
    calls = [
        fn(*lead, *options.values()),
        fn(*lead, **options),
        fn(*lead, *[options[n] for n in names[:2]], **{n: options[n] for n in names[2:]}),
    ]
    for got in calls[1:]:
        np.testing.assert_array_equal(got, calls[0])
    return calls[0]


def test_wrappers_bind_every_option_by_position_and_by_name():
    x = np.random.default_rng(0).standard_normal((1, 2, 6, 5))
    opts = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False,
                divisor_override=None, channels_last=False, dilation=1)
    y = _all_ways(poolkit.avg_pool2d, (x,), opts)
    assert y.shape == (1, 2, 4, 3)
    out = np.empty_like(x)
    g = np.ones_like(y)
    _all_ways(poolkit.avg_pool2d_backward, (g, x.shape), {**opts, "out": out})
    lp = dict(norm_type=2.0, kernel_size=2, stride=1, ceil_mode=False, channels_last=False,
              padding=0, dilation=1)
    _all_ways(poolkit.lp_pool2d_backward, (np.ones((1, 2, 5, 4)), x), {**lp, "out": out})
    mx = dict(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False,
              return_indices=True, channels_last=False, index_format="global",
              storage_order=1)
    v, i = poolkit.max_pool2d(x, *mx.values())
    assert poolkit.max_pool2d(x, **mx)[1].tolist() == i.tolist()
    layout = dict(channels_last=False, index_format="global", storage_order=1, out=out)
    dx = _all_ways(poolkit.max_pool2d_backward, (np.ones_like(v), i, x.shape), layout)
    assert dx is out
    un = dict(kernel_size=2, stride=2, padding=0, output_size=(6, 5), channels_last=False,
              index_format="global", storage_order=1)
    assert _all_ways(poolkit.max_unpool2d, (v, i), un).shape == x.shape
    layer = poolkit.MaxUnpool2d(*[un[n] for n in un if n != "output_size"])
    assert layer.params == poolkit.MaxUnpool2d(2, index_format="global", storage_order=1).params
    assert poolkit.MaxPool2d(*mx.values()).params == poolkit.MaxPool2d(**mx).params
    assert poolkit.FractionalMaxPool2d(2, None, 0.5).output_ratio == (0.5, 0.5)


@pytest.mark.parametrize("call", [
    lambda x: poolkit.avg_pool2d(x),
    lambda x: poolkit.avg_pool2d(x, 2, kernel_size=2),
    lambda x: poolkit.avg_pool2d(x, 2, bogus=1),
    lambda x: poolkit.avg_pool2d_backward(x, x.shape, 2, out=x, **{"out": x}),
    lambda x: poolkit.avg_pool2d_backward(x, x.shape, 2, None, 0, False, True, None, False, 1,
                                          np.empty_like(x), out=np.empty_like(x)),
    lambda x: poolkit.max_pool2d_backward(x, x, x.shape, False, "plane", 0, None, None),
    lambda x: poolkit.max_unpool2d(x, x, 2, 2, 0, None, out=1),
    lambda x: poolkit.max_unpool2d(x, x, 2, 2, 0, (4, 4), output_size=(4, 4)),
    lambda x: poolkit.MaxPool2d(),
    lambda x: poolkit.LPPool2d(2, 2, nope=3),
    lambda x: poolkit.FractionalMaxPool2d(2, 1, 0.5, False, None, None, 9),
])
def test_calls_that_do_not_bind_are_type_errors(call):
    with pytest.raises(TypeError):
        call(np.zeros((1, 1, 4, 4)))


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        TABLE.write_text("".join(_row(name, obj) + "\n" for name, obj in _public()))
    else:
        print("usage: PYTHONPATH=src python tests/test_public_api.py --write")
