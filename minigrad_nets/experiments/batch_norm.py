"""The book's Batch Normalization experiment (ch06/batch_norm_test.py): training accuracy with and without it."""
import numpy as np

from .. import optimizers
from ..gradients import TRAINING_METHOD
from ..network import mlp
from ..training import NonFiniteLossError, fit
from .loss_curves import num_features

BOOK_SCALES = np.logspace(0, -4, num=16)  # the initial weights' standard deviations, 1 down to 1e-4


def batch_norm_comparison(train_data, *, num_train=1000, scales=BOOK_SCALES, hidden_sizes=(100,) * 5,
                          num_classes=10, batch_size=100, lr=0.01, epochs=20, seed=0, method=TRAINING_METHOD,
                          dtype="float32", progress=False):
    """Training accuracy per epoch, with and without BatchNorm, for each initial weight scale.

    For each std in ``scales`` two ReLU nets ``mlp(D, hidden_sizes, num_classes,
    init=std)`` are trained with SGD from the same initial weights on the same
    minibatch sequence of the first ``num_train`` images: one plain, one with
    BatchNorm after each hidden Dense layer (the book's MultiLayerNetExtend).
    Accuracy is measured on all ``num_train`` images in inference mode (the
    running statistics), before training and after each epoch: ``epochs + 1``
    points; the book's 20 measurements start after its first step. A run whose
    loss overflows stops there (the book's plain net does at the largest
    scales): its later accuracies are NaN and ``diverged_at`` holds the
    iteration. Returns ``scales`` (S,), ``epoch`` (epochs + 1,), ``train_acc``
    {'batch_norm' / 'plain': (S, epochs + 1)}, ``final`` {'batch_norm' /
    'plain': (S,)}, ``diverged_at`` {'batch_norm' / 'plain': [iteration or
    None] * S}, ``wins`` (scales where BatchNorm ends at least as accurate, a
    diverged run counting as the least accurate), ``config``.
    """
    features = num_features(train_data)
    x, t = train_data
    if isinstance(num_train, bool) or not isinstance(num_train, (int, np.integer)) or not 0 < num_train <= len(x):
        raise ValueError(f"num_train must be an integer in [1, {len(x)}], got {num_train!r}")
    scales = np.asarray(scales, dtype=np.float64).reshape(-1)
    if scales.size == 0 or not np.all(np.isfinite(scales) & (scales > 0)):
        raise ValueError(f"scales must be positive weight standard deviations, got {scales}")
    train = (x[:num_train], t[:num_train])
    curves = {"batch_norm": [], "plain": []}
    diverged = {"batch_norm": [], "plain": []}
    for std in scales:
        for name in curves:
            net = mlp(features, list(hidden_sizes), num_classes, activation="relu", init=float(std),
                      batch_norm=name == "batch_norm", dtype=dtype)
            accuracies = []
            try:
                fit(net, net.init(seed), optimizers.sgd(lr=lr), train, epochs=epochs, batch_size=batch_size,
                    seed=seed, method=method, progress=progress, log=lambda r: accuracies.append(r["train_acc"]))
                diverged[name].append(None)
            except NonFiniteLossError as err:  # the book's plain net blows up at the largest scales
                diverged[name].append(err.iteration)
            curves[name].append(accuracies + [np.nan] * (epochs + 1 - len(accuracies)))
    train_acc = {name: np.array(rows) for name, rows in curves.items()}
    final = {name: acc[:, -1] for name, acc in train_acc.items()}
    bn_final, plain_final = (np.nan_to_num(final[k], nan=-1.0) for k in ("batch_norm", "plain"))
    return {
        "scales": scales, "epoch": np.arange(epochs + 1), "train_acc": train_acc, "final": final,
        "diverged_at": diverged,
        "wins": int(np.sum(bn_final >= plain_final)),
        "config": {"experiment": "batch-norm", "num_train": int(num_train),
                   "layers": [features, *hidden_sizes, num_classes], "activation": "relu",
                   "optimizer": f"sgd(lr={lr:g})", "batch_size": batch_size, "epochs": epochs, "seed": seed,
                   "method": method, "dtype": str(dtype),
                   "accuracy": "on the training images, inference mode, before training and after each epoch"},
    }
