"""How training slows down when other processes want the CPU, for each BLAS thread setting.

Two jobs, each in a fresh process, for each thread setting (``--settings``,
default 1, 2 and auto), on a quiet machine and under a synthetic load of
``--busy`` (default 2) processes that spin in pure Python (each bounded: it
stops by itself after ``--busy-seconds``, and is stopped as soon as its job
ends):

- ``weight-init``: the quick main job, ``minigrad-nets --threads S weight-init
  --quick`` (MNIST from ../shared/data/mnist when present); timed as the whole
  process (wall) and as the work it reports (training and evaluation);
- ``fit``: a fresh process importing the library, loading the first 2,560
  MNIST images and running ``fit`` for ``--fit-iterations`` (default 500)
  iterations of the book's 784-100-100-100-100-10 ReLU net, batch 128, SGD,
  the default gradient path, ``threads=S``; timed around ``fit`` alone.

Rounds interleave settings and conditions. A run that passes ``--timeout``
seconds is stopped and counted at the timeout (marked). Printed: medians, the
slowdown under load against the same setting quiet and against the best quiet
setting, and each setting's quiet time against the best quiet one.

    .venv/bin/python benchmarks/contention.py [--quick] [--json PATH] [--rounds 3]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MNIST = ROOT.parent / "shared" / "data" / "mnist"
SPIN = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"
TARGET_SLOWDOWN = 2.5  # issue 13: under two busy processes, no more than 2.5x slower than quiet
TARGET_QUIET = 1.10  # ... while quiet speed stays within 10% of the best thread setting


def fit_child(setting, iterations):
    """Run in the child: fit for ``iterations`` iterations with BLAS threads ``setting``; print the seconds."""
    import numpy  # noqa: F401  (first: train_step would otherwise fix BLAS's thread count for its own runs)

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import train_step  # the data loader of the step benchmark (first images of MNIST, or synthetic)

    import minigrad_nets as mg

    x, t = train_step.fit_data("float64")
    net = mg.mlp(784, [100] * 4, 10, activation="relu", init="he")
    params = net.init(0)
    start = time.perf_counter()
    mg.fit(net, params, mg.sgd(lr=0.01), (x, t), iterations=iterations, batch_size=128, eval_every=iterations,
           eval_samples=128, progress=False, threads=setting)
    print(json.dumps({"seconds": time.perf_counter() - start}))


def run_job(job, setting, args, out_dir, env):
    """``(wall seconds, work seconds, timed out)`` of one run of ``job`` with BLAS threads ``setting``."""
    if job == "weight-init":
        cmd = [sys.executable, "-m", "minigrad_nets", "--threads", setting, "weight-init", "--quick",
               "--no-progress", "--out", str(out_dir)]
        if MNIST.exists():
            cmd += ["--data-dir", str(MNIST)]
        if args.quick:
            cmd += ["--iterations", "20"]
    else:
        cmd = [sys.executable, __file__, "--fit-child", setting, str(args.fit_iterations)]
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return args.timeout, args.timeout, True
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    if job == "weight-init":
        reported = re.search(r"\(([\d.]+) s\)\s*$", done.stdout.strip())
        work = float(reported.group(1)) if reported else wall
    else:
        work = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
    return wall, work, False


def start_load(busy, seconds):
    """``busy`` processes spinning in Python, each stopping by itself after ``seconds``."""
    return [subprocess.Popen([sys.executable, "-c", SPIN.format(seconds=seconds)]) for _ in range(busy)]


def stop_load(processes):
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def median(values):
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def run(args):
    """Every run, then the summary per (job, setting)."""
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    env = {k: v for k, v in os.environ.items()
           if k not in ("MINIGRAD_NETS_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    runs = []
    with tempfile.TemporaryDirectory() as out_dir:
        for r in range(args.rounds):
            for setting in settings if r % 2 == 0 else settings[::-1]:
                for condition in ("quiet", "loaded") if r % 2 == 0 else ("loaded", "quiet"):
                    for job in ("weight-init", "fit"):
                        load = start_load(args.busy, args.busy_seconds) if condition == "loaded" else []
                        try:
                            time.sleep(0.3 if load else 0.0)  # let the spinners get going
                            loadavg = os.getloadavg()[0]
                            wall, work, timed_out = run_job(job, setting, args, out_dir, env)
                        finally:
                            stop_load(load)
                        runs.append({"round": r, "job": job, "setting": setting, "condition": condition,
                                     "wall_s": wall, "work_s": work, "timed_out": timed_out,
                                     "loadavg_1min_before": loadavg})
                        print(f"round {r} {job:11} threads={setting:4} {condition:6}: work {work:7.2f} s, "
                              f"wall {wall:7.2f} s{' (timed out)' if timed_out else ''}", flush=True)
                        time.sleep(0.5 if load else 0.0)  # the machine settles before a quiet run
    return runs


def summarize(runs):
    """Medians per (job, setting, condition) and the slowdowns the issue's targets are about."""
    summary = []
    for job in ("weight-init", "fit"):
        rows = {}
        for setting in dict.fromkeys(r["setting"] for r in runs):
            med = {}
            for condition in ("quiet", "loaded"):
                mine = [r for r in runs if (r["job"], r["setting"], r["condition"]) == (job, setting, condition)]
                med[condition] = median([r["work_s"] for r in mine])
                med[condition + "_wall"] = median([r["wall_s"] for r in mine])
                med[condition + "_timed_out"] = sum(r["timed_out"] for r in mine)
            rows[setting] = med
        best_quiet = min(m["quiet"] for m in rows.values())
        for setting, m in rows.items():
            summary.append({
                "job": job, "setting": setting, "quiet_s": m["quiet"], "loaded_s": m["loaded"],
                "quiet_wall_s": m["quiet_wall"], "loaded_wall_s": m["loaded_wall"],
                "timed_out_runs": m["quiet_timed_out"] + m["loaded_timed_out"],
                "slowdown_vs_own_quiet": m["loaded"] / m["quiet"],
                "slowdown_vs_best_quiet": m["loaded"] / best_quiet,
                "quiet_vs_best_quiet": m["quiet"] / best_quiet,
                "meets_targets": m["loaded"] / best_quiet <= TARGET_SLOWDOWN and m["quiet"] / best_quiet <= TARGET_QUIET,
            })
    return summary


def print_summary(report):
    cfg = report["config"]
    print(f"\ncontention: {cfg['busy']} busy processes, {cfg['rounds']} rounds, fit {cfg['fit_iterations']} iterations, "
          f"{cfg['cpus']} CPUs, load average before: {cfg['loadavg_before']}")
    print(f"{'job':11} {'threads':7} {'quiet s':>8} {'loaded s':>9} {'÷own quiet':>10} {'÷best quiet':>11} "
          f"{'quiet÷best':>10} {'targets':>8}")
    for s in report["summary"]:
        print(f"{s['job']:11} {s['setting']:7} {s['quiet_s']:8.2f} {s['loaded_s']:9.2f} "
              f"{s['slowdown_vs_own_quiet']:10.2f} {s['slowdown_vs_best_quiet']:11.2f} {s['quiet_vs_best_quiet']:10.2f} "
              f"{'met' if s['meets_targets'] else 'missed':>8}"
              + (f"  ({s['timed_out_runs']} runs stopped at the timeout)" if s["timed_out_runs"] else ""))
    print(f"targets: loaded ≤ {TARGET_SLOWDOWN}x the best quiet time, quiet ≤ {TARGET_QUIET}x the best quiet time; "
          f"times are the work each job reports (weight-init: its own timer; fit: around fit)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round, settings 1 and auto, short jobs (CI smoke)")
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON to PATH")
    parser.add_argument("--settings", help="thread settings to compare (default 1,2,auto; 1,auto with --quick)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over settings and conditions (default 3)")
    parser.add_argument("--busy", type=int, default=2, help="busy processes for the loaded runs (default 2)")
    parser.add_argument("--busy-seconds", type=float, default=180.0,
                        help="each busy process stops by itself after this long (default 180)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before a run is stopped (default 120)")
    parser.add_argument("--fit-iterations", type=int, default=500, help="fit's iterations (default 500)")
    parser.add_argument("--fit-child", nargs=2, metavar=("SETTING", "ITERATIONS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.fit_child:
        fit_child(args.fit_child[0], int(args.fit_child[1]))
        return 0
    if args.quick:
        args.rounds, args.settings, args.fit_iterations = 1, args.settings or "1,auto", 50
        args.timeout, args.busy_seconds = min(args.timeout, 60.0), min(args.busy_seconds, 60.0)
    args.settings = args.settings or "1,2,auto"
    loadavg_before = [round(v, 2) for v in os.getloadavg()]
    runs = run(args)
    report = {"benchmark": "contention",
              "config": {"busy": args.busy, "rounds": args.rounds, "settings": args.settings,
                         "fit_iterations": args.fit_iterations, "timeout_s": args.timeout, "quick": bool(args.quick),
                         "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                         "loadavg_before": loadavg_before, "mnist": MNIST.exists()},
              "runs": runs, "summary": summarize(runs)}
    print_summary(report)
    if args.json:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from train_step import write_json
        write_json(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
