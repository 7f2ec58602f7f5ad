"""hyperparameter_search: the book's random search, its draws, its split, its ranking, and its parallel runs."""
import concurrent.futures
import importlib
import math

import numpy as np
import pytest

import minigrad_nets as mg
from minigrad_nets.experiments import draw_trials, hyperparameter_search

search_module = importlib.import_module("minigrad_nets.experiments.hyperparameter_search")  # the function shadows it


def blobs(n=60, features=6, classes=3, seed=0):
    """Separable-ish data: class c has mean c along every feature."""
    rng = np.random.default_rng(seed)
    t = rng.integers(0, classes, n)
    x = (t[:, None] + 0.3 * rng.standard_normal((n, features))).astype(np.float32)
    return x, t


SMALL = dict(num_train=50, hidden_sizes=(5,), num_classes=3, epochs=3, batch_size=10)


def test_draws_are_log_uniform_in_the_books_ranges_and_seeded():
    lr, wd = draw_trials(2000, seed=1)
    assert lr.shape == wd.shape == (2000,)
    assert 1e-6 <= lr.min() and lr.max() <= 1e-2 and 1e-8 <= wd.min() and wd.max() <= 1e-4
    # log-uniform: each decade of lr holds about a quarter of the draws (binomial sd ≈ 19 of 500)
    counts = np.histogram(np.log10(lr), bins=[-6, -5, -4, -3, -2])[0]
    assert np.all(np.abs(counts - 500) < 100), counts
    again = draw_trials(2000, seed=1)
    np.testing.assert_array_equal(again[0], lr)
    assert not np.array_equal(draw_trials(2000, seed=2)[0], lr)


def test_a_trial_is_the_network_the_docstring_describes():
    x, t = blobs()
    result = hyperparameter_search((x, t), trials=2, seed=4, jobs=1, **SMALL)
    assert result["config"]["train_images"] == 40 and result["config"]["validation_images"] == 10
    trial = result["trials"][1]
    # the same trial rebuilt from the public pieces: the split, the draws, mlp, SGD and fit
    train, val = mg.datasets.split(x[:50], t[:50], 0.2, seed=4)
    lr, wd = draw_trials(2, seed=4)
    assert (trial["lr"], trial["weight_decay"]) == (lr[1], wd[1])
    net = mg.mlp(6, [5], 3, activation="relu", init="he", weight_decay=wd[1], dtype="float32")
    accuracies = []
    mg.fit(net, net.init(trial["seed"]), mg.sgd(lr=lr[1]), train, test_data=val, epochs=3, batch_size=10,
           seed=trial["seed"], progress=False, log=lambda r: accuracies.append(r["test_acc"]))
    np.testing.assert_array_equal(trial["val_acc"], accuracies)
    assert trial["val_acc"].shape == trial["train_acc"].shape == (4,)   # before training, then after each epoch
    # a validation accuracy on 10 images is a multiple of 1/10
    np.testing.assert_allclose(trial["val_acc"] * 10, np.round(trial["val_acc"] * 10), atol=1e-9)


def test_ranking_best_and_ranges():
    x, t = blobs()
    result = hyperparameter_search((x, t), trials=8, lr_range=(-3.0, 0.0), seed=0, jobs=1, top=3, **SMALL)
    finals = [result["trials"][i]["final_val"] for i in result["ranking"]]
    assert finals == sorted(finals, reverse=True) and sorted(result["ranking"]) == list(range(8))
    assert result["best"] == result["ranking"][:3]
    leaders = [result["trials"][i] for i in result["ranking"][:3]]
    assert result["best_ranges"]["lr"] == [min(r["lr"] for r in leaders), max(r["lr"] for r in leaders)]
    assert result["best_ranges"]["weight_decay"] == [min(r["weight_decay"] for r in leaders),
                                                     max(r["weight_decay"] for r in leaders)]
    assert finals[0] > 0.5   # lr up to 1 learns these blobs in 12 steps: the search finds it


def test_a_diverging_trial_is_recorded_and_ranked_last():
    x, t = blobs()
    x = x * 1000.0   # huge inputs: SGD at lr 1e3..1e4 overflows
    result = hyperparameter_search((x, t), trials=2, lr_range=(3.0, 4.0), seed=0, jobs=1, **SMALL)
    assert all(r["diverged_at"] is not None for r in result["trials"])
    assert all(math.isnan(r["final_val"]) for r in result["trials"])
    assert result["best_ranges"] == {"lr": None, "weight_decay": None}


def test_pool_and_executor_give_the_same_results_as_one_job():
    x, t = blobs()
    kwargs = dict(trials=4, seed=2, **SMALL)
    here = hyperparameter_search((x, t), jobs=1, **kwargs)
    pooled = hyperparameter_search((x, t), jobs=2, **kwargs)
    seen = []
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=search_module.pool_context()) as executor:
        given = hyperparameter_search((x, t), executor=executor, on_trial=lambda r, done, total: seen.append(done),
                                      **kwargs)
    assert seen == [1, 2, 3, 4]
    for other in (pooled, given):
        assert other["ranking"] == here["ranking"]
        for a, b in zip(here["trials"], other["trials"]):
            assert (a["trial"], a["lr"], a["weight_decay"]) == (b["trial"], b["lr"], b["weight_decay"])
            np.testing.assert_array_equal(a["val_acc"], b["val_acc"])
            np.testing.assert_array_equal(a["train_acc"], b["train_acc"])
    assert given["config"]["executor"] == "ProcessPoolExecutor" and pooled["config"]["jobs"] == 2


def blas_threads_in_worker():
    """In a pool worker after one_blas_thread: the BLAS thread counts threadpoolctl sees."""
    from threadpoolctl import threadpool_info
    return [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]


def test_each_pool_worker_uses_one_blas_thread():
    pytest.importorskip("threadpoolctl")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=search_module.pool_context(),
                                                initializer=search_module.one_blas_thread) as pool:
        threads = pool.submit(blas_threads_in_worker).result()
    assert threads and set(threads) == {1}


def test_one_job_leaves_this_process_as_it_was():
    import os
    before = {name: os.environ.get(name) for name in ("OPENBLAS_NUM_THREADS", "MINIGRAD_NETS_THREADS")}
    x, t = blobs()
    hyperparameter_search((x, t), trials=1, jobs=1, **SMALL)
    assert {name: os.environ.get(name) for name in before} == before


@pytest.mark.parametrize("kwargs, error, message", [
    ({"trials": 0}, ValueError, "trials must be a positive integer"),
    ({"lr_range": (-2.0, -6.0)}, ValueError, "lr_range must be two finite exponents"),
    ({"num_train": 500}, ValueError, r"num_train must be an integer in \[2, 60\]"),
    ({"executor": "cluster"}, TypeError, "executor must be a concurrent.futures.Executor"),
    ({"jobs": 0}, ValueError, "jobs must be a positive integer"),
    ({"validation_fraction": 1.5}, ValueError, "fraction must be a number in"),
])
def test_bad_input_is_named(kwargs, error, message):
    options = dict(SMALL, trials=1, jobs=1)
    options.update(kwargs)
    with pytest.raises(error, match=message):
        hyperparameter_search(blobs(), **options)


def test_plot_draws_the_best_trials_best_first(tmp_path):
    pytest.importorskip("matplotlib")
    from minigrad_nets import plotting
    x, t = blobs()
    result = hyperparameter_search((x, t), trials=3, lr_range=(-3.0, 0.0), seed=0, jobs=1, **SMALL)
    fig = plotting.plot_hyperparameter_search(result, tmp_path / "search.png")
    assert len(fig.axes) == 3
    best = result["trials"][result["ranking"][0]]
    assert fig.axes[0].get_title().startswith(f"Best-1: val {best['val_acc'][-1]:.2f}")
    np.testing.assert_array_equal(fig.axes[0].lines[0].get_ydata(), best["val_acc"])
    assert (tmp_path / "search.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
