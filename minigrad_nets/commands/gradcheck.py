"""The ``gradcheck`` subcommand: build an MLP, run ``check_gradients`` on one batch, print the report."""
import time

from ..gradients import METHODS, check_method
from ..gradients.check import DEFAULT_METHODS
from ..gradients.numerical import MODES
from ..network import ACTIVATIONS
from . import _args
from ._data import load_data

DEFAULT_BATCH, QUICK_BATCH = 32, 4


def register(subparsers):
    """Add the ``gradcheck`` subcommand."""
    parser = subparsers.add_parser(
        "gradcheck", help="compare autograd, backprop and numerical gradients on one batch",
        description="Build an MLP, draw one batch (random inputs in [0, 1) with random labels, or the first "
                    "training images of MNIST), and compare gradient methods leaf by leaf in float64. "
                    "Exit status 0 when they agree within the documented thresholds, 1 when they do not.",
        formatter_class=_args.DefaultsHelpFormatter)
    parser.add_argument("--input-size", type=_args.positive_int, default=784, help="features per input")
    parser.add_argument("--hidden", type=_args.hidden_sizes, default=[100, 100], metavar="N,N,...",
                        help="hidden layer sizes, comma-separated (empty for none)")
    parser.add_argument("--output-size", type=_args.positive_int, default=10, help="number of classes")
    parser.add_argument("--activation", choices=list(ACTIVATIONS), default="relu",
                        help="hidden-layer activation")
    parser.add_argument("--init", type=_args.init_spec, default="he", help="he, xavier, glorot, or a std such as 0.01")
    parser.add_argument("--batch", type=_args.positive_int,
                        help=f"batch size (default {DEFAULT_BATCH}; {QUICK_BATCH} with --quick)")
    parser.add_argument("--weight-decay", type=_args.non_negative_float, default=0.0, help="L2 strength λ")
    parser.add_argument("--dropout", type=_args.rate, default=0.0,
                        help="dropout rate after each hidden layer (the mask is fixed by --seed)")
    parser.add_argument("--batch-norm", action="store_true",
                        help="BatchNorm after each hidden Dense layer, checked in training mode (the book's "
                             "batch_norm_gradient_check.py; it checks one image, where BatchNorm's batch variance "
                             "is 0 — use a --batch of 2 or more)")
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                        help="the network's dtype (the check itself always runs in float64)")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                        help=f"comma-separated gradient methods to compare, from {', '.join(sorted(METHODS))}")
    parser.add_argument("--mode", choices=list(MODES), default="full",
                        help="numerical differences: every element, sampled elements, or random directions")
    parser.add_argument("--samples", type=_args.positive_int, default=8,
                        help="elements or directions per leaf in sampled / directional mode")
    parser.add_argument("--seed", type=_args.non_negative_int, default=0,
                        help="seeds the params, the batch, the dropout mask and the numerical probes")
    parser.add_argument("--data", choices=["random", "mnist"], default="random",
                        help="where the batch comes from (mnist needs --input-size 784 --output-size 10)")
    parser.add_argument("--data-dir", metavar="DIR", help="directory holding the MNIST IDX files")
    parser.add_argument("--quick", action="store_true",
                        help=f"a small fast check for smoke tests: a batch of {QUICK_BATCH} unless --batch is given")
    parser.set_defaults(func=run)


def _batch(args, rng):
    """(x (B, input_size) float64, t (B,) int labels) for the check."""
    import numpy as np
    if args.data == "random":
        return rng.random((args.batch, args.input_size)), rng.integers(0, args.output_size, size=args.batch)
    ((x, t), _), _ = load_data(args, "mnist", dtype="float64")
    if args.batch > len(x):
        raise ValueError(f"--batch {args.batch} is larger than the {len(x)} training images available")
    return np.asarray(x[:args.batch], dtype=np.float64), np.asarray(t[:args.batch])


def run(args):
    """Run the check and print the report; exit status 0 if every comparison passed, else 1."""
    import numpy as np

    import minigrad_nets as mg

    if args.batch is None:
        args.batch = QUICK_BATCH if args.quick else DEFAULT_BATCH
    try:
        methods = tuple(check_method(m.strip()) for m in args.methods.split(",") if m.strip())
    except ValueError as err:
        raise ValueError(f"--methods: {err}") from None
    if args.data == "mnist" and (args.input_size != 784 or args.output_size != 10):
        raise ValueError("--data mnist needs --input-size 784 and --output-size 10")
    net = mg.mlp(args.input_size, args.hidden, args.output_size, activation=args.activation, init=args.init,
                 weight_decay=args.weight_decay, dropout=args.dropout, batch_norm=args.batch_norm, dtype=args.dtype)
    params = net.init(args.seed)
    x, t = _batch(args, np.random.default_rng([args.seed, 1]))
    key = args.seed if args.dropout else None
    start = time.perf_counter()
    report = mg.check_gradients(net, params, x.astype(net.dtype), t, methods=methods, mode=args.mode,
                                seed=args.seed, key=key, state=net.init_state(), train=True, samples=args.samples)
    elapsed = time.perf_counter() - start
    sizes = ",".join(map(str, [args.input_size, *args.hidden, args.output_size]))
    print(f"network {sizes} ({args.activation}{', batch norm' if args.batch_norm else ''}, init {args.init}, "
          f"λ={args.weight_decay:g}, "
          f"dropout {args.dropout:g}, {args.dtype}); batch {args.batch} ({args.data}); "
          f"{sum(int(np.prod(s)) for _, s in net.param_shapes())} params; checked in {elapsed:.2f} s")
    print(report)
    return 0 if report.ok else 1
