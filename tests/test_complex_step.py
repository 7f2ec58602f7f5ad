"""The complex step: exact gradients where the function allows, a clear error where it does not."""
import autograd.numpy as anp
import numpy as np
import pytest

import minigrad_nets as mg
from minigrad_nets import functions
from minigrad_nets.gradients import numerical
from minigrad_nets.gradients.numerical import NotComplexSafeError
from minigrad_nets.tree import tree_leaves


def norm_rel(a, b):
    a, b = np.ravel(a), np.ravel(b)
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    return np.linalg.norm(a - b) / scale if scale else float(np.any(a != b))


def batch(seed, size, features, classes):
    rng = np.random.default_rng(seed)
    return rng.random((size, features)), rng.integers(0, classes, size=size)


def smooth_problem():
    """f(p) = sum(exp(a) * sin(a)) + b0 * b1**3 over p = {'a': (2, 3), 'b': (2,)}, and its gradient by hand."""
    params = {"a": np.array([[0.3, -1.2, 2.0], [0.7, 0.0, -0.4]]), "b": np.array([1.5, -0.8])}

    def f(p):
        return np.sum(np.exp(p["a"]) * np.sin(p["a"])) + p["b"][0] * p["b"][1] ** 3

    a, (b0, b1) = params["a"], params["b"]
    exact = {"a": np.exp(a) * (np.sin(a) + np.cos(a)), "b": np.array([b1 ** 3, 3 * b0 * b1 ** 2])}
    return f, params, exact


# ---------------------------------------------------------------- any function


def test_complex_step_is_exact_to_rounding_where_central_differences_are_not():
    f, params, exact = smooth_problem()
    cs = mg.numerical_grad(f, params, method="complex-step")
    cd = mg.numerical_grad(f, params)
    for got, central, want in zip(tree_leaves(cs), tree_leaves(cd), tree_leaves(exact)):
        np.testing.assert_allclose(got, want, rtol=4e-16, atol=4e-16)
        assert norm_rel(central, want) > 1e-13  # central differences cannot get this close
        assert got.dtype == np.float64 and got.shape == want.shape


@pytest.mark.parametrize("mode", ["sampled", "directional"])
def test_complex_step_probes_match_the_exact_probes(mode):
    f, params, exact = smooth_problem()
    got = mg.numerical_grad(f, params, mode=mode, method="complex-step", samples=3, seed=4)
    want = numerical.analytic_probes(exact, params, mode, samples=3, seed=4)
    for g, w in zip(tree_leaves(got), tree_leaves(want)):
        np.testing.assert_allclose(g, w, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("name,f", [
    ("abs", lambda p: np.sum(np.abs(p["w"]) ** 3)),
    ("conj", lambda p: np.sum(np.conj(p["w"]) ** 2)),
    ("real part", lambda p: np.sum(np.real(p["w"]) ** 2)),
    ("abs of one entry", lambda p: np.sum(p["w"] ** 2) + np.abs(p["w"][1])),
])
def test_functions_that_are_not_complex_safe_get_a_clear_error(name, f):
    w = {"w": np.array([0.5, -2.0, 1.5])}
    mg.numerical_grad(f, w)  # central differences are fine with them
    for mode in ("full", "sampled", "directional"):
        with pytest.raises(NotComplexSafeError, match=r"not valid for this function at params\['w'\].*"
                                                      r"method='central'"):
            mg.numerical_grad(f, w, mode=mode, method="complex-step", samples=2)


def test_dropping_the_imaginary_part_by_a_cast_is_an_error():
    def f(p):
        return np.sum(p.astype(np.float64) ** 2)  # numpy warns: ComplexWarning

    with pytest.raises(NotComplexSafeError, match="discarded the imaginary part"):
        mg.numerical_grad(f, np.array([1.0, 2.0]), method="complex-step")


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="unknown numerical method 'forward'.*complex-step"):
        mg.numerical_grad(lambda p: p.sum(), np.ones(2), method="forward")


def test_sigmoid_values_takes_complex_input_and_keeps_real_results():
    x = np.array([-30.0, -2.0, 0.0, 0.5, 40.0])
    want = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(functions.sigmoid_values(x), want, rtol=1e-15)
    h = 1e-20
    z = functions.sigmoid_values(x + 1j * h)
    np.testing.assert_allclose(z.real, want, rtol=1e-15)
    e = np.exp(-np.abs(x))
    np.testing.assert_allclose(z.imag / h, e / (1 + e) ** 2, rtol=1e-14)  # σ'(x), even where 1 - σ(x) rounds to 0


# ---------------------------------------------------------------- networks


def leafwise_against_autograd(net, params, x, t, **kw):
    """The complex-step gradient's worst leaf error against autograd: norm-relative where the gradient is not 0."""
    auto = mg.grad(net, params, x, t, **kw)
    cs = mg.grad(net, params, x, t, method="complex-step", **kw)
    worst = 0.0
    for a, c in zip(tree_leaves(auto), tree_leaves(cs)):
        if np.linalg.norm(a) > 1e-12:
            worst = max(worst, norm_rel(a, c))
        else:  # a bias just before BatchNorm: its gradient is exactly 0
            assert np.max(np.abs(c)) < 1e-15
    return worst


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_network_complex_step_agrees_with_autograd_to_1e12(activation):
    net = mg.mlp(7, [6, 5, 4], 3, activation=activation, init="xavier", weight_decay=0.03)
    params = net.init(1)
    x, t = batch(0, 9, 7, 3)
    assert leafwise_against_autograd(net, params, x, t) <= 1e-12


def test_batch_norm_network_in_training_mode_agrees_to_1e12():
    net = mg.mlp(6, [5, 4], 3, activation="tanh", batch_norm=True, dropout=0.2, weight_decay=0.01)
    params = net.init(2)
    x, t = batch(1, 8, 6, 3)
    assert leafwise_against_autograd(net, params, x, t, state=net.init_state(), train=True, key=5) <= 1e-12


def test_value_and_grad_by_complex_step_returns_loss_and_new_state():
    net = mg.mlp(5, [4], 3, batch_norm=True)
    params, state = net.init(0), net.init_state()
    x, t = batch(2, 6, 5, 3)
    loss, _, new_state = mg.value_and_grad(net, params, x, t, method="complex-step", state=state, train=True,
                                           return_state=True)
    want_loss, want_state = net.loss(params, x, t, state=state, train=True, return_state=True)
    assert loss == want_loss
    for a, b in zip(tree_leaves(new_state), tree_leaves(want_state)):
        np.testing.assert_array_equal(a, b)


def square_layer(abs_in_forward=False):
    """An opaque layer (no kind): x**2, or |x|**2 — the same numbers, but |.| is not complex-safe."""
    fn = (lambda x: np.abs(x) ** 2) if abs_in_forward else (lambda x: x * x)
    return mg.Layer("Square", lambda rng, shape, dtype: (tuple(shape), None, None),
                    lambda params, state, x, train, key: (fn(x), state),
                    lambda params, state, x, train, key: (fn(x), x, state),
                    lambda params, x, dy, need_dx: (None, 2 * x * dy))


def test_an_opaque_complex_safe_layer_is_looped_and_exact():
    net = mg.Network((mg.Dense(4, "xavier"), square_layer(), mg.Dense(3, "xavier")), 5, 3)
    params = net.init(0)
    x, t = batch(3, 6, 5, 3)
    with pytest.warns(numerical.SlowPathWarning, match=r"layer 1 \(Square\)"):
        assert leafwise_against_autograd(net, params, x, t) <= 1e-12


def test_an_opaque_layer_that_is_not_complex_safe_is_caught_not_trusted():
    net = mg.Network((mg.Dense(4, "xavier"), square_layer(abs_in_forward=True), mg.Dense(3, "xavier")), 5, 3)
    params = net.init(0)
    x, t = batch(3, 6, 5, 3)
    with pytest.warns(numerical.SlowPathWarning), pytest.raises(NotComplexSafeError, match=r"params\[0\]"):
        mg.grad(net, params, x, t, method="complex-step")
    report = mg.check_gradients(net, params, x, t, methods=("autograd", "complex-step"))
    assert not report.ok
    assert any(c.name == "complex-step runs" and not c.ok and "NotComplexSafeError" in c.detail
               for c in report.checks)


# ---------------------------------------------------------------- check_gradients


def test_check_gradients_with_the_complex_step_passes_at_1e12():
    net = mg.mlp(6, [5, 4], 3, activation="sigmoid", weight_decay=0.05)
    x, t = batch(4, 7, 6, 3)
    report = mg.check_gradients(net, net.init(3), x, t, methods=("autograd", "backprop", "complex-step"))
    assert report.ok, str(report)
    rows = [c for c in report.comparisons if "complex-step" in c.methods]
    assert rows and all(c.rtol == 1e-12 and c.norm_rel_err <= 1e-12 for c in rows)


@pytest.mark.parametrize("mode", ["sampled", "directional"])
def test_check_gradients_complex_step_in_probe_modes(mode):
    net = mg.mlp(6, [5], 3, activation="tanh")
    x, t = batch(5, 7, 6, 3)
    report = mg.check_gradients(net, net.init(0), x, t, methods=("autograd", "complex-step"), mode=mode,
                                samples=3)
    assert report.ok, str(report)
    assert all(c.norm_rel_err <= 1e-12 for c in report.comparisons)


def slightly_wrong_tanh(error):
    """Tanh whose backward rule is off by the relative factor ``error``; autograd differentiates the right tanh."""
    return mg.elementwise("Tanh~", functions.tanh, lambda y, dy: dy * (1 - y * y) * (1 + error),
                          numpy_fn=np.tanh, from_output=True)


def test_an_error_of_1e8_is_caught_by_the_complex_step_and_missed_by_central_differences():
    net = mg.Network((mg.Dense(6, "xavier"), slightly_wrong_tanh(1e-8), mg.Dense(3, "xavier")), 5, 3)
    params = net.init(0)
    x, t = batch(6, 8, 5, 3)
    auto, back = mg.grad(net, params, x, t), mg.grad(net, params, x, t, method="backprop")
    assert 0.5e-8 < norm_rel(auto[0]["W"], back[0]["W"]) < 2e-8  # the planted error, below the tanh layer
    central = mg.check_gradients(net, params, x, t, methods=("backprop", "numerical"))
    assert central.ok  # 1e-8 is far below what central differences can resolve (1e-6 tolerance)
    exact = mg.check_gradients(net, params, x, t, methods=("backprop", "complex-step"))
    assert {c.path for c in exact.failures} == {"[0]['W']", "[0]['b']"}, str(exact)


def test_relu_values_branches_on_the_real_part_with_slope_0_at_0():
    h = 1e-20
    x = np.array([-1.5, 0.0, 2.0])
    z = functions.relu_values(x + 1j * h)
    np.testing.assert_array_equal(z.real, [0.0, 0.0, 2.0])
    np.testing.assert_array_equal(z.imag / h, [0.0, 0.0, 1.0])  # as autograd's and backprop's rule: 0 at 0
    np.testing.assert_array_equal(functions.relu_values(x), [0.0, 0.0, 2.0])


def test_a_small_convnet_by_the_complex_step_loops_its_opaque_layers_exactly():
    net = mg.simple_convnet((1, 6, 6), filters=3, kernel=3, hidden=5, output_size=3)
    params = net.init(0)
    x, t = np.random.default_rng(7).random((4, 1, 6, 6)), np.array([0, 2, 1, 2])
    with pytest.warns(numerical.SlowPathWarning, match=r"layer 0 \(Conv2D.*layer 2 \(MaxPool2D"):
        assert leafwise_against_autograd(net, params, x, t) <= 1e-12


def test_an_elementwise_layer_whose_fn_is_not_complex_safe_is_caught_on_the_fast_path():
    # The usual overflow-safe softplus, log(1 + e^-|x|) + max(x, 0): its abs makes it not complex-safe.
    softplus = mg.elementwise("Softplus", lambda x: anp.log1p(anp.exp(-anp.abs(x))) + anp.maximum(x, 0),
                              lambda x, dy: dy / (1 + np.exp(-x)),
                              numpy_fn=lambda x: np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0))
    net = mg.Network((mg.Dense(5, "xavier"), softplus, mg.Dense(3, "xavier")), 4, 3)
    params = net.init(0)
    x, t = batch(8, 6, 4, 3)
    assert max(norm_rel(a, b) for a, b in zip(tree_leaves(mg.grad(net, params, x, t)),
                                              tree_leaves(mg.grad(net, params, x, t, method="numerical")))) < 1e-7
    with pytest.raises(NotComplexSafeError, match=r"params\[0\]"):
        mg.grad(net, params, x, t, method="complex-step")


def test_a_kink_hit_exactly_is_a_warning_not_an_error_and_the_branch_is_the_analytic_rules():
    # An all-zero input row and zero biases put that row's ReLU inputs exactly at the kink: no central
    # difference can check the bias there (its one-sided slopes differ), and none is blamed on the complex step.
    net = mg.mlp(5, [4], 3, init="xavier")
    params = net.init(0)
    x, t = batch(9, 6, 5, 3)
    x[2] = 0.0
    with pytest.warns(numerical.ComplexStepWarning, match=r"could not be checked at params\[0\]\['b'\].*kink"):
        assert leafwise_against_autograd(net, params, x, t) <= 1e-12
    report = mg.check_gradients(net, params, x, t, methods=("autograd", "backprop", "complex-step"))
    assert report.ok, str(report)
    assert any("could not be checked at params[0]['b']" in w for w in report.warnings)
