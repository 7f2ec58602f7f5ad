"""Experiment results on disk: JSON of plain data, written atomically."""
import json
import math

import numpy as np

from ..atomic import atomic_write


def to_jsonable(value):
    """``value`` with numpy arrays / scalars turned into lists / Python numbers (NaN and inf become None)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path, data):
    """Write ``to_jsonable(data)`` to ``path`` as indented JSON, atomically."""
    text = json.dumps(to_jsonable(data), indent=1, allow_nan=False) + "\n"
    return atomic_write(path, lambda f: f.write(text))
