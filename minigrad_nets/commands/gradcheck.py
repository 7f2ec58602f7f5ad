"""The ``gradcheck`` subcommand: build an MLP, run ``check_gradients`` on one batch, print the report."""
import argparse
import time


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text}")
    return value


def _sizes(text):
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"hidden sizes are comma-separated integers, got {text!r}") from None
    if min(sizes, default=1) < 1:
        raise argparse.ArgumentTypeError(f"hidden sizes must be positive integers, got {text!r}")
    return sizes


def _init(text):
    try:
        return float(text)
    except ValueError:
        return text


def register(subparsers):
    """Add the ``gradcheck`` subcommand."""
    parser = subparsers.add_parser(
        "gradcheck", help="compare autograd, backprop and numerical gradients on one batch",
        description="Build an MLP, draw one batch (random inputs in [0, 1) with random labels, or the first "
                    "training images of MNIST), and compare gradient methods leaf by leaf in float64. "
                    "Exit status 0 when they agree within the documented thresholds, 1 when they do not.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--input-size", type=_positive_int, default=784, help="features per input")
    parser.add_argument("--hidden", type=_sizes, default=[100, 100], metavar="N,N,...",
                        help="hidden layer sizes, comma-separated (empty for none)")
    parser.add_argument("--output-size", type=_positive_int, default=10, help="number of classes")
    parser.add_argument("--activation", choices=["relu", "sigmoid", "tanh"], default="relu",
                        help="hidden-layer activation")
    parser.add_argument("--init", type=_init, default="he", help="he, xavier, glorot, or a std such as 0.01")
    parser.add_argument("--batch", type=_positive_int, default=32, help="batch size")
    parser.add_argument("--weight-decay", type=float, default=0.0, help="L2 strength λ")
    parser.add_argument("--dropout", type=float, default=0.0,
                        help="dropout rate after each hidden layer (the mask is fixed by --seed)")
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                        help="the network's dtype (the check itself always runs in float64)")
    parser.add_argument("--methods", default="autograd,backprop,numerical",
                        help="comma-separated gradient methods to compare")
    parser.add_argument("--mode", choices=["full", "sampled", "directional"], default="full",
                        help="numerical differences: every element, sampled elements, or random directions")
    parser.add_argument("--samples", type=_positive_int, default=8,
                        help="elements or directions per leaf in sampled / directional mode")
    parser.add_argument("--seed", type=_non_negative_int, default=0,
                        help="seeds the params, the batch, the dropout mask and the numerical probes")
    parser.add_argument("--data", choices=["random", "mnist"], default="random",
                        help="where the batch comes from (mnist needs --input-size 784 --output-size 10)")
    parser.add_argument("--data-dir", metavar="DIR", help="directory holding the MNIST IDX files")
    parser.set_defaults(func=run)


def _batch(args, rng):
    """(x (B, input_size) float64, t (B,) int labels) for the check."""
    import numpy as np
    if args.data == "random":
        return rng.random((args.batch, args.input_size)), rng.integers(0, args.output_size, size=args.batch)
    if args.input_size != 784 or args.output_size != 10:
        raise ValueError("--data mnist needs --input-size 784 and --output-size 10")
    from .. import datasets
    (x, t), _ = datasets.load_mnist(args.data_dir, dtype="float64", download=False, progress=False)
    if args.batch > len(x):
        raise ValueError(f"--batch {args.batch} is larger than the {len(x)} training images available")
    return np.asarray(x[:args.batch], dtype=np.float64), np.asarray(t[:args.batch])


def run(args):
    """Run the check and print the report; exit status 0 if every comparison passed, else 1."""
    import numpy as np

    import minigrad_nets as mg

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    net = mg.mlp(args.input_size, args.hidden, args.output_size, activation=args.activation, init=args.init,
                 weight_decay=args.weight_decay, dropout=args.dropout, dtype=args.dtype)
    params = net.init(args.seed)
    x, t = _batch(args, np.random.default_rng([args.seed, 1]))
    key = args.seed if args.dropout else None
    start = time.perf_counter()
    report = mg.check_gradients(net, params, x.astype(net.dtype), t, methods=methods, mode=args.mode,
                                seed=args.seed, key=key, samples=args.samples)
    elapsed = time.perf_counter() - start
    sizes = ",".join(map(str, [args.input_size, *args.hidden, args.output_size]))
    print(f"network {sizes} ({args.activation}, init {args.init}, λ={args.weight_decay:g}, "
          f"dropout {args.dropout:g}, {args.dtype}); batch {args.batch} ({args.data}); "
          f"{sum(int(np.prod(s)) for _, s in net.param_shapes())} params; checked in {elapsed:.2f} s")
    print(report)
    return 0 if report.ok else 1
