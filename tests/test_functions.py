"""Unit tests of functions.py: known values, dtypes and the errors bad input gets.

The hypothesis properties (stability over the whole float range) live in test_properties_*.py.
"""
import autograd
import numpy as np
import pytest

import minigrad_nets as mg


def test_known_values():
    np.testing.assert_allclose(mg.sigmoid(np.array([0.0, 2.0])), [0.5, 1 / (1 + np.exp(-2.0))], rtol=1e-15)
    np.testing.assert_array_equal(mg.relu(np.array([-1.0, 0.0, 3.0])), [0.0, 0.0, 3.0])
    np.testing.assert_allclose(mg.softmax(np.log(np.array([1.0, 2.0, 5.0]))), [0.125, 0.25, 0.625], rtol=1e-15)
    np.testing.assert_allclose(mg.logsumexp(np.array([[0.0, 0.0], [1000.0, 1000.0]])),
                               [np.log(2), 1000 + np.log(2)], rtol=1e-15)


def test_sigmoid_extremes_are_exact_and_quiet():
    with np.errstate(over="raise", invalid="raise"):  # exp underflowing to 0 is expected
        y = mg.sigmoid(np.array([-1e308, -745.0, 745.0, 1e308]))
    assert y[0] == 0.0 and y[-1] == 1.0
    assert 0 < y[1] < 1e-300  # the tiny value survives, no cancellation


def test_relu_gradient_is_zero_at_the_kink():
    g = autograd.grad(lambda x: np.sum(mg.relu(x)))(np.array([-1.0, 0.0, 2.0]))
    np.testing.assert_array_equal(g, [0.0, 0.0, 1.0])


def test_sigmoid_gradient():
    g = autograd.grad(lambda x: np.sum(mg.sigmoid(x)))(np.array([0.0, 3.0]))
    s = 1 / (1 + np.exp(-3.0))
    np.testing.assert_allclose(g, [0.25, s * (1 - s)], rtol=1e-14)


@pytest.mark.parametrize("fn", [mg.sigmoid, mg.relu, mg.tanh, mg.softmax, mg.log_softmax, mg.logsumexp])
def test_float32_in_float32_out(fn):
    x = np.linspace(-3, 3, 12, dtype=np.float32).reshape(3, 4)
    assert fn(x).dtype == np.float32


def test_cross_entropy_labels_one_hot_single_sample():
    z = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]])
    t = np.array([0, 1])
    expected = np.mean([-np.log(mg.softmax(z[i])[t[i]]) for i in range(2)])
    assert mg.cross_entropy(z, t) == pytest.approx(expected, rel=1e-15)
    assert mg.cross_entropy(z, np.eye(3)[t]) == mg.cross_entropy(z, t)
    assert mg.cross_entropy(z[1], 1) == pytest.approx(-np.log(mg.softmax(z[1])[1]), rel=1e-15)
    assert mg.cross_entropy(z.astype(np.float32), t).dtype == np.float32


def test_cross_entropy_soft_targets_and_masked_classes():
    z = np.array([[1.0, -np.inf, 0.0]])
    soft = np.array([[0.5, 0.0, 0.5]])
    expected = -(0.5 * np.log(mg.softmax(z)[0, 0]) + 0.5 * np.log(mg.softmax(z)[0, 2]))
    assert mg.cross_entropy(z, soft) == pytest.approx(expected, rel=1e-15)
    assert np.isfinite(mg.cross_entropy(z, np.array([2])))


def test_cross_entropy_gradient_is_softmax_minus_onehot_over_batch():
    z = np.random.default_rng(0).normal(size=(5, 4))
    t = np.array([0, 3, 1, 1, 2])
    g = autograd.grad(mg.cross_entropy)(z, t)
    np.testing.assert_allclose(g, (mg.softmax(z) - np.eye(4)[t]) / 5, atol=1e-16)


def test_mean_squared_error_is_the_books_on_one_sample():
    y = np.array([0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0])
    t = np.zeros(10)
    t[2] = 1
    assert mg.mean_squared_error(y, t) == pytest.approx(0.0975, rel=1e-12)  # the book's example value
    assert mg.mean_squared_error(np.stack([y, y]), np.array([2, 2])) == pytest.approx(0.0975, rel=1e-12)


@pytest.mark.parametrize("t, error, match", [
    (np.array([0, 3]), ValueError, r"label 3 at position 1 is outside \[0, 3\)"),
    (np.array([0, -1]), ValueError, r"label -1"),
    (np.array([0, 1, 2]), ValueError, r"label count 3 does not match batch size 2"),
    (np.array([0.0, 1.0]), TypeError, r"labels t must be integers"),
    (np.eye(4)[[0, 1]], ValueError, r"shape \(2, 4\)"),
    (np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]]), ValueError, r"sum to 1"),
    (np.array(["a", "b"]), TypeError, r"dtype"),
    (np.array([True, False]), TypeError, r"dtype bool"),
])
def test_cross_entropy_rejects_bad_targets(t, error, match):
    with pytest.raises(error, match=match):
        mg.cross_entropy(np.zeros((2, 3)), t)


@pytest.mark.parametrize("z, match", [
    (np.array([[0.0, np.nan]]), "NaN"),
    (np.array([[0.0, np.inf]]), r"\+inf"),
    (np.array([[-np.inf, -np.inf]]), "entirely -inf"),
    (np.zeros((0, 3)), "empty batch"),
    (np.zeros((2, 0)), "0 classes|length 0"),
])
def test_cross_entropy_rejects_undefined_logits(z, match):
    with pytest.raises(ValueError, match=match):
        mg.cross_entropy(z, np.zeros(z.shape[0], dtype=int))


def test_non_numeric_input_is_a_type_error():
    with pytest.raises(TypeError, match="dtype"):
        mg.softmax(np.array(["1", "2"]))
    with pytest.raises(TypeError, match="dtype"):
        mg.sigmoid(np.array([1 + 1j]))


def test_relu_keeps_nan_visible():
    assert np.isnan(mg.relu(np.array([np.nan, -1.0]))[0])


@pytest.mark.parametrize("axis, error", [(2, ValueError), (-3, ValueError), (None, TypeError), (1.0, TypeError)])
def test_softmax_axis_is_checked(axis, error):
    with pytest.raises(error, match="axis"):
        mg.softmax(np.zeros((2, 3)), axis=axis)


def test_mean_squared_error_refuses_nan():
    with pytest.raises(ValueError, match="NaN"):
        mg.mean_squared_error(np.array([[np.nan, 0.0]]), np.array([[1.0, 0.0]]))
