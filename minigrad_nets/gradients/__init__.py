"""Gradients of a network's loss by any of three independent paths, behind one call."""
import functools
from importlib import import_module

# method name -> module defining value_and_grad(net, params, x, t, key, state, train) -> (loss, grads, new state)
METHODS = {
    "autograd": "autodiff",
    "backprop": "backprop",
    "autograd-fused": "fused",
    "numerical": "numerical",         # central differences
    "complex-step": "complex_step",   # Im L(θ + ih) / h: exact to rounding for complex-safe layers
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


def value_and_grad(net, params, x, t, method="autograd", key=None, *, state=None, train=False, return_state=False):
    """``(loss, gradient pytree)`` of ``net.loss(params, x, t, key, state=state, train=train)`` by ``method``.

    ``method``: see ``METHODS``. The state is held fixed (never differentiated);
    with ``return_state=True`` the result is ``(loss, gradient, new state)``.
    """
    loss, grads, new_state = _module(check_method(method)).value_and_grad(net, params, x, t, key, state, train)
    return (loss, grads, [] if new_state is None else new_state) if return_state else (loss, grads)


def grad(net, params, x, t, method="autograd", key=None, *, state=None, train=False):
    """Gradient of ``net.loss(params, x, t, key, state=state, train=train)``, shaped like ``params``, by ``method``."""
    return value_and_grad(net, params, x, t, method, key, state=state, train=train)[1]
