"""Time one training step (gradient + SGD update) of the book's SimpleConvNet at batch 100.

SimpleConvNet (ch07): Conv 30 filters 5x5 -> ReLU -> MaxPool 2x2 -> Dense 100 -> ReLU -> Dense 10 on
1x28x28 images. Implementations, timed interleaved in one process so machine noise hits them alike:

- ``book``: the book's way, written out below: ``im2col`` / ``col2im`` with Python loops over the kernel
  offsets, Convolution / Pooling / Relu / Affine / SoftmaxWithLoss objects with forward / backward
  (Convolution's backward always computes dx, as the book's does), and SGD ``params[key] -= lr * grads[key]``;
- ``backprop``, ``autograd-fused``, ``autograd``: ``mg.value_and_grad`` by that method (train=True),
  then the same in-place SGD update on every leaf;
- ``torch``: PyTorch on the CPU, when it is importable (optional, never installed for this).

Every implementation starts from the same params and takes the same steps; the largest relative
difference of its final params from the book's is reported. Peak RSS of the step is measured per
(implementation, dtype) in a fresh child process (VmHWM, or ru_maxrss where /proc is missing).
Targets: backprop <= 0.5x book, autograd-fused <= 1.2x backprop, peak RSS <= 150 MB.

    .venv/bin/python benchmarks/conv_step.py [--quick] [--json PATH] [--threads 1] [--dtypes float64,float32]
"""
import os
import sys


def _option_from_argv(argv, option, default):
    """An option's value, read before numpy is imported (BLAS reads its settings once, at load)."""
    for i, arg in enumerate(argv):
        if arg == option and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(option + "="):
            return arg.split("=", 1)[1]
    return default


_THREADS = str(_option_from_argv(sys.argv, "--threads", 1))
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = _THREADS

import argparse  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import minigrad_nets as mg  # noqa: E402
from minigrad_nets.atomic import atomic_write  # noqa: E402

BATCH = 100
LR = 0.01
LIBRARY = ("backprop", "autograd-fused", "autograd")
TARGETS = {"backprop_vs_book": 0.5, "fused_vs_backprop": 1.2, "peak_rss_mb": 150.0}
MNIST = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mnist"


def torch_available():
    """Whether PyTorch can be imported here (it is optional: a row of its own when present)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def implementations():
    """The implementations this run measures."""
    return ("book",) + LIBRARY + (("torch",) if torch_available() else ())


# ---------------------------------------------------------------- the book's way (the reference)


def book_im2col(images, filter_h, filter_w, stride=1, pad=0):
    """The book's im2col: (N, C, H, W) -> (N*out_h*out_w, C*filter_h*filter_w), one loop step per kernel offset."""
    n, c, h, w = images.shape
    out_h = (h + 2 * pad - filter_h) // stride + 1
    out_w = (w + 2 * pad - filter_w) // stride + 1
    padded = np.pad(images, [(0, 0), (0, 0), (pad, pad), (pad, pad)], "constant")
    col = np.zeros((n, c, filter_h, filter_w, out_h, out_w), dtype=images.dtype)
    for dy in range(filter_h):
        for dx in range(filter_w):
            col[:, :, dy, dx, :, :] = padded[:, :, dy:dy + stride * out_h:stride, dx:dx + stride * out_w:stride]
    return col.transpose(0, 4, 5, 1, 2, 3).reshape(n * out_h * out_w, -1)


def book_col2im(col, input_shape, filter_h, filter_w, stride=1, pad=0):
    """The book's col2im: the rows of ``col`` added back onto an (N, C, H, W) image, one loop step per offset."""
    n, c, h, w = input_shape
    out_h = (h + 2 * pad - filter_h) // stride + 1
    out_w = (w + 2 * pad - filter_w) // stride + 1
    col = col.reshape(n, out_h, out_w, c, filter_h, filter_w).transpose(0, 3, 4, 5, 1, 2)
    image = np.zeros((n, c, h + 2 * pad + stride - 1, w + 2 * pad + stride - 1), dtype=col.dtype)
    for dy in range(filter_h):
        for dx in range(filter_w):
            image[:, :, dy:dy + stride * out_h:stride, dx:dx + stride * out_w:stride] += col[:, :, dy, dx, :, :]
    return image[:, :, pad:h + pad, pad:w + pad]


class BookConvolution:
    def __init__(self, W, b, stride=1, pad=0):
        self.W, self.b, self.stride, self.pad = W, b, stride, pad
        self.x = self.col = self.col_W = self.dW = self.db = None

    def forward(self, x):
        fn, _, fh, fw = self.W.shape
        n, _, h, w = x.shape
        out_h = (h + 2 * self.pad - fh) // self.stride + 1
        out_w = (w + 2 * self.pad - fw) // self.stride + 1
        col = book_im2col(x, fh, fw, self.stride, self.pad)
        col_W = self.W.reshape(fn, -1).T
        out = np.dot(col, col_W) + self.b
        self.x, self.col, self.col_W = x, col, col_W
        return out.reshape(n, out_h, out_w, -1).transpose(0, 3, 1, 2)

    def backward(self, dout):
        fn, c, fh, fw = self.W.shape
        dout = dout.transpose(0, 2, 3, 1).reshape(-1, fn)
        self.db = np.sum(dout, axis=0)
        self.dW = np.dot(self.col.T, dout).transpose(1, 0).reshape(fn, c, fh, fw)
        dcol = np.dot(dout, self.col_W.T)
        return book_col2im(dcol, self.x.shape, fh, fw, self.stride, self.pad)


class BookPooling:
    def __init__(self, pool_h, pool_w, stride=1, pad=0):
        self.pool_h, self.pool_w, self.stride, self.pad = pool_h, pool_w, stride, pad
        self.x = self.arg_max = None

    def forward(self, x):
        n, c, h, w = x.shape
        out_h = (h - self.pool_h) // self.stride + 1
        out_w = (w - self.pool_w) // self.stride + 1
        col = book_im2col(x, self.pool_h, self.pool_w, self.stride, self.pad).reshape(-1, self.pool_h * self.pool_w)
        self.x, self.arg_max = x, np.argmax(col, axis=1)
        return np.max(col, axis=1).reshape(n, out_h, out_w, c).transpose(0, 3, 1, 2)

    def backward(self, dout):
        dout = dout.transpose(0, 2, 3, 1)
        size = self.pool_h * self.pool_w
        dmax = np.zeros((dout.size, size), dtype=dout.dtype)
        dmax[np.arange(self.arg_max.size), self.arg_max.flatten()] = dout.flatten()
        dcol = dmax.reshape(dout.shape + (size,)).reshape(dout.shape[0] * dout.shape[1] * dout.shape[2], -1)
        return book_col2im(dcol, self.x.shape, self.pool_h, self.pool_w, self.stride, self.pad)


class BookRelu:
    def __init__(self):
        self.mask = None

    def forward(self, x):
        self.mask = x <= 0
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout):
        dout[self.mask] = 0
        return dout


class BookAffine:
    def __init__(self, W, b):
        self.W, self.b = W, b
        self.x = self.original_x_shape = self.dW = self.db = None

    def forward(self, x):
        self.original_x_shape = x.shape
        self.x = x.reshape(x.shape[0], -1)
        return np.dot(self.x, self.W) + self.b

    def backward(self, dout):
        dx = np.dot(dout, self.W.T)
        self.dW, self.db = np.dot(self.x.T, dout), np.sum(dout, axis=0)
        return dx.reshape(*self.original_x_shape)


class BookSoftmaxWithLoss:
    def __init__(self):
        self.y = self.t = None

    def forward(self, x, t):
        x = x - np.max(x, axis=-1, keepdims=True)
        self.t, self.y = t, np.exp(x) / np.sum(np.exp(x), axis=-1, keepdims=True)
        return -np.sum(np.log(self.y[np.arange(len(t)), t] + 1e-7)) / len(t)

    def backward(self, dout=1):
        dx = self.y.copy()
        dx[np.arange(len(self.t)), self.t] -= 1
        return dx / len(self.t)


class BookSimpleConvNet:
    """The book's SimpleConvNet over a params dict W1, b1, W2, b2, W3, b3 (the layers hold the same arrays)."""

    def __init__(self, params):
        self.params = params
        self.layers = [BookConvolution(params["W1"], params["b1"]), BookRelu(), BookPooling(2, 2, stride=2),
                       BookAffine(params["W2"], params["b2"]), BookRelu(), BookAffine(params["W3"], params["b3"])]
        self.last_layer = BookSoftmaxWithLoss()

    def loss(self, x, t):
        for layer in self.layers:
            x = layer.forward(x)
        return self.last_layer.forward(x, t)

    def gradient(self, x, t):
        self.loss(x, t)
        dout = self.last_layer.backward(1)
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        grads = {}
        for i, index in enumerate((0, 3, 5), start=1):
            grads[f"W{i}"], grads[f"b{i}"] = self.layers[index].dW, self.layers[index].db
        return grads


def book_step(network, x, t):
    """One book-style step: ``grads = network.gradient(x, t)``, then SGD on every key."""
    grads = network.gradient(x, t)
    for key in network.params:
        network.params[key] -= LR * grads[key]


# ---------------------------------------------------------------- this library, and PyTorch


def library_step(method):
    """A step by ``mg.value_and_grad(..., method, train=True)``, then SGD in place: ``g *= lr; p -= g``."""

    def step(state, x, t):
        net, params = state
        _, grads = mg.value_and_grad(net, params, x, t, method=method, train=True)
        for layer, layer_grads in zip(params, grads):
            for name, g in layer_grads.items():
                g *= LR
                layer[name] -= g

    return step


def torch_state(params, dtype):
    """PyTorch tensors of the same params (dense weights kept (in, out), as here)."""
    import torch

    torch.set_num_threads(int(_THREADS))
    return [{k: torch.tensor(v, requires_grad=True) for k, v in layer.items()} for layer in params]


def torch_step(params, x, t):
    """The same step in PyTorch: conv2d, relu, max_pool2d, two affine layers, cross-entropy, backward, SGD."""
    import torch
    import torch.nn.functional as F

    x, t = torch.from_numpy(x), torch.from_numpy(t)
    h = F.max_pool2d(F.relu(F.conv2d(x, params[0]["W"], params[0]["b"])), 2)
    h = F.relu(h.reshape(len(x), -1) @ params[1]["W"] + params[1]["b"])
    loss = F.cross_entropy(h @ params[2]["W"] + params[2]["b"], t)
    loss.backward()
    with torch.no_grad():
        for layer in params:
            for p in layer.values():
                p -= LR * p.grad
                p.grad = None


def make_state(impl, dtype):
    """``(state, step)`` for one implementation; every implementation starts from the same params."""
    net = mg.simple_convnet(dtype=dtype)
    params = net.init(0)
    if impl == "book":
        book = {f"{k}{i}": layer[k] for i, layer in enumerate(params, start=1) for k in ("W", "b")}
        return BookSimpleConvNet(book), book_step
    if impl == "torch":
        return torch_state(params, dtype), torch_step
    return (net, params), library_step(impl)


def final_params(impl, state):
    """The flat list of parameter arrays after the run, in a common order (W1, b1, W2, b2, W3, b3)."""
    if impl == "book":
        return [state.params[f"{k}{i}"] for i in (1, 2, 3) for k in ("W", "b")]
    layers = state if impl == "torch" else state[1]
    return [np.asarray(layer[k].detach().numpy() if impl == "torch" else layer[k]) for layer in layers
            for k in ("W", "b")]


# ---------------------------------------------------------------- data and memory


def load_batches(count, dtype):
    """``count`` batches ``(x (100, 1, 28, 28) in [0, 1], labels (100,))``: MNIST's first images if present."""
    n = count * BATCH
    images, labels = MNIST / "train-images-idx3-ubyte.gz", MNIST / "train-labels-idx1-ubyte.gz"
    if images.exists() and labels.exists():
        with gzip.open(images, "rb") as f:  # stream only the first n images
            f.read(16)
            x = np.frombuffer(f.read(n * 784), dtype=np.uint8).reshape(n, 1, 28, 28) / 255.0
        with gzip.open(labels, "rb") as f:
            f.read(8)
            t = np.frombuffer(f.read(n), dtype=np.uint8).astype(np.int64)
        used = f"mnist (first {n} training images)"
    else:
        rng = np.random.default_rng(0)
        x, t, used = rng.random((n, 1, 28, 28)), rng.integers(0, 10, n), "synthetic uniform [0, 1)"
    x = x.astype(dtype)
    return [(x[i * BATCH:(i + 1) * BATCH], t[i * BATCH:(i + 1) * BATCH]) for i in range(count)], used


def own_peak_rss_mb():
    """This process's peak RSS in MB: VmHWM from /proc (Linux; ru_maxrss would carry the parent's over fork)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def peak_rss_child(impl, dtype, steps):
    """Run ``steps`` steps of ``impl`` here (after one batch is loaded) and return the peak RSS in MB."""
    if impl != "baseline":
        batches, _ = load_batches(1, dtype)
        state, step = make_state(impl, dtype)
        for _ in range(steps):
            step(state, *batches[0])
    return own_peak_rss_mb()


def peak_rss(impl, dtype, steps):
    """Peak RSS (MB) of a fresh interpreter importing the library and running ``steps`` steps of ``impl``."""
    cmd = [sys.executable, __file__, "--threads", _THREADS, "--memory-child", impl, dtype, str(steps)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return float(json.loads(out.strip().splitlines()[-1])["peak_rss_mb"])


# ---------------------------------------------------------------- the run


def run(repeats, block, memory_steps, dtypes):
    """Step times interleaved in blocks (each round a fresh random order), final-params agreement, peak RSS."""
    impls = implementations()
    batches = {dt: load_batches(4, dt) for dt in dtypes}
    states = {(impl, dt): make_state(impl, dt) for dt in dtypes for impl in impls}
    times = {key: [] for key in states}
    order, rng = list(impls), np.random.default_rng(0)
    for _ in range(-(-repeats // (block - 1))):
        rng.shuffle(order)
        for dt in dtypes:
            data = batches[dt][0]
            for impl in order:
                state, step = states[impl, dt]
                for i in range(block):  # the block's first step warms caches and is not counted
                    x, t = data[i % len(data)]
                    start = time.perf_counter()
                    step(state, x, t)
                    if i:
                        times[impl, dt].append(time.perf_counter() - start)
    results = []
    for dt in dtypes:
        med = {impl: float(np.median(times[impl, dt])) for impl in impls}
        reference = final_params("book", states["book", dt][0])
        for impl in impls:
            got = final_params(impl, states[impl, dt][0])
            diff = max(float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30)) for a, b in zip(got, reference))
            results.append({"dtype": dt, "impl": impl, "median_ms": med[impl] * 1e3,
                            "min_ms": float(np.min(times[impl, dt])) * 1e3,
                            "max_ms": float(np.max(times[impl, dt])) * 1e3,
                            "ratio_to_book": med[impl] / med["book"], "ratio_to_backprop": med[impl] / med["backprop"],
                            "params_max_rel_diff_vs_book": diff})
    memory = [{"impl": "baseline", "dtype": "-", "peak_rss_mb": peak_rss("baseline", "float64", 0)}]
    memory += [{"impl": impl, "dtype": dt, "peak_rss_mb": peak_rss(impl, dt, memory_steps)}
               for dt in dtypes for impl in impls]
    return {
        "benchmark": "conv_step",
        "config": {"network": [layer.name for layer in mg.simple_convnet().layers], "batch": BATCH, "lr": LR,
                   "repeats": len(next(iter(times.values()))), "block": block, "threads": int(_THREADS),
                   "memory_steps": memory_steps, "data": batches[dtypes[0]][1], "torch": "torch" in impls,
                   "numpy": np.__version__, "python": platform.python_version(), "machine": platform.machine(),
                   "cpus": os.cpu_count(), "load_average": list(os.getloadavg())},
        "results": results, "memory": memory, "targets": targets_met(results, memory),
    }


def targets_met(results, memory):
    """Each target with the measured figure, per dtype: {'name', 'dtype', 'limit', 'value', 'met'}."""
    out = []
    for r in results:
        if r["impl"] == "backprop":
            out.append({"name": "backprop_vs_book", "dtype": r["dtype"], "limit": TARGETS["backprop_vs_book"],
                        "value": r["ratio_to_book"]})
        if r["impl"] == "autograd-fused":
            out.append({"name": "fused_vs_backprop", "dtype": r["dtype"], "limit": TARGETS["fused_vs_backprop"],
                        "value": r["ratio_to_backprop"]})
    for m in memory:
        if m["impl"] in ("backprop", "autograd-fused"):
            out.append({"name": f"peak_rss_mb {m['impl']}", "dtype": m["dtype"], "limit": TARGETS["peak_rss_mb"],
                        "value": m["peak_rss_mb"]})
    for target in out:
        target["met"] = target["value"] <= target["limit"]
    return out


def print_report(report):
    """The report as plain-text tables."""
    cfg = report["config"]
    print(f"conv step: SimpleConvNet ({' -> '.join(cfg['network'])}), batch {cfg['batch']}, {cfg['threads']} "
          f"BLAS thread(s), {cfg['repeats']} timed steps each (interleaved in blocks of {cfg['block']}), "
          f"data: {cfg['data']}, load average {cfg['load_average'][0]:.2f}"
          + ("" if cfg["torch"] else "; torch not importable: no torch row"))
    print(f"{'dtype':8} {'implementation':15} {'median ms':>9} {'min ms':>7} {'max ms':>7} {'÷book':>6} "
          f"{'÷backprop':>9} {'params vs book':>14}")
    for r in report["results"]:
        print(f"{r['dtype']:8} {r['impl']:15} {r['median_ms']:9.2f} {r['min_ms']:7.2f} {r['max_ms']:7.2f} "
              f"{r['ratio_to_book']:6.2f} {r['ratio_to_backprop']:9.2f} {r['params_max_rel_diff_vs_book']:14.1e}")
    print("peak RSS (fresh process each): " + ", ".join(
        f"{m['impl']}{'' if m['dtype'] == '-' else ' ' + m['dtype']} {m['peak_rss_mb']:.1f} MB"
        for m in report["memory"]))
    for target in report["targets"]:
        print(f"target {target['name']} ({target['dtype']}): {target['value']:.2f} <= {target['limit']:g}: "
              f"{'met' if target['met'] else 'MISSED'}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few repeats only (seconds; for CI)")
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON to PATH")
    parser.add_argument("--threads", default=_THREADS, help="BLAS threads (default 1)")
    parser.add_argument("--repeats", type=int, help="timed steps per implementation and dtype (default 60)")
    parser.add_argument("--dtypes", default="float64,float32", help="comma-separated (default float64,float32)")
    parser.add_argument("--memory-child", nargs=3, metavar=("IMPL", "DTYPE", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        impl, dtype, steps = args.memory_child
        print(json.dumps({"peak_rss_mb": peak_rss_child(impl, dtype, int(steps))}))
        return 0
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    for dt in dtypes:
        if dt not in ("float32", "float64"):
            parser.error(f"--dtypes takes float32 and/or float64, got {dt!r}")
    repeats = args.repeats or (3 if args.quick else 60)
    report = run(repeats, 4 if args.quick else 6, 2 if args.quick else 10, dtypes)
    report["config"]["quick"] = bool(args.quick)
    print_report(report)
    if args.json:
        atomic_write(args.json, lambda f: json.dump(report, f, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
