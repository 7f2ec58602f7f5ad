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


def test_overflow_prints_only_the_clear_error(capfd):
    import warnings
    argv = ["train", "--quick", "--no-progress", "--optimizer", "sgd", "--lr", "1e6", "--iterations", "30"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cli.main(argv) == 1
    assert [str(w.message) for w in caught] == []  # a plain run would print these to stderr
    err = capfd.readouterr().err
    assert "training loss became" in err and "at iteration" in err
    assert "overflow encountered" not in err and "RuntimeWarning" not in err


@pytest.mark.parametrize("flag, value, message", [
    ("--batch-size", "x", "argument --batch-size: must be a positive integer, got 'x'"),
    ("--seed", "1.5", "argument --seed: must be a non-negative integer, got '1.5'"),
    ("--lr", "-1", "argument --lr: must be a positive number, got '-1'"),
    ("--dropout", "1", "argument --dropout: must be a number in [0, 1), got '1'"),
    ("--init", "foo", "argument --init: unknown weight initialiser 'foo'"),
])
def test_bad_values_are_usage_errors_in_cli_words(capsys, flag, value, message):
    with pytest.raises(SystemExit) as info:
        cli.main(["train", flag, value])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "_positive_int" not in err and "invalid" not in err


def test_help_states_each_default_once(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in text and "(default: False)" not in text
    assert "(default 5; total when resuming)" in text and "(default: 100)" in text


@pytest.mark.parametrize("argv, message", [
    (["--resume"], "--resume needs --out"),
    (["--checkpoint-every", "5"], "--checkpoint-every needs --out"),
    (["--out", "/proc/minigrad-nets-test"], "--out /proc/minigrad-nets-test: cannot write in /proc"),
])
def test_argument_errors_come_before_loading_data(tmp_path, capsys, argv, message):
    # the data dir does not exist: an error about the data would mean it was loaded first
    assert cli.main(["train", "--quick", "--data-dir", str(tmp_path / "nothing"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Put the four files" not in err


def test_out_that_is_a_directory_or_below_a_file_fails_before_loading(tmp_path, capsys):
    (tmp_path / "dir.npz").mkdir()
    (tmp_path / "file").write_text("x")
    for out, message in ((tmp_path / "dir.npz", "is a directory"), (tmp_path / "file" / "run", "not a directory")):
        assert cli.main(["train", "--quick", "--data-dir", str(tmp_path / "nothing"), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert message in err and "Put the four files" not in err


def test_batch_norm_run_saves_the_running_statistics_and_resumes(tmp_path, capsys):
    out = str(tmp_path / "bn.npz")
    args = ["train", "--quick", "--no-progress", "--hidden", "16,16", "--batch-norm", "--batch-size", "50",
            "--out", out]
    assert cli.main(args + ["--iterations", "3"]) == 0
    assert "+ batch norm" in capsys.readouterr().out
    with np.load(out, allow_pickle=False) as f:
        means = [f[f"state[{i}]['mean']"] for i in range(2)]
        assert [m.shape for m in means] == [(16,), (16,)]
        assert all(np.any(m != 0) for m in means)  # three training steps moved them off their start
    assert cli.main(args + ["--iterations", "5", "--resume"]) == 0
    assert "after 5 iterations" in capsys.readouterr().out


def test_book_style_dropout_trains(capsys):
    argv = ["train", "--quick", "--no-progress", "--hidden", "10", "--iterations", "3", "--dropout", "0.2",
            "--dropout-style", "book"]
    assert cli.main(argv) == 0
    assert "final test accuracy" in capsys.readouterr().out
