"""The book's optimizer comparison on MNIST: SGD, Momentum, AdaGrad and Adam training the same 5-layer ReLU network."""
from .. import optimizers as optim
from ..gradients import TRAINING_METHOD
from ..network import mlp
from .loss_curves import num_features, train_loss_curves

# name -> (minigrad_nets.optimizers name, hyperparameters): the book's learning rates
BOOK_OPTIMIZERS = {
    "SGD": ("sgd", {"lr": 0.01}),
    "Momentum": ("momentum", {"lr": 0.01, "momentum": 0.9}),
    "AdaGrad": ("adagrad", {"lr": 0.01}),
    "Adam": ("adam", {"lr": 0.001, "beta1": 0.9, "beta2": 0.999}),
}


def optimizer_comparison(train_data, test_data=None, *, optimizers=None, hidden_sizes=(100,) * 4, num_classes=10,
                         init="he", batch_size=128, iterations=2000, report_every=100, seed=0,
                         method=TRAINING_METHOD, dtype="float32", smoothing_window=11, eval_samples=10000,
                         progress=False):
    """Train ``mlp(D, hidden_sizes, num_classes)`` (ReLU, He) with each optimizer, same start, same batches.

    ``optimizers`` maps names to ``(optimizer name, hyperparameter dict)``
    (default ``BOOK_OPTIMIZERS``). Returns the data of ``train_loss_curves``
    (final accuracies on the first ``eval_samples`` images of each set) plus
    ``config``. The book: batch 128, 2,000 iterations.
    """
    specs = dict(BOOK_OPTIMIZERS if optimizers is None else optimizers)
    features = num_features(train_data)
    net = mlp(features, list(hidden_sizes), num_classes, activation="relu", init=init, dtype=dtype)
    params = net.init(seed)
    runs = {name: (net, params, optim.get(opt_name, **hyper)) for name, (opt_name, hyper) in specs.items()}
    result = train_loss_curves(runs, train_data, test_data, iterations=iterations, batch_size=batch_size,
                               seed=seed, method=method, report_every=report_every,
                               smoothing_window=smoothing_window, eval_samples=eval_samples, progress=progress)
    result["config"] = {
        "experiment": "optimizers",
        "optimizers": {name: {"optimizer": opt_name, **hyper} for name, (opt_name, hyper) in specs.items()},
        "layers": [features, *hidden_sizes, num_classes], "activation": "relu", "init": str(init),
        "batch_size": batch_size, "iterations": iterations, "seed": seed, "method": method, "dtype": str(dtype),
        "num_train": len(train_data[0]), "smoothing_window": smoothing_window,
        "eval_samples": eval_samples}
    return result
