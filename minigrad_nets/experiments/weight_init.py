"""The book's weight-initialisation comparison: a 5-layer ReLU network trained from std 0.01, Xavier and He weights."""
from .. import optimizers
from ..gradients import TRAINING_METHOD
from ..network import mlp
from .loss_curves import num_features, train_loss_curves

# the book's three initialisations (name -> minigrad_nets.initializers spec)
BOOK_INITS = {"std=0.01": 0.01, "xavier": "xavier", "he": "he"}


def weight_init_comparison(train_data, test_data=None, *, inits=None, hidden_sizes=(100,) * 4, num_classes=10,
                           batch_size=128, lr=0.01, iterations=2000, report_every=100, seed=0,
                           method=TRAINING_METHOD, dtype="float32", smoothing_window=11, eval_samples=10000,
                           progress=False):
    """Train ``mlp(D, hidden_sizes, num_classes)`` (ReLU) from each initialisation with SGD on the same batches.

    ``train_data`` is ``(x (N, D), t (N,) labels or (N, C) one-hot)``. ``inits``
    maps names to initialiser specs (default: the book's std=0.01 / Xavier /
    He); every network starts from the same normal draws, scaled per init, and
    sees the same minibatches. Returns the data of ``train_loss_curves`` (final
    accuracies on the first ``eval_samples`` images of each set) plus
    ``config``. The book: batch 128, SGD lr 0.01, 2,000 iterations.
    """
    inits = dict(BOOK_INITS if inits is None else inits)
    features = num_features(train_data)
    runs = {}
    for name, spec in inits.items():
        net = mlp(features, list(hidden_sizes), num_classes, activation="relu", init=spec, dtype=dtype)
        runs[name] = (net, net.init(seed), optimizers.sgd(lr=lr))
    result = train_loss_curves(runs, train_data, test_data, iterations=iterations, batch_size=batch_size,
                               seed=seed, method=method, report_every=report_every,
                               smoothing_window=smoothing_window, eval_samples=eval_samples, progress=progress)
    result["config"] = {
        "experiment": "weight-init", "inits": {k: str(v) for k, v in inits.items()},
        "layers": [features, *hidden_sizes, num_classes], "activation": "relu", "optimizer": f"sgd(lr={lr:g})",
        "batch_size": batch_size, "iterations": iterations, "seed": seed, "method": method, "dtype": str(dtype),
        "num_train": len(train_data[0]), "smoothing_window": smoothing_window,
        "eval_samples": eval_samples}
    return result
