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
    np.testing.assert_allclose(acts[0], np.tanh(x @ (np.sqrt(2 / 100) * np.random.default_rng(6).standard_normal((100, 7)))))


@pytest.mark.parametrize("kwargs, error, match", [
    ({"activations": ("softplus",)}, ValueError, "softplus"),
    ({"weight_inits": ("lecun",)}, ValueError, "lecun"),
    ({"num_inputs": 0}, ValueError, "num_inputs"),
    ({"bins": 2.5}, ValueError, "bins"),
])
def test_activation_histograms_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        small_histograms(**kwargs)
