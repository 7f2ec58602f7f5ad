"""The book's hyperparameter_optimization.py: a random search over learning rate and weight decay.

Trials are independent, so they run in parallel: on the cores of this machine
(a process pool, one BLAS thread per worker) or on any
``concurrent.futures.Executor`` the caller passes, for instance a Dask
cluster's ``Client.get_executor()``. The draws are made up front from one seed,
so the results do not depend on how many workers ran them or in what order.
"""
import concurrent.futures
import math
import multiprocessing
import os
import sys
import time

import numpy as np

from ..datasets import split
from ..gradients import TRAINING_METHOD
from .loss_curves import num_features

BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def draw_trials(trials, lr_range=(-6.0, -2.0), weight_decay_range=(-8.0, -4.0), seed=0):
    """``trials`` pairs (lr, weight decay) = (10^U(lr_range), 10^U(weight_decay_range)), from one seeded generator.

    Returns two float arrays (trials,). The book: lr = 10^U(-6, -2), weight decay = 10^U(-8, -4).
    """
    trials = _positive_int(trials, "trials")
    for name, (low, high) in (("lr_range", lr_range), ("weight_decay_range", weight_decay_range)):
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"{name} must be two finite exponents (low, high) with low < high, got {(low, high)}")
    rng = np.random.default_rng(seed)
    lr = 10.0 ** rng.uniform(lr_range[0], lr_range[1], size=trials)
    weight_decay = 10.0 ** rng.uniform(weight_decay_range[0], weight_decay_range[1], size=trials)
    return lr, weight_decay


def one_blas_thread():
    """Make this (worker) process use one BLAS thread: the environment for a BLAS not yet loaded, and
    threadpoolctl (when installed) for one that is; ``fit``'s own thread policy is pinned to 1 with it."""
    for name in BLAS_THREAD_VARIABLES:
        os.environ[name] = "1"
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    os.environ["MINIGRAD_NETS_THREADS"] = "1"  # fit's 'auto' policy would otherwise raise it again
    threadpool_limits(limits=1, user_api="blas")


def run_trial(task):
    """Train one trial's network (a dict from ``hyperparameter_search``); returns its curves as plain data.

    Module-level so that process pools and cluster executors can pickle it.
    """
    one_blas_thread()
    from .. import optimizers
    from ..network import mlp
    from ..training import NonFiniteLossError, fit

    started = time.perf_counter()
    net = mlp(task["features"], list(task["hidden_sizes"]), task["num_classes"], activation="relu", init="he",
              weight_decay=task["weight_decay"], dtype=task["dtype"])
    accuracies = {"train": [], "val": []}

    def log(record):
        accuracies["train"].append(record["train_acc"])
        accuracies["val"].append(record["test_acc"])

    diverged = None
    try:
        fit(net, net.init(task["seed"]), optimizers.sgd(lr=task["lr"]), task["train"], test_data=task["val"],
            epochs=task["epochs"], batch_size=task["batch_size"], seed=task["seed"], method=task["method"],
            progress=False, log=log)
    except NonFiniteLossError as err:  # recorded, not raised: one bad draw must not end the search
        diverged = err.iteration
    missing = task["epochs"] + 1 - len(accuracies["val"])
    return {"trial": task["trial"], "lr": task["lr"], "weight_decay": task["weight_decay"], "seed": task["seed"],
            "val_acc": np.array(accuracies["val"] + [np.nan] * missing),
            "train_acc": np.array(accuracies["train"] + [np.nan] * missing),
            "diverged_at": diverged, "seconds": time.perf_counter() - started}


def pool_context():
    """The start method of the worker pool: 'fork' on Linux (works from any script, no ``__main__`` guard
    needed, as the book's scripts have none), else 'spawn' (call the search under ``if __name__ == '__main__':``)."""
    if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def default_jobs():
    """The cores this process may run on (its CPU affinity where the OS tells it, else ``os.cpu_count()``)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def hyperparameter_search(train_data, *, trials=100, num_train=500, validation_fraction=0.2,
                          hidden_sizes=(100,) * 6, num_classes=10, epochs=50, batch_size=100,
                          lr_range=(-6.0, -2.0), weight_decay_range=(-8.0, -4.0), seed=0, jobs=None,
                          executor=None, method=TRAINING_METHOD, dtype="float32", top=20, on_trial=None):
    """Random search of SGD's learning rate and the weight decay of a ReLU MLP, scored on held-out images.

    The first ``num_train`` images of ``train_data`` are split by
    ``datasets.split(x, t, validation_fraction, seed)``; each trial trains
    ``mlp(D, hidden_sizes, num_classes)`` (ReLU, He) with SGD at its drawn lr and
    weight decay (``draw_trials``) for ``epochs`` epochs of ``batch_size``, and
    measures accuracy on the training part and the validation part before
    training and after each epoch (``epochs + 1`` points; the book's Trainer
    measures after its first step, then once an epoch). Trials run on
    ``executor`` (any ``concurrent.futures.Executor``: its ``submit`` is all
    that is used) or, without one, on a process pool of ``jobs`` workers
    (default: all cores; ``jobs=1`` runs here, in this process), each with one
    BLAS thread. ``on_trial(result, done, total)`` is called as each trial ends.

    Returns ``trials`` (a list, by trial number, of {trial, lr, weight_decay,
    seed, val_acc, train_acc (epochs + 1,), final_val, final_train,
    diverged_at, seconds}), ``ranking`` (trial numbers, best final validation
    accuracy first, diverged trials last), ``best`` (the first ``top`` of them),
    ``best_ranges`` (lr and weight decay min / max over the best
    ``min(top, 5)``), ``wall_seconds``, ``epoch`` and ``config``. The book: 100
    trials, 500 images, 20% validation, 6 x 100 hidden, 50 epochs, batch 100.
    """
    features = num_features(train_data)
    x, t = train_data
    if isinstance(num_train, bool) or not isinstance(num_train, (int, np.integer)) or not 1 < num_train <= len(x):
        raise ValueError(f"num_train must be an integer in [2, {len(x)}], got {num_train!r}")
    epochs, batch_size = _positive_int(epochs, "epochs"), _positive_int(batch_size, "batch_size")
    top = _positive_int(top, "top")
    if executor is not None and not callable(getattr(executor, "submit", None)):
        raise TypeError(f"executor must be a concurrent.futures.Executor (with submit), got {type(executor).__name__}")
    jobs = default_jobs() if jobs is None else _positive_int(jobs, "jobs")
    train, val = split(x[:num_train], t[:num_train], validation_fraction, seed)
    lrs, decays = draw_trials(trials, lr_range, weight_decay_range, seed)
    trial_seeds = np.random.default_rng([seed, 1]).integers(0, 2 ** 31, size=len(lrs))
    tasks = [{"trial": i, "lr": float(lr), "weight_decay": float(wd), "seed": int(s), "train": train, "val": val,
              "features": features, "hidden_sizes": tuple(hidden_sizes), "num_classes": num_classes,
              "epochs": epochs, "batch_size": batch_size, "method": method, "dtype": str(dtype)}
             for i, (lr, wd, s) in enumerate(zip(lrs, decays, trial_seeds))]
    started = time.perf_counter()
    results = _run_all(tasks, executor, jobs, on_trial)
    wall = time.perf_counter() - started
    for r in results:
        r["final_val"] = float(r["val_acc"][-1]) if r["diverged_at"] is None else float("nan")
        r["final_train"] = float(r["train_acc"][-1]) if r["diverged_at"] is None else float("nan")
    ranking = sorted(range(len(results)), key=lambda i: (math.isnan(results[i]["final_val"]),
                                                         -np.nan_to_num(results[i]["final_val"], nan=-1.0), i))
    leaders = [results[i] for i in ranking[:min(top, 5)] if not math.isnan(results[i]["final_val"])]
    best_ranges = {key: [min(r[key] for r in leaders), max(r[key] for r in leaders)] if leaders else None
                   for key in ("lr", "weight_decay")}
    return {
        "trials": results, "ranking": ranking, "best": ranking[:top], "best_ranges": best_ranges,
        "wall_seconds": wall, "epoch": np.arange(epochs + 1),
        "config": {"experiment": "hyperparameter-search", "trials": len(results), "num_train": int(num_train),
                   "validation_fraction": float(validation_fraction), "train_images": len(train[0]),
                   "validation_images": len(val[0]), "layers": [features, *hidden_sizes, num_classes],
                   "activation": "relu", "init": "he", "optimizer": "sgd", "epochs": epochs,
                   "batch_size": batch_size, "lr_range": [10.0 ** lr_range[0], 10.0 ** lr_range[1]],
                   "weight_decay_range": [10.0 ** weight_decay_range[0], 10.0 ** weight_decay_range[1]],
                   "sampling": "log-uniform", "seed": seed, "method": method, "dtype": str(dtype),
                   "jobs": None if executor is not None else jobs,
                   "executor": type(executor).__name__ if executor is not None else
                   ("in-process" if jobs == 1 else f"ProcessPoolExecutor ({pool_context().get_start_method()})"),
                   "accuracy": "training / validation images, before training and after each epoch"},
    }


def _run_all(tasks, executor, jobs, on_trial):
    """Every task's result, in task order, run on ``executor`` / a pool of ``jobs`` / here."""
    results = [None] * len(tasks)

    def finished(result):
        results[result["trial"]] = result
        if on_trial is not None:
            on_trial(result, sum(r is not None for r in results), len(tasks))

    if executor is None and jobs == 1:
        for task in tasks:
            finished(_run_here(task))
        return results
    if executor is not None:
        _collect([executor.submit(run_trial, task) for task in tasks], finished)
        return results
    # workers set one BLAS thread as they start (threadpoolctl) and inherit the variables (a spawned worker's BLAS)
    with _environment({name: "1" for name in BLAS_THREAD_VARIABLES}), concurrent.futures.ProcessPoolExecutor(
            max_workers=min(jobs, len(tasks)), mp_context=pool_context(), initializer=one_blas_thread) as pool:
        _collect([pool.submit(run_trial, task) for task in tasks], finished)
    return results


def _collect(futures, finished):
    """Call ``finished(result)`` for each future as it completes; cancel the rest on an error or Ctrl-C."""
    try:
        if all(isinstance(f, concurrent.futures.Future) for f in futures):
            for future in concurrent.futures.as_completed(futures):
                finished(future.result())
        else:  # an executor whose futures are its own kind: wait for them in order
            for future in futures:
                finished(future.result())
    except BaseException:
        for future in futures:
            future.cancel()
        raise


class _environment:
    """Within: the given environment variables set; afterwards, as they were."""

    def __init__(self, values):
        self.values, self.saved = values, {}

    def __enter__(self):
        self.saved = {name: os.environ.get(name) for name in self.values}
        os.environ.update(self.values)

    def __exit__(self, *exc):
        for name, value in self.saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _run_here(task):
    """``run_trial`` in this process, leaving this process's BLAS threads and environment as they were."""
    try:
        from threadpoolctl import threadpool_limits
        limits = threadpool_limits(limits=None)  # remembers the current counts, restored on exit
    except ImportError:
        limits = None
    try:
        with _environment({name: os.environ.get(name, "") for name in (*BLAS_THREAD_VARIABLES,
                                                                        "MINIGRAD_NETS_THREADS")}):
            return run_trial(task)
    finally:
        if limits is not None:
            limits.restore_original_limits()


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
