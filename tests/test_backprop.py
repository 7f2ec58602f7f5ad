"""The hand-written backprop path: agrees with autograd, same structure, pure, exact loss-layer rule."""
import dataclasses

import numpy as np
import pytest

import minigrad_nets as mg
from minigrad_nets.gradients.backprop import softmax_cross_entropy
from minigrad_nets.tree import tree_leaves, tree_leaves_with_paths, tree_structure

from gradient_problems import norm_rel, problem


ARCHS = [([5], "relu", 0.0, 0.0), ([6, 4], "sigmoid", 0.1, 0.0), ([4, 5, 3], "tanh", 0.0, 0.4),
         ([5, 5, 4, 3], "relu", 0.02, 0.25), ([8, 8], "tanh", 1.0, 0.5)]


@pytest.mark.parametrize("hidden,activation,decay,dropout", ARCHS)
def test_backprop_agrees_with_autograd_to_1e_12_per_leaf(hidden, activation, decay, dropout):
    net, params, x, t = problem(hidden, activation, decay, dropout, seed=len(hidden))
    key = 5 if dropout else None
    loss_a, auto = mg.value_and_grad(net, params, x, t, key=key, train=key is not None)
    loss_b, back = mg.value_and_grad(net, params, x, t, method="backprop", key=key, train=key is not None)
    assert abs(loss_a - loss_b) <= 1e-13 * abs(loss_a)
    for (path, a), b in zip(tree_leaves_with_paths(auto), tree_leaves(back)):
        assert norm_rel(a, b) <= 1e-12, path


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_backprop_gradient_has_the_structure_shapes_and_dtypes_of_params(dtype):
    net, params, x, t = problem([5, 3], dtype=dtype)
    back = mg.grad(net, params, x, t, method="backprop")
    assert tree_structure(back) == tree_structure(params)
    for p, g in zip(tree_leaves(params), tree_leaves(back)):
        assert g.shape == p.shape and g.dtype == p.dtype
        assert not np.shares_memory(g, p)


def test_backprop_never_mutates_its_inputs():
    net, params, x, t = problem([6, 5], "relu", 0.1, 0.3)
    before = [a.copy() for a in tree_leaves(params)] + [x.copy(), t.copy()]
    for _ in range(2):
        mg.grad(net, params, x, t, method="backprop", key=1, train=True)
    for a, b in zip(tree_leaves(params) + [x, t], before):
        assert a.tobytes() == b.tobytes()


def test_loss_layer_rule_is_softmax_minus_onehot_over_batch():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((6, 5)) * 3
    t = rng.integers(0, 5, size=6)
    loss, dlogits = softmax_cross_entropy(logits.copy(), t)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected = (e / e.sum(axis=1, keepdims=True) - np.eye(5)[t]) / 6
    np.testing.assert_allclose(dlogits, expected, rtol=1e-13, atol=1e-16)
    assert loss == pytest.approx(float(mg.cross_entropy(logits, t)), rel=1e-14)
    loss_1h, d_1h = softmax_cross_entropy(logits.copy(), np.eye(5)[t])
    assert loss_1h == pytest.approx(loss, rel=1e-14)
    np.testing.assert_allclose(d_1h, dlogits, rtol=1e-13, atol=1e-17)


def test_weight_decay_adds_lambda_w_to_weights_only():
    net, params, x, t = problem([5, 4], "tanh", weight_decay=0.3)
    plain = dataclasses.replace(net, weight_decay=0.0)
    with_decay = mg.grad(net, params, x, t, method="backprop")
    without = mg.grad(plain, params, x, t, method="backprop")
    for p, g, g0 in zip(params, with_decay, without):
        np.testing.assert_allclose(g["W"] - g0["W"], 0.3 * p["W"], rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(g["b"], g0["b"])


def test_dropout_backward_uses_the_forward_mask():
    net, params, x, t = problem([6, 6], "relu", dropout=0.5)
    with_mask = mg.grad(net, params, x, t, method="backprop", key=9, train=True)
    for a, b in zip(tree_leaves(mg.grad(net, params, x, t, key=9, train=True)), tree_leaves(with_mask)):
        assert norm_rel(a, b) <= 1e-12
    no_mask = mg.grad(net, params, x, t, method="backprop")
    assert not np.allclose(with_mask[0]["W"], no_mask[0]["W"])
    # For one sample, a dropped unit passes no gradient to its incoming weights; a kept one does.
    one = mg.grad(net, params, x[:1], t[:1], method="backprop", key=9, train=True)
    scale = mg.layers.dropout_scale(mg.layers.layer_rng(9, 2), (1, 6), 0.5, np.float64)[0]
    assert 0 < np.sum(scale == 0) < 6
    assert np.all(one[0]["W"][:, scale == 0] == 0)
    assert np.any(one[0]["W"][:, scale > 0] != 0)


def test_relu_at_exactly_zero_has_gradient_zero_like_autograd():
    net = mg.mlp(3, [4], 2)
    params = net.init(0)  # zero biases: the zero input row gives pre-activations exactly 0
    x = np.array([[0.0, 0.0, 0.0], [0.2, -0.5, 0.9]])
    t = np.array([1, 0])
    back = mg.grad(net, params, x, t, method="backprop")
    auto = mg.grad(net, params, x, t)
    for a, b in zip(tree_leaves(auto), tree_leaves(back)):
        assert norm_rel(a, b) <= 1e-12
