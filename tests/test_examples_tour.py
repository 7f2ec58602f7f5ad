"""The tour of the book in examples/: each script runs as written, offline, in seconds, and prints what it promises."""
import os
import pathlib
import re
import subprocess
import sys

import pytest

from minigrad_nets import datasets

ROOT = pathlib.Path(__file__).resolve().parents[1]
TIMEOUT = 120  # seconds: each script takes a few on a busy 2-core machine

# script -> patterns its output must contain
TOUR = {
    "ch04_gradient_descent.py": [r"gradient at \(3, 4\): \[6\. 8\.\]", r"lr 0\.1\s*: 100 steps from \(-3, 4\) end at",
                                 r"lr 10\s*:", r"lr 1e-10\s*:"],
    "ch04_simple_net.py": [r"dW:", r"matches outer\(x, softmax\(x W\) - t\) to"],
    "ch04_two_layer_net_numerical.py": [r"39,760 parameters", r"300 steps of one image each, numerical gradients: "
                                        r"[\d.]+ ms a step", r"element by element, as the book's loop: .* s a step",
                                        r"numerical vs autograd on the last image"],
    "ch05_gradient_check.py": [r"W1:\S+", r"b1:\S+", r"W2:\S+", r"b2:\S+", r"Gradient check: PASS"],
    "ch06_experiments.py": [r"hyperparameter_optimization\.py\s+minigrad-nets hyperparameter-search",
                            r"optimizer_compare_naive\.py\s+minigrad-nets optimizer-paths",
                            r"AdaGrad\s+after 30 steps"],
}


def run(script, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), XDG_CACHE_HOME=str(tmp_path), OPENBLAS_NUM_THREADS="1")
    env[datasets.ENV_OFFLINE] = "1"  # the shipped MNIST subset: no network, no data directory needed
    env.pop(datasets.ENV_DATA_DIR, None)
    return subprocess.run([sys.executable, str(ROOT / "examples" / script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)


@pytest.mark.parametrize("script", sorted(TOUR))
def test_example_runs_and_prints_what_it_promises(script, tmp_path):
    done = run(script, tmp_path)
    assert done.returncode == 0, done.stderr
    for pattern in TOUR[script]:
        assert re.search(pattern, done.stdout), f"{script}: no {pattern!r} in\n{done.stdout}"


def test_gradient_check_prints_the_books_mean_differences_and_they_are_small(tmp_path):
    done = run("ch05_gradient_check.py", tmp_path)
    assert done.returncode == 0, done.stderr
    diffs = dict(re.findall(r"^(W1|b1|W2|b2):(\S+)$", done.stdout, flags=re.M))
    assert sorted(diffs) == ["W1", "W2", "b1", "b2"]
    assert all(0 <= float(v) < 1e-8 for v in diffs.values()), diffs


def test_every_example_is_in_the_tour_and_the_readme():
    scripts = {p.name for p in (ROOT / "examples").glob("*.py")} - {"custom_layer.py"}  # tested on its own
    assert scripts == set(TOUR)
    readme = (ROOT / "README.md").read_text()
    for script in TOUR:
        assert f"examples/{script}" in readme, script
