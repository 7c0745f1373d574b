"""Compiled (numba) kernels. Internal: call through :mod:`poolkit.functional`.

The kernel modules import numba (a few tenths of a second), so the Python side refers
to them through :class:`LazyModule` and ``import poolkit`` stays fast: numba is loaded
by the first call that needs a kernel of that module.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

#: The module numba's BLAS probe imports (it pulls in all of ``scipy.linalg``).
_BLAS_MODULE = "scipy.linalg.cython_blas"


def _load_numba() -> None:
    """Import numba's array-math registry without paying for its BLAS probe.

    Loading the first cached kernel makes numba import all its implementation
    registries; one of them, ``numba.np.arraymath``, imports ``scipy.linalg`` at import
    time (about 0.15 s) only to set a flag saying whether BLAS exists. poolkit's kernels
    never use BLAS, so the registry is imported here with that one import answered
    "absent", and the flag is then set to what the probe would have found (scipy is
    installed), so numba code elsewhere in the process behaves as usual; numba's own
    BLAS-using functions import scipy when they are compiled, as always.
    """
    if "numba.np.arraymath" in sys.modules or _BLAS_MODULE in sys.modules:
        return  # already imported, or the probe is free now
    import numba  # noqa: F401  (the registry below needs numba fully imported)

    sys.modules[_BLAS_MODULE] = None  # type: ignore[assignment]  # "absent" to the probe
    try:
        from numba.np import arraymath
    finally:
        if sys.modules.get(_BLAS_MODULE, 0) is None:
            del sys.modules[_BLAS_MODULE]
    arraymath._HAVE_BLAS = importlib.util.find_spec("scipy") is not None


class LazyModule:
    """Stands for the kernel module ``poolkit._kernels.<name>`` until first use.

    The first attribute access imports the module; every attribute fetched is then
    stored on the proxy itself, so later accesses are plain attribute lookups.
    """

    def __init__(self, name: str) -> None:
        self._name = f"{__name__}.{name}"

    def module(self) -> Any:
        """The kernel module itself (imported on first call)."""
        module = sys.modules.get(self._name)
        if module is None:
            _load_numba()
            module = importlib.import_module(self._name)
        return module

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):  # copy/pickle/introspection probes: never import
            raise AttributeError(attr)
        value = getattr(self.module(), attr)
        setattr(self, attr, value)
        return value
