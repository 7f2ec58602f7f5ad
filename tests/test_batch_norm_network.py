"""BatchNorm networks: every gradient path in training mode, the running statistics, state through fit, errors."""
import numpy as np
import pytest

import minigrad_nets as mg
from minigrad_nets.tree import tree_leaves, tree_leaves_with_paths

EPS = 1e-6  # the book's 10e-7


def problem(dropout=0.0, dtype="float64", batch=16):
    net = mg.mlp(20, [16, 12], 5, activation="tanh", batch_norm=True, dropout=dropout, weight_decay=0.05,
                 dtype=dtype)
    rng = np.random.default_rng(3)
    params = net.init(1)
    # Non-trivial γ, β and running statistics, so that nothing passes by being 1 or 0.
    for p in params[1::2]:
        p["gamma"] = (1 + 0.3 * rng.standard_normal(p["gamma"].shape)).astype(dtype)
        p["beta"] = (0.2 * rng.standard_normal(p["beta"].shape)).astype(dtype)
    state = [{"mean": rng.normal(size=s["mean"].shape).astype(dtype),
              "var": (0.5 + rng.random(s["var"].shape)).astype(dtype)} for s in net.init_state()]
    x = rng.normal(size=(batch, 20)).astype(dtype)
    t = rng.integers(0, 5, batch)
    return net, params, state, x, t


def norm_rel(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b))


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_every_path_agrees_in_training_mode(dropout):
    net, params, state, x, t = problem(dropout)
    key = 7 if dropout else None
    report = mg.check_gradients(net, params, x, t, key=key, state=state, train=True)
    assert report.ok, str(report)
    assert {c.path for c in report.comparisons} >= {"[1]['gamma']", "[1]['beta']", "[3]['gamma']"}


def test_inference_mode_uses_the_running_statistics_and_its_gradients_agree():
    net, params, state, x, t = problem()
    assert mg.check_gradients(net, params, x, t, state=state, train=False).ok
    # Inference is a different function from training: the gradients differ.
    g_train = mg.grad(net, params, x, t, state=state, train=True)
    g_infer = mg.grad(net, params, x, t, state=state, train=False)
    assert norm_rel(g_train[0]["W"], g_infer[0]["W"]) > 1e-3


def forward_by_hand(params, state, x):
    """The book's MultiLayerNetExtend in training mode, written out: logits and the batch statistics per BatchNorm."""
    h, stats = x, []
    for i in range(0, len(params) - 1, 2):
        z = h @ params[i]["W"] + params[i]["b"]
        mu = z.mean(axis=0)
        var = ((z - mu) ** 2).mean(axis=0)
        stats.append((mu, var))
        h = np.tanh(params[i + 1]["gamma"] * (z - mu) / np.sqrt(var + EPS) + params[i + 1]["beta"])
    return h @ params[-1]["W"] + params[-1]["b"], stats


@pytest.mark.parametrize("method", ["autograd", "backprop", "autograd-fused", "numerical"])
def test_one_training_step_updates_running_statistics_by_the_books_rule(method):
    net, params, state, x, t = problem()
    _, stats = forward_by_hand(params, state, x)
    loss, grads, new_state = mg.value_and_grad(net, params, x, t, method=method, state=state, train=True,
                                               return_state=True)
    for old, new, (mu, var) in zip(state, new_state, stats):
        np.testing.assert_allclose(new["mean"], 0.9 * old["mean"] + 0.1 * mu, rtol=1e-12)
        np.testing.assert_allclose(new["var"], 0.9 * old["var"] + 0.1 * var, rtol=1e-12)
    # The caller's state is never written.
    assert not np.array_equal(new_state[0]["mean"], state[0]["mean"])


def test_the_training_loss_is_the_books_forward():
    net, params, state, x, t = problem()
    logits, _ = forward_by_hand(params, state, x)
    z = logits - logits.max(axis=1, keepdims=True)
    ce = np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(t)), t])
    penalty = 0.5 * 0.05 * sum(np.sum(p["W"] ** 2) for p in params[::2])
    assert net.loss(params, x, t, state=state, train=True) == pytest.approx(ce + penalty, rel=1e-12)


def test_float32_state_stays_float32():
    net, params, state, x, t = problem(dtype="float32")
    _, _, new_state = mg.value_and_grad(net, params, x, t, method="autograd-fused", state=state, train=True,
                                        return_state=True)
    assert all(leaf.dtype == np.float32 for leaf in tree_leaves(new_state))


def test_fit_threads_the_state_and_resumes_bit_identically(tmp_path):
    rng = np.random.default_rng(0)
    t = rng.integers(0, 3, 120)
    x = (np.eye(3, 10)[t] * 3 + rng.normal(size=(120, 10))).astype(np.float32)
    net = mg.mlp(10, [8, 8], 3, batch_norm=True, dtype="float32")

    def run(**kwargs):
        return mg.fit(net, net.init(0), mg.momentum(lr=0.05), (x, t), test_data=(x, t), iterations=30, batch_size=20,
                      progress=False, **kwargs)

    straight = run()
    assert straight.history["test_acc"][-1] > 0.8
    assert not np.array_equal(straight.state[0]["mean"], net.init_state()[0]["mean"])
    ckpt = str(tmp_path / "bn.npz")
    mg.fit(net, net.init(0), mg.momentum(lr=0.05), (x, t), iterations=17, batch_size=20, progress=False,
           checkpoint=ckpt)
    resumed = run(checkpoint=ckpt, resume=True)
    for (path, a), b in zip(tree_leaves_with_paths([straight.params, straight.state]),
                            tree_leaves([resumed.params, resumed.state])):
        assert a.tobytes() == b.tobytes(), path
    np.testing.assert_array_equal(straight.history["loss"], resumed.history["loss"])


def test_state_errors_name_what_is_wrong():
    net, params, state, x, t = problem()
    with pytest.raises(ValueError, match=r"this network has state \(layer 1 \(BatchNorm\(0.9\)\), layer 4.*init_state"):
        net.loss(params, x, t, train=True)
    with pytest.raises(TypeError, match="state does not have the structure"):
        net.loss(params, x, t, state=state[:1], train=True)
    with pytest.raises(ValueError, match=r"state\[1\]\['var'\] has shape \(3,\)"):
        net.loss(params, x, t, state=[state[0], dict(state[1], var=np.ones(3))], train=True)
    with pytest.raises(TypeError, match=r"state\[0\]\['mean'\] has dtype float32"):
        net.loss(params, x, t, state=[dict(state[0], mean=state[0]["mean"].astype(np.float32)), state[1]])
    with pytest.raises(ValueError, match="this network has no state"):
        mg.mlp(4, [3], 2).loss(mg.mlp(4, [3], 2).init(0), np.ones((2, 4)), [0, 1], state=state)


def test_a_training_batch_of_one_is_refused_and_inference_takes_one_example():
    net, params, state, x, t = problem()
    for method in ("autograd", "backprop", "autograd-fused"):
        with pytest.raises(ValueError, match="at least 2 examples"):
            mg.grad(net, params, x[:1], t[:1], method=method, state=state, train=True)
    assert net.apply(params, x[0], state=state).shape == (5,)


def test_mode_arguments_are_checked():
    net, params, state, x, t = problem(dropout=0.3)
    with pytest.raises(ValueError, match="pass train=True"):
        net.loss(params, x, t, 3, state=state)
    with pytest.raises(TypeError, match="train must be True"):
        net.loss(params, x, t, state=state, train="yes")
    with pytest.raises(ValueError, match="needs a dropout key"):
        net.loss(params, x, t, state=state, train=True)


def test_image_shaped_input_of_the_wrong_shape_names_the_first_layer():
    net = mg.Network((mg.Flatten, mg.Dense(4), mg.BatchNorm(), mg.Relu, mg.Dense(3)), input_shape=(1, 4, 4),
                     output_size=3)
    params, state = net.init(0), net.init_state()
    assert net.apply(params, np.ones((2, 1, 4, 4)), state=state).shape == (2, 3)
    with pytest.raises(ValueError, match=r"shape \(2, 16\).*first layer \(Flatten\) expects examples of shape "
                                         r"\(1, 4, 4\)"):
        net.apply(params, np.ones((2, 16)), state=state)
