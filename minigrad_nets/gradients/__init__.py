"""Gradients of a network's loss by any of three independent paths, behind one call."""
import functools
from importlib import import_module

# method name -> module defining value_and_grad(net, params, x, t, key=None)
METHODS = {
    "autograd": "autodiff",
    "backprop": "backprop",
    "autograd-fused": "fused",
    "numerical": "numerical",
}

# What training uses unless told otherwise: autograd over the layers' own primitives,
# as fast as backprop; 'autograd' (op by op) stays the independent reference for checks.
TRAINING_METHOD = "autograd-fused"


def check_method(method):
    """``method`` if it names a gradient path in ``METHODS``; a ValueError listing them otherwise."""
    if method not in METHODS:
        raise ValueError(f"unknown gradient method {method!r}; choose one of {sorted(METHODS)}")
    return method


@functools.lru_cache(maxsize=None)
def _module(method):
    """The module implementing ``method``, imported on first use."""
    return import_module(f"{__name__}.{METHODS[method]}")


def value_and_grad(net, params, x, t, method="autograd", key=None):
    """``(loss, gradient pytree)`` of ``net.loss(params, x, t, key)`` by ``method`` (see ``METHODS``)."""
    return _module(check_method(method)).value_and_grad(net, params, x, t, key)


def grad(net, params, x, t, method="autograd", key=None):
    """Gradient of ``net.loss(params, x, t, key)`` with the structure of ``params``, by ``method``."""
    return value_and_grad(net, params, x, t, method, key)[1]
