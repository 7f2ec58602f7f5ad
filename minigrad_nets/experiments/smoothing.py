"""Smoothing of noisy per-iteration loss curves, as in the book's ``smooth_curve``."""
import numpy as np


def smooth_curve(values, window=11, beta=2.0):
    """A Kaiser-window moving average of a 1-D curve: (n,) -> (n,), centred, edges mirrored.

    Each output point is the weighted mean of the ``window`` points around it,
    with weights ``np.kaiser(window, beta)`` (beta=2 tapers gently; beta=0 is a
    plain box average). Near the ends the curve is reflected about its first
    and last point, so the output has the input's length and is not pulled
    towards zero. Curves shorter than ``window`` use the largest odd window
    that fits. This is the book's ``smooth_curve`` (window 11, beta 2) with the
    window and beta made explicit.
    """
    y = np.asarray(values, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"smooth_curve takes a 1-D curve, got an array of shape {y.shape}")
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1 or window % 2 == 0:
        raise ValueError(f"smoothing window must be a positive odd integer, got {window!r}")
    beta = float(beta)
    if not np.isfinite(beta) or beta < 0:
        raise ValueError(f"Kaiser beta must be a finite number >= 0, got {beta}")
    n = y.size
    window = min(int(window), n if n % 2 else n - 1)
    if window <= 1:
        return y.copy()
    half = window // 2
    weights = np.kaiser(window, beta)
    weights /= weights.sum()
    padded = np.pad(y, half, mode="reflect")
    return np.convolve(padded, weights, mode="valid")
