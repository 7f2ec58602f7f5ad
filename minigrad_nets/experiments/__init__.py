"""The book's chapter-6 experiments as functions returning plain data (dicts of numpy arrays and floats)."""
from .activation_histograms import activation_histograms, layer_activations
from .results import to_jsonable, write_json
from .smoothing import smooth_curve
