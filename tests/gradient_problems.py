"""Small gradient problems shared by the tests of the backprop and fused paths."""
import numpy as np

import minigrad_nets as mg


def norm_rel(a, b):
    """‖a − b‖ / max(‖a‖, ‖b‖), and 0 / 1 for two zero / one zero array."""
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    return np.linalg.norm(a - b) / scale if scale else float(np.any(a != b))


def problem(hidden, activation="relu", weight_decay=0.0, dropout=0.0, dtype="float64", seed=0, batch=9):
    """A 7-input, 4-class mlp with its params, a batch x (batch, 7) and labels (batch,)."""
    net = mg.mlp(7, hidden, 4, activation=activation, init="xavier", weight_decay=weight_decay,
                 dropout=dropout, dtype=dtype)
    rng = np.random.default_rng(seed)
    return net, net.init(seed), rng.random((batch, 7)).astype(dtype), rng.integers(0, 4, size=batch)
