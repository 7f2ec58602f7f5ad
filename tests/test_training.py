"""fit: determinism, exact resume from checkpoints, epochs vs iterations, shuffling, float32, loss errors."""
import numpy as np
import pytest

import minigrad_nets as mg
from minigrad_nets import training
from minigrad_nets.tree import tree_leaves, tree_leaves_with_paths


def blobs(n=60, features=6, classes=3, seed=0, dtype=np.float32):
    """A small separable-ish classification problem; ``seed`` draws other points around the same centers."""
    centers = np.random.default_rng(1234).normal(0, 2, size=(classes, features))
    rng = np.random.default_rng(seed)
    t = rng.integers(0, classes, size=n)
    return (centers[t] + rng.normal(0, 1, size=(n, features))).astype(dtype), t


def small_net(dropout=0.0, dtype="float32"):
    return mg.mlp(6, [8, 8], 3, dropout=dropout, dtype=dtype)


def assert_same_trees(a, b):
    for (path, x), y in zip(tree_leaves_with_paths(a), tree_leaves(b)):
        assert x.dtype == y.dtype, path
        np.testing.assert_array_equal(x, y, err_msg=path)


def assert_same_history(a, b):
    assert set(a) == set(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def spy_on_steps(monkeypatch, record):
    """Call ``record(x, t, key)`` with each training step's minibatch and dropout key."""
    real = training._gradient_function

    def wrapped(method):
        step = real(method)

        def spied(net, params, x, t, key, state):
            record(x.copy(), t.copy(), key)  # copies: fit reuses its batch buffers
            return step(net, params, x, t, key, state)

        return spied

    monkeypatch.setattr(training, "_gradient_function", wrapped)


def run(net, iterations=10, seed=0, **kw):
    train, test = blobs(), blobs(seed=1)
    kw.setdefault("optimizer", mg.adam(lr=0.01))
    kw.setdefault("progress", False)
    return mg.fit(net, net.init(seed), kw.pop("optimizer"), train, test_data=test, iterations=iterations,
                  batch_size=8, seed=seed, **kw)


def test_deterministic_and_seed_dependent():
    net = small_net(dropout=0.2)
    a, b, c = run(net), run(net), run(net, seed=1)
    assert_same_trees(a.params, b.params)
    assert_same_history(a.history, b.history)
    assert not np.array_equal(a.history["loss"], c.history["loss"])


def test_training_reduces_the_loss_and_learns():
    net = small_net()
    result = run(net, iterations=150)
    loss = result.history["loss"]
    assert loss[-20:].mean() < 0.5 * loss[:5].mean()
    assert result.history["train_acc"][-1] > 0.8 and result.history["test_acc"][-1] > 0.6


@pytest.mark.parametrize("optimizer", ["adam", "momentum", "sgd"])
@pytest.mark.parametrize("split", [5, 8])  # mid-epoch and on an epoch boundary (8 batches of 8 per epoch)
def test_resume_is_bit_identical(tmp_path, optimizer, split):
    net = small_net(dropout=0.3)
    opt = mg.optimizers.get(optimizer)
    straight = run(net, iterations=19, optimizer=opt, eval_every=3)
    ckpt = str(tmp_path / "run.npz")
    first = run(net, iterations=split, optimizer=opt, eval_every=3, checkpoint=ckpt)
    assert first.history["eval_iteration"][-1] == split  # the end of a run is always evaluated
    # params given to a resumed run only fix the structure: the checkpoint's are used
    resumed = mg.fit(net, net.init(123), opt, blobs(), test_data=blobs(seed=1), iterations=19, batch_size=8,
                     seed=0, progress=False, eval_every=3, checkpoint=ckpt, resume=True)
    assert_same_trees(straight.params, resumed.params)
    assert_same_trees(straight.opt_state, resumed.opt_state)
    assert_same_history(straight.history, resumed.history)
    assert [p.name for p in tmp_path.iterdir()] == ["run.npz"]  # atomic writes leave no temp files


def test_periodic_checkpoints_resume_exactly(tmp_path):
    net = small_net()
    ckpt = str(tmp_path / "c.npz")
    straight = run(net, iterations=12)
    saved = {}
    real_save = training.save_checkpoint

    def keep_copy(path, params, opt_state, history, meta, state):
        real_save(path, params, opt_state, history, meta, state)
        saved.setdefault(meta["iteration"], open(path, "rb").read())

    mp = pytest.MonkeyPatch()
    mp.setattr(training, "save_checkpoint", keep_copy)
    try:
        run(net, iterations=12, checkpoint=ckpt, checkpoint_every=4)
    finally:
        mp.undo()
    assert sorted(saved) == [4, 8, 12]
    open(ckpt, "wb").write(saved[8])  # as if the run had died after iteration 8
    resumed = run(net, iterations=12, checkpoint=ckpt, resume=True)
    assert_same_trees(straight.params, resumed.params)
    assert_same_history(straight.history, resumed.history)


def test_checkpoint_is_plain_npz(tmp_path):
    net = small_net()
    ckpt = tmp_path / "c.npz"
    run(net, iterations=3, checkpoint=str(ckpt))
    with np.load(ckpt, allow_pickle=False) as f:
        names = set(f.files)
        assert f["history/loss"].shape == (3,)
        assert "iteration" in str(f["meta"])
    assert "params[0]['W']" in names and "opt_state['step']" in names


def test_resume_refuses_a_different_run(tmp_path):
    net = small_net()
    ckpt = str(tmp_path / "c.npz")
    run(net, iterations=3, checkpoint=ckpt)
    with pytest.raises(ValueError, match="it was made with seed=0, this run has seed=1"):
        run(net, iterations=6, seed=1, checkpoint=ckpt, resume=True)
    with pytest.raises(ValueError, match="optimizer"):
        run(net, iterations=6, optimizer=mg.sgd(), checkpoint=ckpt, resume=True)
    other = mg.mlp(6, [5], 3, dtype="float32")
    with pytest.raises(ValueError, match="structure"):
        run(other, iterations=6, checkpoint=ckpt, resume=True)


def test_resume_without_a_checkpoint_starts_fresh(tmp_path):
    net = small_net()
    fresh = run(net, iterations=4)
    resumed = run(net, iterations=4, checkpoint=str(tmp_path / "new.npz"), resume=True)
    assert_same_trees(fresh.params, resumed.params)


def test_epochs_and_iterations():
    net = small_net()
    x, t = blobs(n=50)
    # 50 examples in batches of 16: 4 iterations an epoch (the last batch holds 2)
    by_epochs = mg.fit(net, net.init(0), mg.sgd(), (x, t), epochs=2, batch_size=16, progress=False)
    assert len(by_epochs.history["loss"]) == 8
    np.testing.assert_array_equal(by_epochs.history["eval_iteration"], [0, 4, 8])
    np.testing.assert_array_equal(by_epochs.history["epoch"], [0.0, 1.0, 2.0])
    assert by_epochs.history["test_acc"].shape == (0,)  # no test data: empty, never NaN
    by_iterations = mg.fit(net, net.init(0), mg.sgd(), (x, t), iterations=6, batch_size=16, progress=False)
    np.testing.assert_array_equal(by_iterations.history["eval_iteration"], [0, 4, 6])
    np.testing.assert_array_equal(by_iterations.history["loss"], by_epochs.history["loss"][:6])
    for bad in ({}, {"epochs": 1, "iterations": 4}):
        with pytest.raises(ValueError, match="exactly one of epochs and iterations"):
            mg.fit(net, net.init(0), mg.sgd(), (x, t), progress=False, **bad)


def test_each_epoch_visits_every_example_once(monkeypatch):
    net = mg.mlp(2, [3], 2, dtype="float64")
    n = 10
    x = np.stack([np.arange(n) / 100, np.zeros(n)], axis=1)  # column 0 is the example's index / 100 (pixel-sized)
    t = np.arange(n) % 2
    seen = []
    spy_on_steps(monkeypatch, lambda xb, tb, key: seen.append(np.rint(xb[:, 0] * 100).astype(int).tolist()))
    mg.fit(net, net.init(0), mg.sgd(), (x, t), epochs=3, batch_size=4, progress=False)
    assert [len(b) for b in seen] == [4, 4, 2] * 3
    epochs = [sum(seen[i:i + 3], []) for i in (0, 3, 6)]
    for order in epochs:
        assert sorted(order) == list(range(n))
    assert epochs[0] != epochs[1]  # reshuffled each epoch


def test_float32_training_stays_float32():
    net = small_net(dtype="float32")
    x, t = blobs(dtype=np.float64)  # float64 data is cast to the network's dtype
    result = mg.fit(net, net.init(0), mg.adam(), (x, t), iterations=5, batch_size=8, progress=False)
    assert all(leaf.dtype == np.float32 for leaf in tree_leaves(result.params))
    assert all(leaf.dtype == np.float32 for path, leaf in tree_leaves_with_paths(result.opt_state)
               if "step" not in path)
    assert result.history["loss"].dtype == np.float64


@pytest.mark.parametrize("method", ["autograd", "backprop"])
def test_gradient_methods_agree(method):
    net = small_net(dtype="float64")
    ref = run(net, iterations=5, optimizer=mg.sgd(lr=0.1))
    other = run(net, iterations=5, optimizer=mg.sgd(lr=0.1), method=method)
    for a, b in zip(tree_leaves(ref.params), tree_leaves(other.params)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_non_finite_loss_names_the_iteration():
    net = small_net(dtype="float64")
    params = net.init(0)
    x, t = blobs(dtype=np.float64)
    with pytest.raises(training.NonFiniteLossError, match=r"non-finite at iteration 1 \(epoch 1\): params\[2\]\['b'\]"):
        params[2]["b"][0] = np.nan  # (a NaN before a ReLU would be zeroed: relu(nan) = 0)
        mg.fit(net, params, mg.sgd(), (x, t), iterations=3, batch_size=8, progress=False)
    # a learning rate that blows the weights up: the error names the iteration where the loss overflowed
    net32 = small_net(dtype="float32")
    with pytest.raises(FloatingPointError) as err, np.errstate(all="ignore"):
        mg.fit(net32, net32.init(0), mg.sgd(lr=1e30), (x, t), iterations=50, batch_size=8, progress=False)
    assert err.value.iteration > 1 and f"at iteration {err.value.iteration} " in str(err.value)


def test_eval_samples_and_log():
    net = small_net()
    records = []
    result = run(net, iterations=16, eval_every=8, eval_samples=10, log=records.append)
    assert [r["iteration"] for r in records] == [0, 8, 16]
    assert all(r["train_acc"] * 10 == round(r["train_acc"] * 10) for r in records)  # measured on 10 examples
    np.testing.assert_array_equal(result.history["train_acc"], [r["train_acc"] for r in records])
    assert np.isnan(records[0]["loss"]) and np.isfinite(records[1]["loss"])


def test_bad_arguments():
    net = small_net()
    x, t = blobs()
    with pytest.raises(ValueError, match=r"examples of shape \(6,\); the network expects \(4,\)"):
        mg.fit(mg.mlp(4, [3], 3), mg.mlp(4, [3], 3).init(0), mg.sgd(), (x, t), iterations=1, progress=False)
    with pytest.raises(ValueError, match="outside"):
        mg.fit(net, net.init(0), mg.sgd(), (x, t + 5), iterations=1, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        mg.fit(net, net.init(0), mg.sgd(), (x, t), iterations=1, batch_size=0, progress=False)
    with pytest.raises(TypeError, match="optimizer"):
        mg.fit(net, net.init(0), "adam", (x, t), iterations=1, progress=False)
    with pytest.raises(ValueError, match="unknown gradient method 'magic'"):
        mg.fit(net, net.init(0), mg.sgd(), (x, t), iterations=1, method="magic", progress=False)
    with pytest.raises(ValueError, match="resume=True needs a checkpoint"):
        mg.fit(net, net.init(0), mg.sgd(), (x, t), iterations=1, resume=True, progress=False)


def test_progress_bar_runs(capsys):
    net = small_net()
    result = run(net, iterations=3, progress=True)
    assert len(result.history["loss"]) == 3


def test_dropout_nested_in_a_serial_is_applied(monkeypatch):
    from minigrad_nets.layers import Dense, Dropout, Relu, serial
    nested = mg.Network((serial(Dense(8, "he"), Relu, Dropout(0.5)), Dense(3, "he")), 6, 3)
    plain = small_net()
    keys = []
    spy_on_steps(monkeypatch, lambda x, t, key: keys.append(key))
    run(nested, iterations=2)
    assert keys == [training.dropout_key(0, 0), training.dropout_key(0, 1)]
    keys.clear()
    run(plain, iterations=2)
    assert keys == [None, None]  # no dropout: no key (and no per-layer seeding work)


def test_overflowing_training_raises_without_numpy_warnings():
    import warnings
    net = small_net(dtype="float32")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any RuntimeWarning (overflow in matmul, ...) would fail the test
        with pytest.raises(training.NonFiniteLossError, match="at iteration"):
            run(net, iterations=50, optimizer=mg.sgd(lr=1e30))


@pytest.mark.parametrize("change, field", [
    (dict(optimizer=mg.adam(lr=0.5)), "optimizer_hyperparams"),
    (dict(net=small_net(dropout=0.3)), "network"),
    (dict(net=mg.mlp(6, [8, 8], 3, weight_decay=0.1, dtype="float32")), "network"),
    (dict(net=mg.mlp(6, [8, 8], 3, activation="tanh", dtype="float32")), "network"),
    (dict(method="backprop"), "method"),
])
def test_resume_refuses_changed_hyperparameters_naming_the_field(tmp_path, change, field):
    ckpt = str(tmp_path / "c.npz")
    run(small_net(), iterations=3, checkpoint=ckpt)
    change = dict(change)
    net = change.pop("net", small_net())
    with pytest.raises(ValueError, match=f"it was made with {field}="):
        run(net, iterations=6, checkpoint=ckpt, resume=True, **change)


def test_resume_refuses_fewer_iterations_than_saved(tmp_path):
    ckpt = str(tmp_path / "c.npz")
    run(small_net(), iterations=6, checkpoint=ckpt)
    with pytest.raises(ValueError, match="already holds 6 iterations, more than the 4 asked for"):
        run(small_net(), iterations=4, checkpoint=ckpt, resume=True)
    assert len(run(small_net(), iterations=6, checkpoint=ckpt, resume=True).history["loss"]) == 6


def _rewrite_checkpoint(path, change):
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    change(arrays)
    np.savez(path, **arrays)


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_bytes(b"this is not an npz file at all"), r"not a minigrad_nets checkpoint \("),
    (lambda p: np.save(p.with_suffix(""), np.array([object()], dtype=object)) or
     p.with_suffix(".npy").replace(p), r"not a minigrad_nets checkpoint \("),
    (lambda p: _rewrite_checkpoint(p, lambda a: a.update(meta=np.array("{not json"))), "not valid JSON"),
    (lambda p: _rewrite_checkpoint(p, lambda a: a.pop("history/loss")), "missing history/loss"),
    (lambda p: _rewrite_checkpoint(p, lambda a: a.update(meta=np.array('{"seed": 0}'))), "no valid 'iteration'"),
])
def test_damaged_checkpoints_are_value_errors_naming_the_file(tmp_path, damage, message):
    ckpt = tmp_path / "c.npz"
    run(small_net(), iterations=3, checkpoint=str(ckpt))
    damage(ckpt)
    with pytest.raises(ValueError, match=message) as err:
        run(small_net(), iterations=6, checkpoint=str(ckpt), resume=True)
    assert str(ckpt) in str(err.value) and "allow_pickle" not in str(err.value)


def test_unwritable_checkpoint_fails_before_training(tmp_path, monkeypatch):
    steps = []
    real = training.value_and_grad
    monkeypatch.setattr(training, "value_and_grad", lambda *a, **k: steps.append(1) or real(*a, **k))
    with pytest.raises(IsADirectoryError, match="is a directory"):
        run(small_net(), iterations=3, checkpoint=str(tmp_path))
    with pytest.raises(OSError, match="cannot write checkpoint"):
        run(small_net(), iterations=3, checkpoint="/proc/no-such-dir/c.npz")
    assert steps == []
    run(small_net(), iterations=1, checkpoint=str(tmp_path / "new" / "c.npz"))  # a missing folder is created
    assert (tmp_path / "new" / "c.npz").is_file()


def test_error_and_warning_classes_are_exported_at_the_top_level():
    from minigrad_nets import datasets
    assert mg.NonFiniteLossError is training.NonFiniteLossError
    assert mg.EmbeddedDataWarning is datasets.EmbeddedDataWarning
