"""poolkit.nn: gradients (gradcheck and PyTorch), training, optimisers, save/load, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import poolkit as pk
from poolkit import nn
from poolkit.testing import GradcheckError, gradcheck

RNG_SEED = 1234


def _rng(offset: int = 0) -> np.random.Generator:
    return np.random.default_rng(RNG_SEED + offset)


def _distinct(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Distinct values spaced 0.1 apart: no ties, so max pooling is differentiable."""
    n = int(np.prod(shape))
    return _rng(seed).permutation(n).reshape(shape) * 0.1 - n * 0.05


# --- gradcheck on every layer --------------------------------------------------------------


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "bias"),
    [(3, 1, 0, True), (3, 2, 1, True), ((2, 3), (2, 1), (1, 0), False), (1, 1, 0, True),
     (5, 3, 2, True)],
)
def test_conv2d_gradcheck(kernel, stride, padding, bias):
    conv = nn.Conv2d(2, 3, kernel, stride=stride, padding=padding, bias=bias, rng=_rng(1),
                     dtype=np.float64)
    if bias:
        conv.bias.data[:] = _rng(2).standard_normal(3)
    x = _rng(3).standard_normal((2, 2, 7, 6))
    assert gradcheck(conv, x, max_checks=None)


def test_linear_gradcheck():
    fc = nn.Linear(5, 4, rng=_rng(), dtype=np.float64)
    fc.bias.data[:] = 0.3
    assert gradcheck(fc, _rng(1).standard_normal((3, 5)), max_checks=None)


def test_relu_gradcheck():
    x = _rng().standard_normal((4, 6))
    x[np.abs(x) < 0.05] = 0.5  # stay away from the kink
    assert gradcheck(nn.ReLU(), x, max_checks=None)


def test_flatten_gradcheck():
    assert gradcheck(nn.Flatten(), _rng().standard_normal((2, 3, 2, 2)), max_checks=None)


def test_dropout_gradcheck_with_a_fixed_mask():
    def f(x):
        return nn.Dropout(0.4, rng=7).forward(x)

    def f_backward(x, g):
        layer = nn.Dropout(0.4, rng=7)
        layer.forward(x)
        return layer.backward(g)

    assert gradcheck(f, _rng().standard_normal((5, 8)), backward=f_backward, max_checks=None)


def test_softmax_cross_entropy_gradcheck():
    targets = np.array([0, 3, 1, 3])
    loss = nn.SoftmaxCrossEntropy()

    def f(z):
        return np.array(loss.forward(z, targets))

    def f_backward(z, g):
        loss.forward(z, targets)
        return loss.backward(g)

    assert gradcheck(f, _rng().standard_normal((4, 5)) * 3, backward=f_backward, max_checks=None)


def test_sequential_lenet_gradcheck():
    net = nn.lenet(image_size=8, channels=(2, 3), rng=_rng(), dtype=np.float64)
    for p in net.parameters():
        p.data += 0.05 * _rng(5).standard_normal(p.shape)
    x = _distinct((2, 1, 8, 8))
    assert gradcheck(net, x, max_checks=60)


@pytest.mark.parametrize(
    ("layer", "shape"),
    [
        (pk.MaxPool1d(3, stride=2, padding=1), (2, 3, 11)),
        (pk.MaxPool1d(2, dilation=2), (1, 2, 9)),
        (pk.MaxPool2d(2), (2, 2, 6, 6)),
        (pk.MaxPool2d(3, stride=2, padding=1), (1, 2, 7, 8)),
        (pk.MaxPool2d((3, 2), stride=1, ceil_mode=True), (2, 5, 4)),
        (pk.MaxPool3d(2, stride=1), (1, 2, 3, 4, 3)),
        (pk.MaxPool3d(3, stride=2, padding=1), (1, 1, 5, 5, 5)),
    ],
)
def test_max_pool_layers_gradcheck(layer, shape):
    assert gradcheck(layer, _distinct(shape), max_checks=None)


def test_gradcheck_catches_a_wrong_backward():
    class Square:
        def forward(self, x):
            self.x = x
            return x * x

        def backward(self, g):
            return g * self.x  # should be 2 * x * g

    x = _rng().standard_normal((3, 3)) + 2
    with pytest.raises(GradcheckError, match="input gradient"):
        gradcheck(Square(), x)
    assert gradcheck(Square(), x, raise_exception=False) is False


def test_gradcheck_catches_a_wrong_parameter_gradient():
    fc = nn.Linear(3, 2, rng=0, dtype=np.float64)
    original = fc.backward

    def broken(g):
        dx = original(g)
        fc.weight.grad = fc.weight.grad * 1.5
        return dx

    fc.backward = broken
    with pytest.raises(GradcheckError, match="parameter 'weight'"):
        gradcheck(fc, _rng().standard_normal((4, 3)))


def test_gradcheck_restores_parameter_dtype_and_values():
    conv = nn.Conv2d(1, 2, 3, rng=0)  # float32
    before = conv.weight.data.copy()
    gradcheck(conv, _rng().standard_normal((1, 1, 5, 5)), rtol=1e-3, atol=1e-4)
    assert conv.weight.data.dtype == np.float32 and conv.weight.grad.dtype == np.float32
    np.testing.assert_array_equal(conv.weight.data, before)


def test_gradcheck_argument_errors():
    with pytest.raises(TypeError, match="backward="):
        gradcheck(np.tanh, np.ones(3))
    with pytest.raises(TypeError, match="forward"):
        gradcheck(42, np.ones(3))


# --- differential tests against PyTorch ---------------------------------------------------


@pytest.mark.parametrize(("stride", "padding"), [(1, 0), (2, 1), ((1, 2), (2, 1))])
def test_conv2d_matches_torch(stride, padding):
    conv = nn.Conv2d(3, 4, (3, 4), stride=stride, padding=padding, rng=_rng(), dtype=np.float64)
    conv.bias.data[:] = _rng(1).standard_normal(4)
    x = _rng(2).standard_normal((2, 3, 9, 10))
    y = conv(x)
    g = _rng(3).standard_normal(y.shape)
    dx = conv.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(conv.weight.data, requires_grad=True)
    bt = torch.tensor(conv.bias.data, requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wt, bt, stride=stride, padding=padding)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv.weight.grad, wt.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv.bias.grad, bt.grad.numpy(), rtol=1e-12, atol=1e-12)


def conv2d_loop_reference(x, w, b, stride, padding):
    """Plain-loop cross-correlation: the obviously-correct oracle for Conv2d.forward."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    (sh, sw), (ph, pw) = stride, padding
    xp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw))
    xp[:, :, ph : ph + h, pw : pw + wd] = x
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    out = np.zeros((n, o, oh, ow))
    for ni in range(n):
        for oi in range(o):
            for i in range(oh):
                for j in range(ow):
                    patch = xp[ni, :, i * sh : i * sh + kh, j * sw : j * sw + kw]
                    out[ni, oi, i, j] = (patch * w[oi]).sum() + b[oi]
    return out


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 2), c=st.integers(1, 3), o=st.integers(1, 3),
    h=st.integers(1, 7), w=st.integers(1, 7),
    kh=st.integers(1, 4), kw=st.integers(1, 4),
    sh=st.integers(1, 3), sw=st.integers(1, 3),
    ph=st.integers(0, 2), pw=st.integers(0, 2),
    seed=st.integers(0, 2**16),
)
def test_conv2d_property_reference_and_torch(n, c, o, h, w, kh, kw, sh, sw, ph, pw, seed):
    if h + 2 * ph < kh or w + 2 * pw < kw:
        with pytest.raises(ValueError, match="smaller than the padded kernel"):
            nn.Conv2d(c, o, (kh, kw), (sh, sw), (ph, pw), rng=seed)(np.zeros((n, c, h, w)))
        return
    rng = np.random.default_rng(seed)
    conv = nn.Conv2d(c, o, (kh, kw), (sh, sw), (ph, pw), rng=rng, dtype=np.float64)
    conv.bias.data[:] = rng.standard_normal(o)
    x = rng.standard_normal((n, c, h, w))
    y = conv(x)
    ref = conv2d_loop_reference(x, conv.weight.data, conv.bias.data, (sh, sw), (ph, pw))
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(y.shape)
    dx = conv.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(conv.weight.data, requires_grad=True)
    torch.nn.functional.conv2d(xt, wt, stride=(sh, sw), padding=(ph, pw)).backward(
        torch.tensor(g)
    )
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(conv.weight.grad, wt.grad.numpy(), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(conv.bias.grad, g.sum(axis=(0, 2, 3)), rtol=1e-12, atol=1e-12)


def test_linear_and_loss_match_torch():
    fc = nn.Linear(6, 5, rng=_rng(), dtype=np.float64)
    x = _rng(1).standard_normal((7, 6))
    t = _rng(2).integers(0, 5, 7)
    loss_fn = nn.SoftmaxCrossEntropy()
    loss = loss_fn(fc(x), t)
    dx = fc.backward(loss_fn.backward())
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(fc.weight.data, requires_grad=True)
    lt = torch.nn.functional.cross_entropy(
        torch.nn.functional.linear(xt, wt, torch.tensor(fc.bias.data)), torch.tensor(t)
    )
    lt.backward()
    assert loss == pytest.approx(lt.item(), rel=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fc.weight.grad, wt.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (lambda p: nn.SGD(p, lr=0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
        (
            lambda p: nn.SGD(p, lr=0.05, momentum=0.9, weight_decay=0.01),
            lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=0.01),
        ),
        (
            lambda p: nn.SGD(p, lr=0.05, momentum=0.8, nesterov=True),
            lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, nesterov=True),
        ),
        (lambda p: nn.Adam(p, lr=0.01), lambda p: torch.optim.Adam(p, lr=0.01)),
        (
            lambda p: nn.Adam(p, lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
            lambda p: torch.optim.Adam(p, lr=0.02, betas=(0.8, 0.99), eps=1e-6,
                                       weight_decay=0.1),
        ),
    ],
)
def test_optimisers_match_torch(ours, theirs):
    w0 = _rng().standard_normal((3, 4))
    p = nn.Parameter(w0.copy())
    pt = torch.tensor(w0.copy(), requires_grad=True)
    opt, opt_t = ours([p]), theirs([pt])
    for step in range(5):
        g = _rng(10 + step).standard_normal((3, 4))
        p.grad[...] = g
        pt.grad = torch.tensor(g)
        opt.step()
        opt_t.step()
    np.testing.assert_allclose(p.data, pt.detach().numpy(), rtol=1e-10, atol=1e-12)


# --- behaviour ---------------------------------------------------------------------------


def _tiny_problem():
    rng = _rng()
    x = rng.standard_normal((64, 1, 8, 8)).astype(np.float32)
    y = (x[:, 0, :4].sum(axis=(1, 2)) > 0).astype(np.int64)  # learnable: top half's sign
    return x, y


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_short_training_run_lowers_the_loss(optimizer):
    x, y = _tiny_problem()
    net = nn.lenet(image_size=8, num_classes=2, channels=(4, 8), rng=0)
    params = net.parameters()
    opt = nn.Adam(params, lr=1e-2) if optimizer == "adam" else nn.SGD(params, 0.05, momentum=0.9)
    loss_fn = nn.SoftmaxCrossEntropy()
    first = loss_fn(net(x), y)
    for _ in range(15):
        loss_fn(net(x), y)
        net.backward(loss_fn.backward())
        opt.step()
    last = loss_fn(net(x), y)
    assert last < 0.7 * first


def test_train_epoch_is_deterministic_for_a_seed():
    x, y = _tiny_problem()

    def run():
        net = nn.lenet(image_size=8, num_classes=2, channels=(4, 8), rng=3)
        opt = nn.Adam(net.parameters(), lr=1e-2)
        stats = nn.train_epoch(net, opt, x, y, 16, np.random.default_rng(5))
        return stats, net.state_dict()

    (s1, w1), (s2, w2) = run(), run()
    assert s1 == s2
    for k in w1:
        np.testing.assert_array_equal(w1[k], w2[k])


def test_evaluate_reports_accuracy_and_restores_mode():
    net = nn.Sequential(nn.Flatten(), nn.Dropout(0.5, rng=0), nn.Linear(4, 2, rng=0))
    net.train()
    x = np.array([[[1.0, 0, 0, 0]], [[0, 0, 0, 1.0]]])
    net[2].weight.data[:] = [[1, 0, 0, 0], [0, 0, 0, 1]]
    loss, acc = nn.evaluate(net, x, np.array([0, 1]))
    assert acc == 1.0 and loss > 0 and net.training and net[1].training


def test_save_load_round_trip_is_exact(tmp_path):
    net = nn.lenet(image_size=8, channels=(3, 5), rng=1)
    x = _rng().standard_normal((2, 1, 8, 8)).astype(np.float32)
    path = tmp_path / "model.npz"
    net.save(path)
    other = nn.lenet(image_size=8, channels=(3, 5), rng=2)
    assert not np.array_equal(other(x), net(x))
    other.load(path)
    for (n1, p1), (n2, p2) in zip(net.named_parameters(), other.named_parameters()):
        assert n1 == n2 and p1.data.dtype == p2.data.dtype
        np.testing.assert_array_equal(p1.data, p2.data)
    np.testing.assert_array_equal(other(x), net(x))


def test_load_rejects_bad_files(tmp_path):
    net = nn.lenet(image_size=8, channels=(3, 5), rng=1)
    missing = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError, match=r"nope\.npz"):
        net.load(missing)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip archive")
    with pytest.raises(ValueError, match=r"garbage\.npz"):
        net.load(garbage)
    other_shape = tmp_path / "other.npz"
    nn.lenet(image_size=8, channels=(4, 5), rng=1).save(other_shape)
    with pytest.raises(ValueError, match=r"other\.npz.*'0\.weight' has shape"):
        net.load(other_shape)
    fewer = tmp_path / "fewer.npz"
    nn.Linear(3, 2, rng=0).save(fewer)
    with pytest.raises(ValueError, match=r"fewer\.npz.*missing parameters"):
        net.load(fewer)


def test_dropout_train_and_eval():
    x = np.ones((200, 50))
    d = nn.Dropout(0.3, rng=0)
    y = d(x)
    kept = y != 0
    assert 0.6 < kept.mean() < 0.8
    np.testing.assert_allclose(y[kept], 1 / 0.7)
    np.testing.assert_array_equal(d.backward(np.ones_like(x)), y)
    d.eval()
    np.testing.assert_array_equal(d(x), x)
    np.testing.assert_array_equal(nn.Dropout(0.3, rng=5)(x), nn.Dropout(0.3, rng=5)(x))


def test_sequential_parameters_modes_and_repr():
    net = nn.lenet(image_size=8, rng=0)
    names = [n for n, _ in net.named_parameters()]
    assert names == ["0.weight", "0.bias", "3.weight", "3.bias", "7.weight", "7.bias"]
    assert isinstance(net[2], pk.MaxPool2d)
    net.eval()
    assert not net.training and not net[0].training
    assert "MaxPool2d(kernel_size=2" in repr(net)
    net.zero_grad()
    assert all(not p.grad.any() for p in net.parameters())


def test_inputs_are_not_mutated():
    x = _rng().standard_normal((2, 1, 8, 8)).astype(np.float32)
    keep = x.copy()
    net = nn.lenet(image_size=8, rng=0)
    y = net(x)
    g = np.ones_like(y)
    net.backward(g)
    np.testing.assert_array_equal(x, keep)
    np.testing.assert_array_equal(g, np.ones_like(y))


def test_float32_network_stays_float32():
    net = nn.lenet(image_size=8, rng=0)
    y = net(np.zeros((2, 1, 8, 8), np.float32))
    assert y.dtype == np.float32
    assert net.backward(np.ones_like(y)).dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in net.parameters())


# --- errors ---------------------------------------------------------------------------------


def test_layer_errors():
    conv = nn.Conv2d(2, 3, 3, rng=0)
    with pytest.raises(ValueError, match=r"x must have shape \(N, 2, H, W\)"):
        conv(np.zeros((1, 3, 5, 5)))
    with pytest.raises(ValueError, match="smaller than the padded kernel"):
        conv(np.zeros((1, 2, 2, 5)))
    with pytest.raises(RuntimeError, match="before forward"):
        nn.Conv2d(1, 1, 1, rng=0).backward(np.zeros((1, 1, 1, 1)))
    conv(np.zeros((1, 2, 5, 5)))
    with pytest.raises(ValueError, match="grad_output must have the forward output's shape"):
        conv.backward(np.zeros((1, 3, 2, 2)))
    with pytest.raises(ValueError, match="kernel_size must be >= 1"):
        nn.Conv2d(1, 1, 0)
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        nn.Linear(2, 2, dtype=np.int32)
    with pytest.raises(ValueError, match=r"x must have shape \(N, 4\)"):
        nn.Linear(4, 2, rng=0)(np.zeros((3, 5)))
    with pytest.raises(ValueError, match=r"p must be a float in \[0, 1\)"):
        nn.Dropout(1.0)
    with pytest.raises(TypeError, match="rng must be"):
        nn.Linear(2, 2, rng="seed")
    with pytest.raises(TypeError, match="forward"):
        nn.Sequential(nn.ReLU(), "relu")
    with pytest.raises(TypeError, match="real numeric"):
        nn.ReLU()(np.array(["a"]))


def test_loss_and_optimiser_errors():
    loss = nn.SoftmaxCrossEntropy()
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 3\)"):
        loss(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="targets must be integer class labels"):
        loss(np.zeros((2, 3)), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"logits must have shape \(N, K\)"):
        loss(np.zeros(3), np.array([0]))
    with pytest.raises(RuntimeError, match="before forward"):
        nn.SoftmaxCrossEntropy().backward()
    p = [nn.Parameter(np.zeros(2))]
    with pytest.raises(ValueError, match="lr must lie in"):
        nn.SGD(p, lr=0)
    with pytest.raises(ValueError, match="momentum must lie in"):
        nn.SGD(p, lr=0.1, momentum=1.5)
    with pytest.raises(ValueError, match=r"betas\[1\] must lie in"):
        nn.Adam(p, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="empty parameter list"):
        nn.Adam([])
    with pytest.raises(TypeError, match="Parameter objects"):
        nn.SGD([np.zeros(2)], lr=0.1)
