"""mlp / Network: structure, the book's networks, determinism, gradients, and errors on bad input."""
import warnings

import autograd
import numpy as np
import pytest

import minigrad_nets as mg
from minigrad_nets.tree import tree_leaves, tree_leaves_with_paths


def batch(n=8, features=784, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, features)), rng.integers(0, classes, n)


def test_book_two_layer_net():
    net = mg.mlp(784, [50], 10, activation="sigmoid", init=0.01)
    params = net.init(0)
    assert [(p, s) for p, s in net.param_shapes()] == [
        ("[0]['W']", (784, 50)), ("[0]['b']", (50,)), ("[1]['W']", (50, 10)), ("[1]['b']", (10,))]
    assert params[0]["W"].std() == pytest.approx(0.01, rel=0.05)
    x, t = batch()
    # tiny weights: logits near 0, so the loss is near ln 10
    assert net.loss(params, x, t) == pytest.approx(np.log(10), abs=0.05)


def test_book_multi_layer_net_shapes_and_outputs():
    net = mg.mlp(784, [100] * 4, 10)
    params = net.init(0)
    assert len(params) == 5 and sum(p.size for p in tree_leaves(params)) == 784 * 100 + 100 + 3 * 10100 + 1010
    x, t = batch()
    assert net.apply(params, x).shape == (8, 10)
    assert net.apply(params, x[0]).shape == (10,)
    np.testing.assert_array_equal(net.predict(params, x), np.argmax(net.apply(params, x), axis=1))
    acc = net.accuracy(params, x, t)
    assert acc == np.mean(net.predict(params, x) == t)
    assert net.accuracy(params, x, np.eye(10)[t]) == acc


def test_loss_is_cross_entropy_plus_half_lambda_weight_norms():
    net = mg.mlp(6, [5, 4], 3, weight_decay=0.3)
    params = net.init(1)
    x, t = batch(4, 6, 3)
    penalty = 0.5 * 0.3 * sum(np.sum(p["W"] ** 2) for p in params)  # biases are not decayed
    assert net.loss(params, x, t) == pytest.approx(mg.cross_entropy(net.apply(params, x), t) + penalty, rel=1e-15)


def test_float32_network_stays_float32():
    net = mg.mlp(6, [5], 3, dtype="float32")
    params = net.init(0)
    assert all(p.dtype == np.float32 for p in tree_leaves(params))
    x, t = batch(4, 6, 3)
    assert net.apply(params, x).dtype == np.float32
    assert net.loss(params, x, t).dtype == np.float32


@pytest.mark.parametrize("method", ["autograd", "backprop"])
def test_same_seed_gives_bit_identical_params_losses_gradients(method):
    net = mg.mlp(20, [16, 16], 4, weight_decay=0.1, dropout=0.2)
    x, t = batch(10, 20, 4)
    runs = []
    for global_seed in (1, 2):
        np.random.seed(global_seed)  # nothing may read the global state
        params = net.init(5)
        loss, grads = mg.value_and_grad(net, params, x, t, method=method, key=9, train=True)
        runs.append((tree_leaves(params), loss, tree_leaves(grads)))
    (p1, l1, g1), (p2, l2, g2) = runs
    assert all(np.array_equal(a, b) for a, b in zip(p1, p2))
    assert l1 == l2
    assert all(np.array_equal(a, b) for a, b in zip(g1, g2))


def test_grad_has_the_structure_of_params():
    net = mg.mlp(6, [5, 4], 3)
    params = net.init(0)
    x, t = batch(4, 6, 3)
    grads = mg.grad(net, params, x, t)
    assert [(p, g.shape) for p, g in tree_leaves_with_paths(grads)] == net.param_shapes()
    with pytest.raises(ValueError, match="unknown gradient method 'magic'"):
        mg.grad(net, params, x, t, method="magic")


def sampled_central_differences(f, params, samples, seed):
    """Central differences of scalar f at `samples` random entries of each leaf: {path: (indices, values)}."""
    rng = np.random.default_rng(seed)
    out = {}
    for path, leaf in tree_leaves_with_paths(params):
        idx = rng.choice(leaf.size, size=min(samples, leaf.size), replace=False)
        values = []
        for i in idx:
            flat = leaf.reshape(-1)
            old = flat[i]
            h = np.finfo(np.float64).eps ** (1 / 3) * max(1.0, abs(old))
            h = (old + h) - old  # exactly representable step
            flat[i] = old + h
            up = f(params)
            flat[i] = old - h
            down = f(params)
            flat[i] = old
            values.append((up - down) / (2 * h))
        out[path] = (idx, np.array(values))
    return out


def test_autograd_agrees_with_central_differences_on_multilayer_net():
    """Acceptance: mlp(784, [100]*4, 10), He/ReLU, batch 128, float64, sampled entries of every leaf."""
    net = mg.mlp(784, [100] * 4, 10)
    params = net.init(0)
    x, t = batch(128, seed=3)
    # Central differences are only valid away from ReLU kinks: this batch keeps every
    # pre-activation over 1e-4 from 0, far beyond what a step of ~6e-6 can move it.
    a = x
    for p in params[:-1]:
        z = a @ p["W"] + p["b"]
        assert np.abs(z).min() > 1e-4
        a = np.maximum(z, 0)
    grads = dict(tree_leaves_with_paths(mg.grad(net, params, x, t)))
    numeric = sampled_central_differences(lambda p: net.loss(p, x, t), [dict(p) for p in params], 12, 1)
    assert set(numeric) == set(grads)
    for path, (idx, values) in numeric.items():
        analytic = grads[path].reshape(-1)[idx]
        err = np.linalg.norm(analytic - values) / np.linalg.norm(analytic)
        assert err < 1e-6, (path, err)


# ------------------------------------------------------------------ bad input


@pytest.fixture
def small():
    net = mg.mlp(6, [5], 3)
    return net, net.init(0)


def test_input_feature_size_names_layer_and_shapes(small):
    net, params = small
    with pytest.raises(ValueError, match=r"shape \(4, 7\).*Dense\(5\).*examples of shape \(6,\)"):
        net.apply(params, np.zeros((4, 7)))


@pytest.mark.parametrize("t, error, match", [
    (np.array([0, 1, 3, 0]), ValueError, r"label 3 .* outside \[0, 3\)"),
    (np.array([0, 1, 2]), ValueError, "label count 3 does not match batch size 4"),
    (np.eye(4)[[0, 1, 2, 3]], ValueError, r"shape \(4, 4\)"),
    (np.array(["a", "b", "c", "d"]), TypeError, "dtype"),
])
def test_bad_targets(small, t, error, match):
    net, params = small
    for method in ("autograd", "backprop"):
        with pytest.raises(error, match=match):
            mg.grad(net, params, np.zeros((4, 6)), t, method=method)


def test_non_numeric_inputs(small):
    net, params = small
    with pytest.raises(TypeError, match="dtype"):
        net.apply(params, np.array([["a"] * 6]))
    with pytest.raises(TypeError, match="dtype"):
        net.apply(params, np.zeros((2, 6), dtype=complex))


def test_params_structure_and_shape_errors(small):
    net, params = small
    x = np.zeros((2, 6))
    with pytest.raises(TypeError, match="at the root: expected length 2, got 1"):
        net.apply(params[:1], x)
    with pytest.raises(TypeError, match=r"at \[1\]: expected keys \['W', 'b'\], got \['W'\]"):
        net.apply([params[0], {"W": params[1]["W"]}], x)
    bad = [dict(params[0]), dict(params[1])]
    bad[1]["W"] = np.zeros((5, 4))
    with pytest.raises(ValueError, match=r"params\[1\]\['W'\] has shape \(5, 4\); this network expects \(5, 3\)"):
        net.apply(bad, x)
    bad[1]["W"] = np.zeros((5, 3), dtype=int)
    with pytest.raises(TypeError, match=r"params\[1\]\['W'\] must be a float array"):
        net.loss(bad, x, np.array([0, 1]))


def test_bad_network_arguments():
    with pytest.raises(ValueError, match="unknown activation"):
        mg.mlp(4, [3], 2, activation="swish")
    with pytest.raises(ValueError, match="weight_decay"):
        mg.mlp(4, [3], 2, weight_decay=-1)
    with pytest.raises(ValueError, match="positive"):
        mg.mlp(4, [0], 2)
    with pytest.raises(TypeError, match="seed"):
        mg.mlp(4, [3], 2).init("zero")


def test_gradient_of_loss_wrt_input_is_possible():
    """apply is a pure autograd function of x too (used e.g. for saliency)."""
    net, params = mg.mlp(6, [5], 3), None
    params = net.init(0)
    g = autograd.grad(lambda x: net.loss(params, x, np.array([1])))(np.ones((1, 6)))
    assert g.shape == (1, 6) and np.all(np.isfinite(g))


@pytest.mark.parametrize("method", ["autograd", "backprop", "autograd-fused", "numerical"])
def test_single_sample_gradient_equals_batch_of_one(method):
    net = mg.mlp(6, [5], 3, weight_decay=0.1)
    params = net.init(0)
    x = np.random.default_rng(0).random(6)
    for t_single, t_batch in ((2, np.array([2])), (np.eye(3)[2], np.eye(3)[[2]])):
        loss, g = mg.value_and_grad(net, params, x, t_single, method=method)
        loss1, g1 = mg.value_and_grad(net, params, x[None], t_batch, method=method)
        assert loss == loss1
        assert all(np.array_equal(a, b) for a, b in zip(tree_leaves(g), tree_leaves(g1)))


@pytest.mark.parametrize("method", ["autograd", "backprop", "autograd-fused", "numerical"])
def test_weight_decay_reaches_weights_inside_a_nested_serial(method):
    net = mg.Network((mg.serial(mg.Dense(5), mg.Relu), mg.Dense(3)), 4, 3, weight_decay=1.0)
    params = net.init(0)
    x, t = batch(6, 4, 3)
    plain = mg.Network(net.layers, 4, 3)
    expected_penalty = 0.5 * (np.sum(params[0][0]["W"] ** 2) + np.sum(params[1]["W"] ** 2))
    assert net.loss(params, x, t) == pytest.approx(plain.loss(params, x, t) + expected_penalty, rel=1e-14)
    g, g0 = mg.grad(net, params, x, t, method=method), mg.grad(plain, params, x, t, method=method)
    np.testing.assert_allclose(g[0][0]["W"] - g0[0][0]["W"], params[0][0]["W"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(g[0][0]["b"], g0[0][0]["b"], rtol=1e-6, atol=1e-9)


def test_non_finite_inputs_are_named():
    net = mg.mlp(4, [5], 3)
    params = net.init(0)
    x = np.ones((3, 4))
    x[1, 2] = np.nan
    for call in (lambda: net.apply(params, x), lambda: mg.grad(net, params, x, np.zeros(3, int))):
        with pytest.raises(ValueError, match="x contains nan at row 1, column 2"):
            call()
    x[1, 2] = -np.inf
    with pytest.raises(ValueError, match="x contains -inf at row 1, column 2"):
        net.apply(params, x)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_huge_finite_inputs_pass_the_finite_check(dtype):
    # The check screens with x·x first, which overflows here: the exact test must then let x through.
    net = mg.mlp(4, [5], 3, dtype=dtype)
    params = net.init(0)
    x = np.full((3, 4), np.finfo(dtype).max / 4, dtype=dtype)
    assert net.check_input(x)[0] is x
    x[2, 3] = np.inf
    with pytest.raises(ValueError, match="x contains inf at row 2, column 3"):
        net.check_input(x)


def test_params_must_have_the_networks_dtype():
    net = mg.mlp(4, [5], 3, dtype="float32")
    params64 = mg.mlp(4, [5], 3).init(0)
    with pytest.raises(TypeError, match=r"params\[0\]\['W'\] has dtype float64, but this network computes in float32"):
        net.apply(params64, np.ones((2, 4)))


def test_accuracy_checks_its_labels():
    net = mg.mlp(4, [5], 3)
    params = net.init(0)
    with pytest.raises(ValueError, match=r"label 7 .* outside \[0, 3\)"):
        net.accuracy(params, np.ones((2, 4)), [0, 7])
    with pytest.raises(TypeError, match="dtype"):
        net.accuracy(params, np.ones((2, 4)), ["a", "b"])


@pytest.mark.parametrize("kwargs, error", [
    (dict(hidden_sizes=[5.7]), TypeError), (dict(dropout="0.5"), TypeError), (dict(weight_decay=None), TypeError)])
def test_mlp_argument_types(kwargs, error):
    args = dict(input_size=4, hidden_sizes=[5], output_size=3) | kwargs
    with pytest.raises(error):
        mg.mlp(**args)


def test_integer_one_hot_targets_as_the_book_writes_them_give_the_labels_loss():
    net = mg.mlp(4, [3], 3)
    params = net.init(0)
    x = np.random.default_rng(0).random((4, 4))
    labels = np.array([2, 0, 1, 2])
    one_hot = np.eye(3, dtype=int)[labels]
    assert net.loss(params, x, one_hot) == net.loss(params, x, labels)
    # simpleNet: one example and t = np.array([0, 0, 1])
    assert net.loss(params, x[0], np.array([0, 0, 1])) == net.loss(params, x[:1], np.array([2]))
    for method in ("autograd", "backprop", "autograd-fused"):
        np.testing.assert_array_equal(mg.grad(net, params, x, one_hot, method=method)[0]["W"],
                                      mg.grad(net, params, x, labels, method=method)[0]["W"])


def test_integer_targets_that_are_not_one_hot_are_a_clear_error():
    net = mg.mlp(4, [3], 3)
    with pytest.raises(ValueError, match=r"must be one-hot rows.*row 1 is \[1, 1, 0\]"):
        net.loss(net.init(0), np.ones((2, 4)), np.array([[0, 0, 1], [1, 1, 0]]))


def test_raw_pixel_values_get_a_warning_naming_the_range_and_the_fix():
    net = mg.mlp(6, [3], 2)
    x = np.random.default_rng(0).integers(0, 256, (10, 6))
    t = np.arange(10) % 2
    for images in (x.astype(np.uint8), x.astype(np.float32)):
        with pytest.warns(UserWarning, match=r"train_data x holds values from \d+ to 25\d.*divide by 255"):
            mg.fit(net, net.init(0), mg.sgd(), (images, t), iterations=1, batch_size=5, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mg.fit(net, net.init(0), mg.sgd(), (x / 255, t), iterations=1, batch_size=5, progress=False)
