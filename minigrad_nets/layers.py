"""Layers as pure functions, composed with ``serial`` (in the style of JAX's stax).

A layer is a ``Layer`` of four functions over its own parameters:

- ``init(rng, input_shape, dtype) -> (output_shape, params)``;
- ``apply(params, x, key=None) -> y``, written with ``autograd.numpy`` for autograd;
- ``forward(params, x, key=None) -> (y, cache)``, plain numpy, for backprop;
- ``backward(params, cache, dy, need_dx=True) -> (dparams, dx)``, the hand-written rule.

Parameter-free layers have ``params=None`` and ``dparams=None``. ``key`` is the
dropout seed (an int, a tuple of ints, or a ``SeedSequence``): ``None`` means
inference (no dropout); the same key always draws the same mask, so a loss
with dropout stays a deterministic function of its inputs.
"""
import functools
import numbers
from typing import Callable, NamedTuple

import autograd.numpy as anp
import numpy as np

from . import functions, initializers


class Layer(NamedTuple):
    """One layer: a name, whether it has params, its init / apply / forward / backward functions,
    and for a composite (``serial``) the layers inside it."""
    name: str
    has_params: bool
    init: Callable
    apply: Callable
    forward: Callable
    backward: Callable
    layers: tuple = ()

    def __repr__(self):
        return self.name


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


@functools.lru_cache(maxsize=64)
def ones_vector(n, dtype):
    """A read-only (n,) vector of ones, shared: ``ones @ a`` sums the rows of a (n, m) in one BLAS call."""
    ones = np.ones(n, dtype)
    ones.flags.writeable = False
    return ones


# ---------------------------------------------------------------- Dense


def Dense(out_dim, init="he"):
    """Affine layer ``x @ W + b``: (B, n_in) -> (B, out_dim); params {'W': (n_in, out_dim), 'b': (out_dim,)}."""
    out_dim = int(out_dim)
    if out_dim < 1:
        raise ValueError(f"Dense needs at least one output unit, got {out_dim}")
    w_init = initializers.get(init)

    def init_fun(rng, input_shape, dtype):
        W = np.asarray(w_init(rng, input_shape[-1], out_dim), dtype=dtype)
        return tuple(input_shape[:-1]) + (out_dim,), {"W": W, "b": np.zeros(out_dim, dtype=dtype)}

    def apply(params, x, key=None):
        return anp.dot(x, params["W"]) + params["b"]

    def forward(params, x, key=None):
        y = x @ params["W"]
        y += params["b"]
        return y, x

    def backward(params, x, dy, need_dx=True):
        # db sums dy over the batch; as a product with a row of ones it is one BLAS call, faster than dy.sum(axis=0).
        grads = {"W": x.T @ dy, "b": ones_vector(len(dy), dy.dtype) @ dy}
        return grads, (dy @ params["W"].T if need_dx else None)

    return Layer(f"Dense({out_dim})", True, init_fun, apply, forward, backward)


# ---------------------------------------------------------------- elementwise


def _elementwise(name, traced_fn, numpy_fn, grad_from_output):
    """A parameter-free layer whose backward rule needs only its output ``y``."""

    def init_fun(rng, input_shape, dtype):
        return tuple(input_shape), None

    def apply(params, x, key=None):
        return traced_fn(x)

    def forward(params, x, key=None):
        y = numpy_fn(x)
        return y, y

    def backward(params, y, dy, need_dx=True):
        return None, grad_from_output(y, dy)

    return Layer(name, False, init_fun, apply, forward, backward)


# The backward rules, one line each: dx from the layer's output y and upstream dy.
# Relu multiplies by the 0/1 mask (y > 0) (gradient 0 at 0, the book's rule); it
# never writes into dy, which belongs to the caller (the book's version does).
Relu = _elementwise("Relu", functions.relu, functions.relu_values, lambda y, dy: dy * (y > 0))
Sigmoid = _elementwise("Sigmoid", functions.sigmoid, functions.sigmoid_values, lambda y, dy: dy * y * (1 - y))
Tanh = _elementwise("Tanh", functions.tanh, np.tanh, lambda y, dy: dy * (1 - y * y))


def _flatten_init(rng, input_shape, dtype):
    return (input_shape[0], int(np.prod(input_shape[1:]))), None


Flatten = Layer(
    "Flatten", False, _flatten_init,
    lambda params, x, key=None: anp.reshape(x, (anp.shape(x)[0], -1)),
    lambda params, x, key=None: (x.reshape(x.shape[0], -1), x.shape),
    lambda params, shape, dy, need_dx=True: (None, dy.reshape(shape)),
)


# ---------------------------------------------------------------- Dropout


def dropout_scale(key, shape, rate, dtype):
    """The inverted-dropout multiplier drawn from ``key``: 0 with probability ``rate``, else 1/(1-rate)."""
    keep = np.random.default_rng(key).random(shape) >= rate
    return keep.astype(dtype) / np.asarray(1.0 - rate, dtype=dtype)


def Dropout(rate):
    """Inverted dropout: zero each unit with probability ``rate`` and scale the rest by 1/(1-rate). Shape in = shape out.

    Active only when a key is given; with ``key=None`` (inference) it is the identity.
    """
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
        raise TypeError(f"dropout rate must be a number (the probability of dropping), got {rate!r}")
    rate = float(rate)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate is the probability of dropping and must be in [0, 1), got {rate}")

    def init_fun(rng, input_shape, dtype):
        return tuple(input_shape), None

    def apply(params, x, key=None):
        if key is None or rate == 0.0:
            return x
        return x * dropout_scale(key, anp.shape(x), rate, _dtype_of(x))

    def forward(params, x, key=None):
        if key is None or rate == 0.0:
            return x, None
        scale = dropout_scale(key, x.shape, rate, x.dtype)
        return x * scale, scale

    def backward(params, scale, dy, need_dx=True):
        return None, (dy if scale is None else dy * scale)

    return Layer(f"Dropout({rate:g})", False, init_fun, apply, forward, backward)


def _dtype_of(x):
    return getattr(x, "dtype", None) or np.asarray(x).dtype


# ---------------------------------------------------------------- serial


def serial(*layers):
    """Compose layers in order. Params: a list holding the params of each layer that has any."""
    layers = tuple(layers)
    with_params = [i for i, layer in enumerate(layers) if layer.has_params]

    def split(params):
        """Pair each layer with its params (None for parameter-free ones)."""
        it = iter(params if params is not None else ())  # a serial without params is handed None
        return [(layer, next(it) if layer.has_params else None) for layer in layers]

    def init_fun(rng, input_shape, dtype):
        params = []
        for layer in layers:
            input_shape, p = layer.init(rng, input_shape, dtype)
            if layer.has_params:
                params.append(p)
        return input_shape, params

    def apply(params, x, key=None):
        for i, (layer, p) in enumerate(split(params)):
            x = layer.apply(p, x, layer_rng(key, i))
        return x

    def forward(params, x, key=None):
        caches = []
        for i, (layer, p) in enumerate(split(params)):
            x, cache = layer.forward(p, x, layer_rng(key, i))
            caches.append(cache)
        return x, caches

    def backward(params, caches, dy, need_dx=True):
        pairs = split(params)
        # Without need_dx, stop at the first layer with params and skip its dx product.
        stop = 0 if need_dx or not with_params else with_params[0]
        grads = []
        for i in range(len(pairs) - 1, stop - 1, -1):
            layer, p = pairs[i]
            dp, dy = layer.backward(p, caches[i], dy, need_dx or i > stop)
            if layer.has_params:
                grads.append(dp)
        return grads[::-1], (dy if need_dx else None)

    name = "serial(" + ", ".join(layer.name for layer in layers) + ")"
    return Layer(name, any(l.has_params for l in layers), init_fun, apply, forward, backward, layers)
