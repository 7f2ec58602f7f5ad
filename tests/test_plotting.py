"""plotting: each figure is written as a valid PNG, atomically; a missing matplotlib gets a clear error."""
import os
import struct
import sys

import numpy as np
import pytest

from minigrad_nets import plotting
from minigrad_nets.experiments import activation_histograms

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path):
    """(width, height) from a PNG's IHDR chunk, after checking the signature."""
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == PNG_SIGNATURE
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def assert_valid_png(path):
    width, height = png_size(path)
    assert width > 100 and height > 100
    from matplotlib.image import imread
    image = imread(path)
    assert image.shape[:2] == (height, width)
    assert image.std() > 0  # something was drawn
    assert not [n for n in os.listdir(os.path.dirname(path)) if n.startswith(".")]  # no temp files


def loss_result(n=60):
    it = np.arange(n)
    return {"iteration": it,
            "loss": {"a": 2.3 - it / n, "b": 2.3 - 2 * it / n},
            "smoothed": {"a": 2.3 - it / n, "b": 2.3 - 2 * it / n}}


def test_loss_curves_png(tmp_path):
    path = tmp_path / "loss.png"
    fig = plotting.plot_loss_curves(loss_result(), path, title="test")
    assert_valid_png(str(path))
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["a", "b"]


def test_activation_histograms_png(tmp_path):
    result = activation_histograms(num_inputs=20, input_size=10, num_layers=3, width=8, bins=10,
                                   activations=("relu",))
    path = tmp_path / "hist.png"
    fig = plotting.plot_activation_histograms(result, "relu", path)
    assert_valid_png(str(path))
    assert len(fig.axes) == 4 * 3  # one row per weight init, one column per layer


def test_accuracy_curves_png(tmp_path):
    epochs = np.arange(5)
    result = {"config": {"num_train": 30}, "epoch": epochs,
              "train_acc": {"plain": epochs / 5, "dropout": epochs / 6},
              "test_acc": {"plain": epochs / 7, "dropout": epochs / 8}}
    path = tmp_path / "acc.png"
    fig = plotting.plot_accuracy_curves(result, path)
    assert_valid_png(str(path))
    assert len(fig.axes) == 2


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    path = tmp_path / "loss.png"
    path.write_bytes(b"old")
    fig = plotting.plot_loss_curves(loss_result())
    with pytest.raises(ValueError):
        plotting.save_png(fig, path, dpi=-5)  # matplotlib rejects a negative dpi mid-write
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["loss.png"]


def test_missing_matplotlib_is_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    with pytest.raises(ImportError, match="pip install matplotlib"):
        plotting.plot_loss_curves(loss_result())
