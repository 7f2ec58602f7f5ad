"""The ``filters`` subcommand: the book's ch07/visualize_filter.py, first-layer filters before and after training."""
import os
import sys
import time

from ..gradients import METHODS, TRAINING_METHOD
from . import _args
from ._data import load_data

IMAGE_SHAPE = (1, 28, 28)
DEFAULT_EPOCHS = 1
BOOK_INIT = 0.01  # train_convnet.py's weight_init_std: small enough that trained filters stand out from their start
QUICK = {"train": 1000, "test": 500, "iterations": 20}  # the smoke test: a few seconds on the embedded subset


def register(subparsers):
    """Add the ``filters`` subcommand."""
    parser = subparsers.add_parser(
        "filters", help="train the book's SimpleConvNet and draw its 30 first-layer filters before and after",
        description="The book's visualize_filter.py: train SimpleConvNet (conv 30 filters 5x5, ReLU, max-pool 2x2, "
                    "Dense 100, ReLU, Dense 10; Adam lr 0.001, batch 100) on MNIST and draw the 30 "
                    "first-layer 5x5 filters at initialisation and after training, as one PNG (filters.png), "
                    "with the filter values and accuracies in filters.json, both in --out. MNIST is read from "
                    "--data-dir, else $MINIGRAD_NETS_DATA, else the user cache, else the embedded subset.",
        formatter_class=_args.DefaultsHelpFormatter)
    parser.add_argument("--out", default="results", metavar="DIR", help="directory for the PNG and the JSON")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=_args.positive_int, help=f"epochs to train (default {DEFAULT_EPOCHS})")
    length.add_argument("--iterations", type=_args.positive_int,
                        help=f"iterations to train (default {QUICK['iterations']} with --quick)")
    parser.add_argument("--init", type=_args.init_spec, default=BOOK_INIT,
                        help="initial weights: a std (the book's 0.01), or he, xavier, glorot")
    parser.add_argument("--seed", type=_args.non_negative_int, default=0, help="seed for weights and batch order")
    parser.add_argument("--method", default=TRAINING_METHOD, choices=sorted(METHODS), help="gradient path")
    parser.add_argument("--data-dir", metavar="DIR", help="directory holding the four MNIST IDX files")
    parser.add_argument("--download", action="store_true", help="download full MNIST into the cache if not found")
    parser.add_argument("--quick", action="store_true",
                        help=f"a smoke test: {QUICK['train']} training / {QUICK['test']} test images, "
                             f"{QUICK['iterations']} iterations unless given")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.set_defaults(func=run)


def run(args):
    """Train, then write filters.json and filters.png as the arguments say; returns the exit status."""
    import numpy as np

    import minigrad_nets as mg
    from .. import plotting
    from ..experiments import write_json

    _args.check_output_dir(args.out)
    epochs, iterations = args.epochs, args.iterations
    if epochs is None and iterations is None:
        iterations, epochs = (QUICK["iterations"], None) if args.quick else (None, DEFAULT_EPOCHS)
    ((x, t), (xt, tt)), source = load_data(args)
    if args.quick:
        x, t, xt, tt = x[:QUICK["train"]], t[:QUICK["train"]], xt[:QUICK["test"]], tt[:QUICK["test"]]
    x, xt = x.reshape((-1,) + IMAGE_SHAPE), xt.reshape((-1,) + IMAGE_SHAPE)
    net = mg.simple_convnet(IMAGE_SHAPE, init=args.init, dtype="float32")
    params = net.init(args.seed)
    before = np.array(params[0]["W"], copy=True)
    print(f"filters: {net.layers[0].name} of SimpleConvNet, init {args.init}, Adam lr 0.001, batch 100, "
          + (f"{epochs} epochs" if epochs else f"{iterations} iterations") + f", seed {args.seed}")
    started = time.perf_counter()
    result = mg.fit(net, params, mg.adam(0.001), (x, t), test_data=(xt, tt), epochs=epochs, iterations=iterations,
                    batch_size=100, seed=args.seed, method=args.method, progress=args.progress)
    history = result.history
    data = {
        "config": {"layer": net.layers[0].name, "network": [layer.name for layer in net.layers],
                   "iterations": len(history["loss"]), "epochs": float(history["epoch"][-1]), "seed": args.seed,
                   "init": args.init,
                   "method": args.method, "num_train": len(x), "num_test": len(xt), "data_source": str(source)},
        "filters_before": before[:, 0], "filters_after": result.params[0]["W"][:, 0],  # (30, 5, 5) each
        "train_acc": float(history["train_acc"][-1]), "test_acc": float(history["test_acc"][-1]),
    }
    print(f"after {data['config']['iterations']} iterations ({data['config']['epochs']:.2f} epochs): "
          f"train acc {data['train_acc']:.4f}, test acc {data['test_acc']:.4f}")
    os.makedirs(args.out, exist_ok=True)
    paths = [write_json(os.path.join(args.out, "filters.json"), data)]
    try:
        plotting.require_matplotlib()
        paths.append(os.path.join(args.out, "filters.png"))
        plotting.plot_filters(data, paths[-1])
    except ImportError as err:
        print(f"note: {err}; wrote the data only", file=sys.stderr)
    print(f"wrote {', '.join(paths)} ({time.perf_counter() - started:.1f} s)")
    return 0
