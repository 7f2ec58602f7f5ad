"""Activations and losses, written with ``autograd.numpy`` so autograd can differentiate them.

All are stable for any finite input: no overflow, no NaN, no ``+1e-7`` inside a
log; so are their autograd gradients. Float32 in gives float32 out (gradients
too). Losses take *logits* (pre-softmax scores),
not probabilities: softmax and the log are fused, which is what keeps them exact.

Edge cases, decided once for all functions here:

- ``-inf`` logits are allowed (masked classes): they get probability 0, and a
  cross-entropy whose target is a masked class is ``+inf`` (its exact value).
- A row whose logits are all ``-inf``, any ``+inf`` logit, or any NaN raises
  ``ValueError``: softmax is undefined there and a NaN result would be silent.
- An empty batch gives an empty softmax; a loss over an empty batch (a mean of
  nothing) raises ``ValueError``; zero classes raise ``ValueError``.
"""
import autograd.numpy as np
import numpy as onp
from autograd.extend import defvjp, primitive
from autograd.tracer import getval

from .checks import as_float_array, labels_or_targets, labels_unless_soft


def sigmoid_values(x):
    """The logistic function on a plain float array (no checks): ``1/(1+e)`` or ``e/(1+e)`` with ``e = exp(-|x|)``."""
    if onp.iscomplexobj(x):  # the complex step: |x| is not analytic, so branch on the real part instead
        e = onp.exp(onp.where(x.real >= 0, -x, x))
        return onp.where(x.real >= 0, 1, e) / (1 + e)
    e = onp.exp(-onp.abs(x))  # in (0, 1]: never overflows
    y = onp.where(x >= 0, 1, e)
    y /= 1 + e  # in place: y is ours
    return y


def relu_values(x):
    """``max(x, 0)`` on a plain float array (no checks); NaN stays NaN."""
    if onp.iscomplexobj(x):  # the complex step: branch on the real part, slope 0 at 0 (the book's rule)
        return x * (x.real > 0)
    # Against a row of zeros, not the scalar 0: numpy's vectorised loop skips a scalar operand (2x slower).
    return onp.maximum(x, onp.zeros(x.shape[-1:], x.dtype))


@primitive
def sigmoid(x):
    """Logistic function ``1 / (1 + exp(-x))``, elementwise, without overflow. Shape in = shape out."""
    return sigmoid_values(as_float_array(x))


def _sigmoid_slope(x):
    """``sigmoid(x) * sigmoid(-x)`` as ``e / (1 + e)**2`` with ``e = exp(-|x|)``: no cancellation in ``1 - ans``."""
    e = onp.exp(-onp.abs(as_float_array(x)))
    return e / (1 + e) ** 2


defvjp(sigmoid, lambda ans, x: lambda g: g * _sigmoid_slope(x))


@primitive
def relu(x):
    """``max(x, 0)`` elementwise, with gradient 0 at 0 (the book's rule); NaN stays NaN. Shape in = shape out."""
    return relu_values(as_float_array(x))


# A primitive with its own rule, as autograd's VJP of np.where would turn float32 gradients into float64.
defvjp(relu, lambda ans, x: lambda g: g * (ans > 0))


@primitive
def tanh(x):
    """Hyperbolic tangent, elementwise. Shape in = shape out."""
    return onp.tanh(as_float_array(x))


def _tanh_slope(x):
    """``1 / cosh(x)**2`` as ``4e / (1 + e)**2`` with ``e = exp(-|x|)**2``: exact to rounding, never overflowing."""
    e = onp.exp(-onp.abs(as_float_array(x))) ** 2  # not exp(-2|x|): 2|x| overflows at the top of the range
    return 4 * e / (1 + e) ** 2


# autograd's own rule, g / cosh(x)**2, overflows (a RuntimeWarning) once |x| > 710 (float64) or ~45 (float32).
defvjp(tanh, lambda ans, x: lambda g: g * _tanh_slope(x))


def row_max(x, axis):
    """Max along ``axis`` (kept), as a constant for autograd; raises on rows softmax cannot handle."""
    xv = getval(x)
    if xv.ndim == 0:
        raise ValueError("softmax-family functions need at least one dimension (the classes)")
    if isinstance(axis, bool) or not isinstance(axis, (int, onp.integer)):
        raise TypeError(f"axis must be an int (the class axis), got {axis!r}")
    if not -xv.ndim <= axis < xv.ndim:
        raise ValueError(f"axis {axis} is out of range for an array of shape {xv.shape}")
    if xv.shape[axis] == 0:
        raise ValueError(f"cannot take softmax over an axis of length 0 (shape {xv.shape}, axis {axis})")
    m = onp.max(xv, axis=axis, keepdims=True)
    if not onp.all(onp.isfinite(m)):
        if onp.any(onp.isnan(xv)):
            raise ValueError("logits contain NaN")
        if onp.any(onp.isposinf(xv)):
            raise ValueError("logits contain +inf; softmax is only defined for finite or -inf logits")
        raise ValueError("a row of logits is entirely -inf; softmax over it is undefined")
    return m


def _shifted(x, axis):
    """``x - max(x)`` along ``axis``; entries overflowing to -inf (exp -> 0) are expected and silent."""
    x = as_float_array(x, "logits")
    with onp.errstate(over="ignore"):
        return x - row_max(x, axis)


def logsumexp(x, axis=-1, keepdims=False):
    """``log(sum(exp(x)))`` along ``axis`` without overflow. Shape (..., C) -> (...)."""
    x = as_float_array(x)
    m = row_max(x, axis)
    with onp.errstate(over="ignore"):
        out = m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axis)


def log_softmax(x, axis=-1):
    """``log(softmax(x))`` computed as ``(x - m) - log(sum(exp(x - m)))``. Shape in = shape out."""
    s = _shifted(x, axis)
    return s - np.log(np.sum(np.exp(s), axis=axis, keepdims=True))


def softmax(x, axis=-1):
    """Probabilities ``exp(x) / sum(exp(x))`` along ``axis``; each row sums to 1. Shape in = shape out."""
    e = np.exp(_shifted(x, axis))
    return e / np.sum(e, axis=axis, keepdims=True)


def _batch_count(shape, what):
    count = int(onp.prod(shape[:-1])) if len(shape) > 1 else 1
    if count == 0:
        raise ValueError(f"{what} over an empty batch is undefined (shape {shape})")
    return count


def cross_entropy(logits, t):
    """Mean softmax cross-entropy. logits (B, C) or (C,); t labels (B,) / scalar or targets like logits -> scalar.

    ``t`` may hold integer labels in ``[0, C)`` or float rows that are one-hot
    or probability vectors; one-hot targets give exactly the labels' value.
    The gradient with respect to the logits is ``(softmax - onehot) / B``.
    The value is finite whenever the exact mean loss is representable; it is
    ``+inf`` only beyond that (a gap ``max z - z_y`` past the float range, or
    a target on a masked ``-inf`` class).
    """
    z = as_float_array(logits, "logits")
    shape = onp.shape(getval(z))
    if len(shape) == 0:
        raise ValueError("logits must have a class dimension: shape (C,) or (B, C)")
    count = _batch_count(shape, "cross_entropy")
    kind, tv = labels_unless_soft(t, shape[:-1], shape[-1])
    z = np.reshape(z, (count, shape[-1]))
    m = row_max(z, -1)
    # The weighted entries: (example, class) pairs with a positive target. Indexing, not np.where,
    # picks them: a masked class (gap +inf) with target 0 drops out instead of making 0 * inf, and
    # autograd's VJP of indexing keeps float32 where that of np.where would return float64.
    if kind == "labels":
        where, weights = (onp.arange(count), onp.reshape(tv, -1)), None
    else:
        tv = onp.reshape(tv, (count, shape[-1])).astype(getval(z).dtype, copy=False)
        where = onp.nonzero(tv > 0)
        weights = tv[where]
    # Per example the loss is log_norm + (max z - z_y). The gap may pass the float range while the
    # batch mean does not, so the mean is assembled from halves: m/2 - z/2 cannot overflow, and
    # only the final doubling can, when the exact mean itself is past the range (an honest +inf).
    with onp.errstate(over="ignore"):
        log_norm = np.log(np.sum(np.exp(z - m), axis=1))  # z - m -> -inf past the range: exp -> 0
        half_gaps = m[where[0], 0] / 2 - z[where] / 2
        if weights is not None:
            half_gaps = weights * half_gaps
        return 2 * (np.sum(log_norm / (2 * count)) + np.sum(half_gaps / count))


def mean_squared_error(y, t):
    """The book's ``0.5 * sum((y - t)**2)`` per example, averaged over the batch. (B, C) or (C,) -> scalar.

    ``t`` is an array shaped like ``y``, or integer labels (read as one-hot).
    A squared difference past the float range gives ``+inf``, quietly.
    """
    y = as_float_array(y, "y")
    shape = onp.shape(getval(y))
    if len(shape) == 0:
        raise ValueError("y must have a class dimension: shape (C,) or (B, C)")
    count = _batch_count(shape, "mean_squared_error")
    kind, tv = labels_or_targets(t, shape[:-1], shape[-1]) if onp.asarray(getval(t)).dtype.kind in "iu" \
        else ("targets", as_float_array(t, "t"))
    if kind == "labels":
        tv = onp.eye(shape[-1], dtype=getval(y).dtype)[tv]
    elif onp.shape(tv) != shape:
        raise ValueError(f"t has shape {onp.shape(tv)}; expected the shape of y, {shape}")
    with onp.errstate(over="ignore", invalid="ignore"):  # |y - t| beyond sqrt(max): an honest +inf
        out = 0.5 * np.sum((y - tv) ** 2) / count
    if onp.isnan(getval(out)):
        raise ValueError("mean_squared_error is undefined here: y or t contains NaN (or the same infinity)")
    return out
