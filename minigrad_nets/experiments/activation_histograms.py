"""The book's activation histograms: how weight scale shapes the activations of a deep stack.

Random standard-normal inputs go through ``num_layers`` fully connected layers
of ``width`` units (no biases, as in the book) with one activation; the
activations of every layer are histogrammed. With std 1 sigmoid outputs pile up
at 0 and 1 (vanishing gradients); with std 0.01 they crowd around 0.5 (every
unit says the same thing); Xavier keeps sigmoid/tanh spread out and He does the
same for ReLU.
"""
import numpy as np

from .. import initializers
from ..network import ACTIVATIONS

# name -> initialiser spec for minigrad_nets.initializers.get
WEIGHT_INITS = {"std=1": 1.0, "std=0.01": 0.01, "xavier": "xavier", "he": "he"}
# the histogram range per activation: sigmoid's and tanh's output ranges; ReLU as in the book
HISTOGRAM_RANGES = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0), "relu": (0.0, 1.0)}


def layer_activations(x, activation, weight_init, num_layers=5, width=100, seed=0):
    """The activations of each layer: x (N, D) -> array (num_layers, N, width).

    Layer weights are drawn by ``weight_init`` (a std, a name, or a callable
    ``(rng, fan_in, fan_out)``) from a generator seeded with ``seed``.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"inputs must be a non-empty (N, D) array, got shape {x.shape}")
    num_layers, width = _positive_int(num_layers, "num_layers"), _positive_int(width, "width")
    draw = initializers.get(weight_init)
    rng = np.random.default_rng(seed)
    layer = ACTIVATIONS[activation]
    out = np.empty((num_layers, x.shape[0], width))
    z = x
    for i in range(num_layers):
        W = draw(rng, z.shape[1], width)
        out[i] = layer.forward(None, None, z @ W, False, None)[0]
        z = out[i]
    return out


def activation_histograms(num_inputs=1000, input_size=100, num_layers=5, width=100, bins=30,
                          activations=("sigmoid", "tanh", "relu"), weight_inits=tuple(WEIGHT_INITS),
                          seed=0, keep_activations=False):
    """Per-layer activation histograms for every (activation, weight init) pair.

    Returns ``{"config": {...}, "results": {activation: {init: stats}}}`` where
    ``stats`` holds ``counts`` (num_layers, bins) ints over ``edges`` (bins + 1,)
    (the range is the activation's output range, (0, 1) for ReLU as in the book;
    values outside it are not counted), and per-layer ``mean``, ``std`` and
    ``fraction_in_range`` (num_layers,);
    with ``keep_activations`` also ``activations`` (num_layers, num_inputs, width).
    All pairs see the same inputs (standard normal, from ``seed``) and the same
    underlying normal draws for the weights, scaled by each initialiser.
    """
    num_inputs = _positive_int(num_inputs, "num_inputs")
    input_size = _positive_int(input_size, "input_size")
    bins = _positive_int(bins, "bins")
    unknown = [name for name in weight_inits if name not in WEIGHT_INITS]
    if unknown:
        raise ValueError(f"unknown weight init {unknown[0]!r}; choose from {list(WEIGHT_INITS)}")
    x = np.random.default_rng(seed).standard_normal((num_inputs, input_size))
    results = {}
    for activation in activations:
        results[activation] = {}
        lo, hi = HISTOGRAM_RANGES.get(activation, (0.0, 1.0))
        edges = np.linspace(lo, hi, bins + 1)
        for name in weight_inits:
            acts = layer_activations(x, activation, WEIGHT_INITS[name], num_layers, width, seed + 1)
            flat = acts.reshape(num_layers, -1)
            stats = {
                "counts": np.stack([np.histogram(a, edges)[0] for a in flat]),
                "edges": edges,
                "mean": flat.mean(axis=1),
                "std": flat.std(axis=1),
                "fraction_in_range": ((flat >= lo) & (flat <= hi)).mean(axis=1),
            }
            if keep_activations:
                stats["activations"] = acts
            results[activation][name] = stats
    config = {"num_inputs": num_inputs, "input_size": input_size, "num_layers": num_layers, "width": width,
              "bins": bins, "seed": seed, "activations": list(activations), "weight_inits": list(weight_inits)}
    return {"config": config, "results": results}


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
