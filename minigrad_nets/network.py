"""Networks: a layer stack plus softmax cross-entropy and weight decay, as pure functions of params."""
import math
import numbers
from dataclasses import dataclass, field

import autograd.numpy as anp
import numpy as np
from autograd.tracer import getval

from . import functions
from .checks import all_finite, as_float_array, labels_or_targets
from .conv import Conv2D, MaxPool2D
from .layers import BatchNorm, Dense, Dropout, Flatten, Relu, Sigmoid, Tanh, serial
from .tree import check_same_structure, tree_leaves_with_keys, tree_leaves_with_paths, tree_map, tree_unflatten

ACTIVATIONS = {"relu": Relu, "sigmoid": Sigmoid, "tanh": Tanh}


@dataclass(frozen=True)
class Network:
    """A classifier: ``layers`` in series over inputs of ``input_shape`` (one example), with weight decay λ.

    Every method is a pure function of its arguments: the network holds only
    hyperparameters, never parameters, state or random state. ``model`` is
    ``serial(*layers)``; ``params[i]`` belongs to the i-th layer that has
    params, ``state[i]`` to the i-th layer that has state (BatchNorm).

    The functions of params take the mode and the state explicitly:
    ``train`` (default False: inference) and ``key`` (the dropout seed, used in
    training) are separate; ``state`` is required when the network has any
    (``init_state()`` to start) and, with ``return_state=True``, the updated
    state comes back beside the result.
    """
    layers: tuple
    input_shape: tuple
    output_size: int
    weight_decay: float = 0.0
    dtype: np.dtype = np.dtype(np.float64)
    model: object = field(init=False, repr=False, compare=False)
    _template: list = field(init=False, repr=False, compare=False)
    _state_template: list = field(init=False, repr=False, compare=False)
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
        shape = (self.input_shape,) if isinstance(self.input_shape, (int, np.integer)) else self.input_shape
        if not isinstance(shape, (tuple, list)) or not shape or not all(
                isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n > 0 for n in shape):
            raise ValueError(f"input_shape must be the shape of one example, positive ints such as (784,) or "
                             f"(1, 28, 28), got {self.input_shape!r}")
        object.__setattr__(self, "input_shape", tuple(int(n) for n in shape))
        out_shape, template, state = self.model.init(np.random.default_rng(0), (-1,) + self.input_shape, self.dtype)
        if tuple(out_shape[1:]) != (self.output_size,):
            raise ValueError(f"model outputs shape {tuple(out_shape[1:])} per example, network declares "
                             f"{self.output_size} classes")
        object.__setattr__(self, "_template", template)
        object.__setattr__(self, "_state_template", state if state is not None else [])
        object.__setattr__(self, "_leaf_shapes", [(path, leaf.shape) for path, leaf in tree_leaves_with_paths(template)])
        # For the fast params check: per layer, {name: shape} when its params are one flat dict (else None).
        object.__setattr__(self, "_layer_shapes", [
            {k: v.shape for k, v in p.items()} if type(p) is dict and all(type(v) is np.ndarray for v in p.values())
            else None for p in template])
        # weight_keys: where the decayed leaves sit, as each layer declares (Dense: 'W'); only they are decayed.
        object.__setattr__(self, "weight_keys", list(self.model.decayed))

    @property
    def input_size(self):
        """Entries per example: the product of ``input_shape``."""
        return math.prod(self.input_shape)

    @property
    def has_state(self):
        """Whether any layer keeps state (BatchNorm's running statistics)."""
        return self.model.has_state

    # ------------------------------------------------------------ params and state

    def init(self, rng=0):
        """Fresh params from a seed or ``np.random.Generator``: a list with one entry per layer that has params."""
        if not isinstance(rng, np.random.Generator):
            if isinstance(rng, bool) or not isinstance(rng, (int, np.integer)) or rng < 0:
                raise TypeError(f"init takes a non-negative int seed or a numpy Generator, got {rng!r}")
            rng = np.random.default_rng(rng)
        return self.model.init(rng, (-1,) + self.input_shape, self.dtype)[1]

    def init_state(self):
        """The state before any training: a list with one entry per layer that has state ([] when none)."""
        return tree_map(np.copy, self._state_template)

    def param_shapes(self):
        """``[(path, shape), ...]`` for every leaf of this network's params."""
        return list(self._leaf_shapes)

    def check_params(self, params):
        """Raise TypeError / ValueError naming the first leaf whose structure, shape or dtype is wrong."""
        params = getval(params)  # under autograd the containers themselves are boxed
        if self._params_look_right(params):
            return
        _check_tree(self._template, params, "params", self.dtype, "make params with its init")

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

    def check_state(self, state):
        """``state`` as the model takes it (None for a network without state); clear errors when it is wrong."""
        if not self.has_state:
            if state is None or (type(state) is list and not state):
                return None
            raise ValueError(f"this network has no state, got state={_brief(state)}")
        if state is None:
            holders = ", ".join(f"layer {i} ({layer.name})" for i, layer in enumerate(self.layers) if layer.has_state)
            raise ValueError(f"this network has state ({holders}): pass state=, either net.init_state() "
                             f"before training or the state that training returned")
        _check_tree(self._state_template, state, "state", self.dtype, "make state with init_state")
        return state

    # ------------------------------------------------------------ inputs

    def check_input(self, x):
        """``x`` as a (B, *input_shape) array of the network's dtype; also whether it was a single example."""
        x = as_float_array(x, "x")
        shape = np.shape(getval(x))
        single = shape == self.input_shape
        if not single and shape[1:] != self.input_shape:
            first = self.layers[0]
            while first.layers:
                first = first.layers[0]
            raise ValueError(
                f"input x has shape {shape}, but the first layer ({first.name}) expects examples of shape "
                f"{self.input_shape}: x of shape (batch, {', '.join(map(str, self.input_shape))}) "
                f"or {self.input_shape} for one example")
        xv = getval(x)
        if not all_finite(xv):
            where = tuple(int(i) for i in np.argwhere(~np.isfinite(xv))[0])
            place = f"row {where[0]}, column {where[1]}" if len(where) == 2 else f"index {where}"
            raise ValueError(f"input x contains {xv[where]} at {place}: inputs must be finite")
        if not hasattr(x, "_value") and x.dtype != self.dtype:
            x = x.astype(self.dtype)
        return (anp.reshape(x, (1,) + self.input_shape) if single else x), single

    @staticmethod
    def check_mode(train, key):
        """Raise when ``train`` is not a bool, or a dropout ``key`` comes without ``train=True``."""
        if not isinstance(train, (bool, np.bool_)):
            raise TypeError(f"train must be True (training) or False (inference), got {train!r}")
        if key is not None and not train:
            raise ValueError("key= is the dropout seed, used in training mode only: pass train=True with it "
                             "(or no key for inference)")

    def check_batch(self, params, x, t):
        """Check params and x; a single example with its label becomes a batch of one: -> (x (B, ...), t)."""
        self.check_params(params)
        x, single = self.check_input(x)
        if single:
            t = np.asarray(getval(t))
            if t.ndim == 0 or (t.ndim == 1 and (t.dtype.kind == "f" or t.shape == (self.output_size,) != (1,))):
                # a label, or a one-hot row (floats, or the book's integers: t = np.array([0, 0, 1]))
                t = t[None]
        return x, t

    def prepare(self, params, x, t, state=None, train=False, key=None):
        """Every check a gradient path needs, once: -> ``(x (B, ...), t, state as the model takes it)``."""
        self.check_mode(train, key)
        x, t = self.check_batch(params, x, t)
        return x, t, self.check_state(state)

    # ------------------------------------------------------------ functions of params

    def apply(self, params, x, key=None, *, state=None, train=False, return_state=False):
        """Logits: x (B, *input_shape) -> (B, output_size), or one example -> (output_size,).

        With ``return_state=True``: ``(logits, new state)``.
        """
        self.check_mode(train, key)
        self.check_params(params)
        x, single = self.check_input(x)
        logits, new_state = self.model.apply(params, self.check_state(state), x, train, key)
        logits = logits[0] if single else logits
        return (logits, _public_state(new_state)) if return_state else logits

    def predict(self, params, x, *, state=None):
        """Predicted class indices in inference mode: (B, *input_shape) -> (B,) ints."""
        return np.argmax(getval(self.apply(params, x, state=state)), axis=-1)

    def accuracy(self, params, x, t, *, state=None):
        """Fraction of rows of x whose predicted class (inference mode) matches labels or one-hot targets t."""
        pred = self.predict(params, x, state=state)
        kind, t = labels_or_targets(t, pred.shape, self.output_size)
        if kind == "targets":
            t = np.argmax(t, axis=-1)
        return float(np.mean(pred == t))

    def weight_penalty(self, params):
        """½λ Σ ‖W‖² over the decayed leaves only (weights; not biases, not BatchNorm's γ/β)."""
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
        """``grads`` with the weight penalty's gradient λW added to every decayed leaf (a new tree)."""
        if self.weight_decay == 0:
            return grads
        weights = set(self.weight_keys)
        lam = self.weight_decay
        leaves = [g + lam * p if keys in weights else g
                  for (keys, g), (_, p) in zip(tree_leaves_with_keys(grads), tree_leaves_with_keys(params))]
        return tree_unflatten(grads, leaves)

    def loss(self, params, x, t, key=None, *, state=None, train=False, return_state=False):
        """Mean softmax cross-entropy of the logits against t, plus ½λΣ‖W‖²: a scalar.

        With ``return_state=True``: ``(loss, new state)``.
        """
        x, t, state = self.prepare(params, x, t, state, train, key)
        value, new_state = self.batch_loss(params, x, t, state, train, key)
        return (value, _public_state(new_state)) if return_state else value

    def batch_loss(self, params, x, t, state=None, train=False, key=None):
        """``(loss, new model state)`` without the checks, for arguments ``prepare`` has already passed."""
        logits, new_state = self.model.apply(params, state, x, train, key)
        return functions.cross_entropy(logits, t) + self.weight_penalty(params), new_state


def _public_state(state):
    """The model's state as users hold it: a list ([] for a network without state)."""
    return [] if state is None else state


def _brief(tree):
    text = repr(tree)
    return text if len(text) < 60 else text[:57] + "..."


def _check_tree(template, tree, name, dtype, fix):
    """Raise naming the first leaf of ``tree`` whose structure, shape or dtype differs from ``template``."""
    check_same_structure(template, tree, f"the network's {name}", name)
    for (path, want), (_, value) in zip(tree_leaves_with_paths(template), tree_leaves_with_paths(tree)):
        got = getattr(value, "dtype", None)
        if got is None or np.dtype(got).kind != "f":
            raise TypeError(f"{name}{path} must be a float array, got {type(value).__name__}"
                            + (f" of dtype {got}" if got is not None else ""))
        if got != dtype:
            raise TypeError(f"{name}{path} has dtype {got}, but this network computes in {dtype}: "
                            f"{fix}, or the network with dtype='{got}'")
        if np.shape(value) != np.shape(want):
            raise ValueError(f"{name}{path} has shape {np.shape(value)}; this network expects {np.shape(want)}")


def mlp(input_size, hidden_sizes, output_size, activation="relu", init="he",
        weight_decay=0.0, dropout=0.0, batch_norm=False, dtype="float64", dropout_scale_at="train"):
    """A multi-layer perceptron: Dense [-> BatchNorm] -> activation [-> Dropout] for each hidden size, then Dense.

    ``mlp(784, [50], 10, activation='sigmoid', init=0.01)`` is the book's
    TwoLayerNet; ``mlp(784, [100] * 4, 10)`` its MultiLayerNet (He, ReLU);
    ``batch_norm=True`` its MultiLayerNetExtend's layer order;
    ``dropout_scale_at='test'`` its dropout convention (see ``Dropout``).
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
    sizes = [input_size, *hidden_sizes, output_size]
    if not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in sizes):
        raise TypeError(f"layer sizes must be integers, got {sizes}")
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real):
        raise TypeError(f"dropout must be a number (the probability of dropping), got {dropout!r}")
    if not isinstance(batch_norm, (bool, np.bool_)):
        raise TypeError(f"batch_norm must be True or False, got {batch_norm!r}")
    sizes = [int(n) for n in sizes]
    if min(sizes) < 1:
        raise ValueError(f"layer sizes must be positive, got {sizes}")
    layers = []
    for width in sizes[1:-1]:
        layers.append(Dense(width, init))
        if batch_norm:
            layers.append(BatchNorm())
        layers.append(ACTIVATIONS[activation])
        if dropout:
            layers.append(Dropout(dropout, scale_at=dropout_scale_at))
    layers.append(Dense(sizes[-1], init))
    return Network(tuple(layers), (sizes[0],), sizes[-1], float(weight_decay), np.dtype(dtype))


def simple_convnet(input_shape=(1, 28, 28), filters=30, kernel=5, stride=1, pad=0, hidden=100, output_size=10,
                   init="he", weight_decay=0.0, dtype="float64"):
    """The book's SimpleConvNet: Conv -> Relu -> MaxPool 2x2 -> Flatten -> Dense(hidden) -> Relu -> Dense(output_size).

    Input (B, *input_shape), e.g. MNIST as ``load_mnist(flatten=False)`` gives
    it, (B, 1, 28, 28). The defaults are the book's ch07 network (30 filters
    5x5, stride 1, pad 0; 100 hidden units), with He initialisation;
    ``simple_convnet((1, 10, 10), filters=10, kernel=3, hidden=10)`` is its
    ch07/gradient_check.py network.
    """
    layers = (Conv2D(filters, kernel, stride, pad, init), Relu, MaxPool2D(2, 2), Flatten,
              Dense(hidden, init), Relu, Dense(output_size, init))
    return Network(layers, tuple(input_shape), output_size, float(weight_decay), np.dtype(dtype))
