"""``minigrad-nets gradcheck``: prints the report, exit 0 on agreement and non-zero on disagreement."""
import pytest

from minigrad_nets import cli
from minigrad_nets.gradients import backprop

SMALL = ["gradcheck", "--input-size", "6", "--hidden", "5,4", "--output-size", "3", "--batch", "5"]


def test_agreeing_paths_exit_zero_and_print_every_leaf(capsys):
    status = cli.main(SMALL + ["--activation", "tanh", "--weight-decay", "0.1", "--dropout", "0.2", "--seed", "3"])
    out = capsys.readouterr().out
    assert status == 0
    assert "Gradient check: PASS" in out and "6,5,4,3" in out
    for leaf in ("[0]['W']", "[1]['b']", "[2]['W']"):
        assert leaf in out
    assert "autograd vs backprop" in out and "backprop vs numerical" in out


@pytest.mark.parametrize("mode", ["sampled", "directional"])
def test_cheap_modes_and_float32(capsys, mode):
    status = cli.main(SMALL + ["--mode", mode, "--samples", "3", "--dtype", "float32", "--init", "0.5"])
    out = capsys.readouterr().out
    assert status == 0 and f"mode {mode}" in out and "network dtype float32" in out


def test_disagreement_exits_non_zero_and_names_the_leaf(capsys, monkeypatch):
    honest = backprop.value_and_grad

    def doubles_first_bias(net, params, x, t, *rest):
        loss, grads, state = honest(net, params, x, t, *rest)
        grads[0]["b"] = 2 * grads[0]["b"]
        return loss, grads, state

    monkeypatch.setattr(backprop, "value_and_grad", doubles_first_bias)
    status = cli.main(SMALL + ["--activation", "sigmoid"])
    out = capsys.readouterr().out
    assert status == 1
    assert "Gradient check: FAIL" in out and "suspect: backprop at [0]['b']" in out


def test_method_selection(capsys):
    assert cli.main(SMALL + ["--methods", "autograd,backprop"]) == 0
    out = capsys.readouterr().out
    assert "autograd vs backprop" in out and "numerical" not in out


def test_bad_arguments(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(SMALL + ["--batch", "0"])
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        cli.main(SMALL + ["--hidden", "5,x"])
    assert cli.main(SMALL + ["--methods", "autograd,guess"]) == 2
    assert "unknown gradient method" in capsys.readouterr().err
    assert cli.main(SMALL + ["--data", "mnist"]) == 2
    assert "--input-size 784" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        cli.main(SMALL + ["--dropout", "1.5"])
    assert info.value.code == 2
    assert "argument --dropout: must be a number in [0, 1), got '1.5'" in capsys.readouterr().err


def test_mnist_batch_prints_the_source_instead_of_a_warning(capfd, monkeypatch, tmp_path):
    from minigrad_nets import datasets
    monkeypatch.delenv(datasets.ENV_DATA_DIR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status = cli.main(["gradcheck", "--data", "mnist", "--hidden", "", "--batch", "2", "--methods",
                           "autograd,backprop"])
    assert [w.category.__name__ for w in caught] == []  # a plain run would print these with a source line
    out, err = capfd.readouterr()
    assert status == 0
    assert "data: MNIST: embedded subset" in out and err == ""


def test_choices_come_from_the_registries(capsys):
    from minigrad_nets.gradients.numerical import MODES
    from minigrad_nets.network import ACTIVATIONS
    with pytest.raises(SystemExit):
        cli.main(["gradcheck", "--help"])
    text = capsys.readouterr().out
    assert "{" + ",".join(ACTIVATIONS) + "}" in text and "{" + ",".join(MODES) + "}" in text


def test_helper_modules_are_not_subcommands():
    choices = cli.build_parser()._subparsers._group_actions[0].choices
    assert "train" in choices and not [name for name in choices if name.startswith("_")]


def test_batch_norm_network_passes_in_training_mode(capsys):
    status = cli.main(["gradcheck", "--input-size", "12", "--hidden", "6,5", "--output-size", "3", "--batch", "8",
                       "--batch-norm", "--activation", "tanh"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "batch norm" in out and "['gamma']" in out and "['beta']" in out


def test_batch_norm_with_a_batch_of_one_is_a_clear_error(capsys):
    status = cli.main(["gradcheck", "--input-size", "12", "--hidden", "6", "--output-size", "3", "--batch", "1",
                       "--batch-norm"])
    assert status == 2
    assert "at least 2 examples" in capsys.readouterr().err
