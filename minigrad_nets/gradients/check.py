"""``check_gradients``: run several gradient paths on one network and report, leaf by leaf, where they disagree.

Everything runs in float64, whatever the network's dtype: params and x are
cast, and the network is copied with ``dtype=float64``.

Thresholds (per leaf, on the norm of the difference; ``n`` = entries compared):
pass iff ``‖a - b‖ <= rtol * max(‖a‖, ‖b‖) + atol * sqrt(n)``.

==============================  =======  =======
pair                            rtol     atol
==============================  =======  =======
analytic vs analytic            1e-12    1e-15
analytic vs complex-step        1e-12    1e-15
any vs numerical (central)      1e-6     1e-9
==============================  =======  =======

The ``atol`` floor only matters for leaves whose gradient is itself tiny
(vanishing gradients, or a bias just before BatchNorm, whose gradient is 0):
central differences cannot resolve values much below ``eps**(2/3) * |loss|``,
about 1e-10. The complex step has no such floor: it is exact to rounding for
complex-safe layers, so it checks analytic gradients as tightly as they check
each other, and catches errors a million times smaller than central
differences can (a method that is not complex-safe fails its "runs" check with
``NotComplexSafeError``, never with a silently wrong gradient).
"""
import itertools
import math
import warnings
from dataclasses import dataclass

import numpy as np

from .. import layers as L
from ..tree import check_same_shapes, check_same_structure, tree_leaves, tree_leaves_with_paths
from . import check_method, numerical
from . import value_and_grad as method_value_and_grad

DEFAULT_METHODS = ("autograd", "backprop", "autograd-fused", "numerical")
PROBED = ("numerical", "complex-step")  # the methods that run in ``mode`` (probes for 'sampled' / 'directional')
ANALYTIC_TOL = (1e-12, 1e-15)
COMPLEX_STEP_TOL = (1e-12, 1e-15)
NUMERICAL_TOL = (1e-6, 1e-9)


class GradientCheckError(AssertionError):
    """Raised by ``check_gradients(..., raise_on_failure=True)``; ``.report`` holds the full report."""

    def __init__(self, report):
        super().__init__(str(report))
        self.report = report


@dataclass(frozen=True)
class LeafComparison:
    """One leaf compared between two methods: errors, the worst entry and its two values, pass or fail."""
    methods: tuple          # (method a, method b)
    path: str               # e.g. "[2]['W']"
    shape: tuple            # the leaf's shape
    probe: str              # 'element' (full / sampled) or 'direction' (directional mode)
    compared: int           # entries (or directions) compared
    max_abs_err: float
    max_rel_err: float      # max over entries of |a - b| / max(|a|, |b|) (0 where both are 0)
    norm_rel_err: float     # ‖a - b‖ / max(‖a‖, ‖b‖) (0 when both are 0)
    worst_index: tuple      # index into the leaf (or (k,) for direction k) of the largest |a - b|
    worst_values: tuple     # (a, b) there
    rtol: float
    atol: float
    ok: bool


@dataclass(frozen=True)
class Check:
    """A structural check: its name, whether it passed, and what went wrong."""
    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class GradientReport:
    """The result of ``check_gradients``: comparisons per leaf and method pair, structural checks, warnings."""
    methods: tuple
    mode: str
    network_dtype: str
    losses: dict            # method -> loss value
    comparisons: tuple      # LeafComparison, grouped by method pair
    checks: tuple           # Check
    warnings: tuple         # str
    kink_params: tuple = () # indices i of params[i] whose numerical estimates a kink (ReLU's at 0) may spoil

    @property
    def ok(self):
        """True when every structural check and every leaf comparison passed."""
        return all(c.ok for c in self.checks) and all(c.ok for c in self.comparisons)

    @property
    def failures(self):
        """The failing leaf comparisons."""
        return tuple(c for c in self.comparisons if not c.ok)

    def suspects(self):
        """``{path: method}`` where one method disagrees with all others while those others agree."""
        out = {}
        by_path = {}
        for c in self.comparisons:
            by_path.setdefault(c.path, []).append(c)
        for path, rows in by_path.items():
            bad = [c for c in rows if not c.ok]
            if not bad or len(self.methods) < 3:
                continue
            for m in self.methods:
                mine = [c for c in rows if m in c.methods]
                others = [c for c in rows if m not in c.methods]
                if mine and all(not c.ok for c in mine) and others and all(c.ok for c in others):
                    out[path] = m
        return out

    def kink_explains_failures(self):
        """True when the report fails only on numerical comparisons of leaves a kink warning covers."""
        if self.ok or not all(c.ok for c in self.checks):
            return False
        covered = {f"[{i}]" for i in self.kink_params}
        return all("numerical" in c.methods and c.path.split("]")[0] + "]" in covered for c in self.failures) \
            and all(c.ok for c in self.comparisons if "numerical" not in c.methods)

    def __str__(self):
        lines = [f"Gradient check: {'PASS' if self.ok else 'FAIL'} — methods {', '.join(self.methods)}; "
                 f"mode {self.mode}; computed in float64"
                 + ("" if self.network_dtype == "float64" else f" (network dtype {self.network_dtype})")]
        if self.losses:
            lines.append("losses: " + ", ".join(f"{m} {v:.15g}" for m, v in self.losses.items()))
        lines.append("checks:")
        lines += [f"  [{'ok' if c.ok else 'FAIL'}] {c.name}" + (f": {c.detail}" if c.detail else "")
                  for c in self.checks]
        for pair, rows in itertools.groupby(self.comparisons, key=lambda c: c.methods):
            rows = list(rows)
            head = rows[0]
            lines.append(f"{pair[0]} vs {pair[1]} (pass: norm error <= {head.rtol:g} relative + "
                         f"{head.atol:g}·sqrt(n); {head.probe}s compared):")
            lines.append(f"  {'leaf':<12} {'shape':<12} {'n':>7} {'max abs':>9} {'max rel':>9} {'norm rel':>9}  "
                         f"{'worst at':<12} values")
            for c in rows:
                where = (f"dir {c.worst_index[0]}" if c.probe == "direction" else str(c.worst_index)) \
                    if c.worst_index is not None else "-"
                vals = f"{c.worst_values[0]:.12g} vs {c.worst_values[1]:.12g}" if c.worst_values else ""
                lines.append(f"  {c.path:<12} {str(c.shape):<12} {c.compared:>7} {c.max_abs_err:9.2e} "
                             f"{c.max_rel_err:9.2e} {c.norm_rel_err:9.2e}  {where:<12} {vals}"
                             f"{'   <-- FAIL' if not c.ok else _floor_note(c)}")
        for path, method in self.suspects().items():
            lines.append(f"suspect: {method} at {path} (it disagrees with every other method, which agree)")
        if self.kink_explains_failures():
            lines.append("note: every failure is a numerical disagreement in params upstream of a kink "
                         "(see the warnings) while the analytic methods agree: most likely kink artefacts, "
                         "not a wrong rule; try another seed or batch")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _floor_note(c):
    """A note for a leaf that passed only on the absolute floor (its gradient is too small to resolve)."""
    return "   (passed on the atol floor: gradient too small to resolve)" if c.norm_rel_err > c.rtol else ""


# ---------------------------------------------------------------- comparing


def compare_leaf(a, b, methods, path, shape, probe, rtol, atol, index_of=None):
    """A ``LeafComparison`` of two equally shaped float arrays ``a`` and ``b``."""
    a, b = np.asarray(a, np.float64).reshape(-1), np.asarray(b, np.float64).reshape(-1)
    n = a.size
    if n == 0:
        return LeafComparison(methods, path, shape, probe, 0, 0.0, 0.0, 0.0, None, None, rtol, atol, True)
    diff = np.abs(a - b)
    scale = np.maximum(np.abs(a), np.abs(b))
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.where(scale > 0, diff / scale, 0.0)
    worst = int(np.argmax(diff))
    norm_diff, norm_scale = float(np.linalg.norm(a - b)), float(max(np.linalg.norm(a), np.linalg.norm(b)))
    norm_rel = norm_diff / norm_scale if norm_scale > 0 else (0.0 if norm_diff == 0 else math.inf)
    ok = bool(np.isfinite(norm_diff) and norm_diff <= rtol * norm_scale + atol * math.sqrt(n))
    index = index_of(worst) if index_of else (worst,)
    return LeafComparison(methods, path, tuple(shape), probe, n, float(diff.max()), float(rel.max()),
                          float(norm_rel), index, (float(a[worst]), float(b[worst])), rtol, atol, ok)


def _compare(name_a, res_a, name_b, res_b, params, mode, samples, seed):
    """Leaf comparisons of two methods' results (projecting analytic gradients when one side is probed)."""
    pair = (name_a, name_b)
    rtol, atol = NUMERICAL_TOL if "numerical" in pair else COMPLEX_STEP_TOL if "complex-step" in pair \
        else ANALYTIC_TOL
    ga, gb = res_a[1], res_b[1]
    probe_mode = mode if any(m in PROBED for m in pair) else "full"
    if probe_mode != "full":
        ga = ga if name_a in PROBED else numerical.analytic_probes(ga, params, mode, samples, seed)
        gb = gb if name_b in PROBED else numerical.analytic_probes(gb, params, mode, samples, seed)
        picks = tree_leaves(numerical.sample_indices(params, samples, seed)) if mode == "sampled" else None
    rows = []
    for number, ((path, p), a, b) in enumerate(zip(tree_leaves_with_paths(params), tree_leaves(ga), tree_leaves(gb))):
        shape = np.shape(p)
        if probe_mode == "full":
            index_of = lambda flat, shape=shape: tuple(int(i) for i in np.unravel_index(flat, shape))
        elif mode == "sampled":
            index_of = lambda k, shape=shape, pick=picks[number]: tuple(
                int(i) for i in np.unravel_index(pick[k], shape))
        else:
            index_of = lambda k: (k,)
        probe = "direction" if probe_mode == "directional" else "element"
        rows.append(compare_leaf(a, b, (name_a, name_b), path, shape, probe, rtol, atol, index_of))
    return rows


# ---------------------------------------------------------------- running the methods


def _run(method, net, params, x, t, key, state, train, mode, samples, seed):
    """``(loss, gradient or probe pytree)`` of one method on float64 inputs."""
    if method in PROBED and mode != "full":
        loss = net.loss(params, x, t, key, state=state, train=train)
        return loss, numerical.numerical_grad(net.loss, params, x, t, key=key, state=state, train=train, mode=mode,
                                              method="central" if method == "numerical" else method,
                                              seed=seed, samples=samples)
    return method_value_and_grad(net, params, x, t, method=method, key=key, state=state, train=train)


def _snapshot(tree):
    return [np.array(leaf, copy=True) for leaf in tree_leaves(tree if tree is not None else [])]


def _same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _unchanged(tree, snapshot):
    leaves = tree_leaves(tree if tree is not None else [])
    return len(leaves) == len(snapshot) and all(_same_bits(a, b) for a, b in zip(leaves, snapshot))


def _structure_problem(method, result, params, mode, samples):
    """A message when a method's gradient is not shaped like params (or like the probes); None when fine."""
    grads = result[1]
    try:
        if method in PROBED and mode != "full":
            check_same_structure(params, grads, "params", f"{method} probes")
            for (path, p), g in zip(tree_leaves_with_paths(params), tree_leaves(grads)):
                want = (min(samples, np.size(p)),) if mode == "sampled" else ((samples,) if np.size(p) else (0,))
                if np.shape(g) != want:
                    return f"{method} probes{path} have shape {np.shape(g)}; expected {want}"
        else:
            check_same_shapes(params, grads, "params", f"{method} gradient")
    except (TypeError, ValueError) as err:
        return str(err)
    for path, g in tree_leaves_with_paths(grads):
        dtype = getattr(g, "dtype", None)
        if dtype != np.float64:
            return f"{method} gradient{path} has dtype {dtype}; params (checked in float64) have float64"
    return None


def kink_warnings(net, params, x, key=None, state=None, train=False):
    """``(warnings, param indices)`` for elementwise layers with inputs within a step of a kink they declare.

    The radius for such a layer fed by a layer with params ``p`` and input ``a``
    is ``h * max(1, max|a|)`` with ``h = eps**(1/3) * max(1, max|p|)``: about
    the most one step of one parameter moves that input. Layers inside nested
    ``serial`` layers count too; they spoil the top-level params entries up to
    the one holding the layer that feeds them.
    """
    warnings, spoiled, a, feeding = [], set(), x, None
    for position, layer, p, s, layer_key, index in L.leaf_layers(net.layers, params, state, key):
        if layer.has_params:
            p_scale = max([1.0] + [float(np.max(np.abs(leaf), initial=0.0)) for leaf in tree_leaves(p)])
            feeding = (numerical.STEP_SCALE * p_scale * max(1.0, float(np.max(np.abs(a), initial=0.0))), index)
        kinks = layer.kind.kinks if isinstance(layer.kind, L.Elementwise) else ()
        if kinks and feeding is not None:
            radius, last_param = feeding
            near = int(sum(np.sum(np.abs(a - kink) < radius) for kink in kinks))
            if near:
                spoiled.update(range(last_param + 1))
                leaves = f"params[0]..params[{last_param}]" if last_param else "params[0]"
                at = " or ".join(f"{k:g}" for k in kinks)
                warnings.append(
                    f"layer {'.'.join(map(str, position))} ({layer.name}): {near} of {np.size(a)} inputs "
                    f"lie within {radius:.1e} of its kink at {at}; a central difference straddling the kink is not "
                    f"the derivative there, so numerical disagreement in {leaves} may come from this rather than "
                    f"from a wrong rule")
        a = np.asarray(layer.apply(p, s, a, train, layer_key)[0])
    return warnings, tuple(sorted(spoiled))


def check_gradients(net, params, x, t, methods=DEFAULT_METHODS, mode="full", seed=0, key=None, *, state=None,
                    train=False, samples=numerical.DEFAULT_SAMPLES, repeat=True, raise_on_failure=False):
    """Compare gradient ``methods`` on ``net.loss(params, x, t, key, state=, train=)`` leaf by leaf, in float64.

    Returns a ``GradientReport``.
    Every pair of methods is compared (thresholds in the module doc). The
    numerical methods ('numerical': central differences; 'complex-step') run in
    ``mode`` ('full', 'sampled' or 'directional' with ``samples`` probes per
    leaf from ``seed``); analytic methods are always compared in full. With
    ``repeat`` each method runs twice and must give bit-identical results. Also checked: structure / shapes / dtypes, finiteness,
    and that no input (the caller's or the float64 copies) was mutated.
    ``raise_on_failure`` raises ``GradientCheckError`` instead of returning a
    failing report.
    """
    if isinstance(methods, str):
        raise TypeError(f"methods must be a sequence of method names, e.g. ('autograd', 'backprop'), got {methods!r}")
    methods = tuple(check_method(m) for m in methods)
    if len(methods) < 2 or len(set(methods)) != len(methods):
        raise ValueError(f"check_gradients needs at least two distinct methods, got {list(methods)}")
    if mode not in numerical.MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {list(numerical.MODES)}")
    numerical._check_seed(seed)
    samples = numerical._check_samples(samples)
    caller_params, caller_x, caller_t = _snapshot(params), np.array(x, copy=True), np.array(t, copy=True)
    caller_state = _snapshot(state)
    net64, params64, x64, t64, state64 = numerical.as_float64(net, params, x, t, state, train, key)
    net64.batch_loss(params64, x64, t64, state64, train, key)  # bad targets: the usual clear error, before anything runs
    copies = (_snapshot(params64), np.array(x64, copy=True), _snapshot(state64))
    slow = []

    checks, results = [], {}
    for m in methods:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", numerical.SlowPathWarning)
                warnings.simplefilter("always", numerical.ComplexStepWarning)
                results[m] = _run(m, net64, params64, x64, t64, key, state64, train, mode, samples, seed)
                again = _run(m, net64, params64, x64, t64, key, state64, train, mode, samples, seed) \
                    if repeat else None
            slow += [str(w.message) for w in caught
                     if issubclass(w.category, (numerical.SlowPathWarning, numerical.ComplexStepWarning))]
        except Exception as err:  # a broken path is a finding to report, not a crash
            checks.append(Check(f"{m} runs", False, f"raised {type(err).__name__}: {err}"))
            results.pop(m, None)
            continue
        problem = _structure_problem(m, results[m], params64, mode, samples)
        if problem:
            checks.append(Check(f"{m} gradient has the structure, shapes and dtype (float64) of params", False,
                                problem))
            results.pop(m)
            continue
        if repeat:
            same = _same_bits(results[m][0], again[0]) and all(
                _same_bits(a, b) for a, b in zip(tree_leaves(results[m][1]), tree_leaves(again[1])))
            checks.append(Check(f"{m}: repeated call bit-identical", same,
                                "" if same else "two calls on the same inputs gave different bits"))
    if results:
        checks.insert(0, Check("structure, shapes and dtypes match params", True,
                               f"{', '.join(results)}"))
    bad = [f"{m} loss" for m, (loss, _) in results.items() if not np.isfinite(loss)]
    bad += [f"{m} gradient{path}" for m, (_, g) in results.items()
            for path, leaf in tree_leaves_with_paths(g) if not np.all(np.isfinite(leaf))]
    checks.append(Check("losses and gradients finite", not bad, ", ".join(bad[:5])))

    losses = {m: float(loss) for m, (loss, _) in results.items()}
    if len(losses) > 1:
        ref = next(iter(losses.values()))
        spread = max(abs(v - ref) for v in losses.values())
        ok = spread <= ANALYTIC_TOL[0] * max(abs(v) for v in losses.values()) + ANALYTIC_TOL[1]
        checks.append(Check("losses agree", ok, "" if ok else f"they differ by up to {spread:.3e}"))

    unmutated = _unchanged(params, caller_params) and _same_bits(x, caller_x) and _same_bits(t, caller_t) \
        and _unchanged(params64, copies[0]) and _same_bits(x64, copies[1]) and _unchanged(state, caller_state) \
        and _unchanged(state64, copies[2])
    checks.append(Check("inputs unmutated (params, x, t, state)", unmutated,
                        "" if unmutated else "a method wrote into its inputs"))

    comparisons = []
    done = [m for m in methods if m in results]
    for a, b in itertools.combinations(done, 2):
        comparisons += _compare(a, results[a], b, results[b], params64, mode, samples, seed)
    kinks, spoiled = kink_warnings(net64, params64, x64, key, state64, train) if "numerical" in done else ([], ())
    report = GradientReport(methods, mode, str(np.dtype(net.dtype)), losses, tuple(comparisons), tuple(checks),
                            tuple(dict.fromkeys(slow)) + tuple(kinks), spoiled)
    if raise_on_failure and not report.ok:
        raise GradientCheckError(report)
    return report
