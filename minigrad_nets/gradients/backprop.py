"""The hand-written backprop path: each layer's backward rule, chained in reverse. Plain numpy, no autograd."""
import math

import numpy as np

from ..checks import labels_unless_soft
from ..functions import row_max


def softmax_cross_entropy(logits, t):
    """Mean cross-entropy and its gradient ``(softmax - onehot) / B``: logits (B, C), t labels or targets -> (loss, dlogits)."""
    batch, classes = logits.shape
    if batch == 0:
        raise ValueError("cross_entropy over an empty batch is undefined")
    kind, t = labels_unless_soft(t, (batch,), classes)  # one-hot rows take the labels' path: the same value
    rows = np.arange(batch)
    m = logits.max(axis=1)  # the row maxima (NaN if any)
    with np.errstate(over="ignore", invalid="ignore"):  # bad rows (NaN, +inf, all -inf) are caught below
        dlogits = np.exp(logits - m[:, None])  # z - m may pass the float range: exp -> 0, harmless
        norm = dlogits.sum(axis=1)
        dlogits /= norm[:, None]  # softmax, in our own buffer: the updates below are in place
        log_norm = np.log(norm)
        if kind == "labels":
            label_logits = logits[rows, t]
            loss = (log_norm + (m - label_logits)).sum() / batch
            if not math.isfinite(loss):
                # The gap m - z_y or the sum passed the float range. As functions.cross_entropy, assemble
                # the mean from halves: it overflows only when the exact mean is past the range.
                loss = 2 * ((log_norm / 2 + (m / 2 - label_logits / 2)) / batch).sum()
            dlogits[rows, t] -= 1
        else:
            t = t.astype(logits.dtype, copy=False)
            half_gap = (t * np.where(t > 0, m[:, None] / 2 - logits / 2, 0)).sum(axis=1)
            loss = 2 * ((log_norm / 2 + half_gap) / batch).sum()
            dlogits -= t
    if not math.isfinite(loss):
        row_max(logits, -1)  # a clear ValueError for NaN, +inf or all -inf rows; otherwise +inf is the honest value
    dlogits /= np.asarray(batch, dtype=dlogits.dtype)
    return loss, dlogits


def value_and_grad(net, params, x, t, key=None, state=None, train=False):
    """``(loss, gradient, new state)`` of the network's loss by backprop; the gradient has the structure of params."""
    x, t, state = net.prepare(params, x, t, state, train, key)
    return value_and_grad_prepared(net, params, x, t, key, state, train)


def value_and_grad_prepared(net, params, x, t, key=None, state=None, train=False):
    """``value_and_grad`` for arguments ``net.prepare`` has passed (``fit`` checks its data once, not each step)."""
    logits, caches, new_state = net.model.forward(params, state, x, train, key)
    loss, dlogits = softmax_cross_entropy(logits, t)
    grads, _ = net.model.backward(params, caches, dlogits, False)
    if net.weight_decay:
        loss = loss + net.weight_penalty(params)
        grads = net.add_weight_decay_grad(grads, params)
    return loss, grads, new_state
