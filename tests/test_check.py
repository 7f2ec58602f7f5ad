"""check_gradients: the three paths agree on random architectures; wrong rules are caught at the right leaf."""
import dataclasses
import itertools

import numpy as np
import pytest

import minigrad_nets as mg
from minigrad_nets.gradients import backprop
from minigrad_nets.gradients.check import GradientCheckError


def batch(seed, size, features, classes):
    rng = np.random.default_rng(seed)
    return rng.random((size, features)), rng.integers(0, classes, size=size)


def off_kinks(params, seed=0):
    """Params with random nonzero biases, so no ReLU pre-activation sits exactly on the kink."""
    rng = np.random.default_rng(seed)
    return [{"W": p["W"], "b": rng.uniform(0.05, 0.3, p["b"].shape) * rng.choice([-1, 1], p["b"].shape)}
            for p in params]


def failing(report, pair):
    return {c.path for c in report.failures if c.methods == pair}


# ---------------------------------------------------------------- agreement


CASES = [(act, depth, bool((i + depth) % 2), bool(i % 2))
         for i, (act, depth) in enumerate(itertools.product(["sigmoid", "tanh", "relu"], [1, 2, 3, 4]))]


@pytest.mark.parametrize("activation,depth,decay,dropout", CASES)
def test_all_paths_agree_on_random_architectures(activation, depth, decay, dropout):
    rng = np.random.default_rng(depth * 7 + len(activation))
    hidden = [int(n) for n in rng.integers(3, 8, size=depth)]
    net = mg.mlp(6, hidden, 4, activation=activation, init="xavier",
                 weight_decay=0.05 if decay else 0.0, dropout=0.2 if dropout else 0.0)
    params = off_kinks(net.init(depth), seed=depth)
    x, t = batch(depth, 7, 6, 4)
    report = mg.check_gradients(net, params, x, t, key=3 if dropout else None, train=dropout)
    assert report.ok, str(report)
    methods = ("autograd", "backprop", "autograd-fused", "numerical")  # the default: every path, pairwise
    assert {c.methods for c in report.comparisons} == set(itertools.combinations(methods, 2))
    assert len(report.comparisons) == 6 * 2 * (depth + 1)
    for c in report.comparisons:
        limit = 1e-6 if "numerical" in c.methods else 1e-12
        assert c.norm_rel_err <= limit
    assert all(check.ok for check in report.checks)


@pytest.mark.parametrize("mode", ["sampled", "directional"])
def test_sampled_and_directional_modes_pass_on_a_correct_network(mode):
    net = mg.mlp(6, [5, 4], 3, activation="tanh", weight_decay=0.1)
    x, t = batch(0, 8, 6, 3)
    report = mg.check_gradients(net, net.init(0), x, t, mode=mode, samples=4, seed=1)
    assert report.ok, str(report)
    numeric = [c for c in report.comparisons if "numerical" in c.methods]
    assert all(c.probe == ("direction" if mode == "directional" else "element") for c in numeric)
    assert {c.compared for c in numeric} <= {3, 4}


def test_float32_network_is_checked_in_float64():
    net = mg.mlp(6, [5, 4], 3, activation="sigmoid", dtype="float32")
    params = net.init(0)
    x, t = batch(0, 8, 6, 3)
    report = mg.check_gradients(net, params, x.astype(np.float32), t)
    assert report.ok, str(report)
    assert report.network_dtype == "float32" and "float32" in str(report)
    # Float32 arithmetic could not reach these: its rounding alone is ~1e-7 relative.
    for c in report.comparisons:
        assert c.norm_rel_err <= (1e-8 if "numerical" in c.methods else 1e-13)
    assert params[0]["W"].dtype == np.float32  # the caller's params are untouched


# ---------------------------------------------------------------- wrong rules


def with_broken_dense(net, number, breaker):
    """A copy of ``net`` whose ``number``-th Dense layer has ``breaker(backward)`` as its backward rule."""
    layers = list(net.layers)
    at = [i for i, layer in enumerate(layers) if layer.has_params][number]
    layers[at] = layers[at]._replace(backward=breaker(layers[at].backward))
    return mg.Network(tuple(layers), net.input_size, net.output_size, net.weight_decay, net.dtype)


def scaled_dW(backward):
    def broken(params, cache, dy, need_dx=True):
        grads, dx = backward(params, cache, dy, need_dx)
        return {"W": 2.0 * grads["W"], "b": grads["b"]}, dx
    return broken


def transposed_dW(backward):
    def broken(params, cache, dy, need_dx=True):
        grads, dx = backward(params, cache, dy, need_dx)
        return {"W": grads["W"].T, "b": grads["b"]}, dx
    return broken


# The broken-rule tests break a layer's backward rule, which 'autograd-fused' shares with
# 'backprop'; they compare the three independent paths so that one method is to blame.
INDEPENDENT = ("autograd", "backprop", "numerical")


def small_problem(**kw):
    net = mg.mlp(6, [5, 5], 3, activation="tanh", **kw)
    x, t = batch(1, 8, 6, 3)
    return net, net.init(2), x, t


def test_scaled_weight_gradient_is_caught_at_its_leaf_and_blamed_on_backprop():
    net, params, x, t = small_problem()
    report = mg.check_gradients(with_broken_dense(net, 1, scaled_dW), params, x, t, methods=INDEPENDENT)
    assert not report.ok
    assert failing(report, ("autograd", "backprop")) == {"[1]['W']"}
    assert failing(report, ("backprop", "numerical")) == {"[1]['W']"}
    assert failing(report, ("autograd", "numerical")) == set()
    assert report.suspects() == {"[1]['W']": "backprop"}
    assert not report.kink_explains_failures()
    row = next(c for c in report.failures if c.methods == ("autograd", "backprop"))
    a, b = row.worst_values
    assert b == pytest.approx(2 * a) and row.norm_rel_err == pytest.approx(0.5)
    text = str(report)
    assert "FAIL" in text and "suspect: backprop at [1]['W']" in text


def test_transposed_square_weight_gradient_is_caught_at_its_leaf():
    net, params, x, t = small_problem()
    report = mg.check_gradients(with_broken_dense(net, 1, transposed_dW), params, x, t, methods=INDEPENDENT)
    assert failing(report, ("autograd", "backprop")) == {"[1]['W']"}
    assert report.suspects() == {"[1]['W']": "backprop"}


def test_transposed_non_square_weight_gradient_fails_the_shape_check_naming_the_leaf():
    net, params, x, t = small_problem()
    report = mg.check_gradients(with_broken_dense(net, 0, transposed_dW), params, x, t, methods=INDEPENDENT)
    assert not report.ok
    bad = [c for c in report.checks if not c.ok]
    assert len(bad) == 1 and "backprop" in bad[0].name and "[0]['W']" in bad[0].detail
    assert all(c.ok for c in report.comparisons)  # the two paths left still agree with each other


def test_missing_weight_decay_term_is_caught_on_every_weight_and_no_bias(monkeypatch):
    net, params, x, t = small_problem(weight_decay=0.1)
    honest = backprop.value_and_grad

    def forgets_decay(net, params, x, t, *rest):
        loss, _, state = honest(net, params, x, t, *rest)
        return loss, honest(dataclasses.replace(net, weight_decay=0.0), params, x, t, *rest)[1], state

    monkeypatch.setattr(backprop, "value_and_grad", forgets_decay)
    report = mg.check_gradients(net, params, x, t)
    weights = {"[0]['W']", "[1]['W']", "[2]['W']"}
    assert failing(report, ("autograd", "backprop")) == weights
    assert failing(report, ("backprop", "numerical")) == weights
    assert report.suspects() == {path: "backprop" for path in weights}


def test_wrong_activation_rule_fails_the_layers_below_it_only():
    net, params, x, t = small_problem()
    layers = list(net.layers)
    layers[3] = layers[3]._replace(backward=lambda p, y, dy, need_dx: (None, dy * (1 - y)))  # second Tanh
    bad = mg.Network(tuple(layers), net.input_shape, net.output_size)
    report = mg.check_gradients(bad, params, x, t, methods=("autograd", "backprop"))
    assert failing(report, ("autograd", "backprop")) == {"[0]['W']", "[0]['b']", "[1]['W']", "[1]['b']"}


def test_raise_on_failure_carries_the_report():
    net, params, x, t = small_problem()
    with pytest.raises(GradientCheckError, match=r"\[1\]\['W'\]") as info:
        mg.check_gradients(with_broken_dense(net, 1, scaled_dW), params, x, t, raise_on_failure=True)
    assert not info.value.report.ok
    assert mg.check_gradients(net, params, x, t, raise_on_failure=True).ok


@pytest.mark.parametrize("mode", ["sampled", "directional"])
def test_cheap_modes_catch_the_scaled_rule_too(mode):
    net, params, x, t = small_problem()
    report = mg.check_gradients(with_broken_dense(net, 1, scaled_dW), params, x, t, mode=mode, samples=3, methods=INDEPENDENT)
    assert failing(report, ("backprop", "numerical")) == {"[1]['W']"}
    assert failing(report, ("autograd", "numerical")) == set()


# ---------------------------------------------------------------- structural checks


def test_a_method_that_mutates_its_inputs_is_reported(monkeypatch):
    net, params, x, t = small_problem()
    honest = backprop.value_and_grad

    def mutates(net, params, x, t, *rest):
        out = honest(net, params, x, t, *rest)
        params[0]["b"] += 1.0
        return out

    monkeypatch.setattr(backprop, "value_and_grad", mutates)
    before = params[0]["b"].copy()
    report = mg.check_gradients(net, params, x, t, methods=("autograd", "backprop"))
    check = next(c for c in report.checks if c.name.startswith("inputs unmutated"))
    assert not check.ok and not report.ok
    np.testing.assert_array_equal(params[0]["b"], before)  # it mutated the float64 copy, not the caller's


def test_a_nondeterministic_method_fails_the_repeat_check(monkeypatch):
    net, params, x, t = small_problem()
    honest = backprop.value_and_grad
    calls = []

    def drifts(net, params, x, t, *rest):
        calls.append(1)
        loss, grads, state = honest(net, params, x, t, *rest)
        grads[0]["W"] = grads[0]["W"] * (1 + 1e-15 * len(calls))
        return loss, grads, state

    monkeypatch.setattr(backprop, "value_and_grad", drifts)
    report = mg.check_gradients(net, params, x, t, methods=("autograd", "backprop"))
    check = next(c for c in report.checks if c.name == "backprop: repeated call bit-identical")
    assert not check.ok and not report.ok
    assert all(c.ok for c in report.comparisons)  # the drift itself is within tolerance


def test_a_method_that_raises_is_reported_not_propagated(monkeypatch):
    net, params, x, t = small_problem()

    def crashes(net, params, x, t, *rest):
        raise RuntimeError("backward exploded")

    monkeypatch.setattr(backprop, "value_and_grad", crashes)
    report = mg.check_gradients(net, params, x, t, methods=INDEPENDENT)
    assert not report.ok
    assert any(c.name == "backprop runs" and "backward exploded" in c.detail for c in report.checks)
    assert {c.methods for c in report.comparisons} == {("autograd", "numerical")}


def test_non_finite_gradient_is_reported(monkeypatch):
    net, params, x, t = small_problem()
    honest = backprop.value_and_grad

    def nan_bias(net, params, x, t, *rest):
        loss, grads, state = honest(net, params, x, t, *rest)
        grads[2]["b"] = grads[2]["b"] * np.nan
        return loss, grads, state

    monkeypatch.setattr(backprop, "value_and_grad", nan_bias)
    report = mg.check_gradients(net, params, x, t, methods=("autograd", "backprop"))
    finite = next(c for c in report.checks if c.name.startswith("losses and gradients finite"))
    assert not finite.ok and "[2]['b']" in finite.detail
    assert failing(report, ("autograd", "backprop")) == {"[2]['b']"}


def test_relu_pre_activations_on_the_kink_are_warned_about():
    net = mg.mlp(4, [3], 2)
    params = net.init(0)  # zero biases: an all-zero input row puts every pre-activation exactly at 0
    x = np.vstack([np.zeros(4), np.random.default_rng(0).random((3, 4))])
    report = mg.check_gradients(net, params, x, np.array([0, 1, 0, 1]))
    assert any(w.startswith("layer 1 (Relu): 3 of 12") for w in report.warnings)
    assert report.kink_params == (0,) and "warning:" in str(report)
    # Exactly at 0 the rule says slope 0, a central difference sees 1/2: params[0] disagrees, and
    # the report attributes that to the kink rather than to a method.
    assert not report.ok and {c.path for c in report.failures} <= {"[0]['W']", "[0]['b']"}
    assert report.kink_explains_failures() and "most likely kink artefacts" in str(report)
    quiet = mg.check_gradients(net, off_kinks(params), x, np.array([0, 1, 0, 1]), methods=("autograd", "backprop"))
    assert quiet.warnings == ()


def test_kinks_inside_a_nested_serial_are_warned_about():
    # The first block is serial(Dense, Relu): its ReLU sees the zero row's pre-activations at exactly 0.
    net = mg.Network((mg.serial(mg.Dense(3), mg.Relu), mg.Dense(3), mg.Relu, mg.Dense(2)), input_shape=(4,), output_size=2)
    params = net.init(0)
    x = np.vstack([np.zeros(4), np.random.default_rng(0).random((3, 4))])
    t = np.array([0, 1, 0, 1])
    report = mg.check_gradients(net, params, x, t, methods=("autograd", "numerical"))
    assert any(w.startswith("layer 0.1 (Relu): 3 of 12") for w in report.warnings), report.warnings
    assert report.kink_params[:1] == (0,)
    quiet_params = [off_kinks(params[0]), *off_kinks(params[1:], seed=1)]
    assert mg.check_gradients(net, quiet_params, x, t, methods=("autograd", "numerical")).warnings == ()


def test_bad_arguments_give_clear_errors():
    net, params, x, t = small_problem()
    with pytest.raises(ValueError, match="unknown gradient method"):
        mg.check_gradients(net, params, x, t, methods=("autograd", "finite"))
    with pytest.raises(ValueError, match="two distinct"):
        mg.check_gradients(net, params, x, t, methods=("autograd",))
    with pytest.raises(ValueError, match="mode"):
        mg.check_gradients(net, params, x, t, mode="all")
    with pytest.raises(ValueError, match="label"):
        mg.check_gradients(net, params, x, t + 10)


def test_vanishing_gradients_pass_on_the_absolute_floor_and_say_so():
    net = mg.mlp(20, [10] * 4, 5, activation="sigmoid", init=0.01)  # first-layer gradients ~1e-11
    x, t = batch(0, 16, 20, 5)
    report = mg.check_gradients(net, net.init(1), x, t)
    assert report.ok
    tiny = [c for c in report.comparisons if c.methods == ("autograd", "numerical") and c.path == "[0]['W']"][0]
    assert tiny.norm_rel_err > 1e-6 and np.sqrt(np.mean(np.square(tiny.worst_values))) < 1e-9
    assert "passed on the atol floor" in str(report)
    strict = [c for c in report.comparisons if c.methods == ("autograd", "backprop") and c.path == "[0]['W']"][0]
    assert strict.norm_rel_err <= 1e-12  # the analytic pair stays strict


def test_a_broken_rule_shows_in_both_paths_that_use_it():
    net, params, x, t = small_problem()
    report = mg.check_gradients(with_broken_dense(net, 1, scaled_dW), params, x, t)
    assert failing(report, ("autograd", "backprop")) == {"[1]['W']"}
    assert failing(report, ("autograd", "autograd-fused")) == {"[1]['W']"}
    assert failing(report, ("backprop", "autograd-fused")) == set()
    assert failing(report, ("autograd", "numerical")) == set()


def test_methods_must_be_a_sequence_not_a_string():
    net, params, x, t = small_problem()
    with pytest.raises(TypeError, match="sequence of method names"):
        mg.check_gradients(net, params, x, t, methods="autograd")


def test_a_layer_the_numerical_path_cannot_take_is_named_in_the_report():
    cube = mg.Layer("Cube", lambda rng, shape, dtype: (tuple(shape), None, None),
                    lambda params, state, x, train, key: (x ** 3, state),
                    lambda params, state, x, train, key: (x ** 3, x, state),
                    lambda params, x, dy, need_dx: (None, 3 * x * x * dy))
    net = mg.Network((mg.Dense(4, "xavier"), cube, mg.Dense(3, "xavier")), 5, 3)
    x, t = batch(1, 6, 5, 3)
    report = mg.check_gradients(net, net.init(0), x, t, methods=("autograd", "numerical", "complex-step"))
    assert report.ok, str(report)
    assert any("layer 1 (Cube), which declares no structure" in w and "the 24 params at or before layer 1" in w
               for w in report.warnings), report.warnings


def test_batch_norm_network_in_training_mode_passes_every_path_with_the_complex_step():
    net = mg.mlp(6, [5, 4], 3, activation="sigmoid", batch_norm=True, weight_decay=0.01)
    x, t = batch(2, 8, 6, 3)
    report = mg.check_gradients(net, net.init(1), x, t, state=net.init_state(), train=True,
                                methods=("autograd", "backprop", "numerical", "complex-step"))
    assert report.ok, str(report)
    assert report.warnings == ()  # BatchNorm is on the vectorised path: no slow-path warning
    exact = [c for c in report.comparisons if c.methods == ("backprop", "complex-step")]
    # Every leaf to 1e-12, except the biases just before BatchNorm, whose gradient is exactly 0 (atol floor).
    assert all(c.norm_rel_err <= 1e-12 or c.max_abs_err <= 1e-15 for c in exact)
