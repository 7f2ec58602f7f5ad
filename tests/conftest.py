"""Hypothesis profiles for the property suite.

- ``ci`` (the default): about 100 examples a property, derandomized so that a CI run is
  repeatable (the same draws every time); the whole suite stays well under two minutes.
- ``thorough``: 2,000 fresh random examples a property, for a local run: ``HYPOTHESIS_PROFILE=thorough pytest``.

Both have ``deadline=None``: timing is not correctness, and the machines running this are shared.
The example database is hypothesis's default ``.hypothesis/`` directory, which is gitignored
(it replays a found failure first on the next run, and never enters the repo).

The property files import their shared helpers (strategies.py, naive.py,
strict_numerics.py) as top-level modules; this directory is put on ``sys.path``
so that works under any ``--import-mode``.

Speed under load: the suite runs numpy with one BLAS thread (threadpoolctl, when
installed) and tells the CLI runs it starts to do the same (``MINIGRAD_NETS_THREADS=1``):
at these matrix sizes two threads gain little, and on a busy machine they wait on
each other for whole scheduler slices (the suite took 384 s instead of 69 s).
The slowest tests (subprocess runs of the CLI, the benchmarks and the examples)
are marked ``slow``: ``pytest -m "not slow"`` is the quick loop; plain ``pytest``
runs everything.
"""
import os
import sys

import numpy  # noqa: F401  (loaded before threadpoolctl looks for its BLAS)
import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

os.environ.setdefault("MINIGRAD_NETS_THREADS", "1")  # for the CLI processes the tests start
try:
    from threadpoolctl import threadpool_limits
except ImportError:  # an optional extra: without it the suite runs with BLAS's own thread count
    threadpool_limits = None
if threadpool_limits is not None:
    _ONE_BLAS_THREAD = threadpool_limits(limits=1, user_api="blas")  # kept for the whole session

# Whole files that run subprocesses or a quick benchmark, and single slow tests elsewhere (file::name prefix).
SLOW_FILES = {"test_benchmarks_smoke.py", "test_benchmarks_conv_smoke.py", "test_readme.py",
              "test_example_custom_layer.py", "test_examples.py", "test_cli_conv.py"}
SLOW_TESTS = ("test_cli_experiments.py::test_quick_run_writes_png_and_json",
              "test_batch_norm_experiment.py::test_quick_subcommand",
              "test_conv.py::test_check_gradients_passes_on_the_books_gradient_check_convnet")


def pytest_collection_modifyitems(config, items):
    """Mark the slow tests ``slow`` (by file and name, so the test files stay as their owners wrote them)."""
    for item in items:
        file = os.path.basename(str(item.fspath))
        if file in SLOW_FILES or f"{file}::{item.name}".startswith(SLOW_TESTS):
            item.add_marker(pytest.mark.slow)

settings.register_profile("ci", max_examples=100, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
