"""The chapter-6 experiments, run tiny: shapes and keys of the returned data, determinism, and the book's findings."""
import numpy as np
import pytest

from minigrad_nets.experiments import activation_histograms, layer_activations

# ---------------------------------------------------------------- activation histograms


def small_histograms(**kwargs):
    options = dict(num_inputs=200, input_size=100, num_layers=5, width=100, bins=20)
    options.update(kwargs)
    return activation_histograms(**options)


def test_activation_histograms_shapes_and_keys():
    result = small_histograms(num_layers=3, bins=12)
    assert set(result["results"]) == {"sigmoid", "tanh", "relu"}
    for activation, runs in result["results"].items():
        assert list(runs) == ["std=1", "std=0.01", "xavier", "he"]
        for stats in runs.values():
            assert stats["counts"].shape == (3, 12)
            assert stats["edges"].shape == (13,)
            assert stats["mean"].shape == stats["std"].shape == stats["fraction_in_range"].shape == (3,)
            # every in-range activation is counted exactly once
            np.testing.assert_array_equal(stats["counts"].sum(axis=1),
                                          np.round(stats["fraction_in_range"] * 200 * 100))
    assert result["results"]["tanh"]["he"]["edges"][0] == -1.0


def test_activation_histograms_are_deterministic_per_seed():
    a, b, c = small_histograms(seed=3), small_histograms(seed=3), small_histograms(seed=4)
    for act in a["results"]:
        for name in a["results"][act]:
            np.testing.assert_array_equal(a["results"][act][name]["counts"], b["results"][act][name]["counts"])
    assert not np.array_equal(a["results"]["tanh"]["xavier"]["counts"], c["results"]["tanh"]["xavier"]["counts"])


def test_sigmoid_with_std_1_saturates_and_with_std_001_crowds_at_one_half():
    runs = small_histograms(activations=("sigmoid",))["results"]["sigmoid"]
    for layer_counts in runs["std=1"]["counts"]:
        ends = layer_counts[0] + layer_counts[-1]  # the bins nearest 0 and nearest 1
        assert ends > 0.5 * layer_counts.sum()
    assert np.all(np.abs(runs["std=0.01"]["mean"] - 0.5) < 0.01)
    assert np.all(runs["std=0.01"]["std"] < 0.05)
    counts = runs["std=0.01"]["counts"][1:]  # past the first layer (which sees the raw std-1 inputs)
    np.testing.assert_array_equal(counts[:, 9:11].sum(axis=1), counts.sum(axis=1))  # two bins around 0.5
    # Xavier keeps the deeper layers spread out: wider than std=0.01, no pile-up at the ends
    assert np.all(runs["xavier"]["std"][1:] > 5 * runs["std=0.01"]["std"][1:])
    assert np.all(runs["xavier"]["counts"][:, [0, -1]].sum(axis=1) < 0.05 * runs["xavier"]["counts"].sum(axis=1))


def test_relu_activations_keep_their_scale_with_he_and_shrink_with_xavier():
    runs = small_histograms(activations=("relu",))["results"]["relu"]
    he, xavier = runs["he"]["std"], runs["xavier"]["std"]
    assert he[-1] > 0.6 * he[0]  # He: roughly constant spread through the layers
    assert xavier[-1] < 0.4 * xavier[0]  # Xavier halves the variance at each ReLU layer
    assert runs["std=0.01"]["std"][-1] < 1e-4  # vanishes


def test_keep_activations_returns_them_and_matches_layer_activations():
    result = small_histograms(num_inputs=10, num_layers=2, width=7, activations=("tanh",),
                              weight_inits=("he",), keep_activations=True, seed=5)
    acts = result["results"]["tanh"]["he"]["activations"]
    assert acts.shape == (2, 10, 7)
    x = np.random.default_rng(5).standard_normal((10, 100))
    np.testing.assert_array_equal(acts, layer_activations(x, "tanh", "he", num_layers=2, width=7, seed=6))
    he_weights = np.sqrt(2 / 100) * np.random.default_rng(6).standard_normal((100, 7))
    np.testing.assert_allclose(acts[0], np.tanh(x @ he_weights))


@pytest.mark.parametrize("kwargs, error, match", [
    ({"activations": ("softplus",)}, ValueError, "softplus"),
    ({"weight_inits": ("lecun",)}, ValueError, "lecun"),
    ({"num_inputs": 0}, ValueError, "num_inputs"),
    ({"bins": 2.5}, ValueError, "bins"),
])
def test_activation_histograms_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        small_histograms(**kwargs)


# ---------------------------------------------------------------- training experiments on tiny synthetic data

from minigrad_nets.experiments import (BOOK_VARIANTS, optimizer_comparison, overfitting_comparison,  # noqa: E402
                                       weight_init_comparison)


def synthetic(n, features=20, classes=10, seed=0):
    """A learnable toy problem: x standard normal, label = argmax of a fixed random linear map."""
    mixing = np.random.default_rng(123).standard_normal((features, classes))
    x = np.random.default_rng(seed).standard_normal((n, features)).astype(np.float32)
    return x, np.argmax(x @ mixing, axis=1)


TRAIN, TEST = synthetic(512), synthetic(200, seed=1)


def tiny_weight_init(**kwargs):
    options = dict(iterations=60, batch_size=32, report_every=10)
    options.update(kwargs)
    return weight_init_comparison(TRAIN, TEST, **options)


def test_weight_init_shapes_and_keys():
    result = tiny_weight_init()
    names = ["std=0.01", "xavier", "he"]
    for key in ("loss", "smoothed", "report_loss", "final_smoothed", "train_accuracy", "test_accuracy"):
        assert list(result[key]) == names
    np.testing.assert_array_equal(result["iteration"], np.arange(60))
    np.testing.assert_array_equal(result["report_iteration"], np.arange(0, 60, 10))
    for name in names:
        assert result["loss"][name].shape == result["smoothed"][name].shape == (60,)
        np.testing.assert_array_equal(result["report_loss"][name], result["loss"][name][::10])
        assert 0.0 <= result["test_accuracy"][name] <= 1.0
    assert result["config"]["layers"] == [20, 100, 100, 100, 100, 10]
    assert result["config"]["iterations"] == 60


def test_weight_init_is_deterministic_per_seed():
    a, b, c = tiny_weight_init(seed=7), tiny_weight_init(seed=7), tiny_weight_init(seed=8)
    for name in a["loss"]:
        np.testing.assert_array_equal(a["loss"][name], b["loss"][name])
    assert not np.array_equal(a["loss"]["he"], c["loss"]["he"])


def test_runs_see_the_same_minibatches():
    # two networks with the same init and optimizer must trace the very same curve
    result = tiny_weight_init(inits={"first": "he", "second": "he"}, iterations=20)
    np.testing.assert_array_equal(result["loss"]["first"], result["loss"]["second"])


def test_weight_init_findings_he_learns_and_std_001_stalls_at_ln_10():
    result = tiny_weight_init()
    final, loss = result["final_smoothed"], result["loss"]
    assert final["he"] < loss["he"][0] - 0.5  # He's loss falls well below its start
    assert abs(final["std=0.01"] - np.log(10)) < 0.05  # vanishing signal: stuck at chance
    assert final["he"] < final["xavier"] < final["std=0.01"]


def test_optimizer_comparison_shapes_and_sgd_is_slowest():
    result = optimizer_comparison(TRAIN, TEST, iterations=60, batch_size=32, report_every=20)
    assert list(result["loss"]) == ["SGD", "Momentum", "AdaGrad", "Adam"]
    start = {name: loss[0] for name, loss in result["loss"].items()}
    assert len(set(start.values())) == 1  # same initial params, same first batch
    final = result["final_smoothed"]
    assert final["SGD"] > max(final["Momentum"], final["AdaGrad"], final["Adam"])
    assert result["config"]["optimizers"]["Adam"]["lr"] == 0.001


def test_optimizer_comparison_takes_other_optimizers():
    result = optimizer_comparison(TRAIN, iterations=5, batch_size=32, report_every=5,
                                  optimizers={"nesterov": ("nesterov", {"lr": 0.01})}, hidden_sizes=(8,))
    assert list(result["loss"]) == ["nesterov"] and result["loss"]["nesterov"].shape == (5,)
    assert "test_accuracy" not in result


def tiny_overfitting(**kwargs):
    options = dict(num_train=50, hidden_sizes=(30,) * 3, epochs=40, batch_size=10, lr=0.05)
    options.update(kwargs)
    return overfitting_comparison(TRAIN, TEST, **options)


def test_overfitting_shapes_keys_and_determinism():
    a = tiny_overfitting(epochs=4)
    b = tiny_overfitting(epochs=4)
    assert list(a["train_acc"]) == list(BOOK_VARIANTS) == ["plain", "weight decay", "dropout"]
    np.testing.assert_array_equal(a["epoch"], np.arange(5))
    for name in BOOK_VARIANTS:
        assert a["train_acc"][name].shape == a["test_acc"][name].shape == (5,)
        assert a["loss"][name].shape == (4 * 5,)  # 50 images / batch 10 = 5 iterations per epoch
        np.testing.assert_array_equal(a["train_acc"][name], b["train_acc"][name])
        np.testing.assert_array_equal(a["test_acc"][name], b["test_acc"][name])
        assert a["final"][name]["train"] == a["train_acc"][name][-1]
    # the variants really differ (same start, same batches)
    assert a["train_acc"]["plain"][0] == a["train_acc"]["dropout"][0]
    assert not np.array_equal(a["loss"]["plain"], a["loss"]["dropout"])
    assert a["config"]["variants"]["dropout"] == {"dropout": 0.2}


def test_overfitting_findings_plain_overfits_and_weight_decay_narrows_the_gap():
    final = tiny_overfitting()["final"]
    assert final["plain"]["train"] > 0.9
    assert final["plain"]["gap"] > 0.3
    assert final["weight decay"]["gap"] < final["plain"]["gap"]


@pytest.mark.parametrize("kwargs, match", [({"num_train": 0}, "num_train"), ({"num_train": 10**6}, "num_train")])
def test_overfitting_bad_num_train(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny_overfitting(**kwargs)


def test_training_experiments_need_flat_inputs():
    with pytest.raises(ValueError, match="shape"):
        weight_init_comparison((np.zeros((4, 2, 2)), np.zeros(4, int)), iterations=1)


# ---------------------------------------------------------------- results on disk

import json  # noqa: E402

from minigrad_nets.experiments import to_jsonable, write_json  # noqa: E402


def test_to_jsonable_converts_numpy_and_non_finite_values():
    data = {"a": np.arange(3), "b": {"c": np.float32(1.5), 2: (np.int64(4), float("nan"))}, "d": np.array([np.inf])}
    assert to_jsonable(data) == {"a": [0, 1, 2], "b": {"c": 1.5, "2": [4, None]}, "d": [None]}


def test_write_json_round_trips_and_replaces_atomically(tmp_path):
    path = tmp_path / "r.json"
    path.write_text("old")
    write_json(path, {"x": np.linspace(0, 1, 3)})
    assert json.loads(path.read_text()) == {"x": [0.0, 0.5, 1.0]}
    with pytest.raises(TypeError):
        write_json(path, {"x": object()})  # not serialisable: nothing is written
    assert json.loads(path.read_text()) == {"x": [0.0, 0.5, 1.0]}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_atomic_write_failing_midway_leaves_the_old_file_and_no_temp(tmp_path):
    from minigrad_nets.atomic import atomic_write

    path = tmp_path / "r.json"
    path.write_text("old")

    def write_then_fail(f):
        f.write("half of a new file")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, write_then_fail)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_atomic_write_check_rejects_before_replace_and_syncs_to_the_target(tmp_path):
    from minigrad_nets.atomic import atomic_write

    path = tmp_path / "r.bin"
    path.write_bytes(b"old")

    def reject(tmp):
        assert open(tmp, "rb").read() == b"new"  # the check sees the complete temp file
        raise ValueError("bad checksum")

    with pytest.raises(ValueError, match="bad checksum"):
        atomic_write(path, lambda f: f.write(b"new"), binary=True, check=reject)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["r.bin"]
    atomic_write(path, lambda f: f.write(b"new"), binary=True, check=lambda tmp: None)
    assert path.read_bytes() == b"new"


def test_one_atomic_write_implementation_is_shared():
    from minigrad_nets import atomic, plotting
    from minigrad_nets.experiments import results
    assert results.atomic_write is atomic.atomic_write and plotting.atomic_write is atomic.atomic_write
