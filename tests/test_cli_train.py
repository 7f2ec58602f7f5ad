"""Smoke tests of ``minigrad-nets train`` on the embedded MNIST subset (no network, no real data needed)."""
import os

import numpy as np
import pytest

from minigrad_nets import cli, datasets


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.delenv(datasets.ENV_DATA_DIR, raising=False)
    monkeypatch.setenv(datasets.ENV_OFFLINE, "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_quick_train_checkpoint_and_resume(tmp_path, capsys):
    out = str(tmp_path / "run")
    args = ["train", "--quick", "--no-progress", "--hidden", "20", "--batch-size", "50", "--out", out]
    assert cli.main(args + ["--iterations", "4"]) == 0
    text = capsys.readouterr().out
    assert "embedded subset" in text
    assert "iteration      0" in text and "final test accuracy" in text
    assert os.listdir(out) == ["checkpoint.npz"]
    with np.load(os.path.join(out, "checkpoint.npz"), allow_pickle=False) as f:
        assert f["history/loss"].shape == (4,)
        assert f["params[0]['W']"].shape == (784, 20) and f["params[0]['W']"].dtype == np.float32

    assert cli.main(args + ["--iterations", "6", "--resume"]) == 0
    text = capsys.readouterr().out
    assert "resuming from" in text and "after 6 iterations" in text
    with np.load(os.path.join(out, "checkpoint.npz"), allow_pickle=False) as f:
        assert f["history/loss"].shape == (6,)


def test_epochs_print_one_line_per_epoch(capsys):
    argv = ["train", "--quick", "--no-progress", "--hidden", "10,10", "--optimizer", "momentum", "--lr", "0.05",
            "--epochs", "2", "--batch-size", "250", "--method", "backprop", "--dropout", "0.1"]
    assert cli.main(argv) == 0
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("epoch")]
    assert [l.split()[1] for l in lines] == ["0.00", "1.00", "2.00"]


def test_missing_data_dir_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["train", "--quick", "--no-progress", "--data-dir", str(tmp_path / "nothing")]) == 2
    assert "Put the four files" in capsys.readouterr().err


def test_diverging_run_exits_with_the_iteration(capsys):
    argv = ["train", "--quick", "--no-progress", "--optimizer", "sgd", "--lr", "1e30", "--iterations", "30"]
    with np.errstate(all="ignore"):
        assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "training loss became" in err and "at iteration" in err


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = capsys.readouterr().out
    for option in ("--data-dir", "--dataset", "--hidden", "--optimizer", "--epochs", "--iterations", "--resume",
                   "--quick", "--no-progress", "--out", "--method"):
        assert option in text
