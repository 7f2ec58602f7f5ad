"""benchmarks/conv_step.py runs (--quick, one BLAS thread) and writes JSON with every figure; no timing is asserted."""
import json
import math
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "conv_step.py"


def positive(value):
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_conv_step_quick_writes_every_figure(tmp_path):
    out = tmp_path / "conv_step.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--threads", "1", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["benchmark"] == "conv_step" and report["config"]["quick"] is True and report["config"]["batch"] == 100
    assert report["config"]["network"][0] == "Conv2D(30, 5x5)"
    rows = {(r["impl"], r["dtype"]): r for r in report["results"]}
    impls = {"book", "backprop", "autograd-fused", "autograd"} | ({"torch"} if report["config"]["torch"] else set())
    assert set(rows) == {(i, d) for i in impls for d in ("float32", "float64")}
    for row in rows.values():
        for field in ("median_ms", "min_ms", "max_ms", "ratio_to_book", "ratio_to_backprop"):
            assert positive(row[field]), field
        assert row["min_ms"] <= row["median_ms"] <= row["max_ms"]
        # Every implementation took the same SGD steps from the same params as the book-style reference.
        assert row["params_max_rel_diff_vs_book"] < (1e-4 if row["dtype"] == "float32" else 1e-10)
    assert rows["book", "float64"]["ratio_to_book"] == 1.0 and rows["backprop", "float32"]["ratio_to_backprop"] == 1.0
    memory = {(m["impl"], m["dtype"]): m["peak_rss_mb"] for m in report["memory"]}
    assert len(memory) == 1 + 2 * len(impls) and all(positive(v) for v in memory.values())
    assert all(v >= memory["baseline", "-"] * 0.9 for v in memory.values())
    targets = {(t["name"], t["dtype"]): t for t in report["targets"]}
    assert {name for name, _ in targets} == {"backprop_vs_book", "fused_vs_backprop", "peak_rss_mb backprop",
                                             "peak_rss_mb autograd-fused"}
    assert all(t["met"] == (t["value"] <= t["limit"]) for t in targets.values())
    assert "autograd-fused" in done.stdout and "peak RSS" in done.stdout
