"""Compiled (numba) kernels. Internal: call through :mod:`poolkit.functional`.

The kernel modules import numba (a few tenths of a second), so the Python side refers
to them through :class:`LazyModule` and ``import poolkit`` stays fast: numba is loaded
by the first call that needs a kernel of that module.
"""

from __future__ import annotations

import importlib
from typing import Any


class LazyModule:
    """Stands for the kernel module ``poolkit._kernels.<name>`` until first use.

    The first attribute access imports the module; every attribute fetched is then
    stored on the proxy itself, so later accesses are plain attribute lookups.
    """

    def __init__(self, name: str) -> None:
        self._name = f"{__name__}.{name}"

    def module(self) -> Any:
        """The kernel module itself (imported on first call).

        Always through :func:`importlib.import_module`, never a bare ``sys.modules``
        lookup: while one thread imports the module, ``sys.modules`` already holds it
        half-initialised, and import_module makes a second thread wait for the import
        to finish (dask's threads reach the kernels at the same moment).
        """
        return importlib.import_module(self._name)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):  # copy/pickle/introspection probes: never import
            raise AttributeError(attr)
        value = getattr(self.module(), attr)
        setattr(self, attr, value)
        return value
