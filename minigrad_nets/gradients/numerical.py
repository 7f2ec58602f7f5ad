"""The numerical path: central differences or the complex step, in float64, for any scalar function; fast for networks.

Every central difference is ``(f(x + h) - f(x - h)) / (x_plus - x_minus)``
with ``h = eps**(1/3) * max(1, |x|)``; dividing by the step actually realised
in floating point (``x_plus - x_minus``) rather than by ``2h`` is what makes
the step exactly representable. The caller's params are never touched: work is
done on float64 copies.

Methods (``method=``):

- ``central`` (the default): central differences, for any function. Agreement
  with an exact gradient is about ``eps**(2/3)`` ≈ 1e-10 relative at best.
- ``complex-step``: ``Im f(x + ih) / h`` with ``h = 1e-20`` (Squire & Trapp
  1998): no subtraction, so no cancellation; exact to rounding for functions
  built from analytic operations (+, ×, exp, log, tanh, matmul, branches on the
  real part). ``f`` is called with complex128 params. It is wrong for code that
  takes ``abs`` of, conjugates, or compares imaginary parts of perturbed values,
  or drops the imaginary part: so every complex-step result is checked against
  central differences along one random direction per leaf, and a disagreement
  raises ``NotComplexSafeError`` naming the leaf (numpy's ``ComplexWarning``,
  an imaginary part discarded, is an error too). Never a silently wrong gradient.
  Where the function has a kink exactly at the point (ReLU at an input of
  exactly 0, e.g. a zero bias over blank pixels) no difference can check it:
  a ``ComplexStepWarning`` says so, naming the leaf.

Modes of ``numerical_grad``:

- ``full``: every element; a gradient pytree shaped like params.
- ``sampled``: ``samples`` seeded random elements per leaf (without
  replacement); each leaf becomes a ``(k,)`` array of the derivatives at the
  flat indices ``sample_indices(params, samples, seed)`` gives.
- ``directional``: ``samples`` seeded random unit directions per leaf; each
  leaf becomes a ``(k,)`` array of directional derivatives along the
  directions ``random_directions(params, samples, seed)`` gives.

``analytic_probes`` turns an analytic gradient into the same ``(k,)`` values,
so the two can be compared leaf by leaf.

For a network's loss (``numerical_grad(net.loss, params, x, t[, key])`` or
``value_and_grad``; ``mg.grad(..., method='numerical' | 'complex-step')``) the
full mode is vectorised through what the layers declare (``layers.Layer.kind``):
see ``network_full_grad``. It perturbs each entry of each layer's output once,
not each weight (a dense layer is affine in its weights), and a layer it cannot
take is named in a ``SlowPathWarning``; ``vectorize=False`` keeps the
element-by-element loop over every parameter, the definition itself.
"""
import dataclasses
import functools
import numbers
import warnings

import numpy as np

from .. import layers as L
from ..checks import labels_unless_soft
from ..network import Network
from ..tree import tree_leaves, tree_leaves_with_keys, tree_leaves_with_paths, tree_map, tree_unflatten

MODES = ("full", "sampled", "directional")
METHODS = ("central", "complex-step")
STEP_SCALE = np.finfo(np.float64).eps ** (1 / 3)
COMPLEX_STEP = 1e-20
DEFAULT_SAMPLES = 8
DEFAULT_MAX_BYTES = 200_000_000
# The complex-step result must match central differences along a random direction per leaf to this
# (central differences are good to ~1e-8 there; a function that is not complex-safe is off by O(1)).
# A central difference straddling a kink (ReLU's) is wrong instead: so steps 10 and 100 times smaller
# are tried before the complex step is called wrong, each with the absolute tolerance its rounding needs.
SAFETY_RTOL, SAFETY_ATOL = 1e-5, 1e-8
SAFETY_STEPS = (1.0, 0.1, 0.01)


class NotComplexSafeError(ValueError):
    """The complex step disagrees with central differences: the function is not complex-safe (abs, conj, ...)."""


class ComplexStepWarning(UserWarning):
    """The complex step could not be checked somewhere: the function has a kink exactly at the point (ReLU at 0)."""


# ---------------------------------------------------------------- steps and probes


def step_size(x):
    """The central-difference step ``eps**(1/3) * max(1, |x|)``, elementwise: array -> array of the same shape."""
    return STEP_SCALE * np.maximum(1.0, np.abs(np.asarray(x, dtype=np.float64)))


def perturbed(x):
    """``(x + h, x - h)`` rounded to float64, elementwise; the realised step is their difference."""
    x = np.asarray(x, dtype=np.float64)
    h = step_size(x)
    return x + h, x - h


def _check_seed(seed):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise TypeError(f"seed must be a non-negative int, got {seed!r}")
    return int(seed)


def _check_samples(samples):
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise ValueError(f"samples must be a positive int, got {samples!r}")
    return int(samples)


def _check_method(method):
    if method not in METHODS:
        raise ValueError(f"unknown numerical method {method!r}; choose one of {list(METHODS)}")
    return method


def _leaf_rng(seed, leaf_number, stream=()):
    """Each leaf draws from its own stream, so adding a leaf never changes another leaf's probes."""
    return np.random.default_rng([_check_seed(seed), leaf_number, *stream])


def _float64_leaves(params):
    """Float64 copies of the leaves of ``params`` (never views of the caller's arrays)."""
    out = []
    for path, leaf in tree_leaves_with_paths(params):
        arr = np.asarray(leaf)
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"params{path} must be a float array, got dtype {arr.dtype}")
        out.append(np.array(arr, dtype=np.float64, copy=True))
    return out


def sample_indices(params, samples=DEFAULT_SAMPLES, seed=0):
    """Pytree of sorted flat indices, ``min(samples, size)`` distinct ones per leaf, drawn from ``seed``."""
    samples = _check_samples(samples)
    picks = []
    for number, leaf in enumerate(tree_leaves(params)):
        size = int(np.size(leaf))
        picks.append(np.sort(_leaf_rng(seed, number).choice(size, size=min(samples, size), replace=False)))
    return tree_unflatten(params, picks)


def _direction_probes(leaf, samples, rng):
    """``(plus, minus, h, v)``: (k, n) perturbed copies of a flat float64 leaf and the directions v actually probed."""
    flat = leaf.reshape(-1)
    u = rng.standard_normal((samples, flat.size))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    h = STEP_SCALE * max(1.0, float(np.max(np.abs(flat), initial=0.0)))
    plus, minus = flat + h * u, flat - h * u
    return plus, minus, h, (plus - minus) / (2 * h)


def random_directions(params, samples=DEFAULT_SAMPLES, seed=0):
    """Pytree of (samples, *leaf.shape) unit directions per leaf (as realised in float64), drawn from ``seed``."""
    samples = _check_samples(samples)
    out = []
    for number, leaf in enumerate(_float64_leaves(params)):
        if leaf.size == 0:
            out.append(np.zeros((0,) + leaf.shape))
            continue
        v = _direction_probes(leaf, samples, _leaf_rng(seed, number))[3]
        out.append(v.reshape((samples,) + leaf.shape))
    return tree_unflatten(params, out)


def analytic_probes(grads, params, mode, samples=DEFAULT_SAMPLES, seed=0):
    """An analytic gradient pytree seen as ``numerical_grad(..., mode)`` sees it: per leaf, (k,) values (full: as is)."""
    _check_mode(mode)
    if mode == "full":
        return grads
    probes = sample_indices(params, samples, seed) if mode == "sampled" else random_directions(params, samples, seed)
    out = []
    for g, probe in zip(tree_leaves(grads), tree_leaves(probes)):
        g = np.asarray(g, dtype=np.float64).reshape(-1)
        out.append(g[probe] if mode == "sampled" else probe.reshape(probe.shape[0], -1) @ g)
    return tree_unflatten(params, out)


def _check_mode(mode):
    if mode not in MODES:
        raise ValueError(f"unknown numerical mode {mode!r}; choose one of {list(MODES)}")


# ---------------------------------------------------------------- any scalar function


def _scalar(value, what):
    """``value`` as a Python float; a clear error if it is not a finite scalar."""
    arr = np.asarray(getattr(value, "_value", value))
    if arr.shape != () or arr.dtype.kind not in "fiu":
        raise TypeError(f"f must return a real scalar, got {type(value).__name__} of shape {arr.shape}")
    out = float(arr)
    if not np.isfinite(out):
        raise ValueError(f"f is not finite ({out}) {what}; central differences need finite values")
    return out


def _imaginary(value, what):
    """The imaginary part of the complex-step value ``f(x + ih)`` (0 for a real value); clear errors otherwise."""
    arr = np.asarray(getattr(value, "_value", value))
    if arr.shape != () or arr.dtype.kind not in "fiuc":
        raise TypeError(f"f must return a scalar, got {type(value).__name__} of shape {arr.shape}")
    if not np.isfinite(arr):
        raise ValueError(f"f is not finite ({arr}) {what}; the complex step needs finite values")
    return float(arr.imag)


def _complex_safe_call(f, *args):
    """``f(*args)``, with numpy's ComplexWarning (an imaginary part discarded) turned into NotComplexSafeError."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", np.exceptions.ComplexWarning)
        try:
            return f(*args)
        except np.exceptions.ComplexWarning as err:
            raise NotComplexSafeError(f"f discarded the imaginary part of a complex value ({err}): it is not "
                                      f"complex-safe; use method='central'") from None


def numerical_grad(f, params, *args, mode="full", method="central", seed=0, samples=DEFAULT_SAMPLES,
                   vectorize=True, max_bytes=DEFAULT_MAX_BYTES, **kwargs):
    """Numerical gradient of a scalar ``f(params, *args, **kwargs)``, in float64: pytree -> pytree (see module doc).

    ``f`` must be pure: it is called on float64 (complex128 for the complex
    step) copies of params, never on the caller's arrays. When ``f`` is a
    network's ``loss`` (``net.loss``), the full mode uses the vectorised network
    path unless ``vectorize=False``, which keeps the element-by-element loop;
    ``max_bytes`` bounds that path's memory. With ``method='complex-step'``
    the result is checked against central differences (module doc) and
    ``NotComplexSafeError`` says when ``f`` is not complex-safe.
    """
    _check_mode(mode)
    _check_method(method)
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, numbers.Real) or not max_bytes > 0:
        raise ValueError(f"max_bytes must be a positive number of bytes, got {max_bytes!r}")
    if not callable(f):
        raise TypeError(f"f must be callable, got {type(f).__name__}")
    net = _network_of(f)
    network_call = net is not None and set(kwargs) <= {"key", "state", "train"} and 2 <= len(args) <= 3
    if mode == "full" and vectorize and network_call:
        return network_full_grad(net, params, *args, **kwargs, max_bytes=max_bytes, method=method)
    f = functools.partial(f, **kwargs) if kwargs else f
    central, complex_f = (lambda p: f(p, *args)), (lambda p: f(p, *args))
    if network_call and method == "complex-step":  # net.loss checks for real dtypes: the same loss, unchecked
        complex_f = _network_loss(net, params, *args, **kwargs)
    leaves = _float64_leaves(params)
    paths = [path for path, _ in tree_leaves_with_paths(params)]
    g = complex_f if method == "complex-step" else central
    if mode == "directional":
        out = _directional(g, params, leaves, paths, _check_samples(samples), seed, method)
    else:
        picks = None if mode == "full" else tree_leaves(sample_indices(params, samples, seed))
        out = _loop(g, params, leaves, paths, picks, method)
    if method == "complex-step":
        check_complex_safe(central, complex_f, params, out if mode == "full" else None, seed)
    return tree_unflatten(params, out)


def _loop(f, like, leaves, paths, picks, method="central", only=None):
    """The element-by-element loop: for each leaf (in ``only``, default all) the derivatives at ``picks`` (all: None).

    Leaves not in ``only`` get None.
    """
    complex_step = method == "complex-step"
    work = [leaf.astype(np.complex128) if complex_step else leaf.copy() for leaf in leaves]
    tree = tree_unflatten(like, work)
    grads = []
    for number, (path, leaf) in enumerate(zip(paths, work)):
        if only is not None and number not in only:
            grads.append(None)
            continue
        flat = leaf.reshape(-1)  # a view: writes go into the tree f sees
        where = range(flat.size) if picks is None else picks[number]
        out = np.empty(len(where))
        for slot, index in enumerate(where):
            x = flat[index]
            if complex_step:
                flat[index] = x + 1j * COMPLEX_STEP
                out[slot] = _imaginary(_complex_safe_call(f, tree), f"at params{path} flat index {index} + ih") \
                    / COMPLEX_STEP
            else:
                plus, minus = perturbed(x)
                flat[index] = plus
                f_plus = _scalar(f(tree), f"at params{path} flat index {index} + h")
                flat[index] = minus
                f_minus = _scalar(f(tree), f"at params{path} flat index {index} - h")
                out[slot] = (f_plus - f_minus) / (plus - minus)
            flat[index] = x
        grads.append(out.reshape(leaf.shape) if picks is None else out)
    return grads


def _directional(f, like, leaves, paths, samples, seed, method="central"):
    """For each leaf, (k,) directional derivatives along the directions ``random_directions`` gives."""
    out = []
    for number, (path, leaf) in enumerate(zip(paths, leaves)):
        if leaf.size == 0:
            out.append(np.zeros(0))
            continue
        plus, minus, h, v = _direction_probes(leaf, samples, _leaf_rng(seed, number))
        values = np.empty(samples)
        for k in range(samples):
            trial = list(leaves)
            if method == "complex-step":  # along the same realised direction v that analytic_probes uses
                trial[number] = (leaf.reshape(-1) + 1j * COMPLEX_STEP * v[k]).reshape(leaf.shape)
                values[k] = _imaginary(_complex_safe_call(f, tree_unflatten(like, trial)),
                                       f"along direction {k} of params{path} (+ih)") / COMPLEX_STEP
                continue
            trial[number] = plus[k].reshape(leaf.shape)
            f_plus = _scalar(f(tree_unflatten(like, trial)), f"along direction {k} of params{path} (+h)")
            trial[number] = minus[k].reshape(leaf.shape)
            f_minus = _scalar(f(tree_unflatten(like, trial)), f"along direction {k} of params{path} (-h)")
            values[k] = (f_plus - f_minus) / (2 * h)
        out.append(values)
    return out


def check_complex_safe(central, complex_f, params, grads=None, seed=0):
    """Raise ``NotComplexSafeError`` where the complex step and central differences disagree (one direction per leaf).

    ``central(p)`` and ``complex_f(p)`` are the same scalar function (the
    latter taking complex params). Along a seeded random unit direction v per
    leaf, central differences (at the usual step, then 10 and 100 times
    smaller, in case one straddles a kink) are compared with ``grads[leaf] · v``
    (the complex-step gradient) when ``grads`` is given, else with ``Im f(x + ihv)/h``.
    Where the function is not differentiable at the point itself along v (a kink
    exactly hit, e.g. ReLU at an input of exactly 0: the one-sided differences
    differ by a jump that does not shrink with the step), no difference can
    decide: a ``ComplexStepWarning`` says so instead of an error.
    """
    leaves = _float64_leaves(params)
    f0 = _scalar(central(tree_unflatten(params, leaves)), "at params")
    scale = max(1.0, abs(f0))
    for number, (path, leaf) in enumerate(tree_leaves_with_paths(params)):
        leaf = leaves[number]
        if leaf.size == 0:
            continue
        _, _, h, v = _direction_probes(leaf, 1, _leaf_rng(seed, number, (1,)))
        flat, trial = leaf.reshape(-1), list(leaves)
        if grads is not None:
            cs = float(np.asarray(grads[number], dtype=np.float64).reshape(-1) @ v[0])
        else:
            trial[number] = (flat + 1j * COMPLEX_STEP * v[0]).reshape(leaf.shape)
            cs = _imaginary(_complex_safe_call(complex_f, tree_unflatten(params, trial)),
                            f"along a probe of params{path}") / COMPLEX_STEP
        seen, jumps = [], []
        for shrink in SAFETY_STEPS:
            plus, minus = flat + shrink * h * v[0], flat - shrink * h * v[0]
            trial[number] = plus.reshape(leaf.shape)
            f_plus = _scalar(central(tree_unflatten(params, trial)), f"along a probe of params{path} (+h)")
            trial[number] = minus.reshape(leaf.shape)
            f_minus = _scalar(central(tree_unflatten(params, trial)), f"along a probe of params{path} (-h)")
            cd = (f_plus - f_minus) / (2 * shrink * h)
            seen.append(cd)
            jumps.append(abs((f_plus - f0) - (f0 - f_minus)) / (shrink * h))  # forward minus backward slope
            if abs(cs - cd) <= SAFETY_RTOL * max(abs(cs), abs(cd)) + SAFETY_ATOL * scale / shrink:
                break
        else:
            rounding = 8 * np.finfo(np.float64).eps * scale / (SAFETY_STEPS[-1] * h)
            if jumps[-1] > 100 * rounding and jumps[-1] > 0.5 * jumps[-2]:  # smooth: shrinks with the step
                warnings.warn(
                    f"the complex step could not be checked at params{path}: the function is not differentiable "
                    f"at this point along a random direction (its one-sided slopes differ by {jumps[-1]:.3g} at every "
                    f"step: a kink, such as ReLU's at an input of exactly 0, is hit exactly); the complex step takes "
                    f"the branch of the real part there, as the analytic rules do, and gives {cs:.10g} against "
                    f"central differences {seen[-1]:.10g}", ComplexStepWarning, stacklevel=3)
                continue
            raise NotComplexSafeError(
                f"the complex step is not valid for this function at params{path}: along a random direction it "
                f"gives the derivative {cs:.10g}, central differences {', '.join(f'{d:.10g}' for d in seen)} (steps "
                f"{', '.join(f'{s * h:.1e}' for s in SAFETY_STEPS)}). The function probably takes abs of, conjugates, "
                f"compares or discards the imaginary part of values that depend on params (complex-safe code "
                f"branches on .real only); use method='central'")


# ---------------------------------------------------------------- networks


def _network_of(f):
    """The network when ``f`` is a ``Network.loss`` bound method (not overridden); None otherwise."""
    net = getattr(f, "__self__", None)
    if isinstance(net, Network) and getattr(f, "__func__", None) is Network.loss:
        return net
    return None


class SlowPathWarning(UserWarning):
    """The vectorised numerical path cannot use a layer's declarations and loops over some params element by element."""


def as_float64(net, params, x, t, state=None, train=False, key=None):
    """``(net64, params64, x64, t, state64)``: the same network and a checked batch in float64, as copies."""
    x, t, state = net.prepare(params, x, t, state, train, key)
    net64 = net if net.dtype == np.float64 else dataclasses.replace(net, dtype=np.float64)
    params64 = tree_unflatten(params, _float64_leaves(params))
    state64 = None if state is None else tree_unflatten(state, _float64_leaves(state))
    return net64, params64, np.array(x, dtype=np.float64, copy=True), t, state64


def _network_loss(net, params, x, t, key=None, *, state=None, train=False):
    """``net.loss`` at this batch as a function of params alone that also takes complex params (float64 inside).

    Layer by layer, as the vectorised path evaluates them: elementwise layers by their declared numpy
    ``fn``, every other layer by its ``apply``.
    """
    net64, _, x64, t, state64 = as_float64(net, params, x, t, state, train, key)
    labels, targets = _targets(t, len(x64), net64.output_size)
    rows = np.arange(len(x64))

    def loss(p):
        a = x64
        for _, layer, lp, s, k, _ in L.leaf_layers(net64.layers, p, state64, key if train else None):
            # An elementwise layer through its plain-numpy fn (functions.sigmoid & co. take real arrays only).
            a = layer.kind.fn(a) if isinstance(layer.kind, L.Elementwise) else layer.apply(lp, s, a, train, k)[0]
        return 2 * np.mean(_row_half_losses(np.asarray(a), rows, labels, targets)) + net64.weight_penalty(p)

    return loss


def value_and_grad(net, params, x, t, key=None, state=None, train=False, method="central"):
    """``(loss, gradient, new state)`` of the network's loss by full central differences or the complex step.

    Float64 inside. The loss has the network's dtype; the gradient the
    structure of params and each leaf's dtype. The state is held fixed under
    every perturbation; the new state is that of the unperturbed forward pass.
    """
    net64, params64, x64, t, state64 = as_float64(net, params, x, t, state, train, key)
    loss, new_state = net64.batch_loss(params64, x64, t, state64, train, key)
    grads = network_full_grad(net64, params64, x64, t, key, state=state64, train=train, method=method)
    if new_state is not None:
        new_state = tree_unflatten(new_state, [np.asarray(s, dtype=net.dtype) for s in tree_leaves(new_state)])
    return net.dtype.type(loss), tree_unflatten(params, [g.astype(np.asarray(p).dtype, copy=False)
                                         for g, p in zip(tree_leaves(grads), tree_leaves(params))]), new_state


def _targets(t, batch, classes):
    """``(labels (B,), None)`` or ``(None, targets (B, C))``, read as ``cross_entropy`` reads them."""
    kind, tv = labels_unless_soft(t, (batch,), classes)
    return (tv, None) if kind == "labels" else (None, tv.astype(np.float64))


def _row_half_losses(logits, rows, labels, targets):
    """Half the per-row cross-entropy of (R, C) logits (real or complex) for batch rows ``rows``, as ``cross_entropy``.

    ``cross_entropy`` is ``2 * mean(log_norm / 2 + (max z - z_y) / 2)``: halves keep the gap from
    overflowing, so the same halves are used here. The shift m is the real part's maximum: any constant
    gives the same function, and a real one keeps it analytic for the complex step.
    """
    m = logits.real.max(axis=1, keepdims=True)
    with np.errstate(over="ignore"):
        log_norm = np.log(np.exp(logits - m).sum(axis=1))
        if labels is not None:
            half_gap = m[:, 0] / 2 - logits[np.arange(len(rows)), labels[rows]] / 2
        else:
            tv = targets[rows]
            half_gap = np.sum(tv * np.where(tv > 0, m / 2 - logits / 2, 0.0), axis=1)
    return log_norm / 2 + half_gap


# ---------------------------------------------------------------- the vectorised network path


@dataclasses.dataclass(frozen=True)
class _Step:
    """One layer with the unperturbed batch through it, and how the vectorised path evaluates it (``kind``)."""
    position: str
    layer: L.Layer
    params: object
    state: object
    key: object
    train: bool
    inputs: np.ndarray      # the layer's input, (B, n_in) inside the vectorised segment
    outputs: np.ndarray     # its output
    kind: str               # 'dense', 'fn', 'scale', 'feature', 'same', or None (opaque: the reason is in `what`)
    what: object = None     # 'fn': the elementwise function; 'scale': the (B, n) multiplier; None: the reason

    def columns(self, x, js, params=None):
        """A 'feature' layer on (B, P) inputs, column p being feature ``js[p]`` -> (B, P) (``params``: picked)."""
        pick = lambda leaf: np.asarray(leaf)[js]  # noqa: E731
        p = _tree_map_none(pick, self.params) if params is None else params
        return np.asarray(self.layer.apply(p, _tree_map_none(pick, self.state), x, self.train, self.key)[0])

    def batches(self, v):
        """A 'feature' layer on (P, B, n): P independent batches side by side as (B, P * n) features -> (P, B, n)."""
        count, batch, n = v.shape
        tile = lambda leaf: np.tile(np.asarray(leaf), count)  # noqa: E731
        y = self.layer.apply(_tree_map_none(tile, self.params), _tree_map_none(tile, self.state),
                             v.transpose(1, 0, 2).reshape(batch, count * n), self.train, self.key)[0]
        return np.asarray(y).reshape(batch, count, n).transpose(1, 0, 2)


def _tree_map_none(fn, tree):
    return None if tree is None else tree_map(fn, tree)


def _close(a, b):
    """Whether a layer's output ``a`` is what its declaration says, ``b``, to rounding."""
    scale = max(1.0, float(np.max(np.abs(b), initial=0.0)))
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-12, atol=1e-12 * scale))


def _how_to_evaluate(layer, p, s, key, train, a, out):
    """``(kind, what)``: how the vectorised path evaluates this layer inside its segment, from what it declares.

    Each declaration is checked against the layer's own output on the unperturbed batch; a layer that
    declares nothing (kind None), or whose declaration does not hold here, gets ``(None, reason)``.
    """
    kind = layer.kind
    if kind is None:
        return None, "declares no structure the vectorised path can use (layers.Layer.kind is None)"
    if a.ndim != 2 or out.ndim != 2:
        return None, f"works on {max(a.ndim, out.ndim)}-D values (the vectorised path takes (batch, features))"
    if layer.has_state and kind != L.FEATURE:
        return None, "keeps state but does not declare FEATURE"
    if kind == L.DENSE:
        if type(p) is not dict or set(p) != {"W", "b"} or np.shape(p["W"]) != (a.shape[1], out.shape[1]):
            return None, "declares DENSE but its params are not {'W': (n_in, n_out), 'b'}"
        if not _close(out, a @ p["W"] + p["b"]):
            return None, "declares DENSE but its output is not x @ W + b"
        return "dense", None
    if layer.has_params and kind != L.FEATURE:
        return None, f"has params but declares {kind!r}, not DENSE or FEATURE"
    if out.shape != a.shape:
        return None, f"declares {kind!r} but changes the shape {a.shape} -> {out.shape}"
    if isinstance(kind, L.Elementwise):
        if not _close(out, np.asarray(kind.fn(a))):
            return None, "declares Elementwise but its fn does not give its output"
        return "fn", kind.fn
    if kind == L.MASK:
        scale = np.asarray(layer.apply(None, None, np.ones_like(a), train, key)[0])
        if not _close(out, a * scale):
            return None, "declares MASK but its output is not x times a fixed multiplier"
        return ("same", None) if np.all(scale == 1) else ("scale", scale)
    if kind == L.RESHAPE:
        return "same", None
    if kind == L.FEATURE:
        n = a.shape[1]
        if any(np.shape(leaf) != (n,) for leaf in tree_leaves(p if p is not None else []) +
               tree_leaves(s if s is not None else [])):
            return None, "declares FEATURE but its params / state leaves are not shaped like its features"
        step = _Step("", layer, p, s, key, train, a, out, "feature")
        js = np.arange(n)[::-1][:2]  # two features, picked out of order: slicing must not matter
        if not (_close(step.columns(a[:, js], js), out[:, js]) and _close(step.batches(a[None]), out[None])):
            return None, "declares FEATURE but its columns do not depend on their own feature alone"
        return "feature", None
    return None, f"declares an unknown kind {kind!r}"


def _walk(net, params, x, state, train, key):
    """Every (non-composite) layer as a ``_Step``, with the unperturbed batch through it, and its params leaf count."""
    steps, counts, a = [], [], x
    for position, layer, p, s, k, _ in L.leaf_layers(net.layers, params, state, key if train else None):
        out = np.asarray(layer.apply(p, s, a, train, k)[0])
        kind, what = _how_to_evaluate(layer, p, s, k, train, a, out)
        steps.append(_Step(".".join(map(str, position)), layer, p, s, k, train, a, out, kind, what))
        counts.append(len(tree_leaves(p)) if layer.has_params else 0)
        a = out
    return steps, counts


@dataclasses.dataclass(frozen=True)
class _Context:
    """What every perturbation needs: targets, unperturbed half losses, method, budget, what is already known.

    ``bounds``: the gradients at the inputs of FEATURE layers, once computed; ``slopes``: the complex-step
    slopes of elementwise layers and of the loss at the unperturbed batch.
    """
    labels: object
    targets: object
    base_half: np.ndarray   # (B,)
    complex_step: bool
    max_bytes: float
    bounds: dict = dataclasses.field(default_factory=dict)  # step index -> (B, n) d(sum of half losses)/d(input)
    slopes: dict = dataclasses.field(default_factory=dict)  # step index -> (B, n) complex-step slopes of an fn step
                                                            # (-1: of each row's half loss in each logit)

    @property
    def batch(self):
        return len(self.base_half)

    def row_changes(self, logits, rows):
        """(P, C) logits of rows ``rows`` -> (P,) changes of their half losses."""
        return _row_half_losses(logits, rows, self.labels, self.targets) - self.base_half[rows]

    def slope(self, steps, i):
        """``Im fn(a + ih) / h`` at every entry a of elementwise step i's unperturbed input (computed once)."""
        if i not in self.slopes:
            step = steps[i]
            self.slopes[i] = np.asarray(step.what(step.inputs + 1j * COMPLEX_STEP)).imag / COMPLEX_STEP
        return self.slopes[i]

    def loss_slope(self, logits):
        """``Im half_loss_r(z_r + ih e_c) / h`` at the unperturbed (B, C) logits, every (row, class): computed once."""
        if -1 not in self.slopes:
            batch, classes = logits.shape
            z = np.repeat(logits[None], classes, axis=0).astype(np.complex128)  # (C, B, C)
            z[np.arange(classes), :, np.arange(classes)] += 1j * COMPLEX_STEP
            rows = np.tile(np.arange(batch), classes)
            half = _row_half_losses(z.reshape(classes * batch, classes), rows, self.labels, self.targets)
            self.slopes[-1] = half.imag.reshape(classes, batch).T / COMPLEX_STEP
        return self.slopes[-1]

    def batch_changes(self, logits):
        """(P, B, C) logits of P whole batches -> (P,) changes of the summed half losses."""
        count, batch, classes = logits.shape
        rows = np.tile(np.arange(batch), count)
        half = _row_half_losses(logits.reshape(count * batch, classes), rows, self.labels, self.targets)
        return (half.reshape(count, batch) - self.base_half).sum(axis=1)


def _matmul(values, W):
    """``values @ W`` over the last axis; a complex ``values`` as two real products (a complex one costs four)."""
    flat = values.reshape(-1, values.shape[-1])
    if np.iscomplexobj(flat):
        out = np.empty((len(flat), W.shape[1]), np.complex128)
        out.real = flat.real @ W
        out.imag = flat.imag @ W
    else:
        out = flat @ W
    return out.reshape(values.shape[:-1] + (W.shape[1],))


def _boundary(origin, i, ctx):
    """Whether the propagation from ``origin`` stops at the input of step i: a FEATURE layer whose gradient is known."""
    return i >= origin + 2 and i in ctx.bounds


def _changes(steps, origin, js, rows, new, ctx):
    """Changes of the summed half losses when column ``js[p]`` of step ``origin``'s output takes new values: (P,).

    ``new`` is (P,) when only row ``rows[p]`` changes, or (B, P) (``rows`` None) when the whole column
    does. Only that column is carried while the layers keep it apart (elementwise, masks, FEATURE
    layers, which spread it over every row of that column); the next dense layer turns it into a
    rank-1 change of its output, for one row or for the whole batch. The change stops at the input of
    a later FEATURE layer whose gradient is known (``ctx.bounds``): there it is that gradient times the change.
    """
    count, i = len(js), origin + 1
    col, picked = new, np.arange(count)
    while i < len(steps) and steps[i].kind != "dense":
        step = steps[i]
        if _boundary(origin, i, ctx):
            grad = ctx.bounds[i]
            if rows is not None:
                return (col - step.inputs[rows, js]) * grad[rows, js]
            return np.einsum("bp,bp->p", col - step.inputs[:, js], grad[:, js])
        if step.kind == "fn":
            col = step.what(col)
        elif step.kind == "scale":
            col = col * (step.what[rows, js] if rows is not None else step.what[:, js])
        elif step.kind == "feature":
            if rows is not None:
                x = step.inputs[:, js].astype(col.dtype)
                x[rows, picked] = col
                col, rows = x, None
            col = step.columns(col, js)
        i += 1
    if i == len(steps):  # the column is a column of the logits
        logits = steps[-1].outputs
        if ctx.complex_step:  # the loss by its complex-step slopes, as in _imaginary_through
            slope = ctx.loss_slope(logits)
            return 1j * (col.imag * slope[rows, js] if rows is not None
                         else np.einsum("bp,bp->p", col.imag, slope[:, js]))
        if rows is not None:
            z = logits[rows].astype(col.dtype)
            z[picked, js] = col
            return ctx.row_changes(z, rows)
        z = np.repeat(logits[None], count, axis=0).astype(col.dtype)
        z[picked, :, js] = col.T
        return ctx.batch_changes(z)
    dense = steps[i]
    change = col - (dense.inputs[rows, js] if rows is not None else dense.inputs[:, js])
    if _boundary(origin, i + 1, ctx):  # into a known gradient: <change ⊗ W[j], grad> = change · (grad Wᵀ)[:, j]
        back = ctx.bounds[i + 1] @ dense.params["W"].T
        return change * back[rows, js] if rows is not None else np.einsum("bp,bp->p", change, back[:, js])
    w_rows = dense.params["W"][js]  # (P, n_out): the weights leaving the changed units
    if ctx.complex_step:
        imag = change.imag[:, None] * w_rows if rows is not None else change.imag.T[:, :, None] * w_rows[:, None, :]
        return _imaginary_through(steps, origin, i + 1, imag, rows, ctx)
    if rows is not None:
        values = dense.outputs[rows] + change[:, None] * w_rows
    else:
        values = dense.outputs[None] + change.T[:, :, None] * w_rows[:, None, :]
    return _rows_through(steps, origin, i + 1, values, rows, ctx)


def _rows_through(steps, origin, start, values, rows, ctx):
    """Changed rows (P, n) (batch rows ``rows``) or whole batches (P, B, n) through ``steps[start:]``: (P,) changes."""
    for i in range(start, len(steps)):
        step = steps[i]
        if _boundary(origin, i, ctx):
            grad = ctx.bounds[i]
            if rows is not None:
                return np.einsum("pn,pn->p", values - step.inputs[rows], grad[rows])
            return np.einsum("pbn,bn->p", values - step.inputs[None], grad)
        if step.kind == "dense":
            values = _matmul(values, step.params["W"])
            values += step.params["b"]
        elif step.kind == "fn":
            values = step.what(values)
        elif step.kind == "scale":
            values = values * (step.what[rows] if rows is not None else step.what)
        elif step.kind == "feature":
            if rows is not None:  # one row changed: every row of every column changes
                batch = np.repeat(step.inputs[None], len(rows), axis=0).astype(values.dtype)
                batch[np.arange(len(rows)), rows] = values
                values, rows = batch, None
            values = step.batches(values)
    return ctx.row_changes(values, rows) if rows is not None else ctx.batch_changes(values)


def _imaginary_through(steps, origin, start, imag, rows, ctx):
    """The complex step's changed rows (P, n) or batches (P, B, n) through ``steps[start:]``, as imaginary parts: (P,).

    Under the complex step only imaginary parts change: real parts move by O(h²), far below rounding,
    so they stay the unperturbed values and are reused, not recomputed. A dense layer maps the
    imaginary parts by W; an elementwise layer multiplies them by its complex-step slope
    ``Im fn(a + ih) / h`` at each unperturbed entry a (its own fn, evaluated once per entry of the
    batch, not once per perturbation: numpy's complex tanh is ~20x slower than the real one); so is
    the loss, by each row's slope in each logit; a FEATURE layer, which mixes rows, is evaluated in
    complex arithmetic on real + i·imaginary parts.
    """
    for i in range(start, len(steps)):
        step = steps[i]
        if _boundary(origin, i, ctx):
            grad = ctx.bounds[i]
            return 1j * (np.einsum("pn,pn->p", imag, grad[rows]) if rows is not None
                         else np.einsum("pbn,bn->p", imag, grad))
        if step.kind == "dense":
            imag = _matmul(imag, step.params["W"])
        elif step.kind == "fn":
            slope = ctx.slope(steps, i)
            imag = imag * (slope[rows] if rows is not None else slope)
        elif step.kind == "scale":
            imag = imag * (step.what[rows] if rows is not None else step.what)
        elif step.kind == "feature":
            values = np.repeat(step.inputs[None], len(imag), axis=0).astype(np.complex128)
            if rows is not None:  # one row changed: every row of every column changes
                values[np.arange(len(rows)), rows] += 1j * imag
                rows = None
            else:
                values += 1j * imag
            imag = step.batches(values).imag
    slope = ctx.loss_slope(steps[-1].outputs)
    return 1j * (np.einsum("pc,pc->p", imag, slope[rows]) if rows is not None
                 else np.einsum("pbc,bc->p", imag, slope))


def _carried_width(steps, origin, ctx):
    """The widest rows a perturbation of step ``origin``'s output carries through ``_changes`` (1: only a column)."""
    i = origin + 1
    while i < len(steps) and steps[i].kind != "dense" and not _boundary(origin, i, ctx):
        i += 1
    if i == len(steps):
        return steps[-1].outputs.shape[1]
    if steps[i].kind != "dense" or _boundary(origin, i + 1, ctx):
        return 1
    width = steps[i].inputs.shape[1]
    for j in range(i, len(steps)):
        if _boundary(origin, j, ctx):
            break
        width = max(width, steps[j].outputs.shape[1])
    return width


def _slopes(steps, origin, js, rows, news, taken, ctx):
    """d(summed half losses) / d(the perturbed quantity) for each of P perturbations of step ``origin``'s output: (P,).

    ``news``: ``(up, down)`` new values for central differences, ``(z,)`` complex ones for the complex
    step (last axis: the perturbation); ``taken``: the step actually taken, per perturbation or scalar.
    Done in chunks bounded by ``ctx.max_bytes``.
    """
    count = len(js)
    whole = rows is None or (origin + 1 < len(steps) and steps[origin + 1].kind == "feature")
    # About eight complex arrays of the widest rows a perturbation carries, per row it changes.
    per = 16 * 8 * _carried_width(steps, origin, ctx) * (ctx.batch if whole else 1) * (1 if ctx.complex_step else 2)
    chunk = int(max(1, min(count, ctx.max_bytes // per, 2048)))
    out = np.empty(count)
    for c0 in range(0, count, chunk):
        sl = slice(c0, c0 + chunk)
        r = None if rows is None else rows[sl]
        if ctx.complex_step:
            out[sl] = _changes(steps, origin, js[sl], r, news[0][..., sl], ctx).imag
            continue
        k = len(js[sl])
        both = _changes(steps, origin, np.concatenate([js[sl], js[sl]]), None if r is None else np.concatenate([r, r]),
                        np.concatenate([news[0][..., sl], news[1][..., sl]], axis=-1), ctx)
        out[sl] = both[:k] - both[k:]
    return out / taken


def _output_slopes(steps, i, ctx):
    """d(summed half losses) / d y at every (row, unit) of step i's output y, each entry perturbed once: (B, n)."""
    batch, n = steps[i].outputs.shape
    rows, js = np.repeat(np.arange(batch), n), np.tile(np.arange(n), batch)
    base = steps[i].outputs.reshape(-1)
    if ctx.complex_step:
        return _slopes(steps, i, js, rows, (base + 1j * COMPLEX_STEP,), COMPLEX_STEP, ctx).reshape(batch, n)
    plus, minus = perturbed(base)
    return _slopes(steps, i, js, rows, (plus, minus), plus - minus, ctx).reshape(batch, n)


def _feature_grads(steps, i, ctx):
    """Slopes for a FEATURE step's params: each entry perturbed on its own (one column of output per entry)."""
    step = steps[i]
    js = np.arange(step.outputs.shape[1])
    leaves = tree_leaves(step.params)
    grads = []
    for number, leaf in enumerate(leaves):
        def output_with(value):  # every feature perturbed at once: each column sees only its own entry
            trial = list(leaves)
            trial[number] = value
            return step.columns(step.inputs, js, tree_unflatten(step.params, trial))
        if ctx.complex_step:
            grads.append(_slopes(steps, i, js, None, (output_with(leaf + 1j * COMPLEX_STEP),), COMPLEX_STEP, ctx))
        else:
            plus, minus = perturbed(leaf)
            grads.append(_slopes(steps, i, js, None, (output_with(plus), output_with(minus)), plus - minus, ctx))
    return tree_unflatten(step.params, grads)


def _penalty_grad(leaf, lam, complex_step):
    """The derivative of ½λw² at each entry of a decayed leaf, by the same numerical method."""
    if complex_step:
        return (0.5 * lam * (leaf + 1j * COMPLEX_STEP) ** 2).imag / COMPLEX_STEP
    plus, minus = perturbed(leaf)
    return 0.5 * lam * (plus ** 2 - minus ** 2) / (plus - minus)


def _segment_grads(segment, ctx):
    """Per layer with params in the vectorised segment, its gradient pytree (in loss units), last layer first.

    A DENSE layer's weights: ``inputs.T @ d`` with d = d loss / d (its output), every output entry
    perturbed once (to O(h²) the same as perturbing each weight: the layer is affine in its weights,
    and a weight's perturbation moves column j of its output by ``±h * x[:, i]``). The gradient at the
    input of a FEATURE layer (perturbing each entry once, through it) is kept in ``ctx.bounds``: changes
    upstream stop there, so a perturbation never has to carry a whole batch past a second FEATURE layer.
    """
    scale = 2 / ctx.batch  # the loss is 2 * mean(half losses)
    out = {}
    for i in range(len(segment) - 1, -1, -1):
        step = segment[i]
        feeds_feature = i + 1 < len(segment) and segment[i + 1].kind == "feature"
        if step.kind == "dense" or feeds_feature:
            d = _output_slopes(segment, i, ctx)
            if feeds_feature:
                ctx.bounds[i + 1] = d
            if step.kind == "dense":
                d = scale * d
                out[i] = {"W": step.inputs.T @ d, "b": d.sum(axis=0)}
        if step.kind == "feature" and step.layer.has_params:
            out[i] = tree_map(lambda g: scale * g, _feature_grads(segment, i, ctx))
    return out


def network_full_grad(net, params, x, t, key=None, state=None, train=False, max_bytes=DEFAULT_MAX_BYTES,
                      method="central"):
    """Full numerical gradient of ``net.loss(params, x, t, key, state=state, train=train)``: pytree -> float64 pytree.

    ``method``: 'central' differences or the 'complex-step' (then checked, module doc). Vectorised
    through what the layers declare (``layers.Layer.kind``), each declaration checked on the batch:

    - the loss is a sum over rows (``cross_entropy``'s own halved form per row, plus the penalty's
      difference at the one perturbed entry), so a change that touches some rows is summed over those;
    - a DENSE layer is affine in its weights and input: its weights' gradient comes from d loss / d y at
      every (row, unit) of its output y, one perturbation each (``_segment_grads``);
    - a perturbation of one entry of y changes one column; elementwise layers and masks keep it in that
      column (evaluated there only), a FEATURE layer (BatchNorm, training mode) spreads it over that
      column's rows (its params are perturbed entry by entry the same way), the next dense layer makes
      it a rank-1 change of one row or of the whole batch; the changed rows go through the rest of the
      network, or up to the input of the next FEATURE layer, where the gradient is already known
      (computed last layer first) and the change's effect is that gradient times the change (first
      order: the same O(h²) as the central difference). Stacks of perturbations are bounded by ``max_bytes``.
    - the complex step perturbs the same entries by ih, once each; real parts then do not change, so
      only imaginary parts are carried (``_imaginary_through``).

    Layers it cannot take (opaque, or a declaration that does not hold) are named in a
    ``SlowPathWarning``: the params at or before the last of them are differentiated element by
    element on the whole loss, the ones after it by the vectorised path. Deterministic.
    """
    _check_method(method)
    net64, params64, x64, t, state64 = as_float64(net, params, x, t, state, train, key)
    net64.batch_loss(params64, x64, t, state64, train, key)  # bad targets or key: the usual clear errors
    steps, counts = _walk(net64, params64, x64, state64, train, key)
    blocked = [i for i, step in enumerate(steps) if step.kind is None]
    last = blocked[-1] if blocked else -1
    looped = sum(counts[:last + 1])
    leaves = _float64_leaves(params64)
    paths = [path for path, _ in tree_leaves_with_paths(params64)]
    complex_step = method == "complex-step"
    central = functools.partial(net64.loss, x=x64, t=t, key=key, state=state64, train=train)
    complex_f = _network_loss(net64, params64, x64, t, key, state=state64, train=train) if complex_step else None
    grads = [None] * len(leaves)
    if looped:
        first_params = next(i for i, c in enumerate(counts) if c)
        names = "; ".join(f"layer {steps[i].position} ({steps[i].layer.name}), which {steps[i].what}"
                          for i in blocked if i >= first_params)
        warnings.warn(f"the vectorised numerical path cannot use {names}: the element-by-element loop (slow) "
                      f"differentiates the {sum(leaf.size for leaf in leaves[:looped])} params at or before layer "
                      f"{steps[last].position}, the vectorised path the "
                      f"{sum(leaf.size for leaf in leaves[looped:])} after it", SlowPathWarning, stacklevel=2)
        grads[:looped] = _loop(complex_f if complex_step else central, params64, leaves, paths, None, method,
                               only=range(looped))[:looped]
    if looped < len(leaves):
        segment = steps[last + 1:]
        labels, targets = _targets(t, len(x64), net64.output_size)
        base_half = _row_half_losses(segment[-1].outputs, np.arange(len(x64)), labels, targets)
        by_layer = _segment_grads(segment, _Context(labels, targets, base_half, complex_step, max_bytes))
        number = looped
        for i in sorted(by_layer):
            step = segment[i]
            decayed = set(step.layer.decayed)
            for (keys, g), leaf in zip(tree_leaves_with_keys(by_layer[i]), tree_leaves(step.params)):
                if keys in decayed and net64.weight_decay:
                    g = g + _penalty_grad(leaf, net64.weight_decay, complex_step)
                grads[number] = np.asarray(g, dtype=np.float64).reshape(np.shape(leaf))
                number += 1
    if complex_step:
        check_complex_safe(central, complex_f, params64, grads)
    return tree_unflatten(params, grads)
