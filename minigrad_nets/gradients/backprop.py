"""The hand-written backprop path: each layer's backward rule, chained in reverse. Plain numpy, no autograd."""
import numpy as np

from ..checks import labels_or_targets
from ..functions import _row_max


def softmax_cross_entropy(logits, t):
    """Mean cross-entropy and its gradient ``(softmax - onehot) / B``: logits (B, C), t labels or targets -> (loss, dlogits)."""
    batch, classes = logits.shape
    if batch == 0:
        raise ValueError("cross_entropy over an empty batch is undefined")
    kind, t = labels_or_targets(t, (batch,), classes)
    with np.errstate(over="ignore"):
        shifted = logits - _row_max(logits, -1)
    exp = np.exp(shifted)
    norm = exp.sum(axis=1, keepdims=True)
    log_norm = np.log(norm)
    dlogits = exp
    dlogits /= norm
    if kind == "labels":
        rows = np.arange(batch)
        loss = (log_norm[:, 0] - shifted[rows, t]).sum() / batch
        dlogits[rows, t] -= 1
    else:
        t = t.astype(logits.dtype, copy=False)
        loss = (log_norm.sum() - (t * np.where(t > 0, shifted, 0)).sum()) / batch
        dlogits -= t
    dlogits /= np.asarray(batch, dtype=dlogits.dtype)
    return loss, dlogits


def value_and_grad(net, params, x, t, key=None):
    """``(loss, gradient)`` of ``net.loss(params, x, t, key)`` by backprop; the gradient has the structure of params."""
    net.check_params(params)
    x, _ = net.check_input(x)
    logits, caches = net.model.forward(params, x, key)
    loss, dlogits = softmax_cross_entropy(logits, t)
    grads, _ = net.model.backward(params, caches, dlogits, need_dx=False)
    lam = net.weight_decay
    if lam:
        loss = loss + net.weight_penalty(params)
        for layer_grads, layer_params in zip(grads, params):
            if isinstance(layer_grads, dict) and "W" in layer_grads:
                layer_grads["W"] = layer_grads["W"] + lam * layer_params["W"]
    return loss, grads
