"""Train several networks on the same minibatches and collect their loss curves (the book's comparison setup)."""
import numpy as np

from ..training import fit
from .smoothing import smooth_curve


def train_loss_curves(runs, train_data, test_data=None, *, iterations, batch_size, seed, method,
                      report_every=100, smoothing_window=11, eval_samples=10000, progress=False):
    """Loss curves of each ``name -> (net, params, optimizer)`` run, all fed the same minibatch sequence.

    Every run calls ``fit`` with the same ``seed``, so iteration i of every run
    sees the same batch. Returns ``iteration`` (iterations,); per run ``loss``
    and ``smoothed`` (iterations,); the raw loss every ``report_every``-th
    iteration from 0 as ``report_loss`` at ``report_iteration``;
    ``final_smoothed`` (a float per run); and ``train_accuracy`` (and with
    test_data ``test_accuracy``) after training, on the first ``eval_samples``
    examples of each set (None: all).
    """
    iterations = _positive_int(iterations, "iterations")
    report_every = _positive_int(report_every, "report_every")
    out = {"iteration": np.arange(iterations), "report_iteration": np.arange(0, iterations, report_every),
           "loss": {}, "smoothed": {}, "report_loss": {}, "final_smoothed": {}, "train_accuracy": {}}
    if test_data is not None:
        out["test_accuracy"] = {}
    for name, (net, params, optimizer) in runs.items():
        # evaluate only before and after training: accuracy is not what these curves compare
        result = fit(net, params, optimizer, train_data, test_data=test_data, iterations=iterations,
                     batch_size=batch_size, seed=seed, method=method, eval_every=iterations,
                     eval_samples=eval_samples, progress=progress)
        loss = result.history["loss"]
        out["loss"][name] = loss
        out["smoothed"][name] = smooth_curve(loss, window=smoothing_window)
        out["report_loss"][name] = loss[out["report_iteration"]]
        out["final_smoothed"][name] = float(out["smoothed"][name][-1])
        out["train_accuracy"][name] = float(result.history["train_acc"][-1])
        if test_data is not None:
            out["test_accuracy"][name] = float(result.history["test_acc"][-1])
    return out

def num_features(train_data):
    """The number of input features of ``(x, t)``: x must be (N, D)."""
    x = np.asarray(train_data[0]) if isinstance(train_data, (tuple, list)) and len(train_data) == 2 else None
    if x is None or x.ndim != 2:
        shape = None if x is None else x.shape
        raise ValueError("train_data must be a pair (x, t) with x of shape (N, features)"
                         + ("" if shape is None else f"; x has shape {shape} (load MNIST with flatten=True)"))
    return x.shape[1]


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
