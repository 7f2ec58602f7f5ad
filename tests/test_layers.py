"""Layers against formulas written here in plain numpy; serial threads params, state and mode; dropout is keyed."""
import numpy as np
import pytest

import minigrad_nets as mg
from minigrad_nets.layers import BatchNorm, Dense, Dropout, Flatten, Relu, Sigmoid, Tanh, serial

RNG = np.random.default_rng(0)
X = RNG.normal(size=(5, 6)) * 3

# The book's formulas, written out independently of the library.
EXPECTED = {
    "Relu": (lambda x: np.where(x > 0, x, 0.0), lambda x: (x > 0).astype(float)),
    "Sigmoid": (lambda x: 1 / (1 + np.exp(-x)), lambda x: np.exp(-x) / (1 + np.exp(-x)) ** 2),
    "Tanh": (np.tanh, lambda x: 1 / np.cosh(x) ** 2),
}


@pytest.mark.parametrize("layer", [Relu, Sigmoid, Tanh], ids=lambda l: l.name)
def test_activation_values_and_slopes_match_the_formulas(layer):
    value, slope = EXPECTED[layer.name]
    dy = RNG.normal(size=X.shape)
    for run in (layer.apply, layer.forward):
        np.testing.assert_allclose(run(None, None, X, True, None)[0], value(X), rtol=1e-14, atol=1e-300)
    y, cache, state = layer.forward(None, None, X, True, None)
    assert state is None
    dparams, dx = layer.backward(None, cache, dy, True)
    assert dparams is None
    # y(1 - y) and 1 - y² (the book's rules) cancel for saturated units: exact to an absolute eps, not relative.
    np.testing.assert_allclose(dx, dy * slope(X), rtol=1e-12, atol=1e-15 * np.abs(dy).max())


def test_relu_slope_is_zero_at_zero_and_upstream_gradient_is_not_mutated():
    x = np.array([[-1.0, 2.0, 0.0]])
    _, cache, _ = Relu.forward(None, None, x, True, None)
    dy = np.ones_like(x)
    _, dx = Relu.backward(None, cache, dy, True)
    np.testing.assert_array_equal(dy, np.ones_like(x))
    np.testing.assert_array_equal(dx, [[0.0, 1.0, 0.0]])


def test_dense_forward_and_backward_rules():
    rng = np.random.default_rng(1)
    params = {"W": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}
    x, dy = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    layer = Dense(2)
    expected = np.array([[sum(x[r, i] * params["W"][i, j] for i in range(3)) + params["b"][j] for j in range(2)]
                         for r in range(4)])
    np.testing.assert_allclose(layer.apply(params, None, x, False, None)[0], expected, rtol=1e-14)
    y, cache, _ = layer.forward(params, None, x, False, None)
    np.testing.assert_allclose(y, expected, rtol=1e-14)
    grads, dx = layer.backward(params, cache, dy, True)
    np.testing.assert_allclose(grads["W"], np.einsum("ri,rj->ij", x, dy))
    np.testing.assert_allclose(grads["b"], [dy[:, 0].sum(), dy[:, 1].sum()])
    np.testing.assert_allclose(dx, np.einsum("rj,ij->ri", dy, params["W"]))
    assert layer.backward(params, cache, dy, False)[1] is None


def test_dropout_is_inverted_keyed_and_the_identity_in_inference():
    layer = Dropout(0.25)
    x = np.ones((200, 100))
    y, _ = layer.apply(None, None, x, True, 11)
    kept = y != 0
    assert kept.mean() == pytest.approx(0.75, abs=0.01)
    np.testing.assert_allclose(y[kept], 1 / 0.75)
    np.testing.assert_array_equal(layer.apply(None, None, x, True, 11)[0], y)
    assert not np.array_equal(layer.apply(None, None, x, True, 12)[0], y)
    assert layer.apply(None, None, x, False, None)[0] is x
    assert layer.apply(None, None, x, False, 11)[0] is x  # the mode decides, not the key


def test_dropout_in_training_needs_a_key():
    with pytest.raises(ValueError, match="training mode needs a dropout key"):
        Dropout(0.5).apply(None, None, np.ones((2, 2)), True, None)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_dropout_rate_is_a_drop_probability_in_0_1(rate):
    with pytest.raises(ValueError, match="probability of dropping"):
        Dropout(rate)


def test_dropout_rate_must_be_a_number():
    with pytest.raises(TypeError, match="must be a number"):
        Dropout("0.5")


def test_dropout_key_must_be_a_seed_not_a_generator():
    with pytest.raises(TypeError, match="not a Generator"):
        serial(Dropout(0.5)).apply([], None, np.ones((2, 2)), True, np.random.default_rng(0))
    with pytest.raises(TypeError, match="non-negative int"):
        serial(Dropout(0.5)).apply([], None, np.ones((2, 2)), True, -3)


def test_batch_norm_training_forward_normalises_each_feature_and_updates_running_statistics():
    rng = np.random.default_rng(2)
    x = rng.normal(3.0, 2.0, size=(8, 4))
    layer = BatchNorm(momentum=0.9, eps=1e-6)
    _, params, state = layer.init(None, (-1, 4), np.float64)
    params = {"gamma": rng.normal(size=4), "beta": rng.normal(size=4)}
    state = {"mean": rng.normal(size=4), "var": rng.random(4) + 0.5}
    # The book's rule, feature by feature.
    mu = x.sum(axis=0) / 8
    var = ((x - mu) ** 2).sum(axis=0) / 8
    expected = params["gamma"] * (x - mu) / np.sqrt(var + 1e-6) + params["beta"]
    for run in (layer.apply, layer.forward):
        out = run(params, state, x, True, None)
        y, new_state = out[0], out[-1]
        np.testing.assert_allclose(y, expected, rtol=1e-12)
        np.testing.assert_allclose(new_state["mean"], 0.9 * state["mean"] + 0.1 * mu, rtol=1e-14)
        np.testing.assert_allclose(new_state["var"], 0.9 * state["var"] + 0.1 * var, rtol=1e-14)
    # Inference uses the running statistics and leaves them alone.
    y, same = layer.apply(params, state, x, False, None)
    np.testing.assert_allclose(y, params["gamma"] * (x - state["mean"]) / np.sqrt(state["var"] + 1e-6)
                               + params["beta"], rtol=1e-12)
    assert same is state


def test_batch_norm_refuses_a_training_batch_of_one():
    layer = BatchNorm()
    _, params, state = layer.init(None, (-1, 3), np.float64)
    with pytest.raises(ValueError, match="at least 2 examples"):
        layer.forward(params, state, np.ones((1, 3)), True, None)
    layer.apply(params, state, np.ones((1, 3)), False, None)  # inference is fine with one example


def test_serial_threads_params_state_and_shapes():
    model = serial(Flatten, Dense(5), BatchNorm(), Relu, Dense(2), BatchNorm())
    out_shape, params, state = model.init(np.random.default_rng(0), (-1, 2, 3), np.float32)
    assert out_shape == (-1, 2)
    assert [sorted(p) for p in params] == [["W", "b"], ["beta", "gamma"], ["W", "b"], ["beta", "gamma"]]
    assert [s["mean"].shape for s in state] == [(5,), (2,)]
    assert params[0]["W"].shape == (6, 5) and params[0]["W"].dtype == np.float32
    x = np.random.default_rng(1).normal(size=(4, 2, 3)).astype(np.float32)
    y, caches, new_state = model.forward(params, state, x, True, None)
    assert [s["mean"].dtype for s in new_state] == [np.float32, np.float32]
    # The second BatchNorm's running mean moved by a tenth of the batch mean of its input.
    z0 = x.reshape(4, 6).astype(np.float64) @ params[0]["W"] + params[0]["b"]
    z1 = np.maximum((z0 - z0.mean(0)) / np.sqrt(z0.var(0) + 1e-6), 0) @ params[2]["W"] + params[2]["b"]
    np.testing.assert_allclose(new_state[1]["mean"], 0.1 * z1.mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(state[0]["mean"], np.zeros(5, np.float32))  # the input state is untouched
    grads, dx = model.backward(params, caches, np.ones_like(y), True)
    assert dx.shape == x.shape
    assert [sorted(g) for g in grads] == [sorted(p) for p in params]
    assert model.backward(params, caches, np.ones_like(y), False)[1] is None
    assert model.decayed == ((0, "W"), (2, "W"))


def test_a_layer_without_state_returns_the_state_it_was_given():
    model = serial(Dense(3), Relu)
    _, params, state = model.init(np.random.default_rng(0), (-1, 2), np.float64)
    assert state is None
    assert model.apply(params, None, np.ones((2, 2)), True, None)[1] is None


def test_dense_refuses_image_shaped_input():
    with pytest.raises(ValueError, match=r"Dense\(3\) takes \(batch, features\).*Flatten"):
        Dense(3).init(np.random.default_rng(0), (-1, 1, 4, 4), np.float64)


def test_serial_refuses_what_is_not_a_layer():
    with pytest.raises(TypeError, match="serial takes Layers"):
        serial(Dense(3), np.tanh)


def test_a_serial_without_params_nests():
    net = mg.Network((Dense(8), serial(Relu, Dropout(0.5)), Dense(3)), 6, 3)
    params = net.init(0)
    x = np.random.default_rng(0).random((4, 6))
    assert len(params) == 2
    np.testing.assert_allclose(net.apply(params, x), net.apply(params, x, train=False))
    for method in ("autograd", "backprop", "autograd-fused"):
        assert mg.grad(net, params, x, np.array([0, 1, 2, 0]), method=method, key=3, train=True)[0]["W"].shape \
            == (6, 8)


def test_elementwise_builds_a_one_line_layer():
    import autograd.numpy as anp
    leaky = mg.elementwise("LeakyRelu", lambda x: anp.where(x > 0, x, 0.1 * x),
                           lambda x, dy: dy * np.where(x > 0, 1.0, 0.1), kinks=(0.0,))
    x = np.array([[-2.0, 3.0]])
    y, cache, _ = leaky.forward(None, None, x, True, None)
    np.testing.assert_array_equal(y, [[-0.2, 3.0]])
    np.testing.assert_array_equal(leaky.backward(None, cache, np.ones_like(x), True)[1], [[0.1, 1.0]])
    assert leaky.kind.kinks == (0.0,) and not leaky.has_params


def test_the_books_dropout_scales_at_test_time_instead():
    book = Dropout(0.25, scale_at="test")
    x = np.full((200, 100), 2.0)
    y, _ = book.apply(None, None, x, True, 11)
    inverted, _ = Dropout(0.25).apply(None, None, x, True, 11)
    np.testing.assert_array_equal(y != 0, inverted != 0)  # the same mask from the same key
    np.testing.assert_array_equal(y[y != 0], 2.0)  # kept units unscaled in training
    np.testing.assert_array_equal(book.apply(None, None, x, False, None)[0], 1.5)  # 2 * (1 - 0.25) in inference
    _, cache, _ = book.forward(None, None, x, True, 11)
    np.testing.assert_array_equal(book.backward(None, cache, np.ones_like(x), True)[1], (y != 0).astype(float))
    assert mg.check_layer(book, (6, 5)).ok and mg.check_layer(book, (6, 5), train=False).ok
    with pytest.raises(ValueError, match="scale_at must be"):
        Dropout(0.5, scale_at="inference")
