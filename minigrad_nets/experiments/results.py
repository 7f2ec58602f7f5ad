"""Experiment results on disk: JSON of plain data and atomic file writes."""
import json
import math
import os
import secrets

import numpy as np


def atomic_write(path, write, binary=False):
    """Call ``write(file)`` on a temp file beside ``path``, then os.replace it onto ``path``.

    A reader never sees a half-written file; on any error the temp file is
    removed and ``path`` is left as it was. Permissions follow the umask.
    """
    path = os.fspath(path)
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)),
                       f".{os.path.basename(path)}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        with open(tmp, "xb" if binary else "x", **({} if binary else {"encoding": "utf-8"})) as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


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
