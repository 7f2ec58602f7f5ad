"""Weight initialisers: each is ``(rng, fan_in, fan_out) -> W`` with W of shape (fan_in, fan_out), float64."""
import numbers

import numpy as np


def normal(std):
    """An initialiser drawing W from N(0, std²): the book's ``weight_init_std``."""
    std = float(std)
    if not np.isfinite(std) or std <= 0:
        raise ValueError(f"initial weight std must be a positive finite number, got {std}")

    def init(rng, fan_in, fan_out):
        return std * rng.standard_normal((fan_in, fan_out))

    init.__name__ = f"normal({std:g})"
    return init


def xavier(rng, fan_in, fan_out):
    """The book's Xavier: N(0, 1/fan_in), suited to sigmoid and tanh."""
    return np.sqrt(1.0 / fan_in) * rng.standard_normal((fan_in, fan_out))


def glorot(rng, fan_in, fan_out):
    """Glorot & Bengio's normal initialiser: N(0, 2/(fan_in + fan_out))."""
    return np.sqrt(2.0 / (fan_in + fan_out)) * rng.standard_normal((fan_in, fan_out))


def he(rng, fan_in, fan_out):
    """He et al.: N(0, 2/fan_in), suited to ReLU."""
    return np.sqrt(2.0 / fan_in) * rng.standard_normal((fan_in, fan_out))


_BY_NAME = {
    "xavier": xavier, "sigmoid": xavier, "tanh": xavier,
    "glorot": glorot,
    "he": he, "relu": he,
}


def get(spec):
    """The initialiser for ``spec``: a positive float std, a name ('he', 'xavier', 'glorot', 'relu', 'sigmoid'), or a callable."""
    if callable(spec):
        return spec
    if isinstance(spec, numbers.Real) and not isinstance(spec, bool):
        return normal(spec)
    if isinstance(spec, str) and spec.lower() in _BY_NAME:
        return _BY_NAME[spec.lower()]
    raise ValueError(f"unknown weight initialiser {spec!r}: use a positive float std or one of {sorted(_BY_NAME)}")
