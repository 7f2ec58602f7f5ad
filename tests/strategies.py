"""Shared hypothesis strategies: float arrays over the whole finite range, labels and targets, small networks.

Shapes have 1-3 dims of 1-5 entries and the softmax axis is drawn with them.
Dtypes are float64 and float32. Values mix the *whole* finite range of the dtype
(up to ±1.8e308 / ±3.4e38, subnormals and signed zeros included) with moderate
values, so rows hold both overflowing and ordinary logits side by side.
"""
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad_nets as mg

FLOAT_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))
float_dtypes = st.sampled_from(FLOAT_DTYPES)
shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5)


def finite_floats(dtype):
    """Any finite value of ``dtype``: the whole range, signed zeros and subnormals included."""
    return st.floats(allow_nan=False, allow_infinity=False, width=np.dtype(dtype).itemsize * 8)


def spread_floats(dtype):
    """Finite values spread evenly over the binary exponents of ``dtype``: as many near 1e300 as near 1."""
    dtype = np.dtype(dtype)
    info = np.finfo(dtype)

    def build(sign, exponent, mantissa):
        return dtype.type(np.clip(sign * np.ldexp(mantissa, exponent), -float(info.max), float(info.max)))

    return st.builds(build, st.sampled_from([-1.0, 1.0]), st.integers(int(info.minexp), int(info.maxexp) - 1),
                     st.floats(1, 2, exclude_max=True))


def boundary_floats(dtype):
    """The values where float code breaks: ±max, ±max/2, ±tiny, the smallest subnormal, ±0, ±1."""
    info = np.finfo(dtype)
    edges = [info.max, info.max / 2, info.tiny, info.smallest_subnormal, 0.0, 1.0]
    return st.sampled_from([np.dtype(dtype).type(s * e) for e in edges for s in (1, -1)])


def logit_values(dtype):
    """Element strategy for logits: the whole finite range, mixing hypothesis's own floats, values spread
    over every exponent, the boundary values and moderate values (|x| <= 50) in the same rows."""
    width = np.dtype(dtype).itemsize * 8
    return st.one_of(finite_floats(dtype), spread_floats(dtype), boundary_floats(dtype),
                     st.floats(-50, 50, width=width))


def huge_floats(dtype):
    """Values of either sign within a factor 8 of the largest float: their differences overflow."""
    top = float(np.finfo(dtype).max)
    magnitudes = st.floats(top / 8, top, width=np.dtype(dtype).itemsize * 8)
    return st.builds(lambda sign, m: np.dtype(dtype).type(sign * m), st.sampled_from([-1.0, 1.0]), magnitudes)


def float_arrays(dtype, shape):
    """Arrays of ``dtype`` and ``shape``, each entry drawn on its own; about a third in the overflow regime
    (huge values of both signs next to moderate ones), the rest from ``logit_values``."""
    moderate = st.floats(-50, 50, width=np.dtype(dtype).itemsize * 8)
    mixed = hnp.arrays(dtype, shape, elements=logit_values(dtype), fill=st.nothing())
    overflowing = hnp.arrays(dtype, shape, elements=st.one_of(huge_floats(dtype), moderate), fill=st.nothing())
    return st.one_of(mixed, mixed, overflowing)


@st.composite
def arrays_and_axes(draw, dtypes=float_dtypes, shapes=shapes):
    """``(x, axis)``: x of 1-3 dims, float64 or float32, values over the whole finite range; axis in [-ndim, ndim)."""
    dtype = draw(dtypes)
    shape = draw(shapes)
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    return draw(float_arrays(dtype, shape)), axis


@st.composite
def dyadic_arrays_and_shifts(draw):
    """``(x, axis, c)`` where x + c and max(x) + c are exact: small integers times 2**k, in float64 or float32.

    On such inputs softmax(x + c) must equal softmax(x) bit for bit.
    """
    dtype = draw(float_dtypes)
    bits = 20 if dtype == np.float64 else 10  # integer parts and shift together fit the mantissa
    scale = 2.0 ** draw(st.integers(-8, 4))
    shape = draw(shapes)
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    ints = draw(hnp.arrays(np.int64, shape, elements=st.integers(-(2 ** bits), 2 ** bits)))
    shift = draw(st.integers(-(2 ** bits), 2 ** bits)) * scale
    return (ints * scale).astype(dtype), axis, dtype.type(shift)


@st.composite
def logits_and_labels(draw, dtypes=float_dtypes, shapes=shapes):
    """``(z, t)``: logits of shape batch + (C,) (1-3 dims) and integer labels of shape batch in [0, C)."""
    dtype = draw(dtypes)
    shape = draw(shapes)
    z = draw(float_arrays(dtype, shape))
    t = draw(hnp.arrays(np.int64, shape[:-1], elements=st.integers(0, shape[-1] - 1)))
    return z, t


@st.composite
def soft_targets(draw, like):
    """Probability rows shaped like ``like`` and of its dtype: non-negative, summing to 1 along the last axis."""
    weights = draw(hnp.arrays(np.float64, like.shape, elements=st.floats(0, 1)))
    hot = np.argmax(weights, axis=-1)[..., None]
    np.put_along_axis(weights, hot, 1.0, axis=-1)  # every row has some weight
    return (weights / weights.sum(axis=-1, keepdims=True)).astype(like.dtype)


@st.composite
def logits_and_targets(draw):
    """``(z, t)``: whole-range logits with integer labels or soft probability rows (one-hot included)."""
    z, labels = draw(logits_and_labels())
    kind = draw(st.sampled_from(["labels", "soft"]))
    return (z, labels) if kind == "labels" else (z, draw(soft_targets(z)))


def one_hot(labels, classes, dtype):
    """Integer labels of shape batch -> one-hot rows batch + (classes,) of ``dtype``."""
    return np.eye(classes, dtype=dtype)[labels]


# ---------------------------------------------------------------- small networks

architectures = st.fixed_dictionaries({
    "input_size": st.integers(1, 4),
    "hidden_sizes": st.lists(st.integers(1, 5), min_size=0, max_size=2),
    "output_size": st.integers(1, 4),
    "activation": st.sampled_from(["relu", "sigmoid", "tanh"]),
    "init": st.sampled_from(["he", "xavier", 0.5]),
    "weight_decay": st.one_of(st.just(0.0), st.floats(1e-3, 1.0)),
    "dropout": st.sampled_from([0.0, 0.0, 0.25]),
})


@st.composite
def network_problems(draw, dtype="float64"):
    """``(net, params, x, t, key)``: a small random MLP, params from a drawn seed, a batch of 1-4 inputs,
    labels, and a dropout key (None, inference, half the time)."""
    arch = draw(architectures)
    net = mg.mlp(dtype=dtype, **arch)
    params = net.init(draw(st.integers(0, 2 ** 32 - 1)))
    batch = draw(st.integers(1, 4))
    x = draw(hnp.arrays(net.dtype, (batch, net.input_size), elements=st.floats(-3, 3, width=net.dtype.itemsize * 8)))
    t = draw(hnp.arrays(np.int64, (batch,), elements=st.integers(0, net.output_size - 1)))
    key = draw(st.one_of(st.none(), st.integers(0, 2 ** 16)))
    return net, params, x, t, key
