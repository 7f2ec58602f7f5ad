"""check_layer: every built-in layer passes; a wrong backward rule fails, naming the input or the param leaf."""
import autograd.numpy as anp
import numpy as np
import pytest

import minigrad_nets as mg
from minigrad_nets.layers import Layer


def failing(report):
    return {c.path for c in report.failures}


BUILT_IN = [
    (mg.Dense(5), (4, 6), {}),
    (mg.Dense(5, "xavier"), (1, 3), {}),
    (mg.Relu, (4, 6), {}),
    (mg.Sigmoid, (3, 5), {}),
    (mg.Tanh, (3, 2, 5), {}),
    (mg.Dropout(0.3), (4, 6), {}),
    (mg.Dropout(0.3), (4, 6), {"train": False}),
    (mg.Flatten, (2, 3, 4), {}),
    (mg.BatchNorm(), (6, 5), {}),
    (mg.BatchNorm(), (6, 2, 3), {}),
    (mg.BatchNorm(), (6, 5), {"train": False}),
    (mg.serial(mg.Dense(4), mg.BatchNorm(), mg.Relu, mg.Dropout(0.2), mg.Dense(3)), (5, 6), {}),
]


@pytest.mark.parametrize("layer, shape, options", BUILT_IN, ids=lambda v: getattr(v, "name", str(v)))
def test_every_built_in_layer_passes(layer, shape, options):
    report = mg.check_layer(layer, shape, **options)
    assert report.ok, str(report)
    assert report.mode == "full"
    names = {c.path for c in report.comparisons}
    assert "x" in names and (not layer.has_params or any(n.startswith("params") for n in names))


def leaky_relu(slope_in_backward):
    return mg.elementwise("LeakyRelu", lambda x: anp.where(x > 0, x, 0.01 * x),
                          lambda x, dy: dy * np.where(x > 0, 1.0, slope_in_backward), kinks=(0.0,))


def test_a_leaky_relu_whose_backward_slope_is_off_by_one_percent_fails_on_the_input():
    assert mg.check_layer(leaky_relu(0.01), (4, 5)).ok
    report = mg.check_layer(leaky_relu(0.0101), (4, 5))
    assert not report.ok
    assert failing(report) == {"x"}
    assert report.suspects() == {"x": "backprop"}
    assert "<-- FAIL" in str(report) and "suspect: backprop at x" in str(report)


def with_backward(layer, backward):
    return layer._replace(backward=backward)


def test_a_dense_rule_with_a_wrong_weight_gradient_fails_on_that_leaf_only():
    dense = mg.Dense(3)

    def scaled_dw(params, x, dy, need_dx):
        grads, dx = dense.backward(params, x, dy, need_dx)
        return dict(grads, W=grads["W"] * (1 + 1e-6)), dx

    report = mg.check_layer(with_backward(dense, scaled_dw), (4, 5))
    assert failing(report) == {"params['W']"}
    worst = next(c for c in report.failures if c.methods == ("backprop", "autograd"))
    assert worst.worst_index is not None and len(worst.worst_index) == 2


def test_batch_norm_without_the_batch_statistics_terms_fails_in_training_and_passes_in_inference():
    bn = mg.BatchNorm()

    def as_if_constant_statistics(params, cache, dy, need_dx):  # a common mistake: forgets d(mean)/dx, d(var)/dx
        xhat, inv_std, train = cache
        grads, _ = bn.backward(params, cache, dy, need_dx)
        return grads, dy * params["gamma"] * inv_std

    wrong = with_backward(bn, as_if_constant_statistics)
    assert failing(mg.check_layer(wrong, (6, 4))) == {"x"}
    assert mg.check_layer(wrong, (6, 4), train=False).ok  # in inference that rule is the right one


def test_a_rule_returning_the_wrong_shape_is_reported_not_raised():
    broken = with_backward(mg.Relu, lambda params, y, dy, need_dx: (None, dy[:, :1]))
    report = mg.check_layer(broken, (3, 4))
    assert not report.ok
    check = next(c for c in report.checks if c.name.startswith("backprop runs"))
    assert not check.ok and "shape" in check.detail
    assert {c.methods for c in report.comparisons} == {("autograd", "numerical")}


def test_a_forward_that_disagrees_with_apply_is_reported():
    relu = mg.Relu
    drifting = relu._replace(forward=lambda p, s, x, train, key: (np.maximum(x, 0) * 1.001, np.maximum(x, 0), s))
    report = mg.check_layer(drifting, (3, 4))
    assert not next(c for c in report.checks if c.name == "forward's output equals apply's").ok


def test_a_large_layer_is_probed_along_random_directions_and_a_small_error_is_still_caught():
    dense = mg.Dense(200)

    def off_by_a_millionth(params, x, dy, need_dx):
        grads, dx = dense.backward(params, x, dy, need_dx)
        return grads, dx * (1 + 1e-6)

    assert mg.check_layer(dense, (32, 100)).mode == "directional"
    report = mg.check_layer(with_backward(dense, off_by_a_millionth), (32, 100))
    assert report.mode == "directional" and failing(report) == {"x"}


def test_a_user_layer_with_params_and_its_own_rule_passes():
    # y = x * w (a learned per-feature scale), written against the contract by hand.
    def init(rng, shape, dtype):
        return tuple(shape), {"w": rng.standard_normal(shape[1:]).astype(dtype)}, None

    layer = Layer("Scale", init,
                  lambda p, s, x, train, key: (x * p["w"], s),
                  lambda p, s, x, train, key: (x * p["w"], x, s),
                  lambda p, x, dy, need_dx: ({"w": (dy * x).sum(axis=0)}, dy * p["w"] if need_dx else None),
                  has_params=True)
    assert mg.check_layer(layer, (4, 3)).ok


def test_bad_arguments_are_clear_errors():
    with pytest.raises(TypeError, match="takes a Layer"):
        mg.check_layer(np.tanh, (2, 3))
    with pytest.raises(ValueError, match="batch axis first"):
        mg.check_layer(mg.Relu, 3)
    with pytest.raises(ValueError, match=r"x has shape \(2, 2\)"):
        mg.check_layer(mg.Relu, (2, 3), x=np.ones((2, 2)))
    with pytest.raises(ValueError, match="unknown mode"):
        mg.check_layer(mg.Relu, (2, 3), mode="sampled")
    with pytest.raises(mg.GradientCheckError, match="x"):
        mg.check_layer(leaky_relu(0.02), (4, 5), raise_on_failure=True)
