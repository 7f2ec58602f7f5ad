"""``method='complex-step'``: a network's gradient by the complex step, Im L(θ + ih) / h (see ``numerical``)."""
from . import numerical


def value_and_grad(net, params, x, t, key=None, state=None, train=False):
    """``(loss, gradient, new state)`` by the complex step (float64 inside), checked against central differences."""
    return numerical.value_and_grad(net, params, x, t, key, state, train, method="complex-step")
