"""What each gradient method costs, and how far apart they are, over network sizes (≈100 to ≈110k params) and batches.

For every (network, batch), in float64:

- ``autograd``, ``autograd-fused``, ``backprop``: ``mg.value_and_grad`` by that
  method, timed interleaved (median and min over repeats);
- ``numerical-full``: ``mg.grad(..., method='numerical')``, every parameter by
  central differences (the library's network-vectorised path);
- ``book-loop``: the book's ``numerical_gradient`` (element by element,
  ``h = 1e-4``, over the book-style network's loss from ``train_step.py``) — the
  baseline. Run in full where that takes under ``--loop-budget`` seconds;
  otherwise timed on a seeded subset of entries and EXTRAPOLATED to all of them
  (``extrapolated: true`` in the JSON, ``~`` in the table);
- ``numerical-sampled`` / ``numerical-directional``: ``mg.numerical_grad`` in
  those modes (8 entries / directions per leaf), compared with
  ``analytic_probes`` of the autograd gradient.

Agreement is the norm-relative error ``‖g - g_autograd‖ / ‖g_autograd‖`` over all
leaves (over the probed values for sampled / directional / a partial loop).
Memory is the peak of Python + numpy allocations during one gradient call,
by ``tracemalloc``.

Then, per activation — ReLU, sigmoid, tanh, and the BatchNorm network
(``mlp(784, [100] * 4, 10, batch_norm=True)``, ReLU, training mode) — on the
book's 784-100x4-10 network at batch 128 (``--quick``: 20-30-30-10, batch 16):
the full gradient by central differences (``numerical``) and by the complex
step (``complex-step``), each timed over interleaved repeats (median), against
the book's element loop over a book-style network with that activation
(``Sigmoid``: ``1 / (1 + exp(-x))``; BatchNorm: the book's
``BatchNormalization`` forward in training mode), timed on a seeded subset of
entries in the same run and extrapolated; and every method's accuracy against
autograd, over all entries and on the worst leaf (leaves whose exact gradient
is 0 — a bias just before BatchNorm — are reported by their largest entry).

    .venv/bin/python benchmarks/grad_methods.py [--quick] [--json PATH] [--threads 1] [--only-activations]
"""
import os
import sys
from pathlib import Path


def _threads_from_argv(argv, default=1):
    """The --threads value, read before numpy is imported (BLAS reads its thread count once, at load)."""
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--threads="):
            return arg.split("=", 1)[1]
    return str(default)


# One BLAS thread by default: on a shared 2-core machine two BLAS threads stall whenever the
# other core is busy (a 100x100 product at batch 128 then takes milliseconds, not microseconds),
# which would swamp the comparison.
_THREADS = _threads_from_argv(sys.argv)
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = _THREADS

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from collections import OrderedDict  # noqa: E402

import numpy as np  # noqa: E402  (before train_step, so that its own thread default does not apply)

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]
import minigrad_nets as mg  # noqa: E402
import train_step  # noqa: E402
from minigrad_nets.gradients import numerical  # noqa: E402
from minigrad_nets.tree import tree_leaves  # noqa: E402

NETWORKS = {  # name -> (input size, hidden sizes, classes)
    "tiny": (10, [6], 4),
    "small": (20, [30], 10),
    "medium": (100, [100], 10),
    "book": (784, [100] * 4, 10),
}
ANALYTIC = ("autograd", "autograd-fused", "backprop")
SAMPLES = 8


# ---------------------------------------------------------------- the book's loop (the baseline)


def book_numerical_gradient(f, x, indices):
    """The book's central-difference loop (h = 1e-4) over the given multi-indices of x, in place and restored."""
    h = 1e-4
    grad = np.empty(len(indices))
    for slot, idx in enumerate(indices):
        tmp_val = x[idx]
        x[idx] = float(tmp_val) + h
        fxh1 = f(x)
        x[idx] = tmp_val - h
        fxh2 = f(x)
        grad[slot] = (fxh1 - fxh2) / (2 * h)
        x[idx] = tmp_val
    return grad


def book_loop(params, x, t, picks):
    """The book net's numerical gradient at ``picks`` (per leaf: flat indices, or None for all): per leaf, values."""
    book_params = {}
    for i, layer in enumerate(params, start=1):  # copies: the loop writes into them
        book_params[f"W{i}"], book_params[f"b{i}"] = layer["W"].copy(), layer["b"].copy()
    model = train_step.BookMultiLayerNet(book_params)
    out = []
    for (key, value), pick in zip(book_params.items(), picks):
        flat = range(value.size) if pick is None else pick
        indices = [np.unravel_index(i, value.shape) for i in flat]
        out.append(book_numerical_gradient(lambda _: model.loss(x, t), value, indices))
    return out


def book_leaf_order(tree):
    """Leaves in the book's order (W1, b1, W2, b2, ...), which is also tree_leaves' order ('W' sorts before 'b')."""
    return [a for layer in tree for a in (layer["W"], layer["b"])]


# ---------------------------------------------------------------- measuring


def norm_rel(got, want):
    """``‖got - want‖ / ‖want‖`` over lists of arrays (0 when both are zero)."""
    got = np.concatenate([np.ravel(g) for g in got])
    want = np.concatenate([np.ravel(w) for w in want])
    scale = np.linalg.norm(want)
    return float(np.linalg.norm(got - want) / scale) if scale else float(np.linalg.norm(got))


def traced_peak_mb(fn):
    """Peak MB allocated (Python + numpy, by tracemalloc) while ``fn()`` runs, and its result."""
    tracemalloc.start()
    try:
        result = fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak / 2**20, result


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def measure_case(name, batch, quick, loop_budget, rng):
    """All methods on one network and batch: a list of result rows."""
    sizes = NETWORKS[name]
    net = mg.mlp(*sizes)
    params = net.init(0)
    count = sum(leaf.size for leaf in tree_leaves(params))
    x, t = rng.random((batch, sizes[0])), rng.integers(0, sizes[-1], batch)
    base = {"network": name, "sizes": [sizes[0], *sizes[1], sizes[2]], "params": int(count), "batch": batch}
    reference = tree_leaves(mg.grad(net, params, x, t, method="autograd"))
    rows = []

    # Analytic methods: interleaved repeats until about 0.3 s each (at least 3).
    times = {m: [] for m in ANALYTIC}
    grads = {}
    budget = 0.05 if quick else 0.3
    while min(sum(v) for v in times.values()) < budget or len(times[ANALYTIC[0]]) < 3:
        for method in ANALYTIC:
            seconds, (_, grads[method]) = timed(lambda: mg.value_and_grad(net, params, x, t, method=method))
            times[method].append(seconds)
    for method in ANALYTIC:
        peak, _ = traced_peak_mb(lambda: mg.value_and_grad(net, params, x, t, method=method))
        rows.append({**base, "method": method, "seconds": float(np.median(times[method])),
                     "min_seconds": float(np.min(times[method])), "repeats": len(times[method]),
                     "extrapolated": False, "rel_error_vs_autograd": norm_rel(tree_leaves(grads[method]), reference),
                     "error_over": "all entries", "peak_traced_mb": peak})

    # The full numerical gradient: one run, traced (its allocations are few and large, so tracing costs little).
    start = time.perf_counter()
    peak, full = traced_peak_mb(lambda: mg.grad(net, params, x, t, method="numerical"))
    full_seconds = time.perf_counter() - start
    rows.append({**base, "method": "numerical-full", "seconds": full_seconds, "min_seconds": full_seconds,
                 "repeats": 1, "extrapolated": False, "rel_error_vs_autograd": norm_rel(tree_leaves(full), reference),
                 "error_over": "all entries", "peak_traced_mb": peak})

    # The book's loop: all entries if that fits the budget, else a seeded subset, extrapolated.
    probe_seconds, _ = timed(lambda: book_loop(params, x, t, [[0]] * len(reference)))
    per_entry = probe_seconds / len(reference)
    leaves = book_leaf_order(params)
    if per_entry * count <= loop_budget:
        picks, extrapolated = [None] * len(leaves), False
    else:
        share = max(loop_budget / (per_entry * count), 1.0 / count)
        pick_rng = np.random.default_rng(0)
        picks = [np.sort(pick_rng.choice(leaf.size, max(1, int(round(leaf.size * share))), replace=False))
                 for leaf in leaves]
        extrapolated = True
    seconds, values = timed(lambda: book_loop(params, x, t, picks))
    done = sum(len(v) for v in values)
    want = [np.ravel(r) if p is None else np.ravel(r)[p] for r, p in zip(reference, picks)]
    peak, _ = traced_peak_mb(lambda: book_loop(params, x, t, [[0]] * len(leaves)))
    rows.append({**base, "method": "book-loop", "seconds": seconds * count / done, "min_seconds": None,
                 "repeats": 1, "extrapolated": extrapolated, "entries_timed": done, "timed_seconds": seconds,
                 "rel_error_vs_autograd": norm_rel(values, want),
                 "error_over": "all entries" if not extrapolated else f"the {done} entries timed",
                 "peak_traced_mb": peak})

    # Sampled and directional central differences, against the same probes of the autograd gradient.
    grads_tree = mg.grad(net, params, x, t, method="autograd")
    for mode in ("sampled", "directional"):
        fn = lambda: mg.numerical_grad(net.loss, params, x, t, mode=mode, samples=SAMPLES, seed=0)  # noqa: E731
        seconds, got = timed(fn)
        peak, _ = traced_peak_mb(fn)
        want = tree_leaves(numerical.analytic_probes(grads_tree, params, mode, samples=SAMPLES, seed=0))
        rows.append({**base, "method": f"numerical-{mode}", "seconds": seconds, "min_seconds": seconds,
                     "repeats": 1, "extrapolated": False, "rel_error_vs_autograd": norm_rel(tree_leaves(got), want),
                     "error_over": f"{SAMPLES} {'entries' if mode == 'sampled' else 'directions'} per leaf",
                     "peak_traced_mb": peak})
    return rows


# ---------------------------------------------------------------- per activation: the book-style networks


class BookSigmoid:
    """The book's Sigmoid layer, forward only: ``1 / (1 + exp(-x))``."""

    def forward(self, x):
        return 1 / (1 + np.exp(-x))


class BookTanh:
    """A tanh layer in the book's style (the book has none)."""

    def forward(self, x):
        return np.tanh(x)


class BookBatchNorm:
    """The book's BatchNormalization forward (2-D input), running averages updated on every call as it does."""

    def __init__(self, gamma, beta, momentum=0.9):
        self.gamma, self.beta, self.momentum = gamma, beta, momentum
        self.running_mean = self.running_var = None

    def forward(self, x, train_flg=True):
        if self.running_mean is None:
            self.running_mean, self.running_var = np.zeros(x.shape[1]), np.zeros(x.shape[1])
        if train_flg:
            mu = x.mean(axis=0)
            xc = x - mu
            var = np.mean(xc ** 2, axis=0)
            xn = xc / np.sqrt(var + 10e-7)
            self.running_mean = self.momentum * self.running_mean + (1 - self.momentum) * mu
            self.running_var = self.momentum * self.running_var + (1 - self.momentum) * var
        else:
            xn = (x - self.running_mean) / np.sqrt(self.running_var + 10e-7)
        return self.gamma * xn + self.beta


class BookNetExtend:
    """The book's MultiLayerNetExtend as its numerical_gradient uses it: Affine [-> BatchNorm] -> activation, then
    Affine and SoftmaxWithLoss, the loss in training mode; params in a dict (W1, b1, gamma1, beta1, ...)."""

    ACTIVATIONS = {"relu": train_step.BookRelu, "sigmoid": BookSigmoid, "tanh": BookTanh}

    def __init__(self, params, activation, batch_norm):
        self.params = params
        hidden = sum(1 for k in params if k.startswith("W")) - 1
        self.layers = OrderedDict()
        for idx in range(1, hidden + 1):
            self.layers[f"Affine{idx}"] = train_step.BookAffine(params[f"W{idx}"], params[f"b{idx}"])
            if batch_norm:
                self.layers[f"BatchNorm{idx}"] = BookBatchNorm(params[f"gamma{idx}"], params[f"beta{idx}"])
            self.layers[f"Activation_function{idx}"] = self.ACTIVATIONS[activation]()
        self.layers[f"Affine{hidden + 1}"] = train_step.BookAffine(params[f"W{hidden + 1}"], params[f"b{hidden + 1}"])
        self.last_layer = train_step.BookSoftmaxWithLoss()

    def loss(self, x, t, train_flg=True):
        for layer in self.layers.values():
            x = layer.forward(x, train_flg) if isinstance(layer, BookBatchNorm) else layer.forward(x)
        return self.last_layer.forward(x, t)


def book_params_of(params):
    """``(book params dict of copies, [book key per leaf in tree_leaves order])`` for an mlp's params."""
    book, keys, dense = {}, [], 0
    for layer in params:
        if "W" in layer:
            dense += 1
            names = {"W": f"W{dense}", "b": f"b{dense}"}
        else:
            names = {"beta": f"beta{dense}", "gamma": f"gamma{dense}"}
        for k in sorted(layer):  # tree_leaves order
            book[names[k]] = layer[k].copy()
            keys.append(names[k])
    return book, keys


def book_loop_extend(params, activation, batch_norm, x, t, picks):
    """The book's loop over a BookNetExtend at ``picks`` (per leaf: flat indices, or None for all): per leaf, values."""
    book, keys = book_params_of(params)
    model = BookNetExtend(book, activation, batch_norm)
    out = []
    for key, pick in zip(keys, picks):
        value = book[key]
        flat = range(value.size) if pick is None else pick
        indices = [np.unravel_index(i, value.shape) for i in flat]
        out.append(book_numerical_gradient(lambda _: model.loss(x, t), value, indices))
    return out


ACTIVATION_CASES = {"relu": ("relu", False), "sigmoid": ("sigmoid", False), "tanh": ("tanh", False),
                    "batchnorm": ("relu", True)}


def leaf_errors(got, reference):
    """``(norm-relative error over all leaves, worst leaf's norm-relative error, largest |entry| on zero leaves)``."""
    biggest = max(float(np.linalg.norm(r)) for r in reference)
    worst, zero_leaves = 0.0, 0.0
    for g, r in zip(got, reference):
        if np.linalg.norm(r) > 1e-9 * biggest:
            worst = max(worst, norm_rel([g], [r]))
        else:  # an exactly-zero gradient (a bias before BatchNorm): only absolute error means anything
            zero_leaves = max(zero_leaves, float(np.max(np.abs(g - r))))
    return norm_rel(got, reference), worst, zero_leaves


def measure_activation(name, quick, loop_budget, repeats):
    """One activation (or the BatchNorm network): numerical / complex-step / analytic paths and the book's loop."""
    activation, batch_norm = ACTIVATION_CASES[name]
    sizes, batch = ((20, [30, 30], 10), 16) if quick else ((784, [100] * 4, 10), 128)
    net = mg.mlp(*sizes, activation=activation, batch_norm=batch_norm)
    params = net.init(0)
    rng = np.random.default_rng(1)
    x, t = rng.random((batch, sizes[0])), rng.integers(0, sizes[-1], batch)
    kw = dict(state=net.init_state(), train=True) if batch_norm else {}
    reference = tree_leaves(mg.grad(net, params, x, t, **kw))
    count = sum(leaf.size for leaf in reference)
    row = {"activation": name, "sizes": [sizes[0], *sizes[1], sizes[2]], "batch_norm": batch_norm, "batch": batch,
           "params": int(count), "methods": {}}

    methods = ANALYTIC + ("numerical", "complex-step")
    times, grads = {m: [] for m in methods}, {}
    for _ in range(repeats):  # interleaved, so that machine noise hits every method alike
        for method in methods:
            seconds, grads[method] = timed(lambda: tree_leaves(mg.grad(net, params, x, t, method=method, **kw)))
            times[method].append(seconds)
    for method in methods:
        peak, _ = traced_peak_mb(lambda: mg.grad(net, params, x, t, method=method, **kw))
        error, worst, zero = leaf_errors(grads[method], reference)
        row["methods"][method] = {"seconds": float(np.median(times[method])), "all_seconds": times[method],
                                  "rel_error_vs_autograd": error, "worst_leaf_rel_error": worst,
                                  "zero_leaf_max_abs_error": zero, "peak_traced_mb": peak}

    # The book's loop: a seeded subset of entries of every leaf, about loop_budget seconds, extrapolated.
    probe_seconds, _ = timed(lambda: book_loop_extend(params, activation, batch_norm, x, t, [[0]] * len(reference)))
    share = min(1.0, max(loop_budget / (probe_seconds / len(reference) * count), 1.0 / count))
    pick_rng = np.random.default_rng(0)
    picks = [np.sort(pick_rng.choice(r.size, max(1, int(round(r.size * share))), replace=False)) for r in reference]
    seconds, values = timed(lambda: book_loop_extend(params, activation, batch_norm, x, t, picks))
    done = sum(len(v) for v in values)
    want = [np.ravel(r)[p] for r, p in zip(reference, picks)]
    row["book_loop"] = {"seconds": seconds * count / done, "extrapolated": done < count, "entries_timed": done,
                        "timed_seconds": seconds, "rel_error_vs_autograd": norm_rel(values, want)}
    numeric, complex_step = row["methods"]["numerical"]["seconds"], row["methods"]["complex-step"]["seconds"]
    row["speedup_numerical_vs_book_loop"] = row["book_loop"]["seconds"] / numeric
    row["speedup_complex_step_vs_book_loop"] = row["book_loop"]["seconds"] / complex_step
    row["complex_step_time_over_numerical"] = complex_step / numeric
    return row


def run(quick, loop_budget, sweep=True, repeats=3):
    """Every activation, then every network and batch of the sweep (unless ``sweep`` is False): the JSON report."""
    names = (["tiny", "small"] if quick else list(NETWORKS)) if sweep else []
    batches = [1, 8] if quick else [1, 32, 128]
    rng = np.random.default_rng(0)
    results = []
    by_activation = []
    for name in ACTIVATION_CASES:
        by_activation.append(measure_activation(name, quick, loop_budget, repeats))
        print(f"  done: activation {name}", file=sys.stderr, flush=True)
    for name in names:
        for batch in batches:
            results += measure_case(name, batch, quick, loop_budget, rng)
            print(f"  done: {name} batch {batch}", file=sys.stderr, flush=True)
    speedups = []
    for name in names:
        for batch in batches:
            case = {r["method"]: r for r in results if r["network"] == name and r["batch"] == batch}
            speedups.append({"network": name, "batch": batch, "params": case["backprop"]["params"],
                             "book_loop_seconds": case["book-loop"]["seconds"],
                             "book_loop_extrapolated": case["book-loop"]["extrapolated"],
                             "numerical_full_seconds": case["numerical-full"]["seconds"],
                             "speedup": case["book-loop"]["seconds"] / case["numerical-full"]["seconds"],
                             "numerical_full_error": case["numerical-full"]["rel_error_vs_autograd"],
                             "book_loop_error": case["book-loop"]["rel_error_vs_autograd"]})
    return {
        "benchmark": "grad_methods",
        "config": {"dtype": "float64", "networks": {n: NETWORKS[n] for n in names}, "batches": batches,
                   "samples": SAMPLES, "loop_budget_seconds": loop_budget, "threads": int(_THREADS),
                   "quick": quick, "data": "synthetic uniform [0, 1), random labels", "numpy": np.__version__,
                   "python": platform.python_version(), "cpus": os.cpu_count(), "repeats": repeats,
                   "load_average": os.getloadavg()},
        "results": results,
        "numerical_full_vs_book_loop": speedups,
        "by_activation": by_activation,
    }


def print_report(report):
    """The report as a plain-text table."""
    cfg = report["config"]
    print(f"gradient methods, float64, {cfg['threads']} threads; error = norm-relative vs autograd; "
          f"memory = tracemalloc peak; ~ = extrapolated from a timed subset")
    print_activations(report["by_activation"])
    print(f"{'network':8} {'params':>7} {'batch':>5} {'method':22} {'time':>11} {'error':>9} {'memory MB':>9}")
    for r in report["results"]:
        secs = r["seconds"]
        shown = f"{secs * 1e3:.3f} ms" if secs < 1 else f"{secs:.2f} s"
        mark = "~" if r["extrapolated"] else " "
        print(f"{r['network']:8} {r['params']:7d} {r['batch']:5d} {r['method']:22} {mark}{shown:>10} "
              f"{r['rel_error_vs_autograd']:9.1e} {r['peak_traced_mb']:9.2f}")
    print("full numerical gradient vs the book's loop:")
    for s in report["numerical_full_vs_book_loop"]:
        print(f"  {s['network']:8} batch {s['batch']:4d}: loop {'~' if s['book_loop_extrapolated'] else ''}"
              f"{s['book_loop_seconds']:.2f} s, vectorised {s['numerical_full_seconds']:.2f} s -> "
              f"{s['speedup']:.1f}x faster; errors {s['book_loop_error']:.1e} (loop) vs "
              f"{s['numerical_full_error']:.1e} (vectorised)")


def print_activations(rows):
    """The per-activation table: times, speed-ups against the book's loop, errors against autograd."""
    def shown(secs):
        return f"{secs * 1e3:.2f} ms" if secs < 1 else f"{secs:.2f} s"
    for row in rows:
        loop = row["book_loop"]
        sizes = "-".join(map(str, row["sizes"]))
        print(f"{row['activation']} ({sizes}, batch {row['batch']}, {row['params']} params): "
              f"book loop {'~' if loop['extrapolated'] else ''}{shown(loop['seconds'])} "
              f"(error {loop['rel_error_vs_autograd']:.1e} on {loop['entries_timed']} entries); "
              f"numerical {row['speedup_numerical_vs_book_loop']:.0f}x faster, complex step "
              f"{row['speedup_complex_step_vs_book_loop']:.0f}x, complex step / numerical time "
              f"{row['complex_step_time_over_numerical']:.2f}")
        print(f"  {'method':16} {'median':>10} {'error':>9} {'worst leaf':>10} {'zero leaves':>11} {'memory MB':>9}")
        for method, m in row["methods"].items():
            print(f"  {method:16} {shown(m['seconds']):>10} {m['rel_error_vs_autograd']:9.1e} "
                  f"{m['worst_leaf_rel_error']:10.1e} {m['zero_leaf_max_abs_error']:11.1e} {m['peak_traced_mb']:9.1f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="two tiny networks only (seconds; for CI)")
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON to PATH")
    parser.add_argument("--threads", default=_THREADS, help="BLAS threads (default 1)")
    parser.add_argument("--loop-budget", type=float,
                        help="seconds the book's loop may run per case before it is timed on a subset "
                             "and extrapolated (default 10; 1 with --quick)")
    parser.add_argument("--only-activations", action="store_true",
                        help="skip the network-size sweep: the per-activation comparison only")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats per method, per activation")
    args = parser.parse_args(argv)
    budget = args.loop_budget if args.loop_budget is not None else (1.0 if args.quick else 10.0)
    report = run(args.quick, budget, sweep=not args.only_activations, repeats=args.repeats)
    print_report(report)
    if args.json:
        train_step.write_json(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
