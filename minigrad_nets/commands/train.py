"""The ``train`` subcommand: train an MLP or the book's SimpleConvNet on MNIST / Fashion-MNIST with ``fit``."""
import os
import sys
import time

from .. import optimizers
from ..gradients import METHODS, TRAINING_METHOD
from ..network import ACTIVATIONS
from . import _args
from ._data import load_data

QUICK_TRAIN, QUICK_TEST, QUICK_ITERATIONS = 1000, 500, 20
DEFAULT_EPOCHS = 5
DATASETS = {"mnist": "mnist", "fashion": "fashion_mnist"}  # --dataset choice -> datasets.load name
INPUT_SIZE, CLASSES = 784, 10  # both datasets: 28x28 images, 10 classes
IMAGE_SHAPE = (1, 28, 28)  # what the convnet takes: (channels, height, width)
MODELS = ("mlp", "convnet")
DEFAULT_HIDDEN = {"mlp": [100, 100], "convnet": [100]}


def register(subparsers):
    """Add the ``train`` subcommand."""
    parser = subparsers.add_parser(
        "train", help="train an MLP or a convnet on MNIST / Fashion-MNIST and print per-epoch accuracies",
        description="Train an MLP (--model mlp) or the book's SimpleConvNet (--model convnet: conv 30 filters 5x5, "
                    "ReLU, max-pool 2x2, Dense 100, ReLU, Dense 10) with minibatch gradient descent and print "
                    "train / test accuracy per epoch. "
                    "MNIST is read from --data-dir, else $MINIGRAD_NETS_DATA, else the user cache; when none "
                    "holds it, the 10,000-image subset shipped with the package is used (with --download the "
                    "full set is fetched first).",
        formatter_class=_args.DefaultsHelpFormatter)
    parser.add_argument("--data-dir", metavar="DIR", help="directory holding the four IDX files")
    parser.add_argument("--download", action="store_true", help="download the dataset when it is not found")
    parser.add_argument("--dataset", choices=list(DATASETS), default="mnist", help="which images")
    parser.add_argument("--model", choices=MODELS, default="mlp",
                        help="mlp, or convnet: the book's SimpleConvNet on 1x28x28 images")
    parser.add_argument("--hidden", type=_args.hidden_sizes, metavar="N,N,...",
                        help="hidden layer sizes, comma-separated (default 100,100; with --model convnet one "
                             "size, the Dense layer after the pooling, default 100)")
    parser.add_argument("--activation", choices=list(ACTIVATIONS), default="relu",
                        help="hidden-layer activation (mlp only)")
    parser.add_argument("--init", type=_args.init_spec, default="he",
                        help="he, xavier, glorot, or a std such as 0.01")
    parser.add_argument("--weight-decay", type=_args.non_negative_float, default=0.0, help="L2 strength λ")
    parser.add_argument("--dropout", type=_args.rate, default=0.0,
                        help="dropout rate after each hidden layer (mlp only)")
    parser.add_argument("--dropout-style", choices=["inverted", "book"], default="inverted",
                        help="inverted: scale kept units by 1/(1-rate) in training; book: scale by (1-rate) at test")
    parser.add_argument("--batch-norm", action="store_true",
                        help="BatchNorm after each hidden Dense layer (the book's MultiLayerNetExtend; mlp only)")
    parser.add_argument("--optimizer", default="adam", choices=list(optimizers.NAMES), help="update rule")
    parser.add_argument("--lr", type=_args.positive_float,
                        help="learning rate (default: the optimizer's: 0.001 Adam, else 0.01)")
    parser.add_argument("--batch-size", type=_args.positive_int, default=100, help="examples per step")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=_args.positive_int,
                        help=f"epochs to train (default {DEFAULT_EPOCHS}; total when resuming)")
    length.add_argument("--iterations", type=_args.positive_int,
                        help=f"iterations to train (total when resuming; default {QUICK_ITERATIONS} with --quick)")
    parser.add_argument("--seed", type=_args.non_negative_int, default=0, help="seed for weights, order and dropout")
    parser.add_argument("--method", default=TRAINING_METHOD, choices=sorted(METHODS), help="gradient path")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"], help="the network's dtype")
    parser.add_argument("--out", metavar="PATH",
                        help="checkpoint: an .npz path, or a directory to hold checkpoint.npz (default: none)")
    parser.add_argument("--checkpoint-every", type=_args.positive_int, metavar="N",
                        help="also save every N iterations (needs --out)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the --out checkpoint if it exists (needs --out)")
    parser.add_argument("--eval-samples", type=_args.positive_int, metavar="N",
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


def _check_arguments(args):
    """The checks that need several arguments together, in CLI words, before any data is read."""
    if args.resume and args.out is None:
        raise ValueError("--resume needs --out (the checkpoint to continue from)")
    if args.checkpoint_every is not None and args.out is None:
        raise ValueError("--checkpoint-every needs --out (where to save)")
    checkpoint = checkpoint_path(args.out)
    if checkpoint is not None:
        if os.path.isdir(checkpoint):
            raise IsADirectoryError(f"--out {args.out}: the checkpoint path {checkpoint} is a directory")
        _args.check_output_dir(os.path.dirname(checkpoint) or ".", "--out")
    if args.hidden is None:
        args.hidden = DEFAULT_HIDDEN[args.model]
    if args.model == "convnet":
        mlp_only = [flag for flag, used in (("--batch-norm", args.batch_norm), ("--dropout", args.dropout > 0),
                                            ("--activation", args.activation != "relu")) if used]
        if mlp_only:
            raise ValueError(f"{', '.join(mlp_only)}: only for --model mlp (the convnet is the book's, with ReLU)")
        if len(args.hidden) != 1:
            raise ValueError(f"--model convnet has one hidden Dense layer: give --hidden one size, "
                             f"got {','.join(map(str, args.hidden)) or 'none'}")
    return checkpoint


def build_network(args):
    """The network the arguments describe, and a one-line description of it."""
    import minigrad_nets as mg

    if args.model == "convnet":
        net = mg.simple_convnet(IMAGE_SHAPE, hidden=args.hidden[0], output_size=CLASSES, init=args.init,
                                weight_decay=args.weight_decay, dtype=args.dtype)
        return net, " -> ".join(layer.name for layer in net.layers) + f", init {args.init}, λ {args.weight_decay:g}"
    net = mg.mlp(INPUT_SIZE, args.hidden, CLASSES, activation=args.activation, init=args.init,
                 weight_decay=args.weight_decay, dropout=args.dropout, batch_norm=args.batch_norm, dtype=args.dtype,
                 dropout_scale_at="test" if args.dropout_style == "book" else "train")
    sizes = "-".join(map(str, [INPUT_SIZE, *args.hidden, CLASSES]))
    return net, (f"{sizes} {args.activation}{' + batch norm' if args.batch_norm else ''}, init {args.init}, "
                 f"λ {args.weight_decay:g}, dropout {args.dropout:g}")


def run(args):
    """Train as the arguments say; returns the exit status."""
    import minigrad_nets as mg

    checkpoint = _check_arguments(args)
    net, description = build_network(args)
    hyper = {} if args.lr is None else {"lr": args.lr}
    optimizer = mg.optimizers.get(args.optimizer, **hyper)
    epochs, iterations = args.epochs, args.iterations
    if epochs is None and iterations is None:
        iterations, epochs = (QUICK_ITERATIONS, None) if args.quick else (None, DEFAULT_EPOCHS)

    ((x, t), (xt, tt)), _ = load_data(args, DATASETS[args.dataset])
    if args.quick:
        x, t, xt, tt = x[:QUICK_TRAIN], t[:QUICK_TRAIN], xt[:QUICK_TEST], tt[:QUICK_TEST]
    if args.model == "convnet":  # the loader gives flat rows; the convnet takes images (a view, no copy)
        x, xt = x.reshape((-1,) + IMAGE_SHAPE), xt.reshape((-1,) + IMAGE_SHAPE)
    resuming = args.resume and os.path.exists(checkpoint)
    print(f"net: {description}, {args.dtype}; optimizer {args.optimizer} {hyper or '(defaults)'}; "
          f"batch {args.batch_size}; "
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
