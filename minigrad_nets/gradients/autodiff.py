"""The autograd path: ``autograd.value_and_grad`` of the network's loss, traced op by op."""
import autograd


def value_and_grad(net, params, x, t, key=None):
    """``(loss, gradient)`` of ``net.loss(params, x, t, key)`` by autograd; the gradient has the structure of params."""
    x, t = net.check_batch(params, x, t)
    return autograd.value_and_grad(net.batch_loss)(params, x, t, key)
