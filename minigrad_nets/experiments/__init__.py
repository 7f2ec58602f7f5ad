"""The book's chapter-6 experiments as functions returning plain data (dicts of numpy arrays and floats)."""
from .activation_histograms import activation_histograms, layer_activations
from .hyperparameter_search import draw_trials, hyperparameter_search
from .loss_curves import train_loss_curves
from .optimizer_comparison import BOOK_OPTIMIZERS, optimizer_comparison
from .optimizer_paths import BOOK_PATH_OPTIMIZERS, book_function, optimizer_paths
from .overfitting import BOOK_VARIANTS, overfitting_comparison
from .results import to_jsonable, write_json
from .smoothing import smooth_curve
from .weight_init import BOOK_INITS, weight_init_comparison
