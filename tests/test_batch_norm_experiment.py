"""The book's BatchNorm experiment: its curves, a diverging plain net, and the `batch-norm` subcommand."""
import json

import numpy as np
import pytest

from minigrad_nets import cli, datasets
from minigrad_nets.experiments.batch_norm import BOOK_SCALES, batch_norm_comparison


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.delenv(datasets.ENV_DATA_DIR, raising=False)
    monkeypatch.setenv(datasets.ENV_OFFLINE, "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def blobs(n=200, seed=0):
    """Four well-separated Gaussian blobs in 8 dimensions: any working network learns them."""
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 4, n)
    centres = 4 * np.eye(4, 8)
    return (centres[t] + rng.normal(size=(n, 8))).astype(np.float32), t


def test_book_scales_are_logspace_1_to_1e_minus_4():
    assert len(BOOK_SCALES) == 16 and BOOK_SCALES[0] == 1.0
    np.testing.assert_allclose(BOOK_SCALES[-1], 1e-4)
    np.testing.assert_allclose(BOOK_SCALES[1:] / BOOK_SCALES[:-1], 10 ** (-4 / 15))


def test_batch_norm_rescues_a_net_whose_weights_start_tiny():
    # At std 1e-3 a plain 5-layer ReLU net's signal vanishes (it stays at chance); BatchNorm rescales it.
    result = batch_norm_comparison(blobs(), num_train=200, scales=[1e-3], hidden_sizes=(20,) * 5, num_classes=4,
                                   batch_size=20, lr=0.1, epochs=6, dtype="float64")
    assert result["train_acc"]["batch_norm"].shape == (1, 7) and result["epoch"].tolist() == list(range(7))
    assert result["final"]["plain"][0] < 0.4 < 0.9 < result["final"]["batch_norm"][0]
    assert result["wins"] == 1 and result["diverged_at"] == {"batch_norm": [None], "plain": [None]}


def test_a_diverging_run_is_recorded_not_raised():
    result = batch_norm_comparison(blobs(), num_train=200, scales=[30.0], hidden_sizes=(20,) * 5, num_classes=4,
                                   batch_size=20, lr=5.0, epochs=3, dtype="float32")
    blew = result["diverged_at"]["plain"][0]
    assert isinstance(blew, int) and blew >= 1
    assert np.isnan(result["final"]["plain"][0])
    assert np.all(np.isfinite(result["train_acc"]["plain"][0][: (blew - 1) // 10 + 1]))  # measured before it blew


def test_bad_scales_are_refused():
    with pytest.raises(ValueError, match="scales must be positive"):
        batch_norm_comparison(blobs(), num_train=10, scales=[0.1, -1.0], num_classes=4)


def test_quick_subcommand_writes_png_json_and_a_table(offline, tmp_path, capsys):
    assert cli.main(["batch-norm", "--quick", "--no-progress", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "final training accuracy" in out and "BatchNorm at least as accurate at" in out
    data = json.loads((tmp_path / "batch-norm.json").read_text())
    assert len(data["scales"]) == 4 and len(data["train_acc"]["batch_norm"][0]) == 3
    assert (tmp_path / "batch-norm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
