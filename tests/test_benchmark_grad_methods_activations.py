"""grad_methods.py --quick --only-activations writes the per-activation figures the benchmarks README quotes.

No timing is asserted: only that every figure is there and sensible in kind, and the accuracies each
method is documented to reach (they do not depend on the machine).
"""
import json
import math
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "grad_methods.py"


def test_per_activation_report(tmp_path):
    out = tmp_path / "grad_methods.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--only-activations", "--threads", "1",
                           "--repeats", "1", "--loop-budget", "0.2", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    rows = {row["activation"]: row for row in report["by_activation"]}
    assert set(rows) == {"relu", "sigmoid", "tanh", "batchnorm"}
    assert rows["batchnorm"]["batch_norm"] and not rows["tanh"]["batch_norm"]
    for name, row in rows.items():
        methods = row["methods"]
        assert set(methods) == {"autograd", "autograd-fused", "backprop", "numerical", "complex-step"}
        assert all(math.isfinite(m["seconds"]) and m["seconds"] > 0 for m in methods.values())
        assert methods["complex-step"]["worst_leaf_rel_error"] <= 1e-12, name
        assert methods["complex-step"]["zero_leaf_max_abs_error"] <= 1e-15, name
        assert 0 < methods["numerical"]["worst_leaf_rel_error"] <= 1e-6, name  # central: not exact
        loop = row["book_loop"]
        assert loop["seconds"] > 0 and loop["entries_timed"] >= 1 and isinstance(loop["extrapolated"], bool)
        for key in ("speedup_numerical_vs_book_loop", "speedup_complex_step_vs_book_loop",
                    "complex_step_time_over_numerical"):
            assert math.isfinite(row[key]) and row[key] > 0, key
    assert "complex step / numerical time" in done.stdout and report["results"] == []
