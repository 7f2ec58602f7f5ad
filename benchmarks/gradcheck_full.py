"""Full gradient check of the book's 784-100-100-100-100-10 network (He init) at batch 128, float64.

ReLU by default (``--activation sigmoid|tanh``; ``--batch-norm``: BatchNorm after
each hidden Dense layer, training mode). Measures, on real MNIST images
(default, from ../shared/data/mnist) or random inputs in [0, 1):

- autograd vs backprop: norm-relative error per leaf;
- the vectorised full numerical gradient (every parameter) by central
  differences and by the complex step: wall time and norm-relative error
  against autograd per leaf (a leaf whose exact gradient is 0, a bias just
  before BatchNorm, is shown by its largest absolute entry instead);
- the element-by-element loop (``numerical_grad(..., vectorize=False)``):
  timed on a seeded sample of elements from every leaf, and extrapolated to all
  parameters (labelled as an extrapolation). Loop and vectorised runs are
  interleaved so that machine noise hits them alike; medians are reported.

    .venv/bin/python benchmarks/gradcheck_full.py [--data mnist|random] [--repeats 3] [--loop-samples 100]
        [--activation relu|sigmoid|tanh] [--batch-norm]
"""
import argparse
import gzip
import os
import resource
import statistics
import time

import numpy as np

import minigrad_nets as mg
from minigrad_nets.tree import tree_leaves, tree_leaves_with_paths, tree_size

MNIST_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist")


def mnist_batch(size, directory=MNIST_DIR):
    """The first ``size`` training images as (size, 784) floats in [0, 1] and their labels."""
    with gzip.open(os.path.join(directory, "train-images-idx3-ubyte.gz")) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)[:size]
    with gzip.open(os.path.join(directory, "train-labels-idx1-ubyte.gz")) as f:
        t = np.frombuffer(f.read(), np.uint8, offset=8)[:size]
    return x / 255.0, t.astype(np.int64)


def norm_rel(a, b):
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    return float(np.linalg.norm(a - b) / scale) if scale else 0.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", choices=["mnist", "random"], default="mnist")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--loop-samples", type=int, default=100, help="loop elements timed per leaf")
    parser.add_argument("--activation", choices=["relu", "sigmoid", "tanh"], default="relu")
    parser.add_argument("--batch-norm", action="store_true", help="BatchNorm after each hidden Dense (training mode)")
    args = parser.parse_args()

    net = mg.mlp(784, [100] * 4, 10, activation=args.activation, init="he", batch_norm=args.batch_norm)
    params = net.init(args.seed)
    kw = dict(state=net.init_state(), train=True) if args.batch_norm else {}
    if args.data == "mnist":
        x, t = mnist_batch(args.batch)
    else:
        rng = np.random.default_rng(args.seed)
        x, t = rng.random((args.batch, 784)), rng.integers(0, 10, size=args.batch)
    count = tree_size(params)
    print(f"network 784-100x4-10 {args.activation}{' + BatchNorm (training mode)' if args.batch_norm else ''} He, "
          f"float64, batch {args.batch} ({args.data}), {count} params")

    auto = mg.grad(net, params, x, t, **kw)
    back = mg.grad(net, params, x, t, method="backprop", **kw)
    biggest = max(np.linalg.norm(a) for a in tree_leaves(auto))

    def error(a, b):  # a zero-gradient leaf (bias before BatchNorm): its largest absolute entry, marked 'abs'
        return (norm_rel(a, b), "") if np.linalg.norm(a) > 1e-9 * biggest else (float(np.max(np.abs(a - b))), "abs")

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    vector_times, complex_times, loop_rates, numeric, exact = [], [], [], None, None
    for _ in range(args.repeats):
        start = time.perf_counter()
        loop = mg.numerical_grad(net.loss, params, x, t, mode="sampled", samples=args.loop_samples,
                                 seed=args.seed, vectorize=False, **kw)
        loop_rates.append((time.perf_counter() - start) / tree_size(loop))
        start = time.perf_counter()
        numeric = mg.grad(net, params, x, t, method="numerical", **kw)
        vector_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        exact = mg.grad(net, params, x, t, method="complex-step", **kw)
        complex_times.append(time.perf_counter() - start)
    again = mg.grad(net, params, x, t, method="numerical", **kw)
    identical = all(a.tobytes() == b.tobytes() for a, b in zip(tree_leaves(numeric), tree_leaves(again)))

    print(f"\n{'leaf':<16} {'shape':<11} {'autograd vs backprop':>21} {'vs numerical':>16} {'vs complex step':>16}")
    worst_ab = worst_an = worst_ac = 0.0
    for (path, a), b, n, c in zip(tree_leaves_with_paths(auto), tree_leaves(back), tree_leaves(numeric),
                                  tree_leaves(exact)):
        (ab, kind), (an, _), (ac, _) = error(a, b), error(a, n), error(a, c)
        if not kind:
            worst_ab, worst_an, worst_ac = max(worst_ab, ab), max(worst_an, an), max(worst_ac, ac)
        print(f"{path:<16} {str(a.shape):<11} {ab:17.2e} {kind:>3} {an:12.2e} {kind:>3} {ac:12.2e} {kind:>3}")
    print(f"\nworst leaf: autograd vs backprop {worst_ab:.2e} (limit 1e-12: {'ok' if worst_ab <= 1e-12 else 'FAIL'}); "
          f"autograd vs numerical {worst_an:.2e} (limit 1e-6: {'ok' if worst_an <= 1e-6 else 'FAIL'}); "
          f"autograd vs complex step {worst_ac:.2e} (limit 1e-12: {'ok' if worst_ac <= 1e-12 else 'FAIL'})")
    print(f"numerical gradient covers {tree_size(numeric)} of {count} params; repeated call bit-identical: {identical}")
    vec = statistics.median(vector_times)
    loop_total = statistics.median(loop_rates) * count
    print(f"vectorised full numerical: median {vec:.2f} s over {args.repeats} runs "
          f"({', '.join(f'{s:.2f}' for s in vector_times)})")
    print(f"complex step, full: median {statistics.median(complex_times):.2f} s "
          f"({', '.join(f'{s:.2f}' for s in complex_times)})")
    print(f"element loop: median {statistics.median(loop_rates) * 1e3:.2f} ms per element, measured on "
          f"{tree_size(loop)} sampled elements; EXTRAPOLATED to all {count}: {loop_total:.0f} s")
    print(f"speed-up (extrapolated loop / vectorised): {loop_total / vec:.0f}x")
    print(f"peak RSS of this process: {peak_mb:.0f} MB before the numerical runs, "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB after")


if __name__ == "__main__":
    main()
