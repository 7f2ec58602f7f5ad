"""The experiment subcommands: --help, and --quick runs that write their PNG(s) and JSON and exit 0."""
import json
import sys

import numpy as np
import pytest

from minigrad_nets import cli, datasets
from minigrad_nets.commands import experiments as commands

SUBCOMMANDS = ["weight-init", "activation-histograms", "optimizers", "optimizer-paths", "overfitting",
               "hyperparameter-search", "all"]
NO_DATA = ("activation-histograms", "optimizer-paths")
OUTPUTS = {
    "weight-init": ["weight-init.json", "weight-init.png"],
    "optimizers": ["optimizers.json", "optimizers.png"],
    "overfitting": ["overfitting.json", "overfitting.png"],
    "activation-histograms": ["activation-histograms.json", "activation-histograms-sigmoid.png",
                              "activation-histograms-tanh.png", "activation-histograms-relu.png"],
    "optimizer-paths": ["optimizer-paths.json", "optimizer-paths.png"],
    "hyperparameter-search": ["hyperparameter-search.json", "hyperparameter-search.png"],
}
OUTPUTS["all"] = [name for files in OUTPUTS.values() for name in files]


@pytest.fixture
def tiny_mnist(monkeypatch):
    """Replace the MNIST loader of the commands with 400 / 100 random 16-pixel 'images' (no files read)."""
    rng = np.random.default_rng(0)
    data = ((rng.random((400, 16), dtype=np.float32), rng.integers(0, 10, 400)),
            (rng.random((100, 16), dtype=np.float32), rng.integers(0, 10, 100)))
    source = datasets.DataSource("mnist", "data_dir", "/fake/mnist", 400, 100)
    calls = []

    def fake_load(args):
        calls.append(args)
        print(f"data: {source}")
        return data, source

    monkeypatch.setattr(commands, "load_data", fake_load)
    return calls


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([name, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--out", "--quick"):
        assert flag in text
    if name != "optimizer-paths":   # no random draws and no training loop there
        assert "--seed" in text and "--no-progress" in text
    if name not in NO_DATA:
        assert "--data-dir" in text
    if name in ("hyperparameter-search", "all"):
        assert "--trials" in text and "--jobs" in text
    if name in ("optimizer-paths", "all"):
        assert "--steps" in text


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_quick_run_writes_png_and_json(name, tiny_mnist, tmp_path, capsys):
    out = tmp_path / "out"
    extra = ["--iterations", "20", "--epochs", "2", "--trials", "2", "--jobs", "1"] if name == "all" else []
    progress = [] if name == "optimizer-paths" else ["--no-progress"]   # `all` above only checks the plumbing
    assert cli.main([name, "--quick", *progress, "--out", str(out), *extra]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS[name])
    for filename in OUTPUTS[name]:
        path = out / filename
        if filename.endswith(".png"):
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        else:
            data = json.loads(path.read_text())
            assert "config" in data
    text = capsys.readouterr().out
    assert "wrote" in text
    if name not in NO_DATA:
        assert "data: MNIST" in text
        assert len(tiny_mnist) == 1  # `all` loads the data once


def test_weight_init_table_and_json_agree(tiny_mnist, tmp_path, capsys):
    assert cli.main(["weight-init", "--quick", "--no-progress", "--iterations", "30", "--seed", "3",
                     "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "weight-init.json").read_text())
    assert data["config"]["iterations"] == 30 and data["config"]["seed"] == 3
    assert data["data_source"].startswith("MNIST")
    assert len(data["loss"]["he"]) == 30
    text = capsys.readouterr().out
    header = next(line for line in text.splitlines() if line.lstrip().startswith("iteration"))
    assert header.split() == ["iteration", "std=0.01", "xavier", "he"]
    smoothed = next(line for line in text.splitlines() if line.lstrip().startswith("smoothed")).split()[1:]
    np.testing.assert_allclose([float(v) for v in smoothed],
                               [data["final_smoothed"][n] for n in ("std=0.01", "xavier", "he")], atol=5e-5)


def test_overfitting_epochs_flag(tiny_mnist, tmp_path):
    assert cli.main(["overfitting", "--no-progress", "--epochs", "2", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "overfitting.json").read_text())
    assert data["epoch"] == [0, 1, 2]
    assert data["config"]["num_train"] == 300 and data["config"]["num_test"] == 100


@pytest.mark.parametrize("argv", [["weight-init", "--iterations", "0"], ["overfitting", "--epochs", "-1"],
                                  ["weight-init", "--seed", "x"]])
def test_bad_numbers_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert "error: argument" in capsys.readouterr().err


def test_missing_data_dir_is_a_clear_error(tmp_path, capsys):
    status = cli.main(["weight-init", "--quick", "--no-progress", "--data-dir", str(tmp_path / "nowhere"),
                       "--out", str(tmp_path / "out")])
    assert status == 2
    err = capsys.readouterr().err
    assert "not found" in err and "nowhere" in err
    assert not (tmp_path / "out").exists()


def test_default_run_uses_the_embedded_subset_offline(monkeypatch, tmp_path, capsys):
    """`minigrad-nets weight-init` on a fresh machine: no data anywhere, no network -> the shipped subset."""
    monkeypatch.delenv(datasets.ENV_DATA_DIR, raising=False)
    monkeypatch.setenv(datasets.ENV_OFFLINE, "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["weight-init", "--quick", "--no-progress", "--iterations", "10"]) == 0
    text = capsys.readouterr().out
    assert "embedded subset" in text
    assert (tmp_path / "results" / "weight-init.png").is_file()
    data = json.loads((tmp_path / "results" / "weight-init.json").read_text())
    assert "embedded" in data["data_source"]


def test_without_matplotlib_the_data_is_still_written(tiny_mnist, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    assert cli.main(["overfitting", "--no-progress", "--epochs", "1", "--out", str(tmp_path)]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["overfitting.json"]
    assert "matplotlib" in capsys.readouterr().err


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_out_that_is_a_file_fails_before_any_work(name, tiny_mnist, tmp_path, capsys):
    out = tmp_path / "taken"
    out.write_text("a regular file")
    assert cli.main([name, "--quick", "--out", str(out)]) == 2
    assert "is a file, not a directory" in capsys.readouterr().err
    assert tiny_mnist == []  # the data was not even loaded
    assert out.read_text() == "a regular file"


def test_the_commands_share_one_data_loader():
    from minigrad_nets.commands import _data, gradcheck, train
    assert commands.load_data is _data.load_data and train.load_data is _data.load_data
    assert gradcheck.load_data is _data.load_data


def test_weight_init_and_optimizers_share_one_runner(tiny_mnist, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(commands, "_run_loss_comparison", lambda args, name, *rest: calls.append(name) or 0)
    for name in ("weight-init", "optimizers"):
        assert cli.main([name, "--quick", "--out", str(tmp_path)]) == 0
    assert calls == ["weight-init", "optimizers"]


def test_files_not_found_speaks_cli(tmp_path, capsys):
    """The CLI's message names --data-dir and --download, not the Python spelling data_dir= / download=True."""
    status = cli.main(["weight-init", "--quick", "--no-progress", "--data-dir", str(tmp_path / "nowhere"),
                       "--out", str(tmp_path / "out")])
    assert status == 2
    err = capsys.readouterr().err
    assert "--data-dir" in err and "--download" in err
    assert "data_dir=" not in err and "download=True" not in err


@pytest.mark.parametrize("text, where", [("100,,100", "a doubled"), (",100", "a leading"), ("100,", "a trailing")])
def test_hidden_sizes_with_an_empty_item_are_refused(text, where, capsys):
    """`--hidden 100,,100` once built 784-100-100-10 silently; now it is a usage error saying what is wrong."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["gradcheck", "--hidden", text])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --hidden" in err and f"has {where} comma" in err


def test_hidden_sizes_parse():
    from minigrad_nets.commands._args import hidden_sizes
    assert hidden_sizes("100, 50") == [100, 50]
    assert hidden_sizes("") == [] and hidden_sizes(" ") == []   # no hidden layer


def test_gradcheck_quick_checks_a_small_batch(capsys):
    assert cli.main(["gradcheck", "--quick", "--input-size", "12", "--hidden", "6", "--output-size", "3"]) == 0
    text = capsys.readouterr().out
    assert "batch 4 (random)" in text and "PASS" in text
    assert cli.main(["gradcheck", "--quick", "--batch", "6", "--input-size", "12", "--hidden", "6",
                     "--output-size", "3"]) == 0
    assert "batch 6 (random)" in capsys.readouterr().out   # an explicit --batch wins


def test_optimizer_paths_json_holds_the_books_first_steps(tmp_path, capsys):
    assert cli.main(["optimizer-paths", "--steps", "5", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "optimizer-paths.json").read_text())
    assert list(data["paths"]) == ["SGD", "Momentum", "AdaGrad", "Adam"]
    assert all(len(points) == 6 for points in data["paths"].values())   # the start and 5 steps
    # SGD lr 0.95 from (-7, 2), gradient (x / 10, 2 y) = (-0.7, 4): (-7 + 0.665, 2 - 3.8)
    np.testing.assert_allclose(data["paths"]["SGD"][1], [-6.335, -1.8], atol=1e-9)
    text = capsys.readouterr().out
    assert "SGD" in text and "distance to (0, 0)" in text


def test_hyperparameter_search_table_and_json_agree(tiny_mnist, tmp_path, capsys):
    assert cli.main(["hyperparameter-search", "--trials", "3", "--epochs", "2", "--jobs", "1", "--seed", "5",
                     "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "hyperparameter-search.json").read_text())
    config = data["config"]
    assert config["trials"] == 3 and config["epochs"] == 2 and config["seed"] == 5
    assert (config["train_images"], config["validation_images"]) == (320, 80)   # all 400 fake images, 20% held out
    assert len(data["trials"]) == 3 and all(len(t["val_acc"]) == 3 for t in data["trials"])
    text = capsys.readouterr().out
    assert text.count("trial ") >= 3   # a line per finished trial without --no-progress
    best = [line for line in text.splitlines() if line.startswith("Best-")]
    assert len(best) == 3
    first = data["trials"][data["ranking"][0]]
    assert f"val acc {first['final_val']:.4f}" in best[0] and f"lr {first['lr']:.3e}" in best[0]
