"""The ``batch-norm`` subcommand: the book's Batch Normalization experiment (ch06/batch_norm_test.py)."""
import os
import sys
import time

from ..gradients import METHODS, TRAINING_METHOD
from . import _args
from ._data import load_data

QUICK = {"epochs": 2, "num_scales": 4}  # the smoke test: 4 of the 16 scales, 2 epochs


def register(subparsers):
    """Add the ``batch-norm`` subcommand."""
    parser = subparsers.add_parser(
        "batch-norm", help="train 5-layer ReLU nets with and without BatchNorm from 16 weight scales",
        description="The book's batch_norm_test.py: for 16 initial weight scales logspace(0, -4, 16), train a "
                    "784-100x5-10 ReLU net with and without BatchNorm on 1,000 MNIST images (SGD lr 0.01, "
                    "batch 100, 20 epochs) and compare training accuracy per epoch. Writes batch-norm.png "
                    "(a 4x4 grid) and batch-norm.json to --out and prints a table.",
        formatter_class=_args.DefaultsHelpFormatter)
    parser.add_argument("--out", default="results", metavar="DIR", help="directory for the PNG and the JSON")
    parser.add_argument("--epochs", type=_args.positive_int, help="epochs (default 20; 2 with --quick)")
    parser.add_argument("--seed", type=_args.non_negative_int, default=0, help="seed for weights and batch order")
    parser.add_argument("--method", default=TRAINING_METHOD, choices=sorted(METHODS), help="gradient path")
    parser.add_argument("--data-dir", metavar="DIR", help="directory holding the four MNIST IDX files")
    parser.add_argument("--download", action="store_true", help="download full MNIST into the cache if not found")
    parser.add_argument("--quick", action="store_true", help="a short run for smoke tests: 4 scales, 2 epochs")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    parser.set_defaults(func=run)


def run(args, data=None):
    """Run the experiment as the arguments say; returns the exit status."""
    from .. import plotting
    from ..experiments import write_json
    from ..experiments.batch_norm import BOOK_SCALES, batch_norm_comparison

    _args.check_output_dir(args.out)
    (train, _), source = data or load_data(args)
    epochs = args.epochs or (QUICK["epochs"] if args.quick else 20)
    scales = BOOK_SCALES[::len(BOOK_SCALES) // QUICK["num_scales"]] if args.quick else BOOK_SCALES
    started = time.perf_counter()
    result = batch_norm_comparison(train, scales=scales, epochs=epochs, seed=args.seed, method=args.method,
                                   progress=args.progress)
    result["data_source"] = str(source)
    config = result["config"]
    print(f"batch-norm: ReLU net {'-'.join(map(str, config['layers']))} on {config['num_train']} training images, "
          f"{config['optimizer']}, batch {config['batch_size']}, {epochs} epochs, seed {args.seed}")
    print(f"{'weight std':>10} {'BatchNorm':>10} {'without':>8}   final training accuracy")
    rows = zip(result["scales"], result["final"]["batch_norm"], result["final"]["plain"],
               result["diverged_at"]["batch_norm"], result["diverged_at"]["plain"])
    for std, bn, plain, bn_blew, plain_blew in rows:
        cells = [f"{'diverged':>10}" if bn_blew else f"{bn:10.4f}", f"{'diverged':>8}" if plain_blew else f"{plain:8.4f}"]
        ahead = not bn_blew and (plain_blew or bn > plain)
        print(f"{std:10.3g} {' '.join(cells)}" + ("   <- BatchNorm ahead" if ahead else ""))
    print(f"BatchNorm at least as accurate at {result['wins']} of {len(result['scales'])} scales")
    os.makedirs(args.out, exist_ok=True)
    paths = [write_json(os.path.join(args.out, "batch-norm.json"), result)]
    try:
        plotting.require_matplotlib()
        paths.append(os.path.join(args.out, "batch-norm.png"))
        plotting.plot_batch_norm_grid(result, paths[-1])
    except ImportError as err:
        print(f"note: {err}; wrote the data only", file=sys.stderr)
    print(f"wrote {', '.join(paths)} ({time.perf_counter() - started:.1f} s)")
    return 0
