"""Properties of the cross-entropy gradient, and agreement of the three gradient paths on small networks.

d CE / d logits must be ``(softmax - onehot) / B`` by both the autograd path
(``autograd.grad`` of ``mg.cross_entropy``) and the hand-written backprop path
(``gradients.backprop.softmax_cross_entropy``), for any finite logits.
"""
import autograd
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad_nets as mg
from minigrad_nets.gradients.backprop import softmax_cross_entropy
from minigrad_nets.layers import layer_rng
from minigrad_nets.tree import tree_leaves, tree_leaves_with_paths
from strategies import arrays_and_axes, logits_and_labels, logits_and_targets, network_problems, one_hot
from strict_numerics import strict_numerics

# A warning raised by the test's own arithmetic is a bug in the test: make it fail too.
pytestmark = pytest.mark.filterwarnings("error")


def autograd_logit_gradient(z, t):
    """d cross_entropy / d logits by autograd: shape of z."""
    return autograd.grad(mg.cross_entropy)(z, t)


def backprop_logit_gradient(z, t):
    """d cross_entropy / d logits by the backprop path's fused rule: shape of z."""
    classes = z.shape[-1]
    t = np.reshape(t, -1) if np.ndim(t) == z.ndim - 1 else np.reshape(t, (-1, classes))
    return softmax_cross_entropy(z.reshape(-1, classes), t)[1].reshape(z.shape)


LOGIT_GRADIENTS = {"autograd": autograd_logit_gradient, "backprop": backprop_logit_gradient}


def expected_logit_gradient(z, t):
    """``(softmax(z) - T) / B`` in float64, T the one-hot rows of labels t or the target rows t themselves.

    (softmax's own properties are tested separately.)
    """
    batch = int(np.prod(z.shape[:-1]))
    targets = one_hot(t, z.shape[-1], np.float64) if np.ndim(t) == z.ndim - 1 else t.astype(np.float64)
    return (mg.softmax(z.astype(np.float64)) - targets) / batch


# ---------------------------------------------------------------- the properties


def check_logit_gradient_is_softmax_minus_onehot(logit_gradient, z, t):
    """The gradient is finite, of z's dtype, and equals (softmax - onehot) / B to a few eps / B (soft targets too)."""
    with strict_numerics():
        g = logit_gradient(z, t)
    assert g.shape == z.shape and g.dtype == z.dtype
    assert np.all(np.isfinite(g))
    batch, classes = int(np.prod(z.shape[:-1])), z.shape[-1]
    tolerance = 2 * (classes + 2) * np.finfo(z.dtype).eps / batch + np.finfo(z.dtype).tiny
    assert np.all(np.abs(g - expected_logit_gradient(z, t)) <= tolerance)


def check_logit_gradient_signs_and_bounds(logit_gradient, z, t):
    """Entries in [-1/B, 1/B]; the target's entry <= 0, the others >= 0; each row sums to ~0."""
    with strict_numerics():
        g = logit_gradient(z, t)
    batch, classes = int(np.prod(z.shape[:-1])), z.shape[-1]
    assert np.all(np.isfinite(g))
    assert np.all(np.abs(g) <= 1 / batch)
    hot = one_hot(t, classes, bool)
    assert np.all(g[hot] <= 0) and np.all(g[~hot] >= 0)
    row_sums = np.sum(g.astype(np.float64), axis=-1)
    assert np.all(np.abs(row_sums) <= 2 * classes * np.finfo(z.dtype).eps / batch)


def check_softmax_vjps(softmax, log_softmax, x, axis, w):
    """Vector-Jacobian products by autograd, finite and of x's dtype for any finite x:
    softmax: p * (w - Σ w p); log_softmax: w - p Σ w (sums along the axis)."""
    with strict_numerics():
        v_soft = autograd.make_vjp(lambda y: softmax(y, axis))(x)[0](w)
        v_log = autograd.make_vjp(lambda y: log_softmax(y, axis))(x)[0](w)
    for v in (v_soft, v_log):
        assert v.dtype == x.dtype and v.shape == x.shape and np.all(np.isfinite(v))
    p = mg.softmax(x.astype(np.float64), axis)
    w64 = w.astype(np.float64)
    n, eps = x.shape[axis], float(np.finfo(x.dtype).eps)
    expected_soft = p * (w64 - np.sum(w64 * p, axis=axis, keepdims=True))
    expected_log = w64 - p * np.sum(w64, axis=axis, keepdims=True)
    assert np.all(np.abs(v_soft - expected_soft) <= 4 * (n + 2) * eps * np.maximum(p, eps) + np.finfo(x.dtype).tiny)
    assert np.all(np.abs(v_log - expected_log) <= 4 * (n + 2) * eps * (1 + n))


@st.composite
def arrays_axes_and_cotangents(draw):
    """``(x, axis, w)``: whole-range x as in arrays_and_axes and a cotangent w of x's shape in [-1, 1]."""
    x, axis = draw(arrays_and_axes())
    w = draw(hnp.arrays(x.dtype, x.shape, elements=st.floats(-1, 1, width=x.dtype.itemsize * 8)))
    return x, axis, w


def check_activation_slopes(sigmoid, tanh, relu, x):
    """autograd's derivatives of the activations, elementwise: finite, quiet, of x's dtype, and equal to
    sigmoid(x) sigmoid(-x), 1 / cosh(x)**2 and [x > 0] (0 at the kink, the book's rule) to a few eps."""
    slopes = {}
    with strict_numerics():
        for name, fn in (("sigmoid", sigmoid), ("tanh", tanh), ("relu", relu)):
            slopes[name] = autograd.make_vjp(fn)(x)[0](np.ones_like(x))
    x64 = x.astype(np.float64)
    with np.errstate(over="ignore", under="ignore"):  # the references, in float64: exp / cosh -> inf is exact here
        logistic = lambda v: 1 / (1 + np.exp(-v))
        expected = {"sigmoid": logistic(x64) * logistic(-x64), "tanh": 1 / np.cosh(x64) ** 2,
                    "relu": (x64 > 0).astype(np.float64)}
    eps, tiny = float(np.finfo(x.dtype).eps), float(np.finfo(x.dtype).tiny)
    for name, slope in slopes.items():
        assert slope.dtype == x.dtype and np.all(np.isfinite(slope)), name
        error = np.abs(slope.astype(np.float64) - expected[name])
        assert np.all(error <= 8 * eps * expected[name] + tiny), (name, x[np.argmax(error)])


# ---------------------------------------------------------------- the tests (both paths)


@given(st.sampled_from(sorted(LOGIT_GRADIENTS)), logits_and_targets())
def test_logit_gradient_is_softmax_minus_onehot_over_batch(path, case):
    check_logit_gradient_is_softmax_minus_onehot(LOGIT_GRADIENTS[path], *case)


@given(st.sampled_from(sorted(LOGIT_GRADIENTS)), logits_and_labels())
def test_logit_gradient_signs_bounds_and_row_sums(path, case):
    check_logit_gradient_signs_and_bounds(LOGIT_GRADIENTS[path], *case)


@given(arrays_and_axes())
def test_activation_slopes(case):
    check_activation_slopes(mg.sigmoid, mg.tanh, mg.relu, case[0])


@given(arrays_axes_and_cotangents())
def test_softmax_and_log_softmax_vjps(case):
    check_softmax_vjps(mg.softmax, mg.log_softmax, *case)


@given(st.sampled_from(sorted(LOGIT_GRADIENTS)), st.sampled_from([np.float64, np.float32]), st.data())
def test_logit_gradient_finite_at_the_extremes_of_the_range(path, dtype, data):
    """Logits of exactly ±max, ±tiny and 0: the loss may be +inf, its gradient may not be anything but exact."""
    info = np.finfo(dtype)
    extremes = [info.max, -info.max, info.tiny, -info.tiny, 0.0, info.max / 2]
    values = data.draw(st.lists(st.sampled_from(extremes), min_size=6, max_size=12))
    z = np.array(values, dtype).reshape(-1, 2 if len(values) % 2 == 0 else 1)
    t = np.array(data.draw(st.lists(st.integers(0, z.shape[1] - 1), min_size=len(z), max_size=len(z))))
    check_logit_gradient_is_softmax_minus_onehot(LOGIT_GRADIENTS[path], z, t)
    check_logit_gradient_signs_and_bounds(LOGIT_GRADIENTS[path], z, t)


# ---------------------------------------------------------------- the gradient paths agree on small networks


def relu_kink_distance(net, params, x, key):
    """The smallest |pre-activation| entering a ReLU over the batch (inf when the network has none)."""
    params_left = iter(params)
    smallest = np.inf
    for index, layer in enumerate(net.layers):  # as serial applies them, dropout masks included
        if layer is mg.Relu:
            smallest = min(smallest, float(np.min(np.abs(x))))
        x = layer.apply(next(params_left) if layer.has_params else None, None, x, key is not None,
                        layer_rng(key, index))[0]
    return smallest


# Per leaf, ‖g - g_autograd‖ <= rtol * ‖g‖ + atol * sqrt(n). Analytic paths agree to rounding
# (measured worst over 2,000 drawn networks: 1.9e-13 relative). Central differences with
# h = eps**(1/3) * max(1, |x|) resolve a derivative to ~eps**(2/3) ~ 1e-10 absolute (measured worst:
# 5e-11 absolute, 2% of the allowance below).
ANALYTIC_TOLERANCE = (1e-12, 1e-14)   # (rtol on the leaf's norm, atol per entry)
NUMERICAL_TOLERANCE = (1e-7, 1e-9)


def check_gradient_paths_agree(net, params, x, t, key, methods):
    """Every method gives the same loss and, leaf by leaf, the same gradient as autograd (the reference)."""
    with strict_numerics():
        results = {m: mg.value_and_grad(net, params, x, t, method=m, key=key, train=key is not None) for m in methods}
    ref_loss, ref = results["autograd"]
    for method, (loss, grads) in results.items():
        rtol, atol = NUMERICAL_TOLERANCE if method == "numerical" else ANALYTIC_TOLERANCE
        assert abs(loss - ref_loss) <= 1e-13 * abs(ref_loss) + 1e-15, (method, loss, ref_loss)
        for (path, r), g in zip(tree_leaves_with_paths(ref), tree_leaves(grads)):
            assert g.shape == r.shape and g.dtype == r.dtype, (method, path)
            error = np.linalg.norm(g - r)
            allowed = rtol * max(np.linalg.norm(r), np.linalg.norm(g)) + atol * np.sqrt(r.size)
            assert error <= allowed, f"{method} vs autograd at params{path}: |diff| {error:.3g} > {allowed:.3g}"


@given(network_problems())
def test_gradient_paths_agree_on_small_networks(problem):
    """Depth 0-2, widths 1-5, ReLU / sigmoid / tanh, weight decay, dropout on or off, in float64: every path
    in ``mg.gradients.METHODS`` (autograd, backprop, numerical, ...) agrees with autograd."""
    net, params, x, t, key = problem
    assume(relu_kink_distance(net, params, x, key) > 1e-3)  # central differences must not straddle a kink
    check_gradient_paths_agree(net, params, x, t, key, sorted(mg.gradients.METHODS))
