"""The fused autograd path ('autograd-fused'): agrees with 'autograd' and 'backprop', same structure, pure, checked inputs."""
import dataclasses

import numpy as np
import pytest

import minigrad_nets as mg
from minigrad_nets.layers import Dense, Dropout, Flatten, Relu, Sigmoid, Tanh, serial
from minigrad_nets.tree import tree_leaves, tree_leaves_with_paths, tree_structure

from gradient_problems import norm_rel, problem

FUSED = "autograd-fused"


def assert_agree(net, params, x, t, key=None, tol=1e-12):
    """Loss and every leaf of the fused gradient match autograd's and backprop's to ``tol`` (norm-relative)."""
    loss_f, fused = mg.value_and_grad(net, params, x, t, method=FUSED, key=key, train=key is not None)
    for method in ("autograd", "backprop"):
        loss, other = mg.value_and_grad(net, params, x, t, method=method, key=key, train=key is not None)
        assert abs(loss_f - loss) <= tol * abs(loss), method
        for (path, a), b in zip(tree_leaves_with_paths(fused), tree_leaves(other)):
            assert norm_rel(a, b) <= tol, (method, path)
    return fused


ARCHS = [([5], "relu", 0.0, 0.0), ([6, 4], "sigmoid", 0.1, 0.0), ([4, 5, 3], "tanh", 0.0, 0.4),
         ([5, 5, 4, 3], "relu", 0.02, 0.25), ([8, 8], "tanh", 1.0, 0.5)]


@pytest.mark.parametrize("hidden,activation,decay,dropout", ARCHS)
def test_fused_agrees_with_autograd_and_backprop_to_1e_12(hidden, activation, decay, dropout):
    net, params, x, t = problem(hidden, activation, decay, dropout, seed=len(hidden))
    assert_agree(net, params, x, t, key=5 if dropout else None)


def test_dropout_key_changes_the_gradient_and_the_same_key_repeats_it():
    net, params, x, t = problem([6, 6], "relu", dropout=0.5)
    first = assert_agree(net, params, x, t, key=3)
    again = mg.grad(net, params, x, t, method=FUSED, key=3, train=True)
    other = mg.grad(net, params, x, t, method=FUSED, key=4, train=True)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(tree_leaves(first), tree_leaves(again)))
    assert not np.allclose(first[0]["W"], other[0]["W"])


def test_every_layer_kind_including_leading_and_trailing_parameter_free_layers():
    layers = (Dropout(0.2), Flatten, Dense(6), Sigmoid, Dropout(0.3), Dense(5), Relu, Dense(4), Tanh, Dense(3))
    net = mg.Network(layers, input_shape=(7,), output_size=3, weight_decay=0.05)
    rng = np.random.default_rng(1)
    params, x, t = net.init(1), rng.standard_normal((5, 7)), rng.integers(0, 3, size=5)
    assert_agree(net, params, x, t, key=8)
    assert_agree(net, params, x, t)
    trailing = mg.Network((Dense(5), Tanh, Dense(3), Tanh), input_shape=(7,), output_size=3)
    assert_agree(trailing, trailing.init(2), x, t)


def test_a_nested_serial_with_dropout_is_one_layer_whose_params_are_a_list():
    inner = serial(Dense(5), Relu, Dropout(0.3), Dense(4))
    net = mg.Network((inner, Tanh, Dropout(0.2), Dense(3)), input_shape=(6,), output_size=3, weight_decay=0.1)
    rng = np.random.default_rng(2)
    params, x, t = net.init(2), rng.standard_normal((6, 6)), rng.integers(0, 3, size=6)
    assert isinstance(params[0], list)
    assert_agree(net, params, x, t, key=(4, 1))
    assert_agree(net, params, x, t)


def test_one_hot_targets_give_the_labels_gradient_and_a_single_sample_works():
    net, params, x, t = problem([5, 4], "tanh", weight_decay=0.1)
    labels = mg.grad(net, params, x, t, method=FUSED)
    one_hot = assert_agree(net, params, x, np.eye(4)[t])
    for a, b in zip(tree_leaves(labels), tree_leaves(one_hot)):
        assert norm_rel(a, b) <= 1e-14
    single = assert_agree(net, params, x[0], t[:1])
    batch_of_one = mg.grad(net, params, x[:1], t[:1], method=FUSED)
    for a, b in zip(tree_leaves(single), tree_leaves(batch_of_one)):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_gradient_has_the_structure_shapes_and_dtypes_of_params(dtype):
    net, params, x, t = problem([5, 3], "relu", weight_decay=0.1, dtype=dtype)
    loss, fused = mg.value_and_grad(net, params, x, t, method=FUSED)
    assert np.asarray(loss).dtype == np.dtype(dtype)
    assert tree_structure(fused) == tree_structure(params)
    for p, g in zip(tree_leaves(params), tree_leaves(fused)):
        assert type(g) is np.ndarray and g.shape == p.shape and g.dtype == p.dtype
        assert not np.shares_memory(g, p)


def test_float32_matches_backprop_to_1e_12_and_float64_autograd_to_float32_precision():
    net32, params32, x32, t = problem([6, 5], "sigmoid", weight_decay=0.05, dtype="float32", batch=16)
    fused = mg.grad(net32, params32, x32, t, method=FUSED)
    back = mg.grad(net32, params32, x32, t, method="backprop")
    for a, b in zip(tree_leaves(fused), tree_leaves(back)):
        assert norm_rel(a, b) <= 1e-12  # the same rules in the same order
    # Against autograd in float64 on the same (float32-representable) numbers: float32 rounding only.
    net64 = dataclasses.replace(net32, dtype=np.float64)
    params64 = [{k: v.astype(np.float64) for k, v in layer.items()} for layer in params32]
    exact = mg.grad(net64, params64, x32.astype(np.float64), t)
    for a, b in zip(tree_leaves(fused), tree_leaves(exact)):
        assert norm_rel(a.astype(np.float64), b) <= 1e-5


def test_fused_is_pure_never_mutating_its_inputs_and_repeatable():
    net, params, x, t = problem([6, 5], "relu", 0.1, 0.3)
    before = [a.copy() for a in tree_leaves(params)] + [x.copy(), t.copy()]
    runs = [mg.value_and_grad(net, params, x, t, method=FUSED, key=1, train=True) for _ in range(2)]
    for a, b in zip(tree_leaves(params) + [x, t], before):
        assert a.tobytes() == b.tobytes()
    assert runs[0][0] == runs[1][0]
    assert all(a.tobytes() == b.tobytes() for a, b in zip(tree_leaves(runs[0][1]), tree_leaves(runs[1][1])))


def test_networks_with_the_same_structure_do_not_share_state():
    net, params, x, t = problem([5], "relu")
    wide = mg.mlp(7, [9], 4)
    assert_agree(wide, wide.init(3), x, t)
    assert_agree(net, params, x, t)


def error_of(method, *args, **kwargs):
    with pytest.raises((TypeError, ValueError)) as info:
        mg.grad(*args, method=method, **kwargs)
    return info.type, str(info.value)


@pytest.mark.parametrize("case", ["params structure", "params shape", "int params", "x shape", "label range",
                                  "label count", "generator key", "targets rows"])
def test_bad_input_gets_the_same_clear_error_as_backprop(case):
    net, params, x, t = problem([5, 3])
    args = {"params": params, "x": x, "t": t, "key": None}
    if case == "params structure":
        args["params"] = params[:2]
    elif case == "params shape":
        args["params"] = [dict(params[0], W=params[0]["W"][:, :2])] + params[1:]
    elif case == "int params":
        args["params"] = [dict(params[0], b=np.zeros(5, dtype=int))] + params[1:]
    elif case == "x shape":
        args["x"] = x[:, :5]
    elif case == "label range":
        args["t"] = t + 4
    elif case == "label count":
        args["t"] = t[:-1]
    elif case == "generator key":
        args["key"] = np.random.default_rng(0)
    else:
        args["t"] = np.eye(4)[t] * 2.0
    call = (net, args["params"], args["x"], args["t"])
    kind, message = error_of(FUSED, *call, key=args["key"])
    assert (kind, message) == error_of("backprop", *call, key=args["key"])
    assert message
