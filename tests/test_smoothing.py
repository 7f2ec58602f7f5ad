"""smooth_curve: a centred Kaiser-window average with mirrored ends, the book's smooth_curve made explicit."""
import numpy as np
import pytest

from minigrad_nets.experiments import smooth_curve


def book_smooth_curve(x):
    """The book's common/util.py smooth_curve, for reference."""
    s = np.r_[x[10:0:-1], x, x[-1:-11:-1]]
    w = np.kaiser(11, 2)
    y = np.convolve(w / w.sum(), s, mode="valid")
    return y[5:len(y) - 5]


def test_matches_the_book_away_from_the_right_end():
    x = np.random.default_rng(0).normal(size=200)
    y = smooth_curve(x)
    assert y.shape == x.shape
    # the book mirrors its right end including the last point; only the last 5 values may differ
    np.testing.assert_allclose(y[:-5], book_smooth_curve(x)[:-5], rtol=1e-12, atol=1e-12)


def test_constant_and_linear_curves_are_preserved_inside():
    np.testing.assert_allclose(smooth_curve(np.full(50, 2.3)), 2.3, rtol=1e-12)
    line = np.arange(40.0)
    np.testing.assert_allclose(smooth_curve(line)[5:-5], line[5:-5], rtol=1e-12)


def test_smoothing_reduces_noise():
    rng = np.random.default_rng(1)
    noisy = 1.0 + rng.normal(scale=0.3, size=2000)
    assert np.std(smooth_curve(noisy)) < 0.5 * np.std(noisy)


def test_box_window_with_beta_zero_is_a_plain_mean():
    x = np.random.default_rng(2).random(20)
    y = smooth_curve(x, window=5, beta=0.0)
    np.testing.assert_allclose(y[2:-2], np.convolve(x, np.ones(5) / 5, mode="valid"), rtol=1e-12)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 7])
def test_short_curves_keep_their_length(n):
    x = np.arange(float(n))
    y = smooth_curve(x)
    assert y.shape == (n,)
    assert np.all(np.isfinite(y))


@pytest.mark.parametrize("kwargs, match", [
    ({"window": 4}, "odd"), ({"window": 0}, "odd"), ({"window": 2.0}, "odd"), ({"beta": -1}, "beta"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        smooth_curve(np.ones(10), **kwargs)


def test_rejects_2d_input():
    with pytest.raises(ValueError, match="1-D"):
        smooth_curve(np.ones((3, 4)))
