"""The autograd path: ``autograd.value_and_grad`` of the network's loss, traced op by op."""
import autograd


def value_and_grad(net, params, x, t, key=None, state=None, train=False):
    """``(loss, gradient, new state)`` of the network's loss by autograd; the gradient has the structure of params."""
    x, t, state = net.prepare(params, x, t, state, train, key)
    new_state = []

    def loss(p):  # the state is an auxiliary output: held fixed, never differentiated
        value, s = net.batch_loss(p, x, t, state, train, key)
        new_state.append(s)
        return value

    value, grads = autograd.value_and_grad(loss)(params)
    return value, grads, new_state[0]
