"""Input checks shared by the public functions: clear errors instead of numpy tracebacks."""
import numpy as np
from autograd.tracer import getval


def as_float_array(x, name="x"):
    """``x`` as a float array (float kept as is, integers to float64); TypeError on other dtypes."""
    if hasattr(x, "_value"):  # an autograd ArrayBox: checked on its value, passed through traced
        dtype = np.asarray(getval(x)).dtype
        if dtype.kind != "f":
            raise TypeError(f"{name} must be a float array, got dtype {dtype}")
        return x
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as err:
        raise TypeError(f"{name} could not be read as a numeric array: {err}") from None
    if arr.dtype.kind == "f":
        return arr
    if arr.dtype.kind in "iu":
        return arr.astype(np.float64)
    raise TypeError(f"{name} must be a numeric (float or integer) array, got dtype {arr.dtype}")


def all_finite(x):
    """Whether every entry of the float array ``x`` is finite (NaN and ±inf are not)."""
    return bool(np.isfinite(x).all())


def labels_or_targets(t, batch_shape, num_classes, name="t"):
    """Check targets for logits of shape ``batch_shape + (num_classes,)``.

    Returns ``("labels", int array of batch_shape)`` or ``("targets", float array)``.
    Integer labels must lie in ``[0, num_classes)``; float targets must have the
    logits' shape with rows that are probability vectors (one-hot or soft).
    """
    t = np.asarray(getval(t))
    if t.dtype.kind == "b" or t.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold integer labels or float targets, got dtype {t.dtype}")
    if t.shape == tuple(batch_shape) and t.dtype.kind in "iu":
        if t.size and (t.min() < 0 or t.max() >= num_classes):
            bad = int(np.flatnonzero((t < 0) | (t >= num_classes))[0])
            raise ValueError(
                f"label {t.reshape(-1)[bad]} at position {bad} is outside [0, {num_classes}) "
                f"for {num_classes} classes")
        return "labels", t
    if t.shape == tuple(batch_shape) + (num_classes,):
        if t.dtype.kind != "f":
            t = _integer_one_hot(t, name)
        if not np.all(np.isfinite(t)) or np.any(t < 0):
            raise ValueError(f"targets {name} must be finite and non-negative")
        sums = t.sum(axis=-1)
        if not np.allclose(sums, 1.0, rtol=0, atol=1e-3 if t.dtype == np.float16 else 1e-5):
            bad = int(np.argmax(np.abs(sums - 1).reshape(-1)))
            raise ValueError(f"target rows must sum to 1 (one-hot or probabilities); row {bad} sums to "
                             f"{sums.reshape(-1)[bad]}")
        return "targets", t
    if t.dtype.kind == "f" and t.shape == tuple(batch_shape):
        raise TypeError(f"labels {name} must be integers, got dtype {t.dtype}")
    expected = f"{tuple(batch_shape)} integer labels or {tuple(batch_shape) + (num_classes,)} one-hot targets"
    if t.ndim == len(batch_shape) and t.ndim == 1:
        raise ValueError(f"label count {t.shape[0]} does not match batch size {batch_shape[0]}")
    raise ValueError(f"targets {name} have shape {t.shape}; expected {expected}")


def _integer_one_hot(t, name):
    """Integer one-hot rows, as the book writes them (``t = np.array([0, 0, 1])``), as float targets."""
    rows = t.reshape(-1, t.shape[-1])
    bad = np.flatnonzero(~np.all((rows == 0) | (rows == 1), axis=-1) | (rows.sum(axis=-1) != 1))
    if bad.size:
        raise ValueError(f"integer targets {name} of shape {t.shape} must be one-hot rows (0s and a single 1), "
                         f"but row {bad[0]} is {rows[bad[0]].tolist()}; pass labels of shape {t.shape[:-1]} "
                         f"or float probability rows")
    return t.astype(np.float64)


def raw_pixel_warning(x, name="x"):
    """A message when ``x`` looks like unscaled 0..255 pixel values (uint8, or whole floats up to 255), else None."""
    x = np.asarray(x)
    if x.size == 0 or x.dtype.kind not in "uif":
        return None
    low, high = float(x.min()), float(x.max())
    if x.dtype == np.uint8 or (1.5 < high <= 255 and low >= 0 and np.array_equal(x, np.round(x))):
        return (f"{name} holds values from {low:g} to {high:g}: raw pixel values? The book's networks expect "
                f"pixels scaled to [0, 1] (as load_mnist(normalize=True) gives them): divide by 255")
    return None


def labels_unless_soft(t, batch_shape, num_classes, name="t"):
    """As ``labels_or_targets``, but one-hot targets come back as their labels, so both give the same loss."""
    kind, t = labels_or_targets(t, batch_shape, num_classes, name)
    if kind == "targets" and np.all((t == 0) | (t == 1)):
        return "labels", np.argmax(t, axis=-1)
    return kind, t
