"""The book's overfitting experiment: a 7-layer network on 300 images, plain vs weight decay vs dropout."""
import numpy as np

from .. import optimizers
from ..gradients import TRAINING_METHOD
from ..network import mlp
from ..training import fit
from .loss_curves import num_features

# name -> mlp keyword arguments: the book's λ = 0.1 and its dropout ratio 0.2 (ch06/overfit_dropout.py)
BOOK_VARIANTS = {"plain": {}, "weight decay": {"weight_decay": 0.1}, "dropout": {"dropout": 0.2}}


def overfitting_comparison(train_data, test_data, *, num_train=300, variants=None, hidden_sizes=(100,) * 6,
                           num_classes=10, init="he", batch_size=100, lr=0.01, epochs=200, seed=0,
                           method=TRAINING_METHOD, dtype="float32", progress=False):
    """Train accuracy vs test accuracy per epoch, for each regularisation variant, on the first ``num_train`` images.

    Each variant is ``mlp(D, hidden_sizes, num_classes, init=init, **kwargs)``
    (ReLU) trained with SGD from the same initial draws on the same minibatch
    sequence; ``variants`` maps names to mlp keyword arguments (default
    ``BOOK_VARIANTS``). Accuracies are measured on all ``num_train`` training
    images and all of ``test_data`` (dropout off), before training (epoch 0)
    and after each epoch. The book's ``max_epochs = 201`` counts those 201
    measurements, i.e. 200 epochs of training (batch 100, SGD lr 0.01).
    Returns ``epoch`` (epochs + 1,), per variant ``train_acc`` and ``test_acc``
    (epochs + 1,), ``loss`` (iterations,), ``final`` {variant: {train, test,
    gap}}, and ``config``.
    """
    variants = dict(BOOK_VARIANTS if variants is None else variants)
    features = num_features(train_data)
    x, t = train_data
    if not isinstance(num_train, (int, np.integer)) or isinstance(num_train, bool) or not 0 < num_train <= len(x):
        raise ValueError(f"num_train must be an integer in [1, {len(x)}], got {num_train!r}")
    train = (x[:num_train], t[:num_train])
    out = {"epoch": np.arange(epochs + 1), "train_acc": {}, "test_acc": {}, "final": {}, "loss": {}}
    for name, options in variants.items():
        net = mlp(features, list(hidden_sizes), num_classes, activation="relu", init=init, dtype=dtype, **options)
        params = net.init(seed)
        result = fit(net, params, optimizers.sgd(lr=lr), train, test_data=test_data, epochs=epochs,
                     batch_size=batch_size, seed=seed, method=method, progress=progress)
        history = result.history
        if len(history["train_acc"]) != epochs + 1 or len(history["test_acc"]) != epochs + 1:
            raise RuntimeError(f"fit recorded {len(history['train_acc'])} evaluations for {epochs} epochs; "
                               f"expected one before training and one after each epoch")
        out["train_acc"][name] = history["train_acc"]
        out["test_acc"][name] = history["test_acc"]
        out["loss"][name] = history["loss"]
        out["final"][name] = {"train": float(history["train_acc"][-1]), "test": float(history["test_acc"][-1]),
                              "gap": float(history["train_acc"][-1] - history["test_acc"][-1])}
    out["config"] = {
        "experiment": "overfitting", "variants": variants, "num_train": int(num_train),
        "num_test": len(test_data[0]), "layers": [features, *hidden_sizes, num_classes], "activation": "relu",
        "init": str(init), "optimizer": f"sgd(lr={lr:g})", "batch_size": batch_size, "epochs": epochs,
        "seed": seed, "method": method, "dtype": str(dtype)}
    return out

