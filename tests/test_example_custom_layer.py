"""The 'write your own layer' example runs as written and reaches what it promises."""
import os
import pathlib
import subprocess
import sys

from minigrad_nets import datasets

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_custom_layer_example_runs(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), XDG_CACHE_HOME=str(tmp_path), OPENBLAS_NUM_THREADS="1")
    env[datasets.ENV_OFFLINE] = "1"
    env.pop(datasets.ENV_DATA_DIR, None)
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "custom_layer.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Gradient check: PASS" in done.stdout
    assert "network gradient check: PASS" in done.stdout and "after one epoch: test accuracy" in done.stdout
