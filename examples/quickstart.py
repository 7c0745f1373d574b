"""poolkit in ten lines: forward, backward, and the layer (run: python examples/quickstart.py)."""

import numpy as np

import poolkit as pk

x = np.random.default_rng(0).standard_normal((8, 16, 32, 32)).astype(np.float32)
y, idx = pk.max_pool2d(x, kernel_size=3, stride=2, padding=1, return_indices=True)
dx = pk.max_pool2d_backward(np.ones_like(y), idx, x.shape)  # gradient routed to the winners
layer = pk.MaxPool2d(3, stride=2, padding=1)
assert np.array_equal(layer(x), y) and np.array_equal(layer.backward(np.ones_like(y)), dx)
print(layer, x.shape, "->", y.shape, "| gradient reaches", int((dx != 0).sum()), "inputs")
