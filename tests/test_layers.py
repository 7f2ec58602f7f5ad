"""Each layer's forward agrees with its traced apply; serial composes them; dropout is inverted and keyed."""
import numpy as np
import pytest

import minigrad_nets as mg
from minigrad_nets.layers import Dense, Dropout, Flatten, Relu, Sigmoid, Tanh, serial


@pytest.mark.parametrize("layer", [Dense(4), Relu, Sigmoid, Tanh, Dropout(0.5), Flatten])
def test_forward_matches_apply(layer):
    rng = np.random.default_rng(0)
    _, params = layer.init(rng, (-1, 6), np.float64)
    x = rng.normal(size=(3, 6))
    y, _ = layer.forward(params, x, 7)
    np.testing.assert_allclose(y, layer.apply(params, x, 7), rtol=1e-15)


def test_backward_does_not_mutate_upstream_gradient():
    x = np.array([[-1.0, 2.0, 0.0]])
    y, cache = Relu.forward(None, x)
    dy = np.ones_like(x)
    _, dx = Relu.backward(None, cache, dy)
    np.testing.assert_array_equal(dy, np.ones_like(x))
    np.testing.assert_array_equal(dx, [[0.0, 1.0, 0.0]])


def test_dropout_is_inverted_keyed_and_off_without_key():
    layer = Dropout(0.25)
    x = np.ones((200, 100))
    y = layer.apply(None, x, 11)
    kept = y != 0
    assert kept.mean() == pytest.approx(0.75, abs=0.01)
    np.testing.assert_allclose(y[kept], 1 / 0.75)
    np.testing.assert_array_equal(layer.apply(None, x, 11), y)
    assert not np.array_equal(layer.apply(None, x, 12), y)
    assert layer.apply(None, x, None) is x


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_dropout_rate_is_a_drop_probability_in_0_1(rate):
    with pytest.raises(ValueError, match="probability of dropping"):
        Dropout(rate)


def test_dropout_key_must_be_a_seed_not_a_generator():
    with pytest.raises(TypeError, match="not a Generator"):
        serial(Dropout(0.5)).apply([], np.ones((2, 2)), np.random.default_rng(0))
    with pytest.raises(TypeError, match="non-negative int"):
        serial(Dropout(0.5)).apply([], np.ones((2, 2)), -3)


def test_serial_params_only_for_layers_with_params():
    model = serial(Flatten, Dense(5), Relu, Dense(2))
    out_shape, params = model.init(np.random.default_rng(0), (-1, 2, 3), np.float32)
    assert out_shape == (-1, 2)
    assert [sorted(p) for p in params] == [["W", "b"], ["W", "b"]]
    assert params[0]["W"].shape == (6, 5) and params[0]["W"].dtype == np.float32
    x = np.ones((4, 2, 3), np.float32)
    y, caches = model.forward(params, x)
    grads, dx = model.backward(params, caches, np.ones_like(y))
    assert dx.shape == x.shape
    assert [g["W"].shape for g in grads] == [(6, 5), (5, 2)]
    _, no_dx = model.backward(params, caches, np.ones_like(y), need_dx=False)
    assert no_dx is None


def test_dense_backward_rules():
    rng = np.random.default_rng(1)
    params = {"W": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}
    x, dy = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    grads, dx = Dense(2).backward(params, x, dy)
    np.testing.assert_allclose(grads["W"], x.T @ dy)
    np.testing.assert_allclose(grads["b"], dy.sum(0))
    np.testing.assert_allclose(dx, dy @ params["W"].T)


def test_layers_are_exported():
    assert mg.Dense is Dense and mg.serial is serial and mg.Relu is Relu


def test_a_serial_without_params_nests():
    net = mg.Network((Dense(8), serial(Relu, Dropout(0.5)), Dense(3)), 6, 3)
    params = net.init(0)
    x = np.random.default_rng(0).random((4, 6))
    assert len(params) == 2
    np.testing.assert_allclose(net.apply(params, x), net.apply(params, x, key=None))
    for method in ("autograd", "backprop", "autograd-fused"):
        assert mg.grad(net, params, x, np.array([0, 1, 2, 0]), method=method, key=3)[0]["W"].shape == (6, 8)


def test_dropout_rate_must_be_a_number():
    with pytest.raises(TypeError, match="must be a number"):
        Dropout("0.5")
