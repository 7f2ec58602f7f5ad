"""Layers as pure functions, composed with ``serial`` (in the style of JAX's stax).

The layer contract. A ``Layer`` is four functions and a few declarations:

- ``init(rng, input_shape, dtype) -> (output_shape, params, state)``; shapes
  include the batch axis (``-1``); ``params`` / ``state`` are pytrees, or None
  for a layer without them;
- ``apply(params, state, x, train, key) -> (y, new_state)``, written with
  ``autograd.numpy``: the function autograd differentiates;
- ``forward(params, state, x, train, key) -> (y, cache, new_state)``, plain
  numpy: the forward pass of the hand-written path, keeping what backward needs;
- ``backward(params, cache, dy, need_dx) -> (dparams, dx)``: the hand-written
  rule. With ``need_dx`` False nothing upstream needs ``dx`` and it may be None.

``train`` is the mode (True: training; False: inference). ``key`` is the
dropout seed (an int, a tuple of ints, or a ``SeedSequence``, or None): the
same key always draws the same mask, so a loss with dropout stays a function.
State (BatchNorm's running statistics) comes in and goes out; a layer never
mutates it, and a layer without state returns the ``state`` it was given.

The declarations tell the other paths what a layer is, so that none of them
has to recognise a layer by its name:

- ``has_params`` / ``has_state``: whether ``init`` returns params / state;
- ``decayed``: the key paths of the params leaves weight decay applies to
  (Dense: ``(("W",),)``; biases and BatchNorm's γ/β are not decayed);
- ``kind``: what the vectorised numerical path may assume (``Elementwise``,
  ``DENSE``, ``MASK``, ``RESHAPE``, ``FEATURE``), or None for "opaque": then it
  uses the element-by-element loop and says so;
- ``random``: the layer draws from ``key`` in training mode;
- ``layers``: for a composite (``serial``), the layers inside it.

A parameter-free elementwise layer is one line: ``elementwise(name, fn, grad)``.
"""
import numbers
from typing import Callable, NamedTuple

import autograd.numpy as anp
import numpy as np
from autograd.tracer import getval

from . import functions, initializers


class Layer(NamedTuple):
    """One layer: its name, init / apply / forward / backward (module doc) and what it declares about itself."""
    name: str
    init: Callable
    apply: Callable
    forward: Callable
    backward: Callable
    has_params: bool = False
    has_state: bool = False
    decayed: tuple = ()
    kind: object = None
    random: bool = False
    layers: tuple = ()

    def __repr__(self):
        return self.name


class Elementwise(NamedTuple):
    """Declares ``y = fn(x)`` entry by entry (``fn`` on plain numpy arrays), not differentiable at ``kinks``."""
    fn: Callable
    kinks: tuple = ()


DENSE = "dense"      # y = x @ params['W'] + params['b'] over the last axis
MASK = "mask"        # y = x * m, where m depends only on the shape, the mode and the key (dropout)
RESHAPE = "reshape"  # each row of y is the same row of x, reshaped (flatten)
# Per feature, across the batch (BatchNorm): column f of y depends only on column f of x (every row) and on
# entry f of each params / state leaf, which are shaped like one example's features.
FEATURE = "feature"


def layer_rng(key, index):
    """The seed for layer ``index`` under dropout ``key``: a ``SeedSequence`` (None when key is None).

    A seed, not a Generator, so that a nested ``serial`` can split it again for its own layers.
    """
    if key is None:
        return None
    if isinstance(key, np.random.SeedSequence):
        return np.random.SeedSequence(key.entropy, spawn_key=tuple(key.spawn_key) + (index,))
    return np.random.SeedSequence(check_key(key), spawn_key=(index,))


def check_key(key):
    """``key`` if it is a valid dropout seed (int >= 0 or tuple of them); a clear TypeError otherwise."""
    if isinstance(key, np.random.Generator):
        raise TypeError("pass dropout randomness as a seed (int or tuple of ints), not a Generator: "
                        "a Generator draws a new mask on every call, so the loss would not be a function")
    parts = key if isinstance(key, tuple) else (key,)
    if not parts or not all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k >= 0
                            for k in parts):
        raise TypeError(f"dropout key must be a non-negative int or a tuple of them, got {key!r}")
    return tuple(int(k) for k in parts) if isinstance(key, tuple) else int(key)


# ---------------------------------------------------------------- Dense


def Dense(out_dim, init="he"):
    """Affine layer ``x @ W + b``: (B, n_in) -> (B, out_dim); params {'W': (n_in, out_dim), 'b': (out_dim,)}."""
    if isinstance(out_dim, bool) or not isinstance(out_dim, (int, np.integer)):
        raise TypeError(f"Dense takes a whole number of output units, got {out_dim!r}")
    out_dim = int(out_dim)
    if out_dim < 1:
        raise ValueError(f"Dense needs at least one output unit, got {out_dim}")
    w_init = initializers.get(init)
    name = f"Dense({out_dim})"

    def init_fun(rng, input_shape, dtype):
        if len(input_shape) != 2:
            raise ValueError(f"{name} takes (batch, features) input, got shape {tuple(input_shape)}: "
                             f"put a Flatten before it")
        W = np.asarray(w_init(rng, input_shape[-1], out_dim), dtype=dtype)
        return (input_shape[0], out_dim), {"W": W, "b": np.zeros(out_dim, dtype=dtype)}, None

    def apply(params, state, x, train, key):
        return anp.dot(x, params["W"]) + params["b"], state

    def forward(params, state, x, train, key):
        y = x @ params["W"]
        y += params["b"]
        return y, x, state

    def backward(params, x, dy, need_dx):
        grads = {"W": x.T @ dy, "b": dy.sum(axis=0)}
        return grads, (dy @ params["W"].T if need_dx else None)

    return Layer(name, init_fun, apply, forward, backward, has_params=True, decayed=(("W",),), kind=DENSE)


# ---------------------------------------------------------------- elementwise


def _same_shape(rng, input_shape, dtype):
    return tuple(input_shape), None, None


def elementwise(name, fn, grad, kinks=(), numpy_fn=None, from_output=False):
    """A parameter-free layer ``y = fn(x)`` entry by entry, any shape; ``grad(x, dy) -> dx`` is its backward rule.

    ``fn`` is written with ``autograd.numpy`` (autograd differentiates it);
    ``numpy_fn``, when given, computes the same values faster on plain arrays
    for the hand-written path. ``kinks`` are the points where ``fn`` has no
    derivative (ReLU: 0): gradient checks warn when an input lies near one.
    With ``from_output=True`` the rule is ``grad(y, dy)``, from the layer's
    output, as the book writes sigmoid's; only that array is kept for backward.
    """
    numpy_fn = numpy_fn or fn

    def apply(params, state, x, train, key):
        return fn(x), state

    def forward(params, state, x, train, key):
        y = numpy_fn(x)
        return y, (y if from_output else x), state

    def backward(params, kept, dy, need_dx):
        return None, grad(kept, dy)

    return Layer(name, _same_shape, apply, forward, backward, kind=Elementwise(numpy_fn, tuple(kinks)))


# The backward rules, one line each: dx from the layer's output y and upstream dy.
# Relu multiplies by the 0/1 mask (y > 0) (gradient 0 at 0, the book's rule); it
# never writes into dy, which belongs to the caller (the book's version does).
Relu = elementwise("Relu", functions.relu, lambda y, dy: dy * (y > 0), kinks=(0.0,),
                   numpy_fn=functions.relu_values, from_output=True)
Sigmoid = elementwise("Sigmoid", functions.sigmoid, lambda y, dy: dy * y * (1 - y),
                      numpy_fn=functions.sigmoid_values, from_output=True)
Tanh = elementwise("Tanh", functions.tanh, lambda y, dy: dy * (1 - y * y), numpy_fn=np.tanh, from_output=True)


def _flatten_init(rng, input_shape, dtype):
    return (input_shape[0], int(np.prod(input_shape[1:]))), None, None


Flatten = Layer(
    "Flatten", _flatten_init,
    lambda params, state, x, train, key: (anp.reshape(x, (anp.shape(x)[0], -1)), state),
    lambda params, state, x, train, key: (x.reshape(x.shape[0], -1), x.shape, state),
    lambda params, shape, dy, need_dx: (None, dy.reshape(shape)),
    kind=RESHAPE,
)


# ---------------------------------------------------------------- Dropout


def dropout_scale(key, shape, rate, dtype):
    """The inverted-dropout multiplier drawn from ``key``: 0 with probability ``rate``, else 1/(1-rate)."""
    keep = np.random.default_rng(key).random(shape) >= rate
    return keep.astype(dtype) / np.asarray(1.0 - rate, dtype=dtype)


def Dropout(rate, scale_at="train"):
    """Dropout: in training, zero each unit with probability ``rate``. Shape in = shape out.

    ``scale_at='train'`` (the default, "inverted" dropout): the kept units are
    scaled by 1/(1-rate) in training and inference is the identity, so a
    trained network is used as it is. ``scale_at='test'``: the book's
    convention (ch06/overfit_dropout.py): no scaling in training, every unit
    times (1-rate) in inference. Both give the same expected activations; they
    differ in which mode pays for it. Training needs a ``key``: the mask is drawn from it.
    """
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
        raise TypeError(f"dropout rate must be a number (the probability of dropping), got {rate!r}")
    rate = float(rate)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate is the probability of dropping and must be in [0, 1), got {rate}")
    if scale_at not in ("train", "test"):
        raise ValueError(f"scale_at must be 'train' (inverted dropout) or 'test' (the book's), got {scale_at!r}")
    name = f"Dropout({rate:g})" if scale_at == "train" else f"Dropout({rate:g}, scale_at='test')"

    def scale(x, train, key):
        """The multiplier for x, or None when the layer is the identity."""
        if rate == 0.0 or (not train and scale_at == "train"):
            return None
        if not train:
            return np.asarray(1.0 - rate, dtype=_dtype_of(x))
        if key is None:
            raise ValueError(f"{name} in training mode needs a dropout key (a seed): pass key=...")
        mask = dropout_scale(key, anp.shape(x), rate, _dtype_of(x))
        return mask if scale_at == "train" else (mask != 0).astype(mask.dtype)

    def apply(params, state, x, train, key):
        s = scale(x, train, key)
        return (x if s is None else x * s), state

    def forward(params, state, x, train, key):
        s = scale(x, train, key)
        return (x if s is None else x * s), s, state

    def backward(params, s, dy, need_dx):
        return None, (dy if s is None else dy * s)

    return Layer(name, _same_shape, apply, forward, backward, kind=MASK, random=True)


def _dtype_of(x):
    return getattr(x, "dtype", None) or np.asarray(x).dtype


# ---------------------------------------------------------------- BatchNorm


def BatchNorm(momentum=0.9, eps=1e-6):
    """Batch normalisation (the book's §6.3): (B, ...) -> (B, ...), each feature normalised over the batch.

    Params {'gamma', 'beta'} and state {'mean', 'var'}, each shaped like one
    example. Training: ``xhat = (x - mean_B) / sqrt(var_B + eps)`` with the
    batch's own mean and (biased) variance, ``y = gamma * xhat + beta``, and the
    running statistics move as ``r = momentum * r + (1 - momentum) * batch value``.
    Inference: the running statistics take the batch's place. ``eps = 1e-6`` is
    the book's ``10e-7``; the running variance starts at 1 (the book's at 0).
    """
    for what, value in (("momentum", momentum), ("eps", eps)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"BatchNorm {what} must be a number, got {value!r}")
    momentum, eps = float(momentum), float(eps)
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"BatchNorm momentum must be in [0, 1), got {momentum}")
    if not eps > 0:
        raise ValueError(f"BatchNorm eps must be positive, got {eps}")
    name = f"BatchNorm({momentum:g})"

    def init_fun(rng, input_shape, dtype):
        features = tuple(input_shape[1:])
        params = {"gamma": np.ones(features, dtype), "beta": np.zeros(features, dtype)}
        state = {"mean": np.zeros(features, dtype), "var": np.ones(features, dtype)}
        return tuple(input_shape), params, state

    def check_batch(x, train):
        if train and anp.shape(x)[0] < 2:
            raise ValueError(f"{name} in training mode needs a batch of at least 2 examples "
                             f"(the variance of one is undefined), got a batch of {anp.shape(x)[0]}")

    def running(state, mean, var):
        """The running statistics after a training batch with this mean and variance (never differentiated)."""
        return {"mean": momentum * state["mean"] + (1 - momentum) * mean,
                "var": momentum * state["var"] + (1 - momentum) * var}

    def apply(params, state, x, train, key):
        check_batch(x, train)
        if train:
            mean = anp.mean(x, axis=0)
            centred = x - mean
            var = anp.mean(centred * centred, axis=0)
            new_state = running(state, getval(mean), getval(var))
        else:
            centred, var, new_state = x - state["mean"], state["var"], state
        xhat = centred / anp.sqrt(var + eps)
        return params["gamma"] * xhat + params["beta"], new_state

    def forward(params, state, x, train, key):
        check_batch(x, train)
        if train:
            mean = x.mean(axis=0)
            centred = x - mean
            var = (centred * centred).mean(axis=0)
            new_state = running(state, mean, var)
        else:
            centred, var, new_state = x - state["mean"], state["var"], state
        inv_std = 1 / np.sqrt(var + eps)
        xhat = centred * inv_std
        return params["gamma"] * xhat + params["beta"], (xhat, inv_std, train), new_state

    def backward(params, cache, dy, need_dx):
        xhat, inv_std, train = cache
        grads = {"gamma": (dy * xhat).sum(axis=0), "beta": dy.sum(axis=0)}
        if not need_dx:
            return grads, None
        dxhat = dy * params["gamma"]
        if not train:  # the statistics are constants: xhat is affine in x
            return grads, dxhat * inv_std
        # In training the batch's mean and variance depend on x too; through them
        # dx = (dxhat - mean_B(dxhat) - xhat * mean_B(dxhat * xhat)) / sqrt(var_B + eps).
        return grads, inv_std * (dxhat - dxhat.mean(axis=0) - xhat * (dxhat * xhat).mean(axis=0))

    return Layer(name, init_fun, apply, forward, backward, has_params=True, has_state=True, kind=FEATURE)


# ---------------------------------------------------------------- serial


def serial(*layers):
    """Compose layers in order. Params: a list of the params of each layer that has any; state likewise."""
    layers = tuple(layers)
    for layer in layers:
        if not isinstance(layer, Layer):
            raise TypeError(f"serial takes Layers, got {type(layer).__name__}: {layer!r}")
    with_params = [i for i, layer in enumerate(layers) if layer.has_params]
    with_state = any(layer.has_state for layer in layers)

    def split(params, state):
        """``(layer, params, state)`` for each layer (None where a layer has none)."""
        p_it = iter(params if params is not None else ())  # a serial without params is handed None
        s_it = iter(state if state is not None else ())
        return [(layer, next(p_it) if layer.has_params else None, next(s_it) if layer.has_state else None)
                for layer in layers]

    def init_fun(rng, input_shape, dtype):
        params, state = [], []
        for layer in layers:
            input_shape, p, s = layer.init(rng, input_shape, dtype)
            if layer.has_params:
                params.append(p)
            if layer.has_state:
                state.append(s)
        return input_shape, params, (state if with_state else None)

    def apply(params, state, x, train, key):
        new_state = []
        for i, (layer, p, s) in enumerate(split(params, state)):
            x, s = layer.apply(p, s, x, train, layer_rng(key, i))
            if layer.has_state:
                new_state.append(s)
        return x, (new_state if with_state else state)

    def forward(params, state, x, train, key):
        caches, new_state = [], []
        for i, (layer, p, s) in enumerate(split(params, state)):
            x, cache, s = layer.forward(p, s, x, train, layer_rng(key, i))
            caches.append(cache)
            if layer.has_state:
                new_state.append(s)
        return x, caches, (new_state if with_state else state)

    def backward(params, caches, dy, need_dx):
        p_it = iter(params if params is not None else ())
        pairs = [(layer, next(p_it) if layer.has_params else None) for layer in layers]
        # Without need_dx, stop at the first layer with params and skip its dx product.
        stop = 0 if need_dx or not with_params else with_params[0]
        grads = []
        for i in range(len(pairs) - 1, stop - 1, -1):
            layer, p = pairs[i]
            dp, dy = layer.backward(p, caches[i], dy, need_dx or i > stop)
            if layer.has_params:
                grads.append(dp)
        return grads[::-1], (dy if need_dx else None)

    decayed = tuple((k,) + path for k, i in enumerate(with_params) for path in layers[i].decayed)
    name = "serial(" + ", ".join(layer.name for layer in layers) + ")"
    return Layer(name, init_fun, apply, forward, backward, has_params=bool(with_params), has_state=with_state,
                 decayed=decayed, random=any(layer.random for layer in layers), layers=layers)


def leaf_layers(layers, params, state, key, prefix=(), top_index=None):
    """``(position, layer, params, state, key, top-level params index)`` for each non-composite layer, in order.

    Walks into nested ``serial`` layers: ``position`` is a tuple of indices,
    ``key`` the dropout seed that layer receives, and the params index that of
    the top-level params entry holding the layer's params (None before any).
    """
    p_entries, s_entries, count = iter(params or ()), iter(state or ()), 0
    for i, layer in enumerate(layers):
        p, s, index = None, None, top_index
        if layer.has_params:
            p = next(p_entries)
            index = count if not prefix else top_index
            count += 1
        if layer.has_state:
            s = next(s_entries, None)  # None when no state was given (a walk that does not need it)
        if layer.layers:
            yield from leaf_layers(layer.layers, p, s, layer_rng(key, i), prefix + (i,), index)
        else:
            yield prefix + (i,), layer, p, s, layer_rng(key, i), index
