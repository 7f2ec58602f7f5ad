"""numerical_grad: known gradients, modes, purity, determinism, and the vectorised network path."""
import warnings

import numpy as np
import pytest

import minigrad_nets as mg
from minigrad_nets.gradients import numerical
from minigrad_nets.layers import Layer
from minigrad_nets.tree import tree_leaves, tree_leaves_with_paths


def norm_rel(a, b):
    a, b = np.ravel(a), np.ravel(b)
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    return np.linalg.norm(a - b) / scale if scale else float(np.any(a != b))


def max_leaf_norm_rel(ga, gb):
    return max(norm_rel(a, b) for a, b in zip(tree_leaves(ga), tree_leaves(gb)))


def batch(rng, size, features, classes):
    return rng.random((size, features)), rng.integers(0, classes, size=size)


def off_kinks(params, seed=0):
    """Params with random biases: zero biases put ReLU pre-activations exactly on the kink wherever a
    dropped-out or dead layer feeds all zeros, and central differences are not derivatives there."""
    rng = np.random.default_rng(seed)
    return [{"W": p["W"], "b": rng.uniform(0.05, 0.3, p["b"].shape) * rng.choice([-1, 1], p["b"].shape)}
            for p in params]


# ---------------------------------------------------------------- any function


def test_book_function_x0_squared_plus_x1_squared():
    g = mg.numerical_grad(lambda p: p[0] ** 2 + p[1] ** 2, np.array([3.0, 4.0]))
    np.testing.assert_allclose(g, [6.0, 8.0], rtol=1e-9)
    g = mg.numerical_grad(lambda p: p[0] ** 2 + p[1] ** 2, np.array([0.0, 2.0]))
    np.testing.assert_allclose(g, [0.0, 4.0], rtol=1e-9, atol=1e-10)


def quadratic_problem(seed=0):
    """f(p) = ½ vᵀAv + cᵀv + w·s for a pytree p = {'v': (5,), 'rest': [(2, 3) matrix, scalar]}."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((5, 5))
    A = A @ A.T
    c = rng.standard_normal(5)
    M = rng.standard_normal((2, 3))
    params = {"v": rng.standard_normal(5), "rest": [rng.standard_normal((2, 3)) * 30, np.array(1.5)]}

    def f(p, scale):
        v, (W, s) = p["v"], p["rest"]
        return scale * (0.5 * v @ A @ v + c @ v + np.sum(M * W) * s)

    def exact(p, scale):
        v, (W, s) = p["v"], p["rest"]
        return {"v": scale * (A @ v + c), "rest": [scale * M * s, np.array(scale * np.sum(M * W))]}

    return f, exact, params


def test_quadratic_over_a_nested_pytree_with_extra_args():
    f, exact, params = quadratic_problem()
    g = mg.numerical_grad(f, params, 2.0)
    want = exact(params, 2.0)
    assert [p for p, _ in tree_leaves_with_paths(g)] == [p for p, _ in tree_leaves_with_paths(params)]
    for a, b in zip(tree_leaves(g), tree_leaves(want)):
        assert a.shape == np.shape(b) and a.dtype == np.float64
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-8)


def test_sampled_mode_matches_the_full_loop_at_the_sampled_indices():
    f, _, params = quadratic_problem(1)
    full = mg.numerical_grad(f, params, 1.0)
    picks = numerical.sample_indices(params, samples=4, seed=3)
    sampled = mg.numerical_grad(f, params, 1.0, mode="sampled", samples=4, seed=3)
    for g, idx, s, p in zip(tree_leaves(full), tree_leaves(picks), tree_leaves(sampled), tree_leaves(params)):
        assert s.shape == (min(4, np.size(p)),)
        np.testing.assert_array_equal(s, np.ravel(g)[idx])  # same step, same f: the same bits


def test_sample_indices_are_distinct_sorted_in_range_and_seeded():
    params = [np.zeros((10, 7)), np.zeros(3)]
    a = numerical.sample_indices(params, samples=12, seed=5)
    b = numerical.sample_indices(params, samples=12, seed=5)
    c = numerical.sample_indices(params, samples=12, seed=6)
    assert len(a[0]) == 12 and len(a[1]) == 3  # without replacement, capped at the leaf size
    assert np.all(np.diff(a[0]) > 0) and a[0].min() >= 0 and a[0].max() < 70
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])


def test_directional_mode_matches_the_exact_directional_derivative():
    f, exact, params = quadratic_problem(2)
    dirs = numerical.random_directions(params, samples=5, seed=7)
    est = mg.numerical_grad(f, params, 1.0, mode="directional", samples=5, seed=7)
    want = numerical.analytic_probes(exact(params, 1.0), params, "directional", samples=5, seed=7)
    for d, e, w in zip(tree_leaves(dirs), tree_leaves(est), tree_leaves(want)):
        np.testing.assert_allclose(np.linalg.norm(d.reshape(5, -1), axis=1), 1.0, rtol=1e-9)
        assert e.shape == (5,)
        np.testing.assert_allclose(e, w, rtol=1e-7, atol=1e-8)


def test_step_is_the_cube_root_rule_and_exactly_realised():
    x = np.array([0.0, 1e-3, 0.5, -7.0, 3e5])
    np.testing.assert_array_equal(numerical.step_size(x), np.finfo(float).eps ** (1 / 3) * np.maximum(1, abs(x)))
    plus, minus = numerical.perturbed(x)
    assert np.all(plus > x) and np.all(minus < x)
    # Dividing by the realised step: a linear function's slope comes out right to ~eps**(2/3) at any |x|.
    for value in x:
        assert mg.numerical_grad(lambda p: 3.0 * p, np.array(value)) == pytest.approx(3.0, rel=1e-9)


def test_never_mutates_or_hands_out_the_callers_arrays():
    f, _, params = quadratic_problem(3)
    before = [leaf.copy() for leaf in tree_leaves(params)]
    seen = []

    def spy(p, scale):
        seen.extend(tree_leaves(p))
        return f(p, scale)

    for mode in numerical.MODES:
        mg.numerical_grad(spy, params, 1.0, mode=mode, samples=3)
    for a, b in zip(tree_leaves(params), before):
        np.testing.assert_array_equal(a, b)
    assert not any(np.shares_memory(s, p) for s in seen for p in tree_leaves(params))


def test_float32_and_integer_params_are_differentiated_in_float64():
    g = mg.numerical_grad(lambda p: np.sum(p.astype(np.float64) ** 3), np.array([1.0, 2.0], dtype=np.float32))
    assert g.dtype == np.float64
    np.testing.assert_allclose(g, [3.0, 12.0], rtol=1e-9)


def test_bad_arguments_give_clear_errors():
    with pytest.raises(ValueError, match="mode"):
        mg.numerical_grad(lambda p: p.sum(), np.ones(2), mode="forward")
    with pytest.raises(TypeError, match="seed"):
        mg.numerical_grad(lambda p: p.sum(), np.ones(2), mode="sampled", seed=-1)
    with pytest.raises(ValueError, match="samples"):
        mg.numerical_grad(lambda p: p.sum(), np.ones(2), mode="sampled", samples=0)
    with pytest.raises(TypeError, match="scalar"):
        mg.numerical_grad(lambda p: p * 2, np.ones(2))
    with pytest.raises(ValueError, match=r"not finite.*flat index 1 - h"):
        mg.numerical_grad(lambda p: np.inf if p[1] < 0 else p.sum(), np.array([1.0, 1e-7]))
    with pytest.raises(TypeError, match="callable"):
        mg.numerical_grad(3.0, np.ones(2))


# ---------------------------------------------------------------- networks


ARCHITECTURES = [
    dict(activation="relu", hidden=[6], weight_decay=0.0, dropout=0.0),
    dict(activation="sigmoid", hidden=[5, 4], weight_decay=0.1, dropout=0.0),
    dict(activation="tanh", hidden=[4, 5, 3], weight_decay=0.0, dropout=0.3),
    dict(activation="relu", hidden=[5, 5, 4, 3], weight_decay=0.05, dropout=0.25),
]


@pytest.mark.parametrize("arch", ARCHITECTURES, ids=lambda a: f"{a['activation']}-{len(a['hidden'])}")
def test_vectorised_network_path_agrees_with_the_plain_loop_and_autograd(arch):
    net = mg.mlp(7, arch["hidden"], 4, activation=arch["activation"], init="xavier",
                 weight_decay=arch["weight_decay"], dropout=arch["dropout"])
    params = off_kinks(net.init(1))
    x, t = batch(np.random.default_rng(2), 9, 7, 4)
    key = 11 if arch["dropout"] else None
    fast = mg.numerical_grad(net.loss, params, x, t, key, train=key is not None)
    loop = mg.numerical_grad(net.loss, params, x, t, key, train=key is not None, vectorize=False)
    auto = mg.grad(net, params, x, t, key=key, train=key is not None)
    assert max_leaf_norm_rel(fast, loop) < 1e-7
    assert max_leaf_norm_rel(fast, auto) < 1e-7
    loss, via_grad = mg.value_and_grad(net, params, x, t, method="numerical", key=key, train=key is not None)
    assert loss == net.loss(params, x, t, key, train=key is not None)
    for a, b in zip(tree_leaves(via_grad), tree_leaves(fast)):
        np.testing.assert_array_equal(a, b)


def test_keyword_arguments_reach_f():
    # The dropout key as a keyword: the same gradient as positionally, on the vectorised and the loop paths.
    net = mg.mlp(6, [5], 3, dropout=0.3)
    params = off_kinks(net.init(0))
    x, t = batch(np.random.default_rng(0), 8, 6, 3)
    positional = mg.numerical_grad(net.loss, params, x, t, 7, train=True)
    for vectorize in (True, False):
        by_keyword = mg.numerical_grad(net.loss, params, x, t, key=7, train=True, vectorize=vectorize)
        assert max_leaf_norm_rel(by_keyword, positional) < 1e-7
    assert max_leaf_norm_rel(mg.numerical_grad(net.loss, params, x, t, key=8, train=True), positional) > 1e-3  # the key mattered
    # Any function's keyword arguments, in every mode.
    scaled = lambda p, scale=1.0: scale * np.sum(p["w"] ** 2)
    w = {"w": np.array([1.0, -2.0, 3.0])}
    for mode in ("full", "sampled"):
        np.testing.assert_allclose(mg.numerical_grad(scaled, w, scale=3.0, mode=mode)["w"], 6 * w["w"], rtol=1e-8)


def test_network_path_is_bit_for_bit_deterministic_and_pure():
    net = mg.mlp(6, [5, 4], 3, weight_decay=0.01, dropout=0.2)
    params = net.init(0)
    x, t = batch(np.random.default_rng(0), 8, 6, 3)
    before = [leaf.copy() for leaf in tree_leaves(params)] + [x.copy(), t.copy()]
    a = mg.grad(net, params, x, t, method="numerical", key=4, train=True)
    b = mg.grad(net, params, x, t, method="numerical", key=4, train=True)
    for u, v in zip(tree_leaves(a), tree_leaves(b)):
        assert u.tobytes() == v.tobytes()
    for u, v in zip(tree_leaves(params) + [x, t], before):
        np.testing.assert_array_equal(u, v)


def test_small_memory_budget_gives_the_same_gradient():
    net = mg.mlp(8, [6, 5], 3, activation="tanh")
    params = net.init(3)
    x, t = batch(np.random.default_rng(1), 10, 8, 3)
    big = numerical.network_full_grad(net, params, x, t)
    tiny = numerical.network_full_grad(net, params, x, t, max_bytes=1)
    assert max_leaf_norm_rel(big, tiny) < 1e-12


def test_one_hot_and_soft_targets():
    net = mg.mlp(5, [4], 3, activation="sigmoid")
    params = net.init(2)
    rng = np.random.default_rng(3)
    x, t = batch(rng, 6, 5, 3)
    onehot = np.eye(3)[t]
    soft = rng.random((6, 3))
    soft /= soft.sum(axis=1, keepdims=True)
    for target in (onehot, soft):
        fast = mg.grad(net, params, x, target, method="numerical")
        assert max_leaf_norm_rel(fast, mg.grad(net, params, x, target)) < 1e-7


def test_inputs_that_are_always_zero_get_exactly_zero_weight_gradient():
    net = mg.mlp(6, [5], 3)
    params = net.init(0)
    x, t = batch(np.random.default_rng(0), 7, 6, 3)
    x[:, 2] = 0.0
    g = mg.grad(net, params, x, t, method="numerical")
    assert np.all(g[0]["W"][2] == 0.0) and np.any(g[0]["W"][1] != 0.0)


def test_float32_network_gets_float32_gradients_computed_in_float64():
    net = mg.mlp(5, [4], 3, activation="tanh", dtype="float32")
    params = net.init(0)
    x, t = batch(np.random.default_rng(0), 6, 5, 3)
    g = mg.grad(net, params, x.astype(np.float32), t, method="numerical")
    assert all(leaf.dtype == np.float32 for leaf in tree_leaves(g))
    g64 = mg.numerical_grad(net.loss, params, x.astype(np.float32), t)
    assert all(leaf.dtype == np.float64 for leaf in tree_leaves(g64))


def square_layer():
    """A layer that declares nothing about itself (kind None): the vectorised path must fall back to the loop."""
    apply = lambda params, state, x, train, key: (x * x, state)
    forward = lambda params, state, x, train, key: (x * x, x, state)
    backward = lambda params, x, dy, need_dx: (None, 2 * x * dy)
    return Layer("Square", lambda rng, shape, dtype: (tuple(shape), None, None), apply, forward, backward)


def test_unknown_layer_is_named_and_only_the_params_up_to_it_are_looped():
    net = mg.Network((mg.Dense(4, "xavier"), square_layer(), mg.Dense(3, "xavier")), 5, 3)
    params = net.init(0)
    x, t = batch(np.random.default_rng(0), 6, 5, 3)
    with pytest.warns(numerical.SlowPathWarning, match=r"layer 1 \(Square\), which declares no structure.*"
                                                       r"the 24 params at or before layer 1.*the 15 after it"):
        fast = mg.numerical_grad(net.loss, params, x, t)
    loop = mg.numerical_grad(net.loss, params, x, t, vectorize=False)
    for a, b in zip(tree_leaves(fast[0]), tree_leaves(loop[0])):  # before the opaque layer: the loop itself
        np.testing.assert_array_equal(a, b)
    assert max_leaf_norm_rel(fast[1], loop[1]) < 1e-8  # after it: vectorised, the same to rounding
    assert max_leaf_norm_rel(fast, mg.grad(net, params, x, t)) < 1e-7


def test_an_opaque_layer_before_any_params_costs_nothing():
    net = mg.Network((square_layer(), mg.Dense(4, "xavier"), mg.Tanh, mg.Dense(3, "xavier")), 5, 3)
    params = net.init(0)
    x, t = batch(np.random.default_rng(0), 6, 5, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", numerical.SlowPathWarning)
        fast = mg.numerical_grad(net.loss, params, x, t)
    assert max_leaf_norm_rel(fast, mg.grad(net, params, x, t)) < 1e-8


def test_a_declaration_that_does_not_hold_is_not_trusted():
    # A layer that says it is elementwise tanh but computes something else: checked, named, looped.
    liar = mg.Layer("Liar", lambda rng, shape, dtype: (tuple(shape), None, None),
                    lambda params, state, x, train, key: (x * x, state),
                    lambda params, state, x, train, key: (x * x, x, state),
                    lambda params, x, dy, need_dx: (None, 2 * x * dy), kind=mg.Elementwise(np.tanh))
    net = mg.Network((mg.Dense(4, "xavier"), liar, mg.Dense(3, "xavier")), 5, 3)
    params = net.init(0)
    x, t = batch(np.random.default_rng(0), 6, 5, 3)
    with pytest.warns(numerical.SlowPathWarning, match=r"layer 1 \(Liar\), which declares Elementwise but its fn"):
        fast = mg.numerical_grad(net.loss, params, x, t)
    assert max_leaf_norm_rel(fast, mg.grad(net, params, x, t)) < 1e-7


def test_network_sampled_and_directional_modes_agree_with_autograd():
    net = mg.mlp(6, [5, 4], 3, activation="sigmoid", weight_decay=0.1)
    params = net.init(0)
    x, t = batch(np.random.default_rng(0), 8, 6, 3)
    auto = mg.grad(net, params, x, t)
    for mode in ("sampled", "directional"):
        est = mg.numerical_grad(net.loss, params, x, t, mode=mode, samples=4, seed=2)
        want = numerical.analytic_probes(auto, params, mode, samples=4, seed=2)
        assert max_leaf_norm_rel(est, want) < 1e-7


def test_vectorised_path_handles_input_dropout_flatten_and_a_trailing_activation():
    layers = (mg.Dropout(0.3), mg.Flatten, mg.Dense(5, "xavier"), mg.Sigmoid, mg.Flatten, mg.Dropout(0.2),
              mg.Dense(4, "xavier"), mg.Tanh)
    net = mg.Network(layers, 6, 4, weight_decay=0.02)
    params = off_kinks(net.init(0))
    x, t = batch(np.random.default_rng(4), 8, 6, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", numerical.SlowPathWarning)  # really the vectorised path
        fast = mg.numerical_grad(net.loss, params, x, t, 2, train=True)
    loop = mg.numerical_grad(net.loss, params, x, t, 2, train=True, vectorize=False)
    assert max_leaf_norm_rel(fast, loop) < 1e-7
    assert max_leaf_norm_rel(fast, mg.grad(net, params, x, t, key=2, train=True)) < 1e-7


@pytest.mark.parametrize("max_bytes", [-5, 0, "big"])
def test_max_bytes_must_be_positive(max_bytes):
    with pytest.raises(ValueError, match="max_bytes"):
        mg.numerical_grad(lambda p: (p["a"] ** 2).sum(), {"a": np.ones(2)}, max_bytes=max_bytes)


def test_network_loss_and_gradient_keep_a_float32_networks_dtype():
    net = mg.mlp(5, [4], 3, dtype="float32")
    params = net.init(0)
    x = np.random.default_rng(0).random((6, 5)).astype(np.float32)
    loss, grads = mg.value_and_grad(net, params, x, np.arange(6) % 3, method="numerical")
    assert np.asarray(loss).dtype == np.float32
    assert all(g.dtype == np.float32 for g in mg.tree.tree_leaves(grads))


# ---------------------------------------------------------------- BatchNorm (FEATURE) on the vectorised path


@pytest.mark.parametrize("train", [True, False])
def test_batch_norm_network_is_vectorised_and_agrees_with_the_loop_and_autograd(train):
    net = mg.mlp(6, [5, 4], 3, activation="sigmoid", batch_norm=True, weight_decay=0.02, dropout=0.2 * train)
    params = net.init(1)
    state = net.init_state()
    state[0]["mean"][:] = 0.1  # inference mode reads the running statistics
    state[1]["var"][:] = 2.0
    x, t = batch(np.random.default_rng(5), 9, 6, 3)
    kw = dict(state=state, train=train, key=3 if train else None)
    with warnings.catch_warnings():
        warnings.simplefilter("error", numerical.SlowPathWarning)  # really the vectorised path
        fast = mg.numerical_grad(net.loss, params, x, t, **kw)
    loop = mg.numerical_grad(net.loss, params, x, t, vectorize=False, **kw)
    auto = mg.grad(net, params, x, t, **kw)
    for f, l, a in zip(tree_leaves(fast), tree_leaves(loop), tree_leaves(auto)):
        # In training a bias just before BatchNorm has gradient 0: compare it in absolute terms.
        assert norm_rel(f, a) < 1e-7 or np.max(np.abs(f - a)) < 1e-9
        assert norm_rel(f, l) < 1e-7 or np.max(np.abs(f - l)) < 1e-9


def test_batch_norm_memory_budget_and_determinism():
    net = mg.mlp(7, [6, 5], 3, activation="tanh", batch_norm=True)
    params, state = net.init(0), net.init_state()
    x, t = batch(np.random.default_rng(1), 8, 7, 3)
    big = numerical.network_full_grad(net, params, x, t, state=state, train=True)
    tiny = numerical.network_full_grad(net, params, x, t, state=state, train=True, max_bytes=1)
    again = numerical.network_full_grad(net, params, x, t, state=state, train=True)
    for a, b, c in zip(tree_leaves(big), tree_leaves(tiny), tree_leaves(again)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
        assert a.tobytes() == c.tobytes()


def feature_liar():
    """Declares FEATURE, but mixes features: y = x - mean of each row (a row statistic, not a column one)."""
    apply = lambda params, state, x, train, key: (x - x.mean(axis=1, keepdims=True), state)  # noqa: E731
    return Layer("RowCentre", lambda rng, shape, dtype: (tuple(shape), None, None), apply,
                 lambda params, state, x, train, key: (apply(params, state, x, train, key)[0], None, state),
                 lambda params, cache, dy, need_dx: (None, dy - dy.mean(axis=1, keepdims=True)),
                 kind=mg.layers.FEATURE)


def test_a_feature_declaration_that_does_not_hold_is_named_and_looped():
    net = mg.Network((mg.Dense(4, "xavier"), feature_liar(), mg.Tanh, mg.Dense(3, "xavier")), 5, 3)
    params = net.init(0)
    x, t = batch(np.random.default_rng(2), 6, 5, 3)
    with pytest.warns(numerical.SlowPathWarning, match=r"layer 1 \(RowCentre\), which declares FEATURE but"):
        fast = mg.numerical_grad(net.loss, params, x, t)
    assert max_leaf_norm_rel(fast, mg.grad(net, params, x, t)) < 1e-7
