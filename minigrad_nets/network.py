"""Networks: a layer stack plus softmax cross-entropy and weight decay, as pure functions of params."""
import numbers
from dataclasses import dataclass, field

import autograd.numpy as anp
import numpy as np
from autograd.tracer import getval

from . import functions
from .checks import all_finite, as_float_array, labels_or_targets
from .layers import Dense, Dropout, Relu, Sigmoid, Tanh, serial
from .tree import check_same_structure, tree_leaves_with_keys, tree_leaves_with_paths, tree_unflatten

ACTIVATIONS = {"relu": Relu, "sigmoid": Sigmoid, "tanh": Tanh}


@dataclass(frozen=True)
class Network:
    """A classifier: ``layers`` in series over inputs of ``input_size`` features, with weight decay λ.

    Every method is a pure function of its arguments: the network holds only
    hyperparameters, never parameters or random state. ``model`` is
    ``serial(*layers)``; ``params[i]`` belongs to the i-th layer that has params.
    """
    layers: tuple
    input_size: int
    output_size: int
    weight_decay: float = 0.0
    dtype: np.dtype = np.dtype(np.float64)
    model: object = field(init=False, repr=False, compare=False)
    _template: list = field(init=False, repr=False, compare=False)
    _leaf_shapes: list = field(init=False, repr=False, compare=False)
    _layer_shapes: list = field(init=False, repr=False, compare=False)
    weight_keys: list = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if isinstance(self.weight_decay, bool) or not isinstance(self.weight_decay, numbers.Real):
            raise TypeError(f"weight_decay must be a number, got {self.weight_decay!r}")
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "model", serial(*self.layers))
        if not (np.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be a finite number >= 0, got {self.weight_decay}")
        object.__setattr__(self, "dtype", np.dtype(self.dtype))
        if self.dtype.kind != "f":
            raise TypeError(f"network dtype must be a float type, got {self.dtype}")
        out_shape, template = self.model.init(np.random.default_rng(0), (-1, self.input_size), self.dtype)
        if out_shape[-1] != self.output_size:
            raise ValueError(f"model outputs {out_shape[-1]} values, network declares {self.output_size}")
        object.__setattr__(self, "_template", template)
        object.__setattr__(self, "_leaf_shapes", [(path, leaf.shape) for path, leaf in tree_leaves_with_paths(template)])
        # For the fast params check: per layer, {name: shape} when its params are one flat dict (else None).
        object.__setattr__(self, "_layer_shapes", [
            {k: v.shape for k, v in p.items()} if type(p) is dict and all(type(v) is np.ndarray for v in p.values())
            else None for p in template])
        # weight_keys: where the weight matrices sit (leaves named 'W', at any depth); only they are decayed.
        object.__setattr__(self, "weight_keys", [keys for keys, _ in tree_leaves_with_keys(template) if keys[-1] == "W"])

    # ------------------------------------------------------------ params

    def init(self, rng=0):
        """Fresh params from a seed or ``np.random.Generator``: a list of {'W', 'b'} dicts, one per Dense layer."""
        if not isinstance(rng, np.random.Generator):
            if isinstance(rng, bool) or not isinstance(rng, (int, np.integer)) or rng < 0:
                raise TypeError(f"init takes a non-negative int seed or a numpy Generator, got {rng!r}")
            rng = np.random.default_rng(rng)
        return self.model.init(rng, (-1, self.input_size), self.dtype)[1]

    def param_shapes(self):
        """``[(path, shape), ...]`` for every leaf of this network's params."""
        return list(self._leaf_shapes)

    def check_params(self, params):
        """Raise TypeError / ValueError naming the first leaf whose structure, shape or dtype is wrong."""
        params = getval(params)  # under autograd the containers themselves are boxed
        if self._params_look_right(params):
            return
        check_same_structure(self._template, params, "the network's params", "params")
        for (path, want), (_, value) in zip(self._leaf_shapes, tree_leaves_with_paths(params)):
            dtype = getattr(value, "dtype", None)
            if dtype is None or np.dtype(dtype).kind != "f":
                raise TypeError(f"params{path} must be a float array, got {type(value).__name__}"
                                + (f" of dtype {dtype}" if dtype is not None else ""))
            if dtype != self.dtype:
                raise TypeError(f"params{path} has dtype {dtype}, but this network computes in {self.dtype}: "
                                f"make params with its init, or the network with dtype='{dtype}'")
            if np.shape(value) != want:
                raise ValueError(f"params{path} has shape {np.shape(value)}; this network expects {want}")

    def _params_look_right(self, params):
        """The common case, checked fast (a step calls this): the template's list of flat dicts of float arrays."""
        if type(params) is not list or len(params) != len(self._layer_shapes):
            return False
        for layer, want in zip(params, self._layer_shapes):
            if want is None or type(layer) is not dict or len(layer) != len(want):
                return False
            for k, shape in want.items():
                value = layer.get(k)
                if type(value) is not np.ndarray or value.dtype != self.dtype or value.shape != shape:
                    return False
        return True

    # ------------------------------------------------------------ inputs

    def check_input(self, x):
        """``x`` as a (B, input_size) array of the network's dtype; also whether it was a single sample."""
        x = as_float_array(x, "x")
        shape = np.shape(getval(x))
        single = len(shape) == 1
        if len(shape) not in (1, 2) or shape[-1] != self.input_size:
            first = self.layers[0].name
            while first.startswith("serial("):
                first = first[len("serial("):].split(", ")[0]
            raise ValueError(
                f"input x has shape {shape}, but the first layer ({first}) expects "
                f"{self.input_size} features: shape (batch, {self.input_size}) or ({self.input_size},)")
        xv = getval(x)
        if not all_finite(xv):
            where = np.argwhere(~np.isfinite(np.reshape(xv, (-1, shape[-1]))))[0]
            value = np.reshape(xv, (-1, shape[-1]))[tuple(where)]
            raise ValueError(f"input x contains {value} at row {where[0]}, column {where[1]}: inputs must be finite")
        if not hasattr(x, "_value") and x.dtype != self.dtype:
            x = x.astype(self.dtype)
        return (anp.reshape(x, (1, -1)) if single else x), single

    def check_batch(self, params, x, t):
        """Check params and x; a single sample (input_size,) with its label becomes a batch of one: -> (x (B, n), t)."""
        self.check_params(params)
        x, single = self.check_input(x)
        if single:
            t = np.asarray(getval(t))
            if t.ndim == 0 or (t.ndim == 1 and t.dtype.kind == "f"):  # a label, or a one-hot row
                t = t[None]
        return x, t

    # ------------------------------------------------------------ functions of params

    def apply(self, params, x, key=None):
        """Logits: x (B, input_size) -> (B, output_size), or (input_size,) -> (output_size,).

        ``key`` (a seed) switches dropout on; ``None`` is inference.
        """
        self.check_params(params)
        x, single = self.check_input(x)
        logits = self.model.apply(params, x, key)
        return logits[0] if single else logits

    def predict(self, params, x):
        """Predicted class indices: (B, input_size) -> (B,) ints."""
        return np.argmax(getval(self.apply(params, x)), axis=-1)

    def accuracy(self, params, x, t):
        """Fraction of rows of x whose predicted class matches labels or one-hot targets t."""
        pred = self.predict(params, x)
        kind, t = labels_or_targets(t, pred.shape, self.output_size)
        if kind == "targets":
            t = np.argmax(t, axis=-1)
        return float(np.mean(pred == t))

    def weight_penalty(self, params):
        """½λ Σ ‖W‖² over the weight matrices only (biases are not decayed)."""
        if self.weight_decay == 0:
            return 0.0
        total = 0.0
        for keys in self.weight_keys:  # indexing works on autograd's boxed containers too
            w = params
            for k in keys:
                w = w[k]
            total = total + anp.sum(w ** 2)
        return 0.5 * self.weight_decay * total

    def add_weight_decay_grad(self, grads, params):
        """``grads`` with the weight penalty's gradient λW added to every weight leaf (a new tree)."""
        if self.weight_decay == 0:
            return grads
        weights = set(self.weight_keys)
        lam = self.weight_decay
        leaves = [g + lam * p if keys in weights else g
                  for (keys, g), (_, p) in zip(tree_leaves_with_keys(grads), tree_leaves_with_keys(params))]
        return tree_unflatten(grads, leaves)

    def loss(self, params, x, t, key=None):
        """Mean softmax cross-entropy of apply(params, x) against t, plus ½λΣ‖W‖²: a scalar."""
        x, t = self.check_batch(params, x, t)
        return self.batch_loss(params, x, t, key)

    def batch_loss(self, params, x, t, key=None):
        """``loss`` without the checks, for a batch that ``check_batch`` has already passed."""
        return functions.cross_entropy(self.model.apply(params, x, key), t) + self.weight_penalty(params)


def mlp(input_size, hidden_sizes, output_size, activation="relu", init="he",
        weight_decay=0.0, dropout=0.0, dtype="float64"):
    """A multi-layer perceptron: Dense -> activation [-> Dropout] for each hidden size, then Dense.

    ``mlp(784, [50], 10, activation='sigmoid', init=0.01)`` is the book's
    TwoLayerNet; ``mlp(784, [100] * 4, 10)`` its MultiLayerNet (He, ReLU).
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
    sizes = [input_size, *hidden_sizes, output_size]
    if not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in sizes):
        raise TypeError(f"layer sizes must be integers, got {sizes}")
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real):
        raise TypeError(f"dropout must be a number (the probability of dropping), got {dropout!r}")
    sizes = [int(n) for n in sizes]
    if min(sizes) < 1:
        raise ValueError(f"layer sizes must be positive, got {sizes}")
    layers = []
    for width in sizes[1:-1]:
        layers += [Dense(width, init), ACTIVATIONS[activation]]
        if dropout:
            layers.append(Dropout(dropout))
    layers.append(Dense(sizes[-1], init))
    return Network(tuple(layers), sizes[0], sizes[-1], float(weight_decay), np.dtype(dtype))
