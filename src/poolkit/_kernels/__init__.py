"""Compiled (numba) kernels. Internal: call through :mod:`poolkit.functional`."""
