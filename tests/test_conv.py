"""Conv2D, MaxPool2D, AvgPool2D and simple_convnet: values against plain loops written here, backward rules
against those loops and against autograd's VJP of apply, ties, init scales, errors, and every gradient path."""
import warnings

import numpy as np
import pytest
from autograd import make_vjp

import minigrad_nets as mg


def init_layer(layer, shape, seed=0, dtype=np.float64):
    """(output_shape, params) of ``layer`` for input (B, ...) = shape."""
    out, params, _ = layer.init(np.random.default_rng(seed), (-1,) + tuple(shape[1:]), dtype)
    return out, params


def hand_rule(layer, params, x, dy, need_dx=True):
    """The layer's own forward then backward: (y, dparams, dx)."""
    y, cache, _ = layer.forward(params, None, x, True, None)
    dparams, dx = layer.backward(params, cache, dy, need_dx)
    return y, dparams, dx


def autograd_vjp(layer, params, x, dy):
    """autograd's VJP of the layer's apply, for the input and (if any) the params: (dparams, dx)."""
    if params is None:
        vjp, _ = make_vjp(lambda xin: layer.apply(None, None, xin, True, None)[0])(x)
        return None, vjp(dy)
    vjp, _ = make_vjp(lambda both: layer.apply(both[0], None, both[1], True, None)[0])((params, x))
    return vjp(dy)


# ---------------------------------------------------------------- loops written from the definitions


def loop_conv(x, W, b, stride, pad):
    """y[n, f, r, c] = b[f] + sum_{ch, i, j} W[f, ch, i, j] * xp[n, ch, r*s + i, c*s + j], one output at a time."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    n, _, hp, wp = xp.shape
    f, _, kh, kw = W.shape
    oh, ow = (hp - kh) // stride + 1, (wp - kw) // stride + 1
    y = np.zeros((n, f, oh, ow))
    for a in range(n):
        for g in range(f):
            for r in range(oh):
                for c in range(ow):
                    window = xp[a, :, r * stride:r * stride + kh, c * stride:c * stride + kw]
                    y[a, g, r, c] = b[g] + np.sum(W[g] * window)
    return y


def loop_conv_grads(x, W, dy, stride, pad):
    """dW, db, dx of sum(y * dy) for loop_conv, accumulated window by window."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dxp, dW = np.zeros_like(xp), np.zeros_like(W)
    _, _, kh, kw = W.shape
    for a, g, r, c in np.ndindex(*dy.shape):
        rows, cols = slice(r * stride, r * stride + kh), slice(c * stride, c * stride + kw)
        dW[g] += dy[a, g, r, c] * xp[a, :, rows, cols]
        dxp[a, :, rows, cols] += dy[a, g, r, c] * W[g]
    h, w = x.shape[2:]
    return dW, dy.sum(axis=(0, 2, 3)), dxp[:, :, pad:pad + h, pad:pad + w]


def loop_pool(x, size, stride, reduce):
    """reduce() over each size x size window moved by stride, one output at a time."""
    n, ch, h, w = x.shape
    oh, ow = (h - size) // stride + 1, (w - size) // stride + 1
    y = np.zeros((n, ch, oh, ow))
    for a, g, r, c in np.ndindex(*y.shape):
        y[a, g, r, c] = reduce(x[a, g, r * stride:r * stride + size, c * stride:c * stride + size])
    return y


# ---------------------------------------------------------------- Conv2D


CONV_CASES = [  # (filters, kernel, stride, pad, input shape)
    (3, 3, 1, 0, (2, 1, 6, 6)),
    (4, 3, 2, 1, (2, 3, 7, 7)),
    (2, 2, 2, 0, (3, 2, 6, 8)),
    (5, 5, 1, 2, (1, 2, 5, 5)),
]


@pytest.mark.parametrize("filters, kernel, stride, pad, shape", CONV_CASES)
def test_conv_forward_apply_and_backward_match_loops_over_every_window(filters, kernel, stride, pad, shape):
    rng = np.random.default_rng(1)
    layer = mg.Conv2D(filters, kernel, stride, pad)
    out, params = init_layer(layer, shape)
    params["b"] = rng.standard_normal(filters)
    x = rng.standard_normal(shape)
    want = loop_conv(x, params["W"], params["b"], stride, pad)
    assert out == (-1,) + want.shape[1:]
    dy = rng.standard_normal(want.shape)
    y, dparams, dx = hand_rule(layer, params, x, dy)
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.apply(params, None, x, True, None)[0], want, rtol=1e-12, atol=1e-12)
    dW, db, dx_want = loop_conv_grads(x, params["W"], dy, stride, pad)
    np.testing.assert_allclose(dparams["W"], dW, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dparams["b"], db, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, dx_want, rtol=1e-12, atol=1e-12)
    # autograd's VJP of apply (the independent op-by-op path) agrees too.
    auto_params, auto_dx = autograd_vjp(layer, params, x, dy)
    np.testing.assert_allclose(auto_params["W"], dW, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(auto_params["b"], db, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(auto_dx, dx_want, rtol=1e-12, atol=1e-12)


def test_conv_backward_without_need_dx_returns_only_the_param_gradients():
    layer = mg.Conv2D(2, 3)
    _, params = init_layer(layer, (2, 1, 5, 5))
    x = np.random.default_rng(2).standard_normal((2, 1, 5, 5))
    dy = np.ones((2, 2, 3, 3))
    _, dparams, dx = hand_rule(layer, params, x, dy, need_dx=False)
    assert dx is None
    # With dy all ones, dW[f, 0, i, j] sums the inputs each offset sees over all windows.
    want = np.array([[x[:, 0, i:i + 3, j:j + 3].sum() for j in range(3)] for i in range(3)])
    np.testing.assert_allclose(dparams["W"][0, 0], want, rtol=1e-12)
    np.testing.assert_allclose(dparams["b"], [18.0, 18.0])


def test_conv_keeps_float32():
    layer = mg.Conv2D(3, 3, 1, 1)
    _, params = init_layer(layer, (2, 2, 5, 5), dtype=np.float32)
    x = np.random.default_rng(3).random((2, 2, 5, 5)).astype(np.float32)
    y, dparams, dx = hand_rule(layer, params, x, np.ones((2, 3, 5, 5), np.float32))
    assert params["W"].dtype == y.dtype == dparams["W"].dtype == dparams["b"].dtype == dx.dtype == np.float32


@pytest.mark.parametrize("init, std", [("he", np.sqrt(2 / 36)), ("xavier", np.sqrt(1 / 36)), (0.05, 0.05)])
def test_conv_init_draws_weights_at_the_scale_of_fan_in_channels_times_kernel_area(init, std):
    # fan_in = 4 channels x 3 x 3 = 36; 2,000 filters give 72,000 draws: the std is within 2%.
    out, params = init_layer(mg.Conv2D(2000, 3, init=init), (1, 4, 8, 8))
    assert out == (-1, 2000, 6, 6)
    assert params["W"].shape == (2000, 4, 3, 3) and params["b"].shape == (2000,)
    assert abs(params["W"].std() / std - 1) < 0.02
    assert abs(params["W"].mean()) < 0.02 * std * 3 and not params["b"].any()


def test_conv_declares_its_weights_decayed_and_its_bias_not():
    layer = mg.Conv2D(2, 3)
    assert layer.has_params and layer.decayed == (("W",),)
    net = mg.Network((layer, mg.Flatten, mg.Dense(3)), (1, 4, 4), 3, weight_decay=0.5)
    params = net.init(0)
    want = 0.25 * (np.sum(params[0]["W"] ** 2) + np.sum(params[1]["W"] ** 2))
    assert net.weight_penalty(params) == pytest.approx(want, rel=1e-12)


# ---------------------------------------------------------------- pooling


POOL_CASES = [(2, 2, (2, 3, 6, 4)), (3, 2, (2, 2, 7, 7)), (2, 1, (1, 2, 4, 5))]  # (pool, stride, input shape)


@pytest.mark.parametrize("size, stride, shape", POOL_CASES)
def test_max_pool_forward_and_backward_match_loops(size, stride, shape):
    rng = np.random.default_rng(4)
    layer = mg.MaxPool2D(size, stride)
    x = rng.permutation(np.prod(shape)).reshape(shape) / 10.0  # distinct values: no ties
    want = loop_pool(x, size, stride, np.max)
    dy = rng.standard_normal(want.shape)
    y, _, dx = hand_rule(layer, None, x, dy)
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(layer.apply(None, None, x, True, None)[0], want)
    assert layer.init(None, (-1,) + shape[1:], np.float64)[0] == (-1,) + want.shape[1:]
    dx_want = np.zeros_like(x)  # each window's dy lands on its maximum; overlapping windows add up
    for a, g, r, c in np.ndindex(*want.shape):
        window = x[a, g, r * stride:r * stride + size, c * stride:c * stride + size]
        i, j = np.unravel_index(np.argmax(window), window.shape)
        dx_want[a, g, r * stride + i, c * stride + j] += dy[a, g, r, c]
    np.testing.assert_allclose(dx, dx_want, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(autograd_vjp(layer, None, x, dy)[1], dx_want, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("size, stride, shape", POOL_CASES)
def test_avg_pool_forward_and_backward_match_loops(size, stride, shape):
    rng = np.random.default_rng(5)
    layer = mg.AvgPool2D(size, stride)
    x = rng.standard_normal(shape)
    want = loop_pool(x, size, stride, np.mean)
    dy = rng.standard_normal(want.shape)
    y, _, dx = hand_rule(layer, None, x, dy)
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(layer.apply(None, None, x, True, None)[0], want, rtol=1e-12, atol=1e-14)
    dx_want = np.zeros_like(x)
    for a, g, r, c in np.ndindex(*want.shape):
        dx_want[a, g, r * stride:r * stride + size, c * stride:c * stride + size] += dy[a, g, r, c] / size ** 2
    np.testing.assert_allclose(dx, dx_want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(autograd_vjp(layer, None, x, dy)[1], dx_want, rtol=1e-12, atol=1e-14)


def test_max_pool_tie_sends_the_gradient_to_the_first_maximum_in_row_major_order():
    x = np.array([[[[1.0, 3.0, 0.0, 0.0],
                    [3.0, 3.0, 0.0, 0.0],
                    [2.0, 0.0, 5.0, 1.0],
                    [0.0, 2.0, 1.0, 5.0]]]])
    dy = np.array([[[[10.0, 20.0], [30.0, 40.0]]]])
    layer = mg.MaxPool2D(2)
    y, _, dx = hand_rule(layer, None, x, dy)
    np.testing.assert_array_equal(y, [[[[3.0, 0.0], [2.0, 5.0]]]])
    np.testing.assert_array_equal(dx, [[[[0.0, 10.0, 20.0, 0.0],   # 3 at (0, 1) first; all-zero window: (0, 2)
                                         [0.0, 0.0, 0.0, 0.0],
                                         [30.0, 0.0, 40.0, 0.0],    # 2 at (2, 0) first; 5 at (2, 2) first
                                         [0.0, 0.0, 0.0, 0.0]]]])
    # autograd's max splits a tie equally instead: the two rules agree only off ties.
    auto = autograd_vjp(layer, None, x, dy)[1]
    np.testing.assert_allclose(auto[0, 0, :2, :2], [[0.0, 10 / 3], [10 / 3, 10 / 3]])
    np.testing.assert_allclose(auto[0, 0, :2, 2:], np.full((2, 2), 5.0))


def test_pool_stride_defaults_to_the_pool_size_and_pooling_keeps_channels():
    out, params, state = mg.MaxPool2D(2).init(None, (-1, 30, 24, 24), np.float32)
    assert out == (-1, 30, 12, 12) and params is None and state is None
    assert mg.AvgPool2D((3, 2), (1, 2)).init(None, (-1, 2, 5, 6), np.float32)[0] == (-1, 2, 3, 3)


# ---------------------------------------------------------------- check_layer


@pytest.mark.parametrize("layer, shape", [
    (mg.Conv2D(3, 3, stride=2, pad=1), (2, 2, 7, 7)),
    (mg.Conv2D(2, (3, 2), stride=(1, 2), pad=(0, 1)), (2, 3, 5, 6)),
    (mg.MaxPool2D(3, 2), (2, 2, 7, 7)),
    (mg.MaxPool2D(2), (2, 3, 4, 6)),
    (mg.AvgPool2D(3, 2), (2, 2, 7, 7)),
], ids=lambda v: getattr(v, "name", str(v)))
def test_check_layer_passes_with_stride_and_padding(layer, shape):
    report = mg.check_layer(layer, shape)
    assert report.ok, str(report)
    names = {c.path for c in report.comparisons}
    assert "x" in names and (not layer.has_params or {"params['W']", "params['b']"} <= names)


def test_check_layer_catches_a_conv_rule_that_forgets_the_padding_in_dx():
    layer = mg.Conv2D(2, 3, pad=1)

    def unpadded_dx(params, cache, dy, need_dx):  # shifts dx by one pixel: the crop ignores the pad
        grads, dx = layer.backward(params, cache, dy, need_dx)
        return grads, np.roll(dx, 1, axis=3)

    report = mg.check_layer(layer._replace(backward=unpadded_dx), (2, 1, 5, 5))
    assert not report.ok and {c.path for c in report.failures} == {"x"}


# ---------------------------------------------------------------- errors


def test_a_conv_net_fed_flat_images_names_the_conv_layer_and_both_shapes():
    net = mg.simple_convnet()
    with pytest.raises(ValueError) as err:
        net.loss(net.init(0), np.zeros((2, 784)), np.array([1, 2]))
    message = str(err.value)
    assert "(2, 784)" in message and "Conv2D(30, 5x5)" in message and "(1, 28, 28)" in message


def test_a_kernel_larger_than_the_padded_input_is_refused_at_init():
    with pytest.raises(ValueError, match=r"Conv2D\(4, 5x5, pad 1\): the 5x5 window is larger than the input "
                                         r"5x4 \(input 3x2 padded by 1\)"):
        mg.Network((mg.Conv2D(4, 5, pad=1), mg.Flatten, mg.Dense(2)), (1, 3, 2), 2)
    with pytest.raises(ValueError, match=r"MaxPool2D\(3x3\): the 3x3 window is larger than the input 2x2"):
        mg.MaxPool2D(3).init(None, (-1, 1, 2, 2), np.float64)


def test_a_stride_that_does_not_tile_the_padded_input_is_refused_at_init():
    with pytest.raises(ValueError, match=r"Conv2D\(2, 3x3, stride 2\): stride 2 does not tile the input 6x6 "
                                         r"along its height: \(6 - 3\) = 3 is not a multiple of 2"):
        mg.Network((mg.Conv2D(2, 3, stride=2), mg.Flatten, mg.Dense(2)), (1, 6, 6), 2)
    with pytest.raises(ValueError, match=r"MaxPool2D\(2x2\): stride 2 does not tile the input 5x4 along its height"):
        mg.MaxPool2D(2).init(None, (-1, 3, 5, 4), np.float64)


def test_conv_layers_refuse_inputs_that_are_not_images_or_have_the_wrong_channels():
    with pytest.raises(ValueError, match=r"Conv2D\(3, 3x3\) takes \(batch, channels, height, width\) input, "
                                         r"got shape \(-1, 784\): give the network input_shape"):
        mg.Network((mg.Conv2D(3, 3), mg.Flatten, mg.Dense(2)), (784,), 2)
    layer = mg.Conv2D(3, 3)
    _, params = init_layer(layer, (1, 2, 5, 5))
    for run in (layer.apply, lambda *a: layer.forward(*a)):
        with pytest.raises(ValueError, match=r"Conv2D\(3, 3x3\): input has 1 channels \(shape \(4, 1, 5, 5\)\), "
                                             r"its weights expect 2"):
            run(params, None, np.zeros((4, 1, 5, 5)), True, None)


@pytest.mark.parametrize("make, message", [
    (lambda: mg.Conv2D(0, 3), "positive whole number of filters"),
    (lambda: mg.Conv2D(2.5, 3), "positive whole number of filters"),
    (lambda: mg.Conv2D(2, (3, 3, 3)), "kernel must be an int or a pair of ints"),
    (lambda: mg.Conv2D(2, 3, stride=0), "stride must be at least 1"),
    (lambda: mg.Conv2D(2, 3, pad=-1), "pad must be at least 0"),
    (lambda: mg.MaxPool2D(2, stride=1.5), "stride must be an int or a pair of ints"),
    (lambda: mg.AvgPool2D(0), "pool must be at least 1"),
])
def test_bad_hyperparameters_are_refused_with_the_layer_named(make, message):
    with pytest.raises((TypeError, ValueError), match=message):
        make()


# ---------------------------------------------------------------- simple_convnet and the gradient paths


def test_simple_convnet_is_the_books_network():
    net = mg.simple_convnet()
    assert [layer.name for layer in net.layers] == [
        "Conv2D(30, 5x5)", "Relu", "MaxPool2D(2x2)", "Flatten", "Dense(100)", "Relu", "Dense(10)"]
    assert net.input_shape == (1, 28, 28) and net.output_size == 10
    assert [shape for _, shape in net.param_shapes()] == [(30, 1, 5, 5), (30,), (12 * 12 * 30, 100), (100,),
                                                          (100, 10), (10,)]
    assert net.weight_keys == [(0, "W"), (1, "W"), (2, "W")]
    params = net.init(0)
    assert abs(params[0]["W"].std() / np.sqrt(2 / 25) - 1) < 0.15  # He: fan_in = 1 x 5 x 5
    logits = net.apply(params, np.random.default_rng(0).random((3, 1, 28, 28)))
    assert logits.shape == (3, 10) and np.all(np.isfinite(logits))


def test_check_gradients_passes_on_the_books_gradient_check_convnet_with_every_method():
    # ch07/gradient_check.py: one 1x10x10 image, 10 filters 3x3, 10 hidden units, 10 classes, std 0.01.
    net = mg.simple_convnet((1, 10, 10), filters=10, kernel=3, hidden=10, init=0.01)
    x = np.random.default_rng(0).random((1, 1, 10, 10))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mg.gradients.numerical.SlowPathWarning)  # the conv layer is opaque
        report = mg.check_gradients(net, net.init(0), x, np.array([1]), train=True)
    assert report.ok, str(report)
    assert set(report.methods) == {"autograd", "backprop", "autograd-fused", "numerical"}


def test_every_analytic_path_agrees_on_a_padded_strided_convnet_with_both_pools():
    layers = (mg.Conv2D(4, 3, stride=2, pad=1), mg.Relu, mg.AvgPool2D(2, 1), mg.Conv2D(3, 3, pad=1), mg.Relu,
              mg.MaxPool2D(2), mg.Flatten, mg.Dense(5))
    net = mg.Network(layers, (2, 9, 9), 5, weight_decay=0.1)
    params = net.init(1)
    x = np.random.default_rng(1).standard_normal((4, 2, 9, 9))
    t = np.array([0, 1, 4, 2])
    report = mg.check_gradients(net, params, x, t, methods=("autograd", "backprop", "autograd-fused"), train=True)
    assert report.ok, str(report)
