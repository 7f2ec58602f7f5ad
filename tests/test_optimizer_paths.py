"""optimizer_paths: the book's optimizer_compare_naive.py, step for step against its update rules written out here."""
import math

import numpy as np
import pytest

from minigrad_nets.experiments import BOOK_PATH_OPTIMIZERS, optimizer_paths


def book_gradient(x, y):
    """The book's df for f = x²/20 + y²."""
    return x / 10.0, 2.0 * y


def book_paths(steps):
    """The four rules of the book's common/optimizer.py, written out on two scalars (independent of the library)."""
    paths = {}
    x, y = -7.0, 2.0
    points = [(x, y)]
    for _ in range(steps):  # SGD, lr 0.95
        gx, gy = book_gradient(x, y)
        x, y = x - 0.95 * gx, y - 0.95 * gy
        points.append((x, y))
    paths["SGD"] = points
    x, y, vx, vy = -7.0, 2.0, 0.0, 0.0
    points = [(x, y)]
    for _ in range(steps):  # Momentum, lr 0.1, momentum 0.9
        gx, gy = book_gradient(x, y)
        vx, vy = 0.9 * vx - 0.1 * gx, 0.9 * vy - 0.1 * gy
        x, y = x + vx, y + vy
        points.append((x, y))
    paths["Momentum"] = points
    x, y, hx, hy = -7.0, 2.0, 0.0, 0.0
    points = [(x, y)]
    for _ in range(steps):  # AdaGrad, lr 1.5
        gx, gy = book_gradient(x, y)
        hx, hy = hx + gx * gx, hy + gy * gy
        x, y = x - 1.5 * gx / (math.sqrt(hx) + 1e-7), y - 1.5 * gy / (math.sqrt(hy) + 1e-7)
        points.append((x, y))
    paths["AdaGrad"] = points
    x, y, mx, my, sx, sy = -7.0, 2.0, 0.0, 0.0, 0.0, 0.0
    points = [(x, y)]
    for i in range(1, steps + 1):  # Adam, lr 0.3, beta1 0.9, beta2 0.999
        gx, gy = book_gradient(x, y)
        lr_t = 0.3 * math.sqrt(1 - 0.999 ** i) / (1 - 0.9 ** i)
        mx, my = mx + 0.1 * (gx - mx), my + 0.1 * (gy - my)
        sx, sy = sx + 0.001 * (gx * gx - sx), sy + 0.001 * (gy * gy - sy)
        x, y = x - lr_t * mx / (math.sqrt(sx) + 1e-7), y - lr_t * my / (math.sqrt(sy) + 1e-7)
        points.append((x, y))
    paths["Adam"] = points
    return {name: np.array(p) for name, p in paths.items()}


def test_first_steps_by_hand():
    paths = optimizer_paths(steps=2)["paths"]
    # SGD: g0 = (-0.7, 4) -> (-6.335, -1.8); g1 = (-0.6335, -3.6) -> (-5.733175, 1.62)
    np.testing.assert_allclose(paths["SGD"], [[-7, 2], [-6.335, -1.8], [-5.733175, 1.62]], atol=1e-9)
    # Momentum: v1 = (0.07, -0.4) -> (-6.93, 1.6); v2 = 0.9 v1 - 0.1 (-0.693, 3.2) = (0.1323, -0.68) -> (-6.7977, 0.92)
    np.testing.assert_allclose(paths["Momentum"], [[-7, 2], [-6.93, 1.6], [-6.7977, 0.92]], atol=1e-9)
    # AdaGrad: h1 = (0.49, 16): x1 = -7 + 1.5 * 0.7 / (0.7 + 1e-7), y1 = 2 - 1.5 * 4 / (4 + 1e-7)
    x1, y1 = -7 + 1.05 / (0.7 + 1e-7), 2 - 6 / (4 + 1e-7)
    np.testing.assert_allclose(paths["AdaGrad"][1], [x1, y1], atol=1e-9)
    # Adam's first step is lr against the gradient's sign (up to the 1e-7): (-7 + 0.3, 2 - 0.3)
    np.testing.assert_allclose(paths["Adam"][1], [-6.7, 1.7], atol=1e-6)


def test_thirty_steps_follow_the_books_rules():
    result = optimizer_paths()
    expected = book_paths(30)
    assert list(result["paths"]) == ["SGD", "Momentum", "AdaGrad", "Adam"]
    for name, points in expected.items():
        assert result["paths"][name].shape == (31, 2)
        # the only difference: our gradient is a central difference (exact for a quadratic, up to rounding)
        np.testing.assert_allclose(result["paths"][name], points, rtol=0, atol=1e-7, err_msg=name)
        x, y = points[-1]
        assert result["values"][name][-1] == pytest.approx(x * x / 20 + y * y, abs=1e-7)
        assert result["final_distance"][name] == pytest.approx(math.hypot(x, y), abs=1e-7)
    assert result["config"]["optimizers"]["SGD"] == {"optimizer": "sgd", "lr": 0.95}
    assert {name: spec[1]["lr"] for name, spec in BOOK_PATH_OPTIMIZERS.items()} == \
        {"SGD": 0.95, "Momentum": 0.1, "AdaGrad": 1.5, "Adam": 0.3}


def test_another_function_and_optimizer():
    def bowl(p):
        return (p["x"] - 1.0) ** 2 + (p["y"] + 2.0) ** 2   # minimum at (1, -2); gradient 2 (x - 1), 2 (y + 2)

    result = optimizer_paths(start=(0.0, 0.0), steps=3, optimizers={"N": ("nesterov", {"lr": 0.1})}, function=bowl)
    # Nesterov (arXiv 1212.0901): p += 0.81 v - 0.19 g, then v = 0.9 v - 0.1 g; g0 = (-2, 4)
    np.testing.assert_allclose(result["paths"]["N"][1], [0.38, -0.76], atol=1e-8)
    assert result["config"]["function"] == "bowl"


@pytest.mark.parametrize("kwargs, message", [({"steps": 0}, "steps must be a positive integer"),
                                             ({"start": (1.0,)}, "start must be two finite numbers"),
                                             ({"start": (np.nan, 1.0)}, "start must be two finite numbers"),
                                             ({"optimizers": {"X": ("lion", {})}}, "unknown optimizer 'lion'")])
def test_bad_input_is_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        optimizer_paths(**kwargs)


def test_plot_has_a_panel_per_optimizer(tmp_path):
    pytest.importorskip("matplotlib")
    from minigrad_nets import plotting
    path = tmp_path / "paths.png"
    fig = plotting.plot_optimizer_paths(optimizer_paths(steps=4), path)
    assert [ax.get_title() for ax in fig.axes] == ["SGD (lr 0.95)", "Momentum (lr 0.1)", "AdaGrad (lr 1.5)",
                                                   "Adam (lr 0.3)"]
    line = fig.axes[0].lines[0]
    np.testing.assert_allclose(line.get_xdata()[:2], [-7, -6.335], atol=1e-9)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
