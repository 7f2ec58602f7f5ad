"""Optimizers: two steps of each against values worked out by hand, structure errors, purity."""
import copy

import numpy as np
import pytest

import minigrad_nets as mg
from minigrad_nets import optimizers

# One scalar parameter p0 = 1 and gradients g1 = 0.5, g2 = -1.0 make each rule easy to follow by hand.
P0, G1, G2 = 1.0, 0.5, -1.0


def two_steps(opt):
    params = {"w": np.array([P0])}
    state = opt.init(params)
    params, state = opt.update(params, {"w": np.array([G1])}, state)
    first = params["w"][0]
    params, state = opt.update(params, {"w": np.array([G2])}, state)
    return first, params["w"][0], state


def test_sgd_by_hand():
    first, second, state = two_steps(mg.sgd(lr=0.1))
    assert first == pytest.approx(1.0 - 0.1 * 0.5, abs=1e-15)           # 0.95
    assert second == pytest.approx(0.95 + 0.1 * 1.0, abs=1e-15)         # 1.05
    assert state == {}


def test_momentum_by_hand():
    first, second, state = two_steps(mg.momentum(lr=0.1, momentum=0.9))
    # v1 = -0.05, p1 = 0.95; v2 = 0.9 * -0.05 + 0.1 = 0.055, p2 = 1.005
    assert first == pytest.approx(0.95, abs=1e-15)
    assert second == pytest.approx(1.005, abs=1e-15)
    assert state["v"]["w"][0] == pytest.approx(0.055, abs=1e-15)


def test_nesterov_by_hand():
    # arXiv 1212.0901, eq. 7: p_t = p_{t-1} + mu^2 v_{t-1} - (1 + mu) lr g_t, then v_t = mu v_{t-1} - lr g_t.
    # The numbers: p0 = 1, g = 1, lr = 0.1, mu = 0.9 -> p1 = 1 + 0.81 * 0 - 1.9 * 0.1 = 0.81.
    opt = mg.nesterov(lr=0.1, momentum=0.9)
    params = {"w": np.array([1.0])}
    params, state = opt.update(params, {"w": np.array([1.0])}, opt.init(params))
    assert params["w"][0] == pytest.approx(0.81, abs=1e-15)
    assert state["v"]["w"][0] == pytest.approx(-0.1, abs=1e-15)
    first, second, state = two_steps(mg.nesterov(lr=0.1, momentum=0.9))
    # v0 = 0: p1 = 1 - 0.19 * 0.5 = 0.905, v1 = -0.05
    # p2 = 0.905 + 0.81 * -0.05 - 0.19 * -1 = 1.0545, v2 = 0.9 * -0.05 + 0.1 = 0.055
    assert first == pytest.approx(0.905, abs=1e-15)
    assert second == pytest.approx(1.0545, abs=1e-14)
    assert state["v"]["w"][0] == pytest.approx(0.055, abs=1e-15)


def test_nesterov_follows_the_papers_rule_for_100_steps():
    """The same gradients fed to our nesterov and to eq. 7 of arXiv 1212.0901, written out plainly."""
    rng = np.random.default_rng(7)
    lr, mu = 0.05, 0.9
    grads = rng.standard_normal((100, 3, 2))
    params = {"W": rng.standard_normal((3, 2))}
    opt = mg.nesterov(lr=lr, momentum=mu)
    state = opt.init(params)
    p, v = params["W"].copy(), np.zeros((3, 2))
    for g in grads:
        params, state = opt.update(params, {"W": g}, state)
        p = p + mu * mu * v - (1 + mu) * lr * g   # the step uses the old velocity ...
        v = mu * v - lr * g                       # ... which is updated afterwards
        np.testing.assert_allclose(params["W"], p, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(state["v"]["W"], v, rtol=1e-12, atol=1e-12)


def test_nesterov_is_nesterovs_accelerated_gradient_at_the_look_ahead_point():
    """Classical NAG (gradient at theta + mu*v) on a quadratic, 100 steps: our params are theta + mu*v."""
    A = np.array([[3.0, 0.5], [0.5, 1.0]])
    lr, mu = 0.05, 0.9
    theta, v = np.array([2.0, -1.0]), np.zeros(2)
    opt = mg.nesterov(lr=lr, momentum=mu)
    params = {"x": theta.copy()}
    state = opt.init(params)
    for _ in range(100):
        params, state = opt.update(params, {"x": A @ params["x"]}, state)   # gradient where our params are
        v = mu * v - lr * (A @ (theta + mu * v))                               # NAG: gradient at the look-ahead
        theta = theta + v
        np.testing.assert_allclose(params["x"], theta + mu * v, rtol=1e-10, atol=1e-12)


def test_adagrad_by_hand():
    first, second, state = two_steps(mg.adagrad(lr=0.1))
    # h1 = 0.25, p1 = 1 - 0.1 * 0.5 / (0.5 + 1e-7); h2 = 1.25, p2 = p1 + 0.1 / (sqrt(1.25) + 1e-7)
    p1 = 1 - 0.05 / (0.5 + 1e-7)
    assert first == pytest.approx(p1, abs=1e-14)
    assert second == pytest.approx(p1 + 0.1 / (np.sqrt(1.25) + 1e-7), abs=1e-14)
    assert state["h"]["w"][0] == pytest.approx(1.25, abs=1e-15)


def test_rmsprop_by_hand():
    first, second, state = two_steps(mg.rmsprop(lr=0.1, decay_rate=0.9))
    # h1 = 0.1 * 0.25 = 0.025; h2 = 0.9 * 0.025 + 0.1 * 1 = 0.1225 (sqrt = 0.35)
    p1 = 1 - 0.05 / (np.sqrt(0.025) + 1e-7)
    assert first == pytest.approx(p1, abs=1e-14)
    assert second == pytest.approx(p1 + 0.1 / (0.35 + 1e-7), abs=1e-13)
    assert state["h"]["w"][0] == pytest.approx(0.1225, abs=1e-15)


def test_adam_by_hand():
    first, second, state = two_steps(mg.adam(lr=0.1, beta1=0.9, beta2=0.999))
    # step 1: m = 0.05, v = 0.00025, lr_t = 0.1 * sqrt(0.001) / 0.1  -> p1 = 1 - lr_t * 0.05 / (sqrt(v) + 1e-7)
    lr1 = 0.1 * np.sqrt(1 - 0.999) / (1 - 0.9)
    p1 = 1 - lr1 * 0.05 / (np.sqrt(0.00025) + 1e-7)
    # step 2: m = 0.05 + 0.1 * (-1 - 0.05) = -0.055; v = 0.00025 + 0.001 * (1 - 0.00025) = 0.00124975
    lr2 = 0.1 * np.sqrt(1 - 0.999 ** 2) / (1 - 0.9 ** 2)
    p2 = p1 - lr2 * -0.055 / (np.sqrt(0.00124975) + 1e-7)
    assert first == pytest.approx(p1, abs=1e-13)
    assert second == pytest.approx(p2, abs=1e-13)
    assert state["m"]["w"][0] == pytest.approx(-0.055, abs=1e-15)
    assert state["v"]["w"][0] == pytest.approx(0.00124975, abs=1e-15)
    assert float(state["step"]) == 2.0


def test_book_defaults():
    # The book's defaults: SGD/Momentum/Nesterov/AdaGrad/RMSprop lr 0.01, Adam lr 0.001.
    params = {"w": np.array([0.0])}
    grads = {"w": np.array([1.0])}
    for name, expected in [("sgd", -0.01), ("momentum", -0.01), ("adagrad", -0.01 / (1 + 1e-7))]:
        opt = optimizers.get(name)
        new, _ = opt.update(params, grads, opt.init(params))
        assert new["w"][0] == pytest.approx(expected, abs=1e-15), name
    nes = mg.nesterov()
    new, _ = nes.update(params, grads, nes.init(params))
    assert new["w"][0] == pytest.approx(0.81 * 0.0 - 1.9 * 0.01, abs=1e-15)  # v0 = 0: only -(1 + mu) lr g
    rms = mg.rmsprop()
    new, _ = rms.update(params, grads, rms.init(params))
    assert new["w"][0] == pytest.approx(-0.01 / (np.sqrt(0.01) + 1e-7), abs=1e-14)
    adam = mg.adam()
    new, _ = adam.update(params, grads, adam.init(params))
    # m = 0.1, v = 0.001, lr_t = 0.001 * sqrt(0.001) / 0.1: the bias-corrected first step is about -lr
    assert new["w"][0] == pytest.approx(-0.001 * np.sqrt(0.001) / 0.1 * 0.1 / (np.sqrt(0.001) + 1e-7), abs=1e-15)


def net_like_params():
    return [{"W": np.arange(6.0).reshape(2, 3), "b": np.ones(3)}, {"W": np.ones((3, 2)), "b": np.zeros(2)}]


@pytest.mark.parametrize("name", optimizers.NAMES)
def test_updates_every_leaf_and_never_mutates(name):
    opt = optimizers.get(name)
    params = net_like_params()
    grads = [{"W": np.full((2, 3), 0.5), "b": np.full(3, -1.0)}, {"W": np.ones((3, 2)), "b": np.ones(2)}]
    state = opt.init(params)
    before = copy.deepcopy((params, grads, state))
    new_params, new_state = opt.update(params, grads, state)
    for a, b in zip(mg.tree.tree_leaves(before), mg.tree.tree_leaves((params, grads, state))):
        np.testing.assert_array_equal(a, b)
    for old, new in zip(mg.tree.tree_leaves(params), mg.tree.tree_leaves(new_params)):
        assert new.shape == old.shape and not np.array_equal(new, old)
    assert mg.tree.tree_structure(new_state) == mg.tree.tree_structure(state)


@pytest.mark.parametrize("name", optimizers.NAMES)
def test_float32_stays_float32(name):
    opt = optimizers.get(name)
    params = mg.tree.tree_astype(net_like_params(), np.float32)
    grads = mg.tree.tree_map(lambda p: np.full_like(p, 0.25), params)
    state = opt.init(params)
    for _ in range(2):
        params, state = opt.update(params, grads, state)
    assert all(leaf.dtype == np.float32 for leaf in mg.tree.tree_leaves(params))
    assert all(leaf.dtype == np.float32 for path, leaf in mg.tree.tree_leaves_with_paths(state) if "step" not in path)


@pytest.mark.parametrize("name", optimizers.NAMES)
def test_gradient_structure_mismatch_is_a_type_error(name):
    opt = optimizers.get(name)
    params = net_like_params()
    state = opt.init(params)
    missing_layer = params[:1]
    with pytest.raises(TypeError, match="gradient does not have the structure of params.*length"):
        opt.update(params, missing_layer, state)
    wrong_key = [{"W": params[0]["W"], "bias": params[0]["b"]}, params[1]]
    with pytest.raises(TypeError, match=r"at \[0\]: .*keys"):
        opt.update(params, wrong_key, state)
    wrong_shape = [{"W": params[0]["W"].T, "b": params[0]["b"]}, params[1]]
    with pytest.raises(ValueError, match=r"gradient\[0\]\['W'\] has shape \(3, 2\)"):
        opt.update(params, wrong_shape, state)


def test_state_from_other_params_is_rejected():
    opt = mg.momentum()
    state = opt.init({"a": np.zeros(2)})
    with pytest.raises(TypeError, match="state"):
        opt.update({"b": np.zeros(2)}, {"b": np.zeros(2)}, state)


def test_get_and_names():
    assert optimizers.NAMES == ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")
    assert optimizers.get("Adam", lr=0.5).name == "adam"
    with pytest.raises(ValueError, match="unknown optimizer 'adamw'"):
        optimizers.get("adamw")
    with pytest.raises(TypeError):
        optimizers.get("sgd", beta1=0.9)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_learning_rate(bad):
    with pytest.raises((ValueError, TypeError), match="lr"):
        mg.sgd(lr=bad)


def test_bad_momentum():
    with pytest.raises(ValueError, match=r"momentum must lie in \[0, 1\)"):
        mg.momentum(momentum=1.0)


@pytest.mark.parametrize("name", optimizers.NAMES)
def test_integer_params_or_gradients_are_a_type_error(name):
    opt = optimizers.get(name)
    ints = {"w": np.array([1, 2]), "b": np.array([1.0])}
    floats = {"w": np.array([1.0, 2.0]), "b": np.array([1.0])}
    with pytest.raises(TypeError, match=r"params\['w'\] has dtype int64"):
        opt.update(ints, floats, opt.init(floats))
    with pytest.raises(TypeError, match=r"gradient\['w'\] has dtype int64"):
        opt.update(floats, ints, opt.init(floats))


@pytest.mark.parametrize("name", ["momentum", "nesterov", "adagrad", "rmsprop", "adam"])
def test_state_of_other_shapes_names_the_leaf(name):
    opt = optimizers.get(name)
    params = {"w": np.ones(3), "b": np.ones(2)}
    state = opt.init({"w": np.ones(4), "b": np.ones(2)})
    with pytest.raises(ValueError, match=r"state\['[vhm]'\]\['w'\] has shape \(4,\)"):
        opt.update(params, params, state)


def test_hyperparams_are_recorded():
    assert mg.sgd(lr=0.5).hyperparams == {"lr": 0.5}
    assert mg.momentum().hyperparams == {"lr": 0.01, "momentum": 0.9}
    assert mg.adam(beta2=0.99).hyperparams == {"lr": 0.001, "beta1": 0.9, "beta2": 0.99}
