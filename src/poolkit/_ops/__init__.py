"""The pooling families, one module each, all on the one engine.

Every family module owns its validated options (a :class:`~poolkit._ops.params.PoolParams`
subclass), its public functions (forward, ``*_backward``) and an **entry point on a
resolved geometry**: a function that takes an ndarray already validated and a
:class:`~poolkit._geometry.Geometry` whose pads and window counts are explicit, and
runs the kernels through :mod:`poolkit._engine`. The public functions, :mod:`poolkit.onnx`
and the chunked (Dask) executor all call those entry points:

=====================  =============================================================
module                 entry point on a geometry
=====================  =============================================================
``max_pool``           ``forward_on(arr, geom, batched, channels_last, want_indices)``
``avg_pool``           ``forward_on(arr, geom, batched, channels_last, include_pad, divisor)``
                       ``backward_on(grad, geom, shape, batched, channels_last, ...)``
``lp_pool``            ``sums_on(arr, geom, batched, channels_last, p)``
``global_pool``        ``plane_mean(arr, nd, channels_last, out)``
``unpool``             ``scatter_on(arr, plane_idx, shape, nd, channels_last)``
``argmax``             ``route(grad, plane_indices, shape, nd, channels_last, ...)``
=====================  =============================================================

Modules here import the engine, the geometry and the argument checks, never the public
faces (:mod:`poolkit.functional`, :mod:`poolkit.layers`, :mod:`poolkit.onnx`).
"""
