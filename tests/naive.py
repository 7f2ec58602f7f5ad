"""The textbook implementations the property suite must catch: exp(x) / sum(exp(x)), log(sum(exp(x))),
-log(p + 1e-7), and the plain activations 1 / (1 + exp(-x)), np.tanh and np.maximum(x, 0).

They are correct for small logits and wrong at the edges (overflow to inf / NaN,
underflow to log(0), a loss that is negative or capped near 16.1). test_properties_can_fail.py
runs the suite's properties against them and requires a counterexample for each.
"""
import autograd.numpy as np


def sigmoid(x):
    """1 / (1 + exp(-x)): exp overflows for x below about -709. Shape in = shape out."""
    return 1 / (1 + np.exp(-x))


def tanh(x):
    """np.tanh, differentiated by autograd's own rule g / cosh(x)**2, which overflows for large |x|."""
    return np.tanh(x)


def relu(x):
    """np.maximum(x, 0): autograd splits the tie at 0, a gradient of 0.5 there. Shape in = shape out."""
    return np.maximum(x, 0.0)


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along ``axis``, with no shift by the max. Shape in = shape out."""
    e = np.exp(x)
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    """log(softmax(x)): -inf wherever the naive softmax underflows. Shape in = shape out."""
    return np.log(softmax(x, axis))


def logsumexp(x, axis=-1):
    """log(sum(exp(x))) along ``axis``: +inf as soon as one exp overflows. Shape (..., n) -> (...)."""
    return np.log(np.sum(np.exp(x), axis=axis))


def cross_entropy(logits, t):
    """The book's mean of -log(p_y + 1e-7) over the batch. logits (..., C), t labels (...) or one-hot -> scalar."""
    p = softmax(logits)
    t = np.asarray(t)
    if t.shape == np.shape(logits):  # one-hot / probability rows
        per_example = -np.sum(t * np.log(p + 1e-7), axis=-1)
    else:
        picked = np.sum(p * (np.arange(np.shape(logits)[-1]) == t[..., None]), axis=-1)
        per_example = -np.log(picked + 1e-7)
    return np.mean(per_example)
