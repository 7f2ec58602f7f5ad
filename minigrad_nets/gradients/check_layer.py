"""``check_layer``: a gradient check for one layer, built in or your own, outside any network.

A layer's backward rule is a vector-Jacobian product: given the upstream
gradient ``dy`` it returns ``dy``'s pull-back to the params and to the input.
So the check draws a random ``dy`` and differentiates the scalar

    L(params, x) = sum(apply(params, state, x, train, key)[0] * dy)

three ways: the layer's own ``forward`` + ``backward``, autograd of its
``apply``, and central differences of ``apply`` (every entry for small layers,
random directions for large ones). A random ``dy`` checks the whole VJP, not
one particular loss. Everything runs in float64; the report is a
``GradientReport`` with rows named ``x`` (the input) and ``params[...]``.
"""
import autograd
import autograd.numpy as anp
import numpy as np

from ..layers import Elementwise, Layer
from ..tree import check_same_shapes, tree_leaves, tree_leaves_with_paths, tree_unflatten
from . import numerical
from .check import ANALYTIC_TOL, NUMERICAL_TOL, Check, GradientCheckError, GradientReport, compare_leaf

METHODS = ("backprop", "autograd", "numerical")
FULL_LIMIT = 3000     # entries (input + params) up to which central differences probe every entry
KINK_MARGIN = 1e-2    # inputs are moved at least this far from the kinks a layer declares


def _shift_off_kinks(layer, x):
    """``x`` with entries near the kinks an elementwise layer declares moved ``KINK_MARGIN`` away."""
    kinks = layer.kind.kinks if isinstance(layer.kind, Elementwise) else ()
    for kink in kinks:
        near = np.abs(x - kink) < KINK_MARGIN
        x = np.where(near, kink + np.where(x >= kink, 2, -2) * KINK_MARGIN, x)
    return x


def _as_float64(tree, name):
    """A float64 copy of a pytree (None stays None), with a clear error for non-float leaves."""
    if tree is None:
        return None
    out = []
    for path, leaf in tree_leaves_with_paths(tree):
        arr = np.asarray(leaf)
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"{name}{path} must be a float array, got dtype {arr.dtype}")
        out.append(np.array(arr, dtype=np.float64, copy=True))
    return tree_unflatten(tree, out)


def _named_leaves(tree):
    """``[(name, leaf)]`` of the combined ``{'params': ..., 'x': ...}`` tree: names like ``x`` and ``params['W']``."""
    named = []
    for path, leaf in tree_leaves_with_paths(tree):
        head, _, rest = path[2:].partition("']")
        named.append((head + rest, leaf))
    return named


def check_layer(layer, input_shape, *, params=None, state=None, x=None, train=True, key=0, seed=0,
                mode="auto", samples=16, raise_on_failure=False):
    """Check ``layer``'s backward rule against autograd and central differences -> ``GradientReport``.

    ``input_shape`` includes the batch axis, e.g. ``(4, 6)``. ``params`` /
    ``state`` default to the layer's ``init`` (seeded by ``seed``); ``x`` to
    standard normal entries kept off the kinks the layer declares; the
    upstream gradient is standard normal. ``train`` and ``key`` are passed to
    the layer as a network would (``key`` is only used by layers that draw a
    dropout mask). ``mode``: 'full' (every entry), 'directional' (``samples``
    random directions per leaf) or 'auto' (full up to 3,000 entries).
    """
    if not isinstance(layer, Layer):
        raise TypeError(f"check_layer takes a Layer, got {type(layer).__name__}")
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) < 1 or not all(
            isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n > 0 for n in input_shape):
        raise ValueError(f"input_shape must be a shape with the batch axis first, e.g. (4, 6), got {input_shape!r}")
    if mode not in ("auto", "full", "directional"):
        raise ValueError(f"unknown mode {mode!r}; choose 'auto', 'full' or 'directional'")
    input_shape = tuple(int(n) for n in input_shape)
    rng = np.random.default_rng(seed)
    out_shape, init_params, init_state = layer.init(rng, (-1,) + input_shape[1:], np.float64)
    params = _as_float64(init_params if params is None else params, "params")
    state = _as_float64(init_state if state is None else state, "state")
    if params is not None and init_params is not None:
        check_same_shapes(init_params, params, "the layer's params", "params")
    if x is None:
        x = _shift_off_kinks(layer, rng.standard_normal(input_shape))
    x = _as_float64(x, "x")
    if x.shape != input_shape:
        raise ValueError(f"x has shape {x.shape}; input_shape says {input_shape}")
    key = key if layer.random and train else None

    def apply(p, xin):
        return layer.apply(p, state, xin, train, key)

    y, new_state = apply(params, x)
    y = np.asarray(y)
    dy = rng.standard_normal(y.shape)
    tree = {"params": params, "x": x} if params is not None else {"x": x}
    snapshot = [leaf.copy() for leaf in tree_leaves(tree)] + [leaf.copy() for leaf in tree_leaves(state or [])]

    def scalar(t):  # L = sum(y * dy): its gradient is the layer's VJP of dy
        return anp.sum(apply(t.get("params"), t["x"])[0] * dy)

    checks, results, losses = [], {}, {}
    want_shape = (input_shape[0],) + tuple(out_shape[1:])
    checks.append(Check("apply's output has the shape init declares", y.shape == want_shape,
                        "" if y.shape == want_shape else f"apply gave {y.shape}, init declared {want_shape}"))
    try:
        y_fwd, cache, fwd_state = layer.forward(params, state, x, train, key)
        dparams, dx = layer.backward(params, cache, dy.copy(), True)
        same_y = np.allclose(y_fwd, y, rtol=1e-12, atol=1e-300)
        checks.append(Check("forward's output equals apply's", same_y,
                            "" if same_y else f"largest difference {np.max(np.abs(np.asarray(y_fwd) - y)):.3e}"))
        same_state = all(np.allclose(a, b, rtol=1e-12, atol=1e-300) for a, b in zip(
            tree_leaves(fwd_state or []), tree_leaves(new_state or []))) and (fwd_state is None) == (new_state is None)
        checks.append(Check("forward's new state equals apply's", same_state))
        grads = {"params": dparams, "x": dx} if params is not None else {"x": dx}
        check_same_shapes(tree, grads, "the params and x", "backward's (dparams, dx)")
        results["backprop"] = grads
        losses["backprop"] = float(np.sum(np.asarray(y_fwd) * dy))
    except Exception as err:  # a broken rule is a finding to report
        checks.append(Check("backprop runs and returns (dparams, dx) shaped like (params, x)", False,
                            f"{type(err).__name__}: {err}"))
    losses["autograd"], results["autograd"] = autograd.value_and_grad(scalar)(tree)
    losses["autograd"] = float(losses["autograd"])
    size = sum(leaf.size for leaf in tree_leaves(tree))
    probe_mode = ("full" if size <= FULL_LIMIT else "directional") if mode == "auto" else mode
    results["numerical"] = numerical.numerical_grad(scalar, tree, mode=probe_mode, samples=samples, seed=seed)
    losses["numerical"] = float(scalar(tree))
    unchanged = all(np.array_equal(a, b) for a, b in zip(
        tree_leaves(tree) + tree_leaves(state or []), snapshot))
    checks.append(Check("inputs unmutated (params, x, state)", unchanged, "" if unchanged else "a rule wrote into them"))
    finite = all(np.all(np.isfinite(leaf)) for g in results.values() for leaf in tree_leaves(g))
    checks.append(Check("gradients finite", finite))

    comparisons = []
    names = [name for name, _ in _named_leaves(tree)]
    done = [m for m in METHODS if m in results]
    for i, a in enumerate(done):
        for b in done[i + 1:]:
            numeric = "numerical" in (a, b)
            rtol, atol = NUMERICAL_TOL if numeric else ANALYTIC_TOL
            ga, gb = results[a], results[b]
            if numeric and probe_mode != "full":
                ga = ga if a == "numerical" else numerical.analytic_probes(ga, tree, probe_mode, samples, seed)
                gb = gb if b == "numerical" else numerical.analytic_probes(gb, tree, probe_mode, samples, seed)
            full = not numeric or probe_mode == "full"
            for name, leaf, la, lb in zip(names, tree_leaves(tree), tree_leaves(ga), tree_leaves(gb)):
                index_of = (lambda k, shape=leaf.shape: tuple(int(i) for i in np.unravel_index(k, shape))) \
                    if full else (lambda k: (k,))
                comparisons.append(compare_leaf(la, lb, (a, b), name, leaf.shape,
                                                "element" if full else "direction", rtol, atol, index_of))
    report = GradientReport(tuple(done), probe_mode, "float64", losses, tuple(comparisons), tuple(checks), ())
    if raise_on_failure and not report.ok:
        raise GradientCheckError(report)
    return report

