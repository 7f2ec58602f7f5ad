"""Chapter 6: where the book's experiments live here — the ``minigrad-nets`` subcommands and their functions.

Run:  python examples/ch06_experiments.py     (under a second: prints the list, then runs the smallest one)

Every experiment is a function in ``mg.experiments`` returning plain data
(dicts of numpy arrays), and a CLI subcommand that prints a table and writes
PNG plots and a JSON of the data to ``--out`` (add ``--quick`` for a short run,
``--data-dir DIR`` for full MNIST).
"""
import minigrad_nets as mg

TOUR = [
    ("optimizer_compare_naive.py", "minigrad-nets optimizer-paths", "optimizer_paths"),
    ("optimizer_compare_mnist.py", "minigrad-nets optimizers", "optimizer_comparison"),
    ("weight_init_activation_histogram.py", "minigrad-nets activation-histograms", "activation_histograms"),
    ("weight_init_compare.py", "minigrad-nets weight-init", "weight_init_comparison"),
    ("batch_norm_test.py", "minigrad-nets batch-norm", "batch_norm.batch_norm_comparison"),
    ("overfit_weight_decay.py, overfit_dropout.py", "minigrad-nets overfitting", "overfitting_comparison"),
    ("hyperparameter_optimization.py", "minigrad-nets hyperparameter-search", "hyperparameter_search"),
    ("batch_norm_gradient_check.py", "minigrad-nets gradcheck --batch-norm", "mg.check_gradients"),
]
width = max(len(book) for book, _, _ in TOUR)
print(f"{'the book (ch06/)':<{width}}  {'here, in the shell':<38} in Python (mg.experiments.)")
for book, command, function in TOUR:
    print(f"{book:<{width}}  {command:<38} {function}")
print("minigrad-nets all --quick runs every experiment briefly.\n")

# The smallest one, in Python: four optimizers down f(x, y) = x²/20 + y² from (-7, 2).
result = mg.experiments.optimizer_paths()
for name, points in result["paths"].items():
    print(f"{name:<9} after {len(points) - 1} steps: ({points[-1][0]: .3f}, {points[-1][1]: .3f})")
assert result["final_distance"]["AdaGrad"] < 0.2   # AdaGrad ends closest to the minimum, as in the book's figure
