"""The benchmark scripts run (--quick, one BLAS thread) and write JSON with the fields the README's numbers come from.

No timing is asserted: only that each figure is there, finite and sensible in kind.
"""
import json
import math
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run_quick(script, tmp_path, options=("--threads", "1")):
    out = tmp_path / f"{script}.json"
    done = subprocess.run([sys.executable, str(BENCHMARKS / f"{script}.py"), "--quick", *options,
                           "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text()), done.stdout


def positive(value):
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_train_step_quick_writes_every_figure(tmp_path):
    report, printed = run_quick("train_step", tmp_path)
    assert report["benchmark"] == "train_step" and report["config"]["quick"] is True
    assert report["config"]["sizes"] == [784, 100, 100, 100, 100, 10] and report["config"]["batch"] == 128
    rows = {(r["impl"], r["dtype"]): r for r in report["results"]}
    steps = {"book", "numpy-bound", "backprop", "autograd", "autograd-fused"}
    fits = {f"fit {m} {o}" for m in ("backprop", "autograd-fused") for o in ("sgd", "adam")}
    loops = {"book loop", "backprop loop"}
    impls = steps | fits | loops | {"backprop adam"}
    assert set(rows) == {(i, d) for i in impls for d in ("float32", "float64")}
    for (impl, _), row in rows.items():
        for field in ("median_ms", "min_ms", "max_ms", "ratio_to_book", "ratio_to_backprop", "gflops",
                      "fraction_of_matmul_peak"):
            assert positive(row[field]), field
        assert row["min_ms"] <= row["median_ms"] <= row["max_ms"]
        if impl in steps:  # every SGD step implementation took the same steps from the same params as the book's
            assert row["params_max_rel_diff_vs_book"] < (1e-3 if row["dtype"] == "float32" else 1e-9)
        else:
            assert row["params_max_rel_diff_vs_book"] is None
    assert rows["book", "float64"]["ratio_to_book"] == 1.0
    assert report["config"]["fit_calls"] >= 1 and report["config"]["fit_iterations_per_call"] >= 1
    targets = {(t["target"], t["dtype"]): t for t in report["targets"]}
    assert len(targets) == 2 * 7 + 2 * 4  # seven ratios and four fit rows' memory, per dtype
    for t in targets.values():
        assert positive(t["value"]) and t["met"] in (True, False, None)
    assert {f["dtype"] for f in report["matmul_floor"]} == {"float32", "float64"}
    assert all(positive(f["gflops"]) for f in report["matmul_floor"])
    memory = {(m["impl"], m["dtype"]): m["peak_rss_mb"] for m in report["memory"]}
    assert len(memory) == 1 + 2 + 2 * len(impls - loops) and all(positive(v) for v in memory.values())
    assert all(v >= memory["baseline", "-"] * 0.9 for v in memory.values())
    profiles = {p["impl"]: p for p in report["profiles"]}
    assert profiles["autograd"]["traced_operations_per_step"] > profiles["autograd-fused"]["traced_operations_per_step"]
    assert profiles["backprop"]["traced_operations_per_step"] == 0
    assert "autograd-fused" in printed and "matmul floor" in printed


def test_grad_methods_quick_writes_every_figure(tmp_path):
    report, printed = run_quick("grad_methods", tmp_path)
    assert report["benchmark"] == "grad_methods" and report["config"]["quick"] is True
    methods = {"autograd", "autograd-fused", "backprop", "numerical-full", "book-loop", "numerical-sampled",
               "numerical-directional"}
    cases = {(r["network"], r["batch"]) for r in report["results"]}
    assert len(cases) >= 2
    for case in cases:
        rows = {r["method"]: r for r in report["results"] if (r["network"], r["batch"]) == case}
        assert set(rows) == methods
        for row in rows.values():
            assert positive(row["seconds"]) and positive(row["params"])
            assert row["peak_traced_mb"] >= 0 and isinstance(row["extrapolated"], bool)
        # Analytic paths agree to rounding; central differences to their truncation error.
        assert rows["autograd"]["rel_error_vs_autograd"] == 0
        assert rows["backprop"]["rel_error_vs_autograd"] <= 1e-12
        assert rows["autograd-fused"]["rel_error_vs_autograd"] <= 1e-12
        for method in ("numerical-full", "numerical-sampled", "numerical-directional", "book-loop"):
            assert rows[method]["rel_error_vs_autograd"] <= 1e-4, method
    speedups = report["numerical_full_vs_book_loop"]
    assert {(s["network"], s["batch"]) for s in speedups} == cases
    assert all(positive(s["speedup"]) for s in speedups)
    assert "book-loop" in printed


def test_contention_quick_writes_every_figure(tmp_path):
    report, printed = run_quick("contention", tmp_path, ("--settings", "1", "--busy", "1"))
    assert report["benchmark"] == "contention" and report["config"]["quick"] is True
    runs = {(r["job"], r["setting"], r["condition"]) for r in report["runs"]}
    assert runs == {(job, "1", c) for job in ("weight-init", "fit") for c in ("quiet", "loaded")}
    for r in report["runs"]:
        assert positive(r["work_s"]) and r["wall_s"] >= r["work_s"] and r["timed_out"] is False
    for s in report["summary"]:
        assert positive(s["slowdown_vs_own_quiet"]) and s["quiet_vs_best_quiet"] == 1.0
    assert "÷own quiet" in printed
