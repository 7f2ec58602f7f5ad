"""Properties of cross_entropy over the whole finite float range, in float64 and float32.

As in test_properties_softmax.py, each ``check_*`` takes the implementation as an
argument so test_properties_can_fail.py can run it against the naive -log(p + 1e-7).
Bounds are computed on halves of the logits (``m/2 - z/2`` cannot overflow), so
they stay exact references even where ``max z - z_y`` is past the float range.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad_nets as mg
from minigrad_nets.gradients.backprop import softmax_cross_entropy
from strategies import float_dtypes, logit_values, logits_and_labels, logits_and_targets, one_hot
from strict_numerics import strict_numerics

# A warning raised by the test's own arithmetic is a bug in the test: make it fail too.
pytestmark = pytest.mark.filterwarnings("error")


def as_rows(z, t):
    """Logits as (B, C) and targets as (B, C) float64 weight rows (labels become one-hot)."""
    classes = z.shape[-1]
    z2 = z.reshape(-1, classes)
    t = np.asarray(t)
    weights = one_hot(t.reshape(-1), classes, np.float64) if t.shape != z.shape else t.reshape(-1, classes)
    return z2, weights.astype(np.float64)


def loss_bounds(z, t):
    """``(lower, upper)`` for the mean cross-entropy, in float64: mean of Σ t_i (max z - z_i), plus log C on top.

    Per example, -log p_y = (max z - z_y) + log Σ exp(z - max z), and the log term
    lies in [0, log C]; soft targets average this over the classes. Returned
    values may be +inf when the exact bound is past the float64 range.
    """
    z2, weights = as_rows(z, t)
    z2 = z2.astype(np.float64)
    half_gaps = np.max(z2, axis=1, keepdims=True) / 2 - z2 / 2  # never overflows
    half_gaps = np.where(weights > 0, half_gaps, 0.0)
    half_lower = np.sum(np.sum(weights * half_gaps, axis=1) / len(z2))
    with np.errstate(over="ignore"):
        lower = 2 * half_lower
    return float(lower), float(lower + np.log(z.shape[-1]))  # Python floats: inf past the range, no warning


def slack(z):
    """Relative rounding allowance for a mean over B rows of C classes, in z's dtype."""
    batch, classes = int(np.prod(z.shape[:-1])), z.shape[-1]
    return float(4 * (batch + classes + 2) * np.finfo(z.dtype).eps)  # a Python float: no float32 arithmetic


# ---------------------------------------------------------------- the properties


def check_nonnegative(cross_entropy, z, t):
    """The loss is a number >= 0 (never NaN, never negative), of the logits' dtype."""
    with strict_numerics():
        loss = cross_entropy(z, t)
    assert np.ndim(loss) == 0 and np.asarray(loss).dtype == z.dtype
    assert loss >= 0


def check_labels_equal_one_hot(cross_entropy, z, t):
    """Integer labels and their one-hot rows give the same value."""
    with strict_numerics():
        from_labels = cross_entropy(z, t)
        from_one_hot = cross_entropy(z, one_hot(t, z.shape[-1], z.dtype))
    assert from_labels == from_one_hot


def check_within_bounds(cross_entropy, z, t):
    """mean(max z - z_y) <= CE <= mean(max z - z_y) + log C (to rounding); +inf only past the float range."""
    with strict_numerics():
        loss = float(cross_entropy(z, t))
    lower, upper = loss_bounds(z, t)
    top = float(np.finfo(z.dtype).max)
    if loss == np.inf:
        assert lower >= top * (1 - slack(z)), f"+inf although the exact loss is at most {upper}"
        return
    tol = slack(z)
    assert lower * (1 - tol) <= loss <= upper * (1 + tol) + tol, (lower, loss, upper)


def check_finite_when_representable(cross_entropy, z, t):
    """The loss is finite whenever its exact value is (comfortably) below the largest float of the dtype."""
    _, upper = loss_bounds(z, t)
    with strict_numerics():
        loss = cross_entropy(z, t)
    if upper <= float(np.finfo(z.dtype).max) * (1 - slack(z)):
        assert np.isfinite(loss), f"loss {loss} though its exact value is at most {upper}"


def check_single_class_is_zero(cross_entropy, z, t):
    """With one class the prediction is certain: the loss is exactly 0, whatever the logits."""
    with strict_numerics():
        assert cross_entropy(z, t) == 0


# ---------------------------------------------------------------- strategies


@st.composite
def logits_with_underflowing_target(draw):
    """``(z, t)``: the target's logit sits far below the row max, so exp(z_y - max z) underflows to 0."""
    z, t = draw(logits_and_labels(shapes=hnp.array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=5)))
    z = np.clip(z, -1e3, 1e3).astype(z.dtype)
    top = float(np.finfo(z.dtype).max)
    least = 1e3 if z.dtype == np.float64 else 120.0  # exp(-least) is 0 in the dtype
    gap = draw(st.floats(least, top / 4, width=z.dtype.itemsize * 8))
    rows = z.reshape(-1, z.shape[-1])
    picked = (np.arange(len(rows)), t.reshape(-1))
    rows[picked] = -np.inf
    rows[picked] = rows.max(axis=1) - gap  # gap below the best of the other classes
    return rows.reshape(z.shape), t


@st.composite
def single_class_logits(draw):
    """``(z, t)``: logits of shape batch + (1,), any finite values, labels all 0."""
    dtype = draw(float_dtypes)
    batch = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=5))
    z = draw(hnp.arrays(dtype, batch + (1,), elements=logit_values(dtype)))
    return z, np.zeros(batch, dtype=np.int64)


# ---------------------------------------------------------------- the tests (the library)


@given(logits_and_targets())
def test_cross_entropy_is_nonnegative(case):
    check_nonnegative(mg.cross_entropy, *case)


@given(logits_and_labels())
def test_labels_and_one_hot_give_the_same_value(case):
    check_labels_equal_one_hot(mg.cross_entropy, *case)


@given(logits_and_targets())
def test_cross_entropy_within_bounds(case):
    check_within_bounds(mg.cross_entropy, *case)


@given(logits_and_targets())
def test_cross_entropy_within_bounds_per_example(case):
    """The bounds hold for each example alone, not only for the batch mean."""
    z, t = case
    classes = z.shape[-1]
    labels = np.ndim(t) == z.ndim - 1
    targets = np.reshape(t, -1) if labels else np.reshape(t, (-1, classes))
    for row, target in zip(z.reshape(-1, classes), targets):
        check_within_bounds(mg.cross_entropy, row, target)


@given(logits_and_targets())
def test_cross_entropy_finite_when_representable(case):
    check_finite_when_representable(mg.cross_entropy, *case)


def backprop_cross_entropy(z, t):
    """The backprop path's loss (``gradients.backprop.softmax_cross_entropy``) for logits of any batch shape."""
    classes = z.shape[-1]
    t = np.asarray(t)
    t = t.reshape(-1) if t.shape != z.shape else t.reshape(-1, classes)
    return softmax_cross_entropy(z.reshape(-1, classes), t)[0]


@given(logits_and_targets())
def test_backprop_loss_has_the_same_properties(case):
    """The hand-written loss (a fast sum, and the halves only when that overflows) keeps every guarantee."""
    check_nonnegative(backprop_cross_entropy, *case)
    check_within_bounds(backprop_cross_entropy, *case)
    check_finite_when_representable(backprop_cross_entropy, *case)


@given(logits_and_labels())
def test_backprop_labels_and_one_hot_give_the_same_value(case):
    check_labels_equal_one_hot(backprop_cross_entropy, *case)


@given(logits_with_underflowing_target())
def test_underflowing_target_probability_gives_the_large_exact_loss(case):
    check_finite_when_representable(mg.cross_entropy, *case)
    check_within_bounds(mg.cross_entropy, *case)


@given(single_class_logits())
def test_single_class_loss_is_zero(case):
    check_single_class_is_zero(mg.cross_entropy, *case)


# ---------------------------------------------------------------- decided edge cases


@given(logits_and_labels(shapes=hnp.array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=5)), st.data())
def test_masked_classes(case, data):
    """-inf logits are masked classes: a target on an unmasked class gives the loss over the unmasked
    classes alone; a target on a masked one gives +inf (its probability is exactly 0), never NaN."""
    z, t = case
    classes = z.shape[-1]
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=classes, max_size=classes)
                              .filter(lambda m: any(m) and not all(m))))
    masked = np.where(mask, -np.inf, z).astype(z.dtype)
    with strict_numerics():
        loss = mg.cross_entropy(masked, t)
    if np.any(mask[t]):
        assert loss == np.inf
    else:
        keep = np.flatnonzero(~mask)
        with strict_numerics():
            assert loss == mg.cross_entropy(z[..., keep], np.searchsorted(keep, t))


@given(logits_and_labels(), st.sampled_from(["NaN", "+inf", "entirely -inf"]), st.data())
def test_nan_plus_inf_and_all_masked_rows_are_value_errors(case, what, data):
    z, t = case
    z = z.copy()
    index = tuple(data.draw(st.integers(0, s - 1)) for s in z.shape)
    if what == "entirely -inf":
        index = index[:-1] + (slice(None),)
    z[index] = {"NaN": np.nan, "+inf": np.inf, "entirely -inf": -np.inf}[what]
    with strict_numerics(), pytest.raises(ValueError, match=what.replace("+", r"\+")):
        mg.cross_entropy(z, t)


@given(float_dtypes, st.integers(1, 5))
def test_empty_batch_is_a_value_error(dtype, classes):
    with strict_numerics(), pytest.raises(ValueError, match="empty batch"):
        mg.cross_entropy(np.zeros((0, classes), dtype), np.zeros(0, dtype=np.int64))


@given(logits_and_targets())
def test_mean_squared_error_is_quiet_nonnegative_and_finite_in_range(case):
    """0.5 Σ (y - t)² / B: >= 0, of y's dtype, no warning; finite when the sum of squares fits the dtype."""
    y, t = case
    with strict_numerics():
        loss = mg.mean_squared_error(y, t)
    assert np.asarray(loss).dtype == y.dtype and loss >= 0
    _, weights = as_rows(y, t)
    worst = float(np.max(np.abs(y.reshape(weights.shape).astype(np.float64) - weights)))
    if worst <= np.sqrt(float(np.finfo(y.dtype).max) / y.size) / 2:
        assert np.isfinite(loss)
