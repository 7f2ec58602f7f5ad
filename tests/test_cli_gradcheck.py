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

    def doubles_first_bias(net, params, x, t, key=None):
        loss, grads = honest(net, params, x, t, key)
        grads[0]["b"] = 2 * grads[0]["b"]
        return loss, grads

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
    assert cli.main(SMALL + ["--dropout", "1.5"]) == 2
    assert "dropout" in capsys.readouterr().err
