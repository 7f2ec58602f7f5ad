"""Smoke tests of ``minigrad-nets train --model convnet`` and ``minigrad-nets filters`` on the embedded MNIST subset."""
import json

import numpy as np
import pytest

from minigrad_nets import cli, datasets


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.delenv(datasets.ENV_DATA_DIR, raising=False)
    monkeypatch.setenv(datasets.ENV_OFFLINE, "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_train_convnet_learns_and_checkpoints_the_conv_filters(tmp_path, capsys):
    out = str(tmp_path / "run.npz")
    argv = ["train", "--model", "convnet", "--quick", "--no-progress", "--iterations", "10", "--out", out]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert "Conv2D(30, 5x5) -> Relu -> MaxPool2D(2x2) -> Flatten -> Dense(100) -> Relu -> Dense(10)" in text
    first, last = [float(line.split("test acc ")[1].split()[0]) for line in text.splitlines()
                   if line.startswith("epoch") and ("iteration      0" in line or "iteration     10" in line)]
    assert first < 0.3 and last > 0.6  # ten Adam steps from chance (10%) already classify most digits
    with np.load(out, allow_pickle=False) as f:
        assert f["params[0]['W']"].shape == (30, 1, 5, 5) and f["params[1]['W']"].shape == (4320, 100)


def test_train_convnet_hidden_size_sets_the_dense_layer(capsys):
    assert cli.main(["train", "--model", "convnet", "--hidden", "16", "--quick", "--no-progress",
                     "--iterations", "1", "--method", "backprop"]) == 0
    assert "Flatten -> Dense(16) -> Relu" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    (["--batch-norm"], "--batch-norm: only for --model mlp"),
    (["--dropout", "0.5", "--activation", "tanh"], "--dropout, --activation: only for --model mlp"),
    (["--hidden", "10,10"], "--model convnet has one hidden Dense layer: give --hidden one size, got 10,10"),
])
def test_mlp_only_options_with_the_convnet_are_refused_before_loading_data(tmp_path, capsys, extra, message):
    argv = ["train", "--model", "convnet", "--quick", "--data-dir", str(tmp_path / "nothing"), *extra]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Put the four files" not in err


def test_mlp_stays_the_default_model_with_two_hidden_layers(capsys):
    assert cli.main(["train", "--quick", "--no-progress", "--iterations", "1", "--batch-norm"]) == 0
    assert "net: 784-100-100-10 relu + batch norm" in capsys.readouterr().out


def test_filters_writes_the_png_and_the_filters_before_and_after_training(tmp_path, capsys):
    out = tmp_path / "results"
    assert cli.main(["filters", "--quick", "--no-progress", "--iterations", "5", "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    data = json.loads((out / "filters.json").read_text())
    before, after = np.array(data["filters_before"]), np.array(data["filters_after"])
    assert before.shape == after.shape == (30, 5, 5)
    assert abs(before.std() / 0.01 - 1) < 0.2  # the book's weight_init_std
    # Adam moves every filter entry by about lr = 0.001 a step: five steps change each, by at most ~5 lr.
    change = np.abs(after - before)
    assert change.min() > 0 and change.max() < 6 * 0.001
    assert data["config"]["iterations"] == 5 and data["config"]["layer"] == "Conv2D(30, 5x5)"
    assert (out / "filters.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
