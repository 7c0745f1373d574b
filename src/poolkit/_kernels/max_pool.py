"""Compiled max pooling kernels on 5-D ``(N, C, D, H, W)`` views.

Pure functions: they read their inputs, write only the output arrays they are given,
and report bad indices through a flag array instead of raising.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._scalar import accumulate, is_nan, order_key


@njit(parallel=True, cache=True, nogil=True)
def max_pool_forward(x, out, idx, params, fill, want_indices):
    """Max over each window; ``idx`` gets the flat plane index of the winner.

    Scan order is row-major over the window; a later element wins only if it is
    strictly greater or NaN (first maximum wins ties, last NaN wins). A window with
    no element inside the input yields ``fill`` and index -1.
    """
    n_batch, n_chan, in_d, in_h, in_w = x.shape
    out_d, out_h, out_w = out.shape[2], out.shape[3], out.shape[4]
    kd, kh, kw = params[0, 0], params[0, 1], params[0, 2]
    sd, sh, sw = params[1, 0], params[1, 1], params[1, 2]
    pd, ph, pw = params[2, 0], params[2, 1], params[2, 2]
    dd, dh, dw = params[3, 0], params[3, 1], params[3, 2]
    rows = n_batch * n_chan * out_d
    for task in prange(rows):
        n = task // (n_chan * out_d)
        c = (task // out_d) % n_chan
        od = task % out_d
        z0 = od * sd - pd
        for oh in range(out_h):
            y0 = oh * sh - ph
            for ow in range(out_w):
                x0 = ow * sw - pw
                found = False
                best_key = order_key(x[n, c, 0, 0, 0])
                bz = -1
                by = 0
                bx = 0
                for a in range(kd):
                    z = z0 + a * dd
                    if z < 0 or z >= in_d:
                        continue
                    for b in range(kh):
                        y = y0 + b * dh
                        if y < 0 or y >= in_h:
                            continue
                        for e in range(kw):
                            xx = x0 + e * dw
                            if xx < 0 or xx >= in_w:
                                continue
                            v = x[n, c, z, y, xx]
                            key = order_key(v)
                            if not found or key > best_key or is_nan(v):
                                found = True
                                best_key = key
                                bz = z
                                by = y
                                bx = xx
                if found:
                    out[n, c, od, oh, ow] = x[n, c, bz, by, bx]
                    if want_indices:
                        idx[n, c, od, oh, ow] = (bz * in_h + by) * in_w + bx
                else:
                    out[n, c, od, oh, ow] = fill
                    if want_indices:
                        idx[n, c, od, oh, ow] = -1


@njit(parallel=True, cache=True, nogil=True)
def max_pool_backward(grad, idx, dx, bad):
    """Scatter-add ``grad`` into ``dx`` (zeroed) at the flat plane positions ``idx``.

    Parallel over planes only, and in output row-major order inside a plane, so the
    sums are bit-identical run to run. Index -1 (a window with no input) is skipped;
    any other out-of-range index sets ``bad[plane]`` and is skipped.
    """
    n_batch, n_chan, in_d, in_h, in_w = dx.shape
    out_d, out_h, out_w = grad.shape[2], grad.shape[3], grad.shape[4]
    plane = in_d * in_h * in_w
    for task in prange(n_batch * n_chan):
        n = task // n_chan
        c = task % n_chan
        for od in range(out_d):
            for oh in range(out_h):
                for ow in range(out_w):
                    i = idx[n, c, od, oh, ow]
                    if i < 0 or i >= plane:
                        if i != -1:
                            bad[task] = 1
                        continue
                    z = i // (in_h * in_w)
                    r = i - z * in_h * in_w
                    y = r // in_w
                    xx = r - y * in_w
                    dx[n, c, z, y, xx] = accumulate(dx[n, c, z, y, xx], grad[n, c, od, oh, ow])


@njit(parallel=True, cache=True, nogil=True)
def max_pool_forward_nd(x, out, idx, in_size, params, fill, want_indices):
    """Any-rank fallback of :func:`max_pool_forward` on flattened planes.

    ``x`` is ``(planes, prod(in_size))``, ``out``/``idx`` are ``(planes, n_out)``;
    ``params`` rows are kernel, stride, pad_begin, dilation, out_size (one column per
    spatial dim). Same scan order and tie/NaN rules as the 3-D kernel.
    """
    nd = in_size.shape[0]
    n_out = out.shape[1]
    kernel = params[0]
    stride = params[1]
    pad = params[2]
    dil = params[3]
    out_size = params[4]
    for plane in prange(x.shape[0]):
        ocoord = np.zeros(nd, dtype=np.int64)
        kcoord = np.zeros(nd, dtype=np.int64)
        for o in range(n_out):
            rem = o
            for j in range(nd - 1, -1, -1):
                ocoord[j] = rem % out_size[j]
                rem //= out_size[j]
            kcoord[:] = 0
            found = False
            best_key = order_key(x[plane, 0])
            best = -1
            while True:
                flat = 0
                valid = True
                for j in range(nd):
                    pos = ocoord[j] * stride[j] - pad[j] + kcoord[j] * dil[j]
                    if pos < 0 or pos >= in_size[j]:
                        valid = False
                        break
                    flat = flat * in_size[j] + pos
                if valid:
                    v = x[plane, flat]
                    key = order_key(v)
                    if not found or key > best_key or is_nan(v):
                        found = True
                        best_key = key
                        best = flat
                # advance the window odometer (last dim fastest = row-major scan)
                j = nd - 1
                while j >= 0:
                    kcoord[j] += 1
                    if kcoord[j] < kernel[j]:
                        break
                    kcoord[j] = 0
                    j -= 1
                if j < 0:
                    break
            out[plane, o] = x[plane, best] if found else fill
            if want_indices:
                idx[plane, o] = best
