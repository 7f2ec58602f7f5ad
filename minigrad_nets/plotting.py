"""Figures for the chapter-6 experiments (matplotlib is optional: imported only when a figure is drawn).

Each ``plot_*`` function takes the plain data an experiment returned, builds a
``matplotlib.figure.Figure`` on the Agg canvas (no pyplot, no global backend
change, so it is safe in scripts, servers and notebooks alike), writes it to
``path`` as a PNG atomically when a path is given, and returns the figure.
"""
from .atomic import atomic_write

MARKERS = ("o", "s", "D", "^", "v", "x")


def require_matplotlib():
    """Import matplotlib, or raise an ImportError that says how to install it."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError("plotting needs matplotlib, which is not installed: "
                          "pip install matplotlib (or minigrad-nets[plot])") from None


def new_figure(figsize):
    """An empty Figure attached to an Agg canvas."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path, dpi=100):
    """Write ``fig`` to ``path`` as a PNG atomically: a temp file in the same folder, then os.replace."""
    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi), binary=True)


def plot_loss_curves(result, path=None, title="Training loss", ylim=(0.0, 2.5), smoothed=True):
    """Loss against iteration, one line per run: ``result`` from weight_init_comparison / optimizer_comparison."""
    curves = result["smoothed"] if smoothed else result["loss"]
    fig = new_figure((7, 4.5))
    ax = fig.add_subplot()
    for i, (name, loss) in enumerate(curves.items()):
        every = max(1, len(loss) // 20)
        ax.plot(result["iteration"], loss, marker=MARKERS[i % len(MARKERS)], markevery=every,
                markersize=5, label=name)
    ax.set(xlabel="iteration", ylabel="loss" + (" (smoothed)" if smoothed else ""), title=title)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.grid(alpha=0.3)
    ax.legend()
    if path is not None:
        save_png(fig, path)
    return fig


def plot_activation_histograms(result, activation, path=None):
    """A grid of per-layer activation histograms for one activation: one row per weight init, one column per layer."""
    runs = result["results"][activation]
    names = list(runs)
    num_layers = len(next(iter(runs.values()))["counts"])
    fig = new_figure((2.3 * num_layers, 1.9 * len(names) + 0.6))
    axes = fig.subplots(len(names), num_layers, squeeze=False)
    for row, name in enumerate(names):
        counts, edges = runs[name]["counts"], runs[name]["edges"]
        for layer in range(num_layers):
            ax = axes[row][layer]
            layer_counts = counts[layer]
            ax.stairs(layer_counts, edges, fill=True, color=f"C{row}")
            ax.set_yticks([])
            notes = []
            total = result["config"]["num_inputs"] * result["config"]["width"]
            rest = layer_counts[1:].max(initial=0)
            if layer_counts[0] > 3 * rest > 0:  # e.g. ReLU's zeros: cut the spike so the rest shows
                ax.set_ylim(0, 1.3 * rest)
                notes.append(f"first bar cut: {layer_counts[0] / total:.0%}")
            outside = 1.0 - runs[name]["fraction_in_range"][layer]
            if outside >= 0.005:
                notes.append(f"{outside:.0%} off scale")
            if notes:
                ax.text(0.97, 0.95, "\n".join(notes), transform=ax.transAxes, ha="right", va="top", fontsize=8)
            if row == 0:
                ax.set_title(f"layer {layer + 1}")
            if layer == 0:
                ax.set_ylabel(name)
            if row < len(names) - 1:
                ax.set_xticklabels([])
    fig.suptitle(f"{activation} activations by weight init "
                 f"({result['config']['num_inputs']} random inputs, counts per bin)")
    if path is not None:
        save_png(fig, path)
    return fig


def plot_accuracy_curves(result, path=None):
    """Train (solid) and test (dashed) accuracy per epoch, a panel per variant: ``result`` of overfitting_comparison."""
    names = list(result["train_acc"])
    fig = new_figure((4.2 * len(names), 4))
    axes = fig.subplots(1, len(names), squeeze=False, sharey=True)[0]
    for ax, name in zip(axes, names):
        epochs = result["epoch"]
        every = max(1, len(epochs) // 20)
        ax.plot(epochs, result["train_acc"][name], marker="o", markevery=every, markersize=4, label="train")
        ax.plot(epochs, result["test_acc"][name], marker="s", markevery=every, markersize=4,
                linestyle="--", label="test")
        setting = ", ".join(f"{k.replace('_', ' ')} {v:g}"
                            for k, v in result["config"].get("variants", {}).get(name, {}).items())
        ax.set(title=f"{name} ({setting})" if setting else name, xlabel="epoch", ylim=(0.0, 1.05))
        ax.grid(alpha=0.3)
        ax.legend(loc="best")
    axes[0].set_ylabel("accuracy")
    fig.suptitle(f"Overfitting on {result['config']['num_train']} training images")
    if path is not None:
        save_png(fig, path)
    return fig


def plot_batch_norm_grid(result, path=None):
    """The book's Batch Normalization figure: a grid, one panel per weight scale, training accuracy per epoch."""
    scales = result["scales"]
    cols = 4
    rows = -(-len(scales) // cols)
    fig = new_figure((12, 2.6 * rows))
    for i, std in enumerate(scales):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.plot(result["epoch"], result["train_acc"]["batch_norm"][i], label="with BatchNorm")
        ax.plot(result["epoch"], result["train_acc"]["plain"][i], linestyle="--", label="without")
        for row, (name, diverged) in enumerate(result.get("diverged_at", {}).items()):
            if diverged[i]:
                ax.text(0.03, 0.92 - 0.1 * row, f"{name.replace('_', ' ')}: diverged at iteration {diverged[i]}",
                        transform=ax.transAxes, fontsize=7)
        ax.set_title(f"W std {std:.3g}", fontsize=9)
        ax.set_ylim(0, 1.0)
        if i % cols:
            ax.set_yticklabels([])
        else:
            ax.set_ylabel("train accuracy")
        if i >= len(scales) - cols:
            ax.set_xlabel("epoch")
        if i == len(scales) - 1:
            ax.legend(loc="lower right", fontsize=8)
    if path is not None:
        save_png(fig, path)
    return fig


def plot_filters(result, path=None, columns=10):
    """The book's visualize_filter.py figure: first-layer filters before (top) and after (bottom) training.

    ``result`` holds 'filters_before' and 'filters_after', each (F, kh, kw); every
    filter is drawn in gray levels scaled to its own range (dark = large), as the book's.
    """
    panels = (("filters_before", "at initialisation"),
              ("filters_after", f"after training ({result['config']['iterations']} iterations, "
                                f"test accuracy {result['test_acc']:.4f})"))
    count = len(result["filters_before"])
    rows = -(-count // columns)
    fig = new_figure((columns, 2 * (rows + 0.5)))
    for sub, (key, title) in zip(fig.subfigures(2, 1), panels):
        sub.suptitle(title)
        for i, kernel in enumerate(result[key]):
            ax = sub.add_subplot(rows, columns, i + 1, xticks=[], yticks=[])
            ax.imshow(kernel, cmap="gray_r", interpolation="nearest")
    if path is not None:
        save_png(fig, path)
    return fig


def plot_optimizer_paths(result, path=None, function=None, levels=(0.25, 0.5, 1, 2, 3, 4, 5, 6, 7)):
    """The book's optimizer_compare_naive.py figure: each optimizer's path over the contours of f, a panel each.

    ``result`` is ``optimizer_paths``'s; ``function`` (default the book's
    x²/20 + y²) takes {'x': X, 'y': Y} grids and gives the contour heights.
    """
    import numpy as np

    if function is None:
        from .experiments.optimizer_paths import book_function as function
    names = list(result["paths"])
    cols = min(2, len(names))
    rows = -(-len(names) // cols)
    fig = new_figure((5.2 * cols, 4.4 * rows))
    X, Y = np.meshgrid(np.linspace(-10, 10, 401), np.linspace(-5, 5, 201))
    Z = function({"x": X, "y": Y})
    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.contour(X, Y, Z, levels=list(levels), linewidths=0.8, cmap="viridis")
        points = np.asarray(result["paths"][name])
        ax.plot(points[:, 0], points[:, 1], "o-", color="red", markersize=3, linewidth=1)
        ax.plot(0, 0, "+", color="black", markersize=10)
        spec = result["config"]["optimizers"].get(name, {})
        ax.set(title=f"{name} (lr {spec.get('lr', float('nan')):g})", xlabel="x", ylabel="y",
               xlim=(-10, 10), ylim=(-10, 10))
    fig.suptitle(f"{result['config']['steps']} steps on f(x, y) = {result['config']['function']} from "
                 f"({result['config']['start'][0]:g}, {result['config']['start'][1]:g})")
    if path is not None:
        save_png(fig, path)
    return fig


def plot_hyperparameter_search(result, path=None, count=20, columns=5):
    """The book's hyperparameter_optimization.py figure: the best trials' validation (solid) and training
    (dashed) accuracy per epoch, one small panel each, best first; ``result`` is ``hyperparameter_search``'s."""
    best = list(result["best"])[:count]
    rows = max(1, -(-len(best) // columns))
    fig = new_figure((2.4 * columns, 2.0 * rows + 0.5))
    epochs = result["epoch"]
    for place, number in enumerate(best):
        trial = result["trials"][number]
        ax = fig.add_subplot(rows, columns, place + 1)
        ax.plot(epochs, trial["val_acc"], label="validation")
        ax.plot(epochs, trial["train_acc"], linestyle="--", label="training")
        ax.set_title(f"Best-{place + 1}: val {trial['val_acc'][-1]:.2f}\nlr {trial['lr']:.1e}, "
                     f"wd {trial['weight_decay']:.1e}", fontsize=8)
        ax.set_ylim(0.0, 1.0)
        ax.set_xticks([])
        if place % columns:
            ax.set_yticks([])
        if place == 0:
            ax.legend(loc="lower right", fontsize=6)
    config = result["config"]
    fig.suptitle(f"Random search, best {len(best)} of {config['trials']} trials: accuracy per epoch "
                 f"({config['train_images']} training / {config['validation_images']} validation images)")
    if path is not None:
        save_png(fig, path)
    return fig
