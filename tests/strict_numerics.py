"""The guard every property runs the code under test in: a floating-point warning is a failure."""
import warnings
from contextlib import contextmanager

import numpy as np


@contextmanager
def strict_numerics():
    """Inside: numpy overflow, invalid value (NaN made) and divide-by-zero raise, and any warning raises.

    Underflow (``exp(-1000) == 0``) stays allowed: it is the expected, harmless way
    small probabilities vanish. Code under test that silences overflow with its own
    ``np.errstate`` (the deliberate, documented ``x - max(x) -> -inf``) is still
    allowed to: an inner ``errstate`` wins over this one. Both mechanisms are set, so
    the guard holds whatever the global ``np.seterr`` or pytest's warning filters are.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
            yield
