"""fit's fast step: the optimizers' in-place variant equals the pure update bit for bit, and nobody's arrays are written."""
import math

import numpy as np
import pytest

import minigrad_nets as mg
from minigrad_nets.tree import tree_leaves, tree_map

IN_PLACE = [name for name in mg.optimizers.NAMES if mg.optimizers.get(name).in_place is not None]


def random_tree(rng, dtype):
    return [{"W": rng.standard_normal((5, 3)).astype(dtype), "b": rng.standard_normal(3).astype(dtype)},
            {"W": rng.standard_normal((3, 2)).astype(dtype), "b": rng.standard_normal(2).astype(dtype)}]


def test_the_book_optimizers_have_an_in_place_variant():
    # nesterov (its rule being reworked) goes through the pure update in fit until it has one
    assert {"sgd", "momentum", "adagrad", "rmsprop", "adam"} <= set(IN_PLACE)


@pytest.mark.parametrize("grad_dtype", ["same", "float64"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", IN_PLACE)
def test_in_place_is_bit_identical_to_update(name, dtype, grad_dtype):
    rng = np.random.default_rng(3)
    opt = mg.optimizers.get(name, lr=0.05)
    params = random_tree(rng, dtype)
    pure_p, pure_s = params, opt.init(params)
    own_p, own_s = tree_map(np.copy, params), opt.init(params)
    step = opt.in_place(own_p, own_s)
    for _ in range(40):
        grads = tree_map(lambda a: rng.standard_normal(a.shape).astype(dtype if grad_dtype == "same" else np.float64),
                         params)
        pure_p, pure_s = opt.update(pure_p, grads, pure_s)
        step(grads)
    for a, b in zip(tree_leaves(pure_p) + tree_leaves(pure_s), tree_leaves(own_p) + tree_leaves(own_s)):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_in_place_steps_by_hand():
    p, g = np.array([1.0]), np.array([0.5])
    params = [{"W": p.copy()}]
    sgd = mg.sgd(lr=0.1)
    sgd.in_place(params, {})([{"W": g}])
    np.testing.assert_allclose(params[0]["W"], [1.0 - 0.1 * 0.5], rtol=0, atol=1e-15)
    params, adam = [{"W": p.copy()}], mg.adam(lr=0.001)
    state = adam.init(params)
    adam.in_place(params, state)([{"W": g}])
    # first Adam step: lr_t = lr sqrt(1-b2)/(1-b1), m = (1-b1) g, v = (1-b2) g^2
    lr_t = 0.001 * math.sqrt(1 - 0.999) / (1 - 0.9)
    expected = 1.0 - lr_t * (0.1 * 0.5) / (math.sqrt(0.001 * 0.25) + 1e-7)
    np.testing.assert_allclose(params[0]["W"], [expected], rtol=1e-14)
    assert float(state["step"]) == 1.0


@pytest.mark.parametrize("name", IN_PLACE)
def test_update_stays_pure_and_in_place_never_writes_the_gradient(name):
    rng = np.random.default_rng(0)
    opt = mg.optimizers.get(name)
    params, grads = random_tree(rng, np.float64), random_tree(rng, np.float64)
    state = opt.init(params)
    state = opt.update(params, grads, state)[1]  # a non-zero state
    before = [a.copy() for a in tree_leaves(params) + tree_leaves(grads) + tree_leaves(state)]
    opt.update(params, grads, state)
    for a, b in zip(tree_leaves(params) + tree_leaves(grads) + tree_leaves(state), before):
        np.testing.assert_array_equal(a, b)
    grads_before = [g.copy() for g in tree_leaves(grads)]
    opt.in_place(tree_map(np.copy, params), tree_map(np.copy, state))(grads)
    for a, b in zip(tree_leaves(grads), grads_before):
        np.testing.assert_array_equal(a, b)


def test_in_place_checks_the_trees_it_is_given():
    params = [{"W": np.zeros((2, 2))}]
    with pytest.raises(TypeError, match="dtype int64"):
        mg.sgd().in_place([{"W": np.zeros((2, 2), np.int64)}], {})
    with pytest.raises((TypeError, ValueError), match="state"):
        mg.momentum().in_place(params, {})
    step = mg.sgd().in_place(params, {})
    with pytest.raises(ValueError, match="shape"):
        step([{"W": np.zeros((2, 3))}])


def blobs(n=48, seed=0):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 3, size=n)
    return (rng.normal(0, 1, size=(n, 4)) + t[:, None]).astype(np.float32), t


@pytest.mark.parametrize("method", ["backprop", "autograd-fused", "autograd"])
@pytest.mark.parametrize("name", ["sgd", "adam", "rmsprop"])
def test_fit_in_place_equals_fit_through_the_pure_update(name, method):
    net = mg.mlp(4, [6], 3, dropout=0.1, dtype="float32")
    params = net.init(0)
    opt = mg.optimizers.get(name, lr=0.01)
    kw = dict(iterations=13, batch_size=5, method=method, progress=False)  # 10 batches an epoch, the last of 3
    fast = mg.fit(net, params, opt, blobs(), **kw)
    pure = mg.fit(net, params, opt._replace(in_place=None), blobs(), **kw)
    for a, b in zip(tree_leaves(fast.params) + tree_leaves(fast.opt_state),
                    tree_leaves(pure.params) + tree_leaves(pure.opt_state)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(fast.history["loss"], pure.history["loss"])


def test_fit_never_writes_the_callers_arrays():
    net = mg.mlp(4, [6], 3, batch_norm=True, dtype="float64")
    params, state = net.init(0), net.init_state()
    x, t = blobs()
    x = x.astype(np.float64)
    kept = [a.copy() for a in tree_leaves(params) + tree_leaves(state)] + [x.copy(), t.copy()]
    result = mg.fit(net, params, mg.adam(lr=0.01), (x, t), state=state, iterations=12, batch_size=8, progress=False)
    for a, b in zip(tree_leaves(params) + tree_leaves(state) + [x, t], kept):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(tree_leaves(result.params)[0], tree_leaves(params)[0])  # it did train
    assert not np.array_equal(tree_leaves(result.state)[0], tree_leaves(state)[0])


def test_nesterov_without_in_place_still_trains():
    net = mg.mlp(4, [6], 3, dtype="float32")
    result = mg.fit(net, net.init(0), mg.nesterov(lr=0.05), blobs(), iterations=60, batch_size=8, progress=False)
    assert result.history["loss"][-10:].mean() < result.history["loss"][:5].mean()


def test_non_finite_training_inputs_are_refused_once_with_their_place():
    x, t = blobs()
    x[7, 2] = np.nan
    net = mg.mlp(4, [6], 3, dtype="float32")
    with pytest.raises(ValueError, match=r"nan in example 7 \(entry 2"):
        mg.fit(net, net.init(0), mg.sgd(), (x, t), iterations=1, progress=False)


def test_progress_bar_redraws_often_on_a_terminal_only(monkeypatch):
    pytest.importorskip("tqdm")  # an optional extra: without it there is no bar to draw
    import io

    from minigrad_nets import training

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    for stream, most_seconds_between in ((io.StringIO(), None), (Terminal(), 1.0)):
        monkeypatch.setattr("sys.stderr", stream)
        bar = training._progress_bar(1000, 0)
        if most_seconds_between is None:
            assert bar.mininterval >= 60  # stderr to a file: at most one redraw a minute, not 1,500 lines
        else:
            assert bar.mininterval <= most_seconds_between
        bar.close()
