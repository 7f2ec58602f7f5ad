"""Properties of softmax and log_softmax over the whole finite float range, in float64 and float32.

Each ``check_*`` function is one property: it takes the implementations as
arguments, so test_properties_can_fail.py can run the same body against the
naive exp(x) / sum(exp(x)) and show it fails. The code under test runs inside
``strict_numerics()``: an overflow / invalid-value warning is a failure.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad_nets as mg
from strategies import arrays_and_axes, dyadic_arrays_and_shifts, float_dtypes, shapes
from strict_numerics import strict_numerics

# A warning raised by the test's own arithmetic is a bug in the test: make it fail too.
pytestmark = pytest.mark.filterwarnings("error")


def rows_last(a, axis):
    """``a`` with the softmax axis moved last, flattened to (rows, n)."""
    a = np.moveaxis(a, axis, -1)
    return a.reshape(-1, a.shape[-1])


def representable_gaps(x, axis):
    """Where ``max(x) - x`` along ``axis`` is representable (False where it overflows the dtype).

    Computed on halves, which cannot overflow; in the normal range halving commutes
    with rounding, so ``m/2 - x/2 <= max/2`` is exactly "``m - x`` rounds to a finite value".
    """
    m = np.max(x, axis=axis, keepdims=True)
    return (m / 2 - x / 2) <= np.finfo(x.dtype).max / 2


# ---------------------------------------------------------------- the properties


def check_softmax_is_a_distribution(softmax, x, axis):
    """Finite, of x's dtype and shape, every entry in [0, 1], each row summing to 1 within n * eps."""
    with strict_numerics():
        p = softmax(x, axis)
    assert p.dtype == x.dtype and p.shape == x.shape
    assert np.all(np.isfinite(p))
    assert np.all((p >= 0) & (p <= 1))
    n, eps = x.shape[axis], np.finfo(x.dtype).eps
    sums = np.sum(p.astype(np.float64), axis=axis)
    assert np.all(np.abs(sums - 1) <= n * eps), sums


def check_log_softmax_is_a_log_distribution(log_softmax, x, axis):
    """<= 0 everywhere; finite wherever the exact value is representable, -inf (never NaN) where not."""
    with strict_numerics():
        ls = log_softmax(x, axis)
    assert ls.dtype == x.dtype and ls.shape == x.shape
    assert not np.any(np.isnan(ls))
    assert np.all(ls <= 0)
    representable = representable_gaps(x, axis)
    assert np.all(np.isfinite(ls[representable]))
    assert np.all(ls[~representable] == -np.inf)
    # The largest entry of each row has log-probability in [-log n, 0].
    best = np.take_along_axis(ls, np.expand_dims(np.argmax(x, axis=axis), axis), axis)
    assert np.all(best >= -np.log(x.shape[axis]) * (1 + 4 * np.finfo(x.dtype).eps))


def check_exp_log_softmax_is_softmax(softmax, log_softmax, x, axis):
    """exp(log_softmax(x)) equals softmax(x) to a relative error of a few eps * (1 + |log p|)."""
    with strict_numerics():
        p = softmax(x, axis)
        ls = log_softmax(x, axis)
    eps, tiny = np.finfo(x.dtype).eps, np.finfo(x.dtype).tiny
    ls64, p64 = ls.astype(np.float64), p.astype(np.float64)
    assert not np.any(np.isnan(ls64)) and not np.any(np.isnan(p64))  # NaN agrees with nothing
    assert np.all(p64[ls64 == -np.inf] == 0)
    finite = np.isfinite(ls64)
    ls64, p64 = ls64[finite], p64[finite]
    tolerance = 8 * eps * (1 + np.abs(ls64)) * p64 + tiny
    assert np.all(np.abs(np.exp(ls64) - p64) <= tolerance)


def check_argmax_preserved(softmax, log_softmax, x, axis):
    """The largest logit of each row has the largest probability (ties in p allowed, never a loss of order)."""
    with strict_numerics():
        p = softmax(x, axis)
        ls = log_softmax(x, axis)
    top = np.expand_dims(np.argmax(x, axis=axis), axis)
    for out in (p, ls):
        assert np.all(np.take_along_axis(out, top, axis) == np.max(out, axis=axis, keepdims=True))


def check_monotone(softmax, log_softmax, x, axis):
    """Within a row, x_i < x_j implies p_i <= p_j, and x_i == x_j implies p_i == p_j (both functions)."""
    with strict_numerics():
        outs = softmax(x, axis), log_softmax(x, axis)
    xr = rows_last(x, axis)
    less = xr[:, :, None] < xr[:, None, :]
    equal = xr[:, :, None] == xr[:, None, :]
    for out in outs:
        o = rows_last(out, axis)
        assert np.all(~less | (o[:, :, None] <= o[:, None, :]))
        assert np.all(~equal | (o[:, :, None] == o[:, None, :]))


def check_permutation_equivariant(softmax, log_softmax, x, axis, perm):
    """Permuting the classes permutes the output (up to the rounding of a reordered sum)."""
    xp = np.take(x, perm, axis=axis)
    eps, tiny = np.finfo(x.dtype).eps, np.finfo(x.dtype).tiny
    n = x.shape[axis]
    for fn in (softmax, log_softmax):
        with strict_numerics():
            a = np.take(fn(x, axis), perm, axis=axis)
            b = fn(xp, axis)
        finite = np.isfinite(a)
        assert np.array_equal(finite, np.isfinite(b)) and np.all(a[~finite] == b[~finite])  # NaN != NaN
        a, b = a[finite].astype(np.float64), b[finite].astype(np.float64)
        assert np.all(np.abs(a - b) <= 2 * n * eps * np.maximum(np.abs(a), 1 if fn is log_softmax else 0) + tiny)


def check_shift_invariant(softmax, log_softmax, x, axis, c):
    """On dyadic inputs, where x + c is exact, softmax(x + c) == softmax(x) bit for bit; log_softmax too."""
    shifted = x + c
    assert np.array_equal(shifted - c, x)  # the precondition the strategy guarantees
    for fn in (softmax, log_softmax):
        with strict_numerics():
            assert np.array_equal(fn(shifted, axis), fn(x, axis))


def check_known_values(softmax, log_softmax):
    """softmax([1000, 0, 0, 0]) = [1, 0, 0, 0] and log_softmax([1000, 1]) = [0, -999], exactly."""
    with strict_numerics():
        p = softmax(np.array([1000.0, 0.0, 0.0, 0.0]), -1)
        ls = log_softmax(np.array([1000.0, 1.0]), -1)
    assert np.array_equal(p, [1.0, 0.0, 0.0, 0.0])
    assert np.array_equal(ls, [0.0, -999.0])


def check_masked_classes(softmax, log_softmax, x, axis, mask):
    """-inf logits get probability exactly 0 (log -inf); the others equal softmax over the unmasked classes."""
    masked = np.where(mask, -np.inf, x).astype(x.dtype)
    with strict_numerics():
        p, ls = softmax(masked, axis), log_softmax(masked, axis)
    assert np.all(p[mask] == 0) and np.all(ls[mask] == -np.inf)
    keep = ~rows_last(mask, axis)[0]  # the strategy masks the same classes in every row
    kept = np.compress(keep, x, axis=axis)
    with strict_numerics():
        np.testing.assert_allclose(np.compress(keep, p, axis=axis), softmax(kept, axis), rtol=0, atol=0)
        np.testing.assert_array_equal(np.compress(keep, ls, axis=axis), log_softmax(kept, axis))


def check_logsumexp_bounds(logsumexp, x, axis):
    """max(x) <= logsumexp(x) <= max(x) + log n (to rounding), finite for any finite x, of x's dtype."""
    with strict_numerics():
        lse = logsumexp(x, axis)
    assert lse.dtype == x.dtype and np.all(np.isfinite(lse))
    m = np.max(x, axis=axis).astype(np.float64)
    eps, tiny = float(np.finfo(x.dtype).eps), float(np.finfo(x.dtype).tiny)
    with np.errstate(over="ignore"):  # a wrong lse far from m may overflow here, and then fails below
        above_max = lse.astype(np.float64) - m
    rounding = 2 * eps * np.abs(m) + tiny
    assert np.all((-rounding <= above_max) & (above_max <= np.log(x.shape[axis]) * (1 + 4 * eps) + rounding))


# ---------------------------------------------------------------- the tests (the library)


@given(arrays_and_axes())
def test_softmax_is_a_distribution(case):
    check_softmax_is_a_distribution(mg.softmax, *case)


@given(arrays_and_axes())
def test_log_softmax_is_a_log_distribution(case):
    check_log_softmax_is_a_log_distribution(mg.log_softmax, *case)


@given(arrays_and_axes())
def test_exp_log_softmax_is_softmax(case):
    check_exp_log_softmax_is_softmax(mg.softmax, mg.log_softmax, *case)


@given(arrays_and_axes())
def test_argmax_preserved(case):
    check_argmax_preserved(mg.softmax, mg.log_softmax, *case)


@given(arrays_and_axes())
def test_monotone(case):
    check_monotone(mg.softmax, mg.log_softmax, *case)


@st.composite
def arrays_axes_and_permutations(draw):
    x, axis = draw(arrays_and_axes())
    return x, axis, draw(st.permutations(range(x.shape[axis])))


@given(arrays_axes_and_permutations())
def test_permutation_equivariant(case):
    check_permutation_equivariant(mg.softmax, mg.log_softmax, *case)


@given(dyadic_arrays_and_shifts())
def test_shift_invariant_exactly(case):
    check_shift_invariant(mg.softmax, mg.log_softmax, *case)


@given(arrays_and_axes())
def test_logsumexp_bounds(case):
    check_logsumexp_bounds(mg.logsumexp, *case)


def test_known_values():
    check_known_values(mg.softmax, mg.log_softmax)


@st.composite
def arrays_axes_and_masks(draw):
    """x with >= 2 classes and a mask of classes (the same in every row), never all of them."""
    x, axis = draw(arrays_and_axes())
    n = x.shape[axis]
    classes = draw(st.lists(st.booleans(), min_size=n, max_size=n).filter(lambda m: not all(m)))
    shape = [1] * x.ndim
    shape[axis] = n
    return x, axis, np.broadcast_to(np.reshape(classes, shape), x.shape)


@given(arrays_axes_and_masks())
def test_masked_classes_get_probability_zero(case):
    check_masked_classes(mg.softmax, mg.log_softmax, *case)


# ---------------------------------------------------------------- dtype and decided edge cases


@given(arrays_and_axes())
def test_float32_in_float32_out(case):
    x, axis = case
    with strict_numerics():
        for fn in (mg.softmax, mg.log_softmax):
            assert fn(x, axis).dtype == x.dtype  # the strategy draws float32 and float64


@st.composite
def arrays_with_a_bad_entry(draw):
    """``(x, axis, what)``: x with one entry NaN or +inf, or one whole row along axis -inf."""
    x, axis = draw(arrays_and_axes())
    what = draw(st.sampled_from(["NaN", "+inf", "entirely -inf"]))
    x = x.copy()
    index = tuple(draw(st.integers(0, s - 1)) for s in x.shape)
    if what == "entirely -inf":
        index = index[:axis % x.ndim] + (slice(None),) + index[axis % x.ndim + 1:]
    x[index] = {"NaN": np.nan, "+inf": np.inf, "entirely -inf": -np.inf}[what]
    return x, axis, what


@given(arrays_with_a_bad_entry())
def test_nan_plus_inf_and_all_masked_rows_are_value_errors(case):
    x, axis, what = case
    for fn in (mg.softmax, mg.log_softmax):
        with strict_numerics(), pytest.raises(ValueError, match=what.replace("+", r"\+")):
            fn(x, axis)


@given(float_dtypes, shapes, st.data())
def test_empty_batch_gives_empty_result_and_empty_axis_is_an_error(dtype, shape, data):
    empty_dim = data.draw(st.integers(0, len(shape) - 1))
    shape = shape[:empty_dim] + (0,) + shape[empty_dim + 1:]
    x = np.zeros(shape, dtype)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    for fn in (mg.softmax, mg.log_softmax):
        with strict_numerics():
            if axis % len(shape) == empty_dim:
                with pytest.raises(ValueError, match="length 0"):
                    fn(x, axis)
            else:
                out = fn(x, axis)
                assert out.shape == shape and out.dtype == dtype
