"""The book's optimizer_compare_naive.py: four optimizers descending f(x, y) = x²/20 + y² from (-7, 2).

The function is not a network: its gradient comes from ``numerical_grad``
(central differences of any pure scalar function of a pytree), and each step
goes through the same ``(init, update)`` optimizers that train the networks.
"""
import numpy as np

from .. import optimizers as optim
from ..gradients.numerical import numerical_grad

# name -> (minigrad_nets.optimizers name, hyperparameters): the book's learning rates for this function
BOOK_PATH_OPTIMIZERS = {
    "SGD": ("sgd", {"lr": 0.95}),
    "Momentum": ("momentum", {"lr": 0.1}),
    "AdaGrad": ("adagrad", {"lr": 1.5}),
    "Adam": ("adam", {"lr": 0.3}),
}
BOOK_START = (-7.0, 2.0)


def book_function(params):
    """The book's f(x, y) = x²/20 + y² of a pytree {'x': ..., 'y': ...}: elongated along x, minimum at (0, 0)."""
    return params["x"] ** 2 / 20.0 + params["y"] ** 2


def optimizer_paths(*, start=BOOK_START, steps=30, optimizers=None, function=book_function):
    """The points each optimizer visits minimising ``function`` from ``start``, one gradient step at a time.

    ``optimizers`` maps names to ``(optimizer name, hyperparameter dict)``
    (default ``BOOK_PATH_OPTIMIZERS``). ``function`` takes ``{'x': 0-d array,
    'y': 0-d array}`` and returns a scalar; its gradient is ``numerical_grad``'s.
    Returns ``paths`` {name: (steps + 1, 2) array: the start, then the point
    after each step}, ``values`` {name: (steps + 1,) function values},
    ``final_distance`` {name: distance of the last point from (0, 0)} and
    ``config``. The book draws the first 30 points (the start and 29 steps).
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    start = np.asarray(start, dtype=np.float64)
    if start.shape != (2,) or not np.all(np.isfinite(start)):
        raise ValueError(f"start must be two finite numbers (x, y), got {start.tolist()}")
    specs = dict(BOOK_PATH_OPTIMIZERS if optimizers is None else optimizers)
    paths, values = {}, {}
    for name, (opt_name, hyper) in specs.items():
        opt = optim.get(opt_name, **hyper)
        params = {"x": np.array(start[0]), "y": np.array(start[1])}
        state = opt.init(params)
        points = [start.copy()]
        for _ in range(int(steps)):
            params, state = opt.update(params, numerical_grad(function, params), state)
            points.append(np.array([params["x"], params["y"]], dtype=np.float64))
        paths[name] = np.stack(points)
        values[name] = np.array([float(function({"x": p[0], "y": p[1]})) for p in paths[name]])
    return {
        "paths": paths, "values": values,
        "final_distance": {name: float(np.hypot(*path[-1])) for name, path in paths.items()},
        "config": {"experiment": "optimizer-paths",
                   "function": "x**2 / 20 + y**2" if function is book_function else getattr(function, "__name__", "f"),
                   "start": start.tolist(), "steps": int(steps), "gradient": "numerical_grad (central differences)",
                   "optimizers": {name: {"optimizer": o, **h} for name, (o, h) in specs.items()}},
    }
