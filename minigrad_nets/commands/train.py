"""The ``train`` subcommand: train an MLP on MNIST or Fashion-MNIST with ``fit`` and report accuracies."""
import argparse
import os
import sys
import time
import warnings

from ..gradients import METHODS, TRAINING_METHOD

QUICK_TRAIN, QUICK_TEST, QUICK_ITERATIONS = 1000, 500, 20


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text}")
    return value


def _sizes(text):
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"hidden sizes are comma-separated integers, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"hidden sizes must be positive integers, got {text!r}")
    return sizes


def _init(text):
    try:
        return float(text)
    except ValueError:
        return text


def register(subparsers):
    """Add the ``train`` subcommand."""
    parser = subparsers.add_parser(
        "train", help="train an MLP on MNIST / Fashion-MNIST and print per-epoch accuracies",
        description="Train an MLP with minibatch gradient descent and print train / test accuracy per epoch. "
                    "MNIST is read from --data-dir, else $MINIGRAD_NETS_DATA, else the user cache; when none "
                    "holds it, the 10,000-image subset shipped with the package is used (with --download the "
                    "full set is fetched first).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-dir", metavar="DIR", help="directory holding the four IDX files")
    parser.add_argument("--download", action="store_true", help="download the dataset when it is not found")
    parser.add_argument("--dataset", choices=["mnist", "fashion"], default="mnist")
    parser.add_argument("--hidden", type=_sizes, default=[100, 100], metavar="N,N,...",
                        help="hidden layer sizes, comma-separated")
    parser.add_argument("--activation", choices=["relu", "sigmoid", "tanh"], default="relu")
    parser.add_argument("--init", type=_init, default="he", help="he, xavier, glorot, or a std such as 0.01")
    parser.add_argument("--weight-decay", type=float, default=0.0, help="L2 strength λ")
    parser.add_argument("--dropout", type=float, default=0.0, help="dropout rate after each hidden layer")
    parser.add_argument("--optimizer", default="adam",
                        choices=["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"])
    parser.add_argument("--lr", type=float, help="learning rate (default: the optimizer's: 0.001 Adam, else 0.01)")
    parser.add_argument("--batch-size", type=_positive_int, default=100)
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=_positive_int, help="epochs to train (default 5; total when resuming)")
    length.add_argument("--iterations", type=_positive_int, help="iterations to train (total when resuming)")
    parser.add_argument("--seed", type=_non_negative_int, default=0, help="seed for weights, order and dropout")
    parser.add_argument("--method", default=TRAINING_METHOD, choices=sorted(METHODS),
                        help=f"gradient path (default: {TRAINING_METHOD})")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--out", metavar="PATH",
                        help="checkpoint: an .npz path, or a directory to hold checkpoint.npz")
    parser.add_argument("--checkpoint-every", type=_positive_int, metavar="N", help="also save every N iterations")
    parser.add_argument("--resume", action="store_true", help="continue from the --out checkpoint if it exists")
    parser.add_argument("--eval-samples", type=_positive_int, metavar="N",
                        help="measure accuracy on at most N examples of each set (default: all)")
    parser.add_argument("--quick", action="store_true",
                        help=f"a smoke test: {QUICK_TRAIN} training / {QUICK_TEST} test images, "
                             f"{QUICK_ITERATIONS} iterations unless given")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.set_defaults(func=run)


def checkpoint_path(out):
    """The checkpoint file for ``--out``: the path itself if it ends in .npz, else ``out/checkpoint.npz``."""
    if out is None:
        return None
    return out if out.endswith(".npz") else os.path.join(out, "checkpoint.npz")


def _load(args):
    from .. import datasets

    name = "mnist" if args.dataset == "mnist" else "fashion_mnist"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", datasets.EmbeddedDataWarning)  # said below, in plain words
        train, test, source = datasets.load(name, args.data_dir, download=args.download, progress=args.progress,
                                            return_source=True)
    print(f"data: {source}")
    if source.kind == "embedded":
        print("      (full MNIST not found: pass --data-dir DIR, set $MINIGRAD_NETS_DATA, or use --download)")
    return train, test


def run(args):
    """Train as the arguments say; returns the exit status."""
    import minigrad_nets as mg

    (x, t), (xt, tt) = _load(args)
    if args.quick:
        x, t, xt, tt = x[:QUICK_TRAIN], t[:QUICK_TRAIN], xt[:QUICK_TEST], tt[:QUICK_TEST]
    epochs, iterations = args.epochs, args.iterations
    if epochs is None and iterations is None:
        iterations, epochs = (QUICK_ITERATIONS, None) if args.quick else (None, 5)
    net = mg.mlp(x.shape[1], args.hidden, 10, activation=args.activation, init=args.init,
                 weight_decay=args.weight_decay, dropout=args.dropout, dtype=args.dtype)
    hyper = {} if args.lr is None else {"lr": args.lr}
    optimizer = mg.optimizers.get(args.optimizer, **hyper)
    checkpoint = checkpoint_path(args.out)
    resuming = args.resume and checkpoint is not None and os.path.exists(checkpoint)
    print(f"net: {x.shape[1]}-{'-'.join(map(str, args.hidden))}-10 {args.activation}, init {args.init}, "
          f"λ {args.weight_decay:g}, dropout {args.dropout:g}, {args.dtype}; optimizer {args.optimizer} "
          f"{hyper or '(defaults)'}; batch {args.batch_size}; "
          + (f"{epochs} epochs" if epochs else f"{iterations} iterations")
          + f"; method {args.method}; seed {args.seed}" + (f"; resuming from {checkpoint}" if resuming else ""))

    def log(record):
        test = "" if record["test_acc"] is None else f"  test acc {record['test_acc']:.4f}"
        loss = "" if record["loss"] != record["loss"] else f"  mean loss {record['loss']:.4f}"
        print(f"epoch {record['epoch']:6.2f}  iteration {record['iteration']:6d}  "
              f"train acc {record['train_acc']:.4f}{test}{loss}", flush=True)

    started = time.perf_counter()
    try:
        result = mg.fit(net, net.init(args.seed), optimizer, (x, t), test_data=(xt, tt), epochs=epochs,
                        iterations=iterations, batch_size=args.batch_size, seed=args.seed, method=args.method,
                        eval_samples=args.eval_samples, progress=args.progress, checkpoint=checkpoint,
                        checkpoint_every=args.checkpoint_every, resume=args.resume, log=log)
    except FloatingPointError as err:
        print(f"minigrad-nets train: error: {err}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - started
    history = result.history
    print(f"final test accuracy {history['test_acc'][-1]:.4f} after {len(history['loss'])} iterations "
          f"({history['epoch'][-1]:.2f} epochs) in {seconds:.1f} s")
    if checkpoint:
        print(f"checkpoint: {checkpoint}")
    return 0
