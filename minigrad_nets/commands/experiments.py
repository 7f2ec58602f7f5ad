"""The chapter-6 experiments as subcommands: weight-init, activation-histograms, optimizers, optimizer-paths,
overfitting, hyperparameter-search, all.

Each writes its PNG plot(s) and a JSON of the data into ``--out`` and prints a
table. Heavy imports (the experiments, the loader, matplotlib) happen inside
the run functions so that ``minigrad-nets --help`` stays fast.
"""
import os
import sys
import time

from ..gradients import METHODS, TRAINING_METHOD
from ._args import check_output_dir, non_negative_int, positive_int
from ._data import load_data

# per experiment: full-run defaults and the --quick overrides (a smoke test of a few seconds)
DEFAULTS = {
    "weight-init": {"iterations": 2000, "report_every": 100},
    "optimizers": {"iterations": 2000, "report_every": 100},
    "activation-histograms": {"num_inputs": 1000},
    "overfitting": {"epochs": 200, "num_test": None},
    "optimizer-paths": {"steps": 30},
    "hyperparameter-search": {"trials": 100, "epochs": 50},
}
QUICK = {
    "weight-init": {"iterations": 100, "report_every": 20},
    "optimizers": {"iterations": 100, "report_every": 20},
    "activation-histograms": {"num_inputs": 200},
    "overfitting": {"epochs": 10, "num_test": 1000},
    "optimizer-paths": {},  # a fraction of a second already
    "hyperparameter-search": {"trials": 4, "epochs": 3},
}
HELP = {
    "weight-init": "train a 5-layer ReLU net from std 0.01 / Xavier / He weights and compare the loss",
    "activation-histograms": "histograms of each layer's activations for 4 weight scales x 3 activations",
    "optimizers": "compare SGD, Momentum, AdaGrad and Adam training the same 5-layer ReLU net on MNIST",
    "overfitting": "train a 7-layer net on 300 images: plain vs weight decay vs dropout, accuracy per epoch",
    "optimizer-paths": "the paths of SGD, Momentum, AdaGrad and Adam down f(x, y) = x²/20 + y² from (-7, 2)",
    "hyperparameter-search": "random search of SGD's learning rate and weight decay on 500 images, trials in parallel",
    "all": "run weight-init, activation-histograms, optimizers, optimizer-paths, overfitting and "
           "hyperparameter-search in turn",
}
DESCRIPTIONS = {  # what --help says beyond HELP
    "optimizer-paths": "The book's optimizer_compare_naive.py: 30 steps each of SGD (lr 0.95), Momentum (lr 0.1), "
                       "AdaGrad (lr 1.5) and Adam (lr 0.3) from (-7, 2), the gradient of f from the library's "
                       "numerical_grad. Writes optimizer-paths.png (the four paths over the contours of f) and "
                       "optimizer-paths.json (the points). --quick changes nothing: the run takes well under a "
                       "second.",
    "hyperparameter-search": "The book's hyperparameter_optimization.py: the first 500 training images, 20% held "
                             "out for validation by a seeded shuffle; each trial trains a 784-100x6-10 ReLU net with "
                             "SGD for 50 epochs of batch 100 at lr = 10^U(-6, -2) and weight decay = 10^U(-8, -4). "
                             "Trials run in parallel on --jobs worker processes with one BLAS thread each. Prints "
                             "the best trials; writes hyperparameter-search.png (the best 20 trials' validation and "
                             "training accuracy, as the book's figure) and hyperparameter-search.json (every trial).",
}
BOOK_SEARCH_IMAGES = 500  # hyperparameter-search: the first 500 training images, 20% of them held out
TITLES = {"weight-init": "Weight init", "optimizers": "Optimizers"}  # of the loss plots
DESCRIPTION_DATA = ("MNIST is read from --data-dir, else $MINIGRAD_NETS_DATA, else the user cache; "
                    "when none holds it, the 10,000-image subset shipped with the package is used "
                    "(with --download the full set is fetched into the cache first).")


def register(subparsers):
    """Add the experiment subcommands to the CLI."""
    for name in ("weight-init", "activation-histograms", "optimizers", "optimizer-paths", "overfitting",
                 "hyperparameter-search", "all"):
        needs_data = name not in ("activation-histograms", "optimizer-paths")
        description = DESCRIPTIONS.get(name, HELP[name] + ".")
        parser = subparsers.add_parser(
            name, help=HELP[name], description=description + (" " + DESCRIPTION_DATA if needs_data else ""))
        parser.add_argument("--out", default="results", metavar="DIR",
                            help="directory for the PNG plot(s) and the JSON of the data (default: results)")
        if name != "optimizer-paths":  # a fixed start, no random draws, no training loop
            parser.add_argument("--seed", type=non_negative_int, default=0,
                                help="seed for weights, minibatch order, random inputs and draws (default: 0)")
        parser.add_argument("--quick", action="store_true", help="a short run for smoke tests (seconds)")
        if name != "optimizer-paths":
            parser.add_argument("--no-progress", dest="progress", action="store_false",
                                help="no progress bars (hyperparameter-search: no line per finished trial)")
        if needs_data:
            parser.add_argument("--data-dir", metavar="DIR",
                                help="directory holding the four MNIST IDX files (an error if they are not there)")
            parser.add_argument("--download", action="store_true",
                                help="download full MNIST into the cache when it is not found")
            parser.add_argument("--method", default=TRAINING_METHOD, choices=sorted(METHODS),
                                help=f"gradient path (default: {TRAINING_METHOD})")
        if name in ("weight-init", "optimizers", "all"):
            parser.add_argument("--iterations", type=positive_int,
                                help="training iterations (default 2000; 100 with --quick)")
        if name in ("overfitting", "all"):
            parser.add_argument("--epochs", type=positive_int,
                                help="training epochs (default 200: the book's 201 measurements; 10 with --quick"
                                     + ("; hyperparameter-search: 50, 3 with --quick)" if name == "all" else ")"))
        if name == "hyperparameter-search":
            parser.add_argument("--epochs", type=positive_int,
                                help="training epochs of each trial (default 50; 3 with --quick)")
        if name in ("hyperparameter-search", "all"):
            parser.add_argument("--trials", type=positive_int,
                                help="random draws of (lr, weight decay) (default 100; 4 with --quick)")
            parser.add_argument("--jobs", type=positive_int,
                                help="worker processes running trials at once (default: all cores; 1: no pool)")
        if name in ("optimizer-paths", "all"):
            parser.add_argument("--steps", type=positive_int, help="steps of each optimizer (default 30)")
        if name in ("activation-histograms", "all"):
            parser.add_argument("--num-inputs", type=positive_int,
                                help="random inputs per histogram (default 1000; 200 with --quick)")
        parser.set_defaults(func=RUNNERS[name])


# ---------------------------------------------------------------- runners


def _run_loss_comparison(args, name, data, compare, describe):
    """Shared body of weight-init and optimizers: train, print the loss table, write JSON + plot; exit status."""
    options = _options(name, args)
    check_output_dir(args.out)
    (train, test), source = data or load_data(args)
    started = time.perf_counter()
    result = compare(train, test, iterations=options["iterations"], report_every=options["report_every"],
                     seed=args.seed, method=args.method, progress=args.progress)
    result["data_source"] = str(source)
    print(f"{name}: {describe(result['config'])}")
    _print_loss_table(result)
    title = f"{TITLES[name]}: training loss (smoothed), {result['config']['num_train']:,} MNIST training images"
    paths = _save(args, name, result,
                  {f"{name}.png": lambda plotting, path: plotting.plot_loss_curves(result, path, title=title)})
    _done(paths, started)
    return 0


def run_weight_init(args, data=None):
    """The weight-init subcommand: returns the exit status."""
    from ..experiments import weight_init_comparison

    def describe(config):
        return (f"ReLU net {'-'.join(map(str, config['layers']))}, {config['optimizer']}, "
                f"batch {config['batch_size']}, {config['iterations']} iterations, seed {args.seed}")

    return _run_loss_comparison(args, "weight-init", data, weight_init_comparison, describe)


def run_optimizers(args, data=None):
    """The optimizers subcommand: returns the exit status."""
    from ..experiments import optimizer_comparison

    def describe(config):
        rates = ", ".join(f"{name} lr {spec['lr']:g}" for name, spec in config["optimizers"].items())
        return (f"ReLU net {'-'.join(map(str, config['layers']))} (He), batch {config['batch_size']}, "
                f"{config['iterations']} iterations, seed {args.seed}; {rates}")

    return _run_loss_comparison(args, "optimizers", data, optimizer_comparison, describe)


def run_activation_histograms(args, data=None):
    """The activation-histograms subcommand: returns the exit status."""
    from ..experiments import activation_histograms

    options = _options("activation-histograms", args)
    check_output_dir(args.out)
    started = time.perf_counter()
    result = activation_histograms(num_inputs=options["num_inputs"], seed=args.seed)
    config = result["config"]
    print(f"activation-histograms: {config['num_layers']} layers x {config['width']} units, "
          f"{config['num_inputs']} standard-normal inputs, seed {args.seed}")
    print("std of each layer's activations (layer 1 .. last):")
    print(f"{'activation':<10} {'init':<9} " + " ".join(f"{f'L{i + 1}':>8}" for i in range(config["num_layers"])))
    for activation, runs in result["results"].items():
        for name, stats in runs.items():
            print(f"{activation:<10} {name:<9} " + " ".join(f"{s:8.3g}" for s in stats["std"]))
    plots = {f"activation-histograms-{a}.png":
             (lambda plotting, path, a=a: plotting.plot_activation_histograms(result, a, path))
             for a in result["results"]}
    paths = _save(args, "activation-histograms", result, plots)
    _done(paths, started)
    return 0


def run_overfitting(args, data=None):
    """The overfitting subcommand: returns the exit status."""
    from ..experiments import overfitting_comparison

    options = _options("overfitting", args)
    check_output_dir(args.out)
    (train, test), source = data or load_data(args)
    if options["num_test"] is not None:
        test = (test[0][:options["num_test"]], test[1][:options["num_test"]])
    started = time.perf_counter()
    result = overfitting_comparison(train, test, epochs=options["epochs"], seed=args.seed, method=args.method,
                                    progress=args.progress)
    result["data_source"] = str(source)
    config = result["config"]
    print(f"overfitting: ReLU net {'-'.join(map(str, config['layers']))} on {config['num_train']} training "
          f"images, {config['optimizer']}, batch {config['batch_size']}, {config['epochs']} epochs, "
          f"test on {config['num_test']:,} images, seed {args.seed}")
    print(f"{'variant':<14} {'setting':<18} {'train acc':>9} {'test acc':>9} {'gap':>7}")
    for name, final in result["final"].items():
        setting = ", ".join(f"{k} {v:g}" for k, v in config["variants"][name].items()) or "-"
        print(f"{name:<14} {setting:<18} {final['train']:9.4f} {final['test']:9.4f} {final['gap']:7.4f}")
    paths = _save(args, "overfitting", result,
                  {"overfitting.png": lambda plotting, path: plotting.plot_accuracy_curves(result, path)})
    _done(paths, started)
    return 0


def run_optimizer_paths(args, data=None):
    """The optimizer-paths subcommand: returns the exit status."""
    from ..experiments import optimizer_paths

    options = _options("optimizer-paths", args)
    check_output_dir(args.out)
    started = time.perf_counter()
    result = optimizer_paths(steps=options["steps"])
    config = result["config"]
    print(f"optimizer-paths: f(x, y) = {config['function']} from ({config['start'][0]:g}, {config['start'][1]:g}), "
          f"{config['steps']} steps, gradient by {config['gradient']}")
    print(f"{'optimizer':<10} {'lr':>5} {'final x':>10} {'final y':>10} {'f':>10} {'distance to (0, 0)':>19}")
    for name, points in result["paths"].items():
        print(f"{name:<10} {config['optimizers'][name]['lr']:5g} {points[-1][0]:10.4f} {points[-1][1]:10.4f} "
              f"{result['values'][name][-1]:10.3g} {result['final_distance'][name]:19.4f}")
    paths = _save(args, "optimizer-paths", result,
                  {"optimizer-paths.png": lambda plotting, path: plotting.plot_optimizer_paths(result, path)})
    _done(paths, started)
    return 0


def run_hyperparameter_search(args, data=None):
    """The hyperparameter-search subcommand: returns the exit status."""
    from ..experiments import hyperparameter_search
    from ..experiments.hyperparameter_search import default_jobs

    options = _options("hyperparameter-search", args)
    check_output_dir(args.out)
    (train, _), source = data or load_data(args)
    jobs = args.jobs or default_jobs()

    def report(trial, done, total):
        if args.progress:
            print(f"trial {done:>3}/{total}: val acc {trial['val_acc'][-1]:.4f} | lr {trial['lr']:.3e}, "
                  f"weight decay {trial['weight_decay']:.3e} ({trial['seconds']:.1f} s)", flush=True)

    started = time.perf_counter()
    num_train = min(BOOK_SEARCH_IMAGES, len(train[0]))  # the book's 500, or all there are
    result = hyperparameter_search(train, trials=options["trials"], num_train=num_train, epochs=options["epochs"],
                                   seed=args.seed, jobs=jobs, method=args.method, on_trial=report)
    result["data_source"] = str(source)
    config = result["config"]
    print(f"hyperparameter-search: ReLU net {'-'.join(map(str, config['layers']))}, SGD, batch "
          f"{config['batch_size']}, {config['epochs']} epochs; {config['train_images']} training / "
          f"{config['validation_images']} validation images; {config['trials']} trials of lr 10^U(-6, -2), "
          f"weight decay 10^U(-8, -4), seed {args.seed}; {jobs} job{'s' if jobs > 1 else ''}")
    print("=========== best trials (validation accuracy after the last epoch) ===========")
    for place, number in enumerate(result["best"]):
        trial = result["trials"][number]
        if trial["diverged_at"] is not None:
            print(f"Best-{place + 1:<3} diverged at iteration {trial['diverged_at']} | lr {trial['lr']:.3e}, "
                  f"weight decay {trial['weight_decay']:.3e}")
            continue
        print(f"Best-{place + 1:<3} val acc {trial['final_val']:.4f} (train {trial['final_train']:.4f}) | "
              f"lr {trial['lr']:.3e}, weight decay {trial['weight_decay']:.3e}")
    ranges = result["best_ranges"]
    if ranges["lr"] is not None:
        print(f"the best {min(5, len(result['best']))}: lr {ranges['lr'][0]:.2e} .. {ranges['lr'][1]:.2e}, "
              f"weight decay {ranges['weight_decay'][0]:.2e} .. {ranges['weight_decay'][1]:.2e}")
    print(f"{config['trials']} trials in {result['wall_seconds']:.1f} s wall on {jobs} job{'s' if jobs > 1 else ''}")
    paths = _save(args, "hyperparameter-search", result,
                  {"hyperparameter-search.png":
                   lambda plotting, path: plotting.plot_hyperparameter_search(result, path)})
    _done(paths, started)
    return 0


def run_all(args):
    """Run the six experiments in turn, loading MNIST once; returns the exit status."""
    check_output_dir(args.out)
    data = load_data(args)
    status = 0
    for runner in (run_weight_init, run_activation_histograms, run_optimizers, run_optimizer_paths, run_overfitting,
                   run_hyperparameter_search):
        print()
        status = max(status, runner(args, data))
    return status


RUNNERS = {"weight-init": run_weight_init, "activation-histograms": run_activation_histograms,
           "optimizers": run_optimizers, "optimizer-paths": run_optimizer_paths, "overfitting": run_overfitting,
           "hyperparameter-search": run_hyperparameter_search, "all": run_all}


# ---------------------------------------------------------------- helpers


def _options(name, args):
    """The experiment's sizes: defaults, replaced by the --quick ones, replaced by explicit flags."""
    options = dict(DEFAULTS[name])
    if args.quick:
        options.update(QUICK[name])
    for key in ("iterations", "epochs", "num_inputs", "trials", "steps"):
        if key in options and getattr(args, key, None) is not None:
            options[key] = getattr(args, key)
    if "report_every" in options:
        options["report_every"] = min(options["report_every"], options["iterations"])
    return options


def _save(args, name, result, plots):
    """Write ``name``.json and each ``{filename: draw(plotting, path)}`` plot into args.out; returns the paths."""
    from .. import plotting
    from ..experiments import write_json

    os.makedirs(args.out, exist_ok=True)
    paths = [write_json(os.path.join(args.out, f"{name}.json"), result)]
    try:
        plotting.require_matplotlib()
    except ImportError as err:
        print(f"note: {err}; wrote the data only", file=sys.stderr)
        return paths
    for filename, draw in plots.items():
        path = os.path.join(args.out, filename)
        draw(plotting, path)
        paths.append(path)
    return paths


def _print_loss_table(result):
    names = list(result["loss"])
    width = max(10, *(len(n) + 1 for n in names))
    print(f"{'iteration':>9} " + " ".join(f"{n:>{width}}" for n in names))
    for row, it in enumerate(result["report_iteration"]):
        print(f"{it:>9} " + " ".join(f"{result['report_loss'][n][row]:>{width}.4f}" for n in names))
    last = len(result["iteration"]) - 1
    print(f"{f'{last} raw':>9} " + " ".join(f"{result['loss'][n][-1]:>{width}.4f}" for n in names))
    print(f"{'smoothed':>9} " + " ".join(f"{result['final_smoothed'][n]:>{width}.4f}" for n in names))
    print(f"{'train acc':>9} " + " ".join(f"{result['train_accuracy'][n]:>{width}.4f}" for n in names))
    if "test_accuracy" in result:
        print(f"{'test acc':>9} " + " ".join(f"{result['test_accuracy'][n]:>{width}.4f}" for n in names))


def _done(paths, started):
    print(f"wrote {', '.join(paths)} ({time.perf_counter() - started:.1f} s)")

