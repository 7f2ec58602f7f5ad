"""Time one training step (gradient + SGD update) of the book's 784-100-100-100-100-10 ReLU network at batch 128.

Implementations, timed interleaved in one process so machine noise hits them alike:

- ``book``: the book's way, written out below (its MultiLayerNet: Affine / Relu /
  SoftmaxWithLoss objects with forward / backward, the weight-decay terms computed
  even at λ = 0 as the book does, and SGD ``params[key] -= lr * grads[key]``);
- ``backprop``, ``autograd``, ``autograd-fused``: ``mg.value_and_grad`` by that
  method, then the same in-place SGD update on every leaf;
- ``numpy-bound``: the leanest step plain numpy allows (written out below): no
  checks, preallocated buffers, the learning rate folded into the backward pass.
  Not a usable implementation: a bound on how close to the floor any numpy
  step can come, to judge the library's figures by;
- ``backprop adam``: the backprop step with the book's Adam (lr 0.001) written
  out in place over preallocated temporaries, the raw step fit's Adam rows
  compare with;
- ``book loop``, ``backprop loop``: those steps fed as the book's training loop
  feeds them, ``x_train[np.random.choice(n, 128)]`` over fit's training set:
  gathering a minibatch from a dataset costs a training loop ≈50–100 µs
  (memory-bound), which the raw rows, cycling through 4 batches in cache, do not pay;
- ``fit <method> <optimizer>``: what users run, ``mg.fit`` itself (backprop or
  autograd-fused; SGD lr 0.01 or Adam lr 0.001) on the first 2,560 images, one
  call of ``FIT_ITERATIONS`` iterations a round (evaluations only before and
  after, on one batch), at the same BLAS thread count; its time is the call's
  wall time over its iterations, so every per-iteration cost of fit is in it
  (minibatch gathering, the optimizer, history, the thread policy's look).

Also measured: the matrix-product floor (the step's 14 matrix products alone,
back to back, into preallocated outputs) and from it this machine's matmul
GFLOP/s for exactly these shapes; each step's GFLOP/s counts those products
only. Peak RSS is measured per (implementation, dtype) in a fresh subprocess.

    .venv/bin/python benchmarks/train_step.py [--quick] [--json PATH] [--threads 2] [--blas-coretype NAME]
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


_THREADS = str(_option_from_argv(sys.argv, "--threads", 2))
_CORETYPE = _option_from_argv(sys.argv, "--blas-coretype", None)
if "numpy" not in sys.modules:  # else imported by a script (grad_methods.py) that has chosen already
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _THREADS
    if _CORETYPE:
        os.environ["OPENBLAS_CORETYPE"] = _CORETYPE

import argparse  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import OrderedDict  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import minigrad_nets as mg  # noqa: E402

SIZES = (784, 100, 100, 100, 100, 10)
BATCH = 128
LR = 0.01
STEPS = ("book", "numpy-bound", "backprop", "autograd", "autograd-fused", "backprop adam")
LOOPS = ("book loop", "backprop loop")  # the step fed by a training loop's minibatch gather, as fit is
SAME_STEPS_AS_BOOK = ("book", "numpy-bound", "backprop", "autograd", "autograd-fused")
FIT_RUNS = (("backprop", "sgd"), ("backprop", "adam"), ("autograd-fused", "sgd"), ("autograd-fused", "adam"))
FITS = tuple(f"fit {method} {optimizer}" for method, optimizer in FIT_RUNS)
IMPLEMENTATIONS = STEPS + LOOPS + FITS
FIT_IMAGES = 20 * BATCH  # fit's training set: the first 2,560 MNIST images
FIT_ITERATIONS = 200  # per fit call (one call, one timing, a round)
FIT_MEMORY_ITERATIONS = 500
MNIST_IMAGES = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mnist" / "train-images-idx3-ubyte.gz"


# ---------------------------------------------------------------- the book's way (the reference)


class BookAffine:
    def __init__(self, W, b):
        self.W, self.b = W, b
        self.x = self.original_x_shape = self.dW = self.db = None

    def forward(self, x):
        self.original_x_shape = x.shape
        x = x.reshape(x.shape[0], -1)
        self.x = x
        return np.dot(self.x, self.W) + self.b

    def backward(self, dout):
        dx = np.dot(dout, self.W.T)
        self.dW = np.dot(self.x.T, dout)
        self.db = np.sum(dout, axis=0)
        return dx.reshape(*self.original_x_shape)


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


def book_softmax(x):
    x = x - np.max(x, axis=-1, keepdims=True)
    return np.exp(x) / np.sum(np.exp(x), axis=-1, keepdims=True)


def book_cross_entropy_error(y, t):
    if y.ndim == 1:
        t = t.reshape(1, t.size)
        y = y.reshape(1, y.size)
    if t.size == y.size:  # one-hot targets -> label indices
        t = t.argmax(axis=1)
    batch_size = y.shape[0]
    return -np.sum(np.log(y[np.arange(batch_size), t] + 1e-7)) / batch_size


class BookSoftmaxWithLoss:
    def __init__(self):
        self.loss = self.y = self.t = None

    def forward(self, x, t):
        self.t = t
        self.y = book_softmax(x)
        self.loss = book_cross_entropy_error(self.y, self.t)
        return self.loss

    def backward(self, dout=1):
        batch_size = self.t.shape[0]
        if self.t.size == self.y.size:  # one-hot targets
            dx = (self.y - self.t) / batch_size
        else:
            dx = self.y.copy()
            dx[np.arange(batch_size), self.t] -= 1
            dx = dx / batch_size
        return dx


class BookMultiLayerNet:
    """The book's MultiLayerNet: an OrderedDict of layers over a params dict.

    As in the book, the weight-decay terms are computed even when λ = 0 (its default).
    """

    def __init__(self, params, weight_decay_lambda=0):
        self.params = params
        self.weight_decay_lambda = weight_decay_lambda
        self.hidden_layer_num = len(params) // 2 - 1
        self.layers = OrderedDict()
        for idx in range(1, self.hidden_layer_num + 1):
            self.layers[f"Affine{idx}"] = BookAffine(params[f"W{idx}"], params[f"b{idx}"])
            self.layers[f"Activation_function{idx}"] = BookRelu()
        idx = self.hidden_layer_num + 1
        self.layers[f"Affine{idx}"] = BookAffine(params[f"W{idx}"], params[f"b{idx}"])
        self.last_layer = BookSoftmaxWithLoss()

    def predict(self, x):
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def loss(self, x, t):
        y = self.predict(x)
        weight_decay = 0
        for idx in range(1, self.hidden_layer_num + 2):
            W = self.params[f"W{idx}"]
            weight_decay += 0.5 * self.weight_decay_lambda * np.sum(W ** 2)
        return self.last_layer.forward(y, t) + weight_decay

    def gradient(self, x, t):
        self.loss(x, t)
        dout = 1
        dout = self.last_layer.backward(dout)
        layers = list(self.layers.values())
        layers.reverse()
        for layer in layers:
            dout = layer.backward(dout)
        grads = {}
        for idx in range(1, self.hidden_layer_num + 2):
            affine = self.layers[f"Affine{idx}"]
            grads[f"W{idx}"] = affine.dW + self.weight_decay_lambda * affine.W
            grads[f"b{idx}"] = affine.db
        return grads


class BookSGD:
    """The book's SGD: ``params[key] -= self.lr * grads[key]`` for every key."""

    def __init__(self, lr=0.01):
        self.lr = lr

    def update(self, params, grads):
        for key in params.keys():
            params[key] -= self.lr * grads[key]


def book_step(state, x, t):
    """One book-style step, as the book's training loop does it: ``grads = network.gradient(x, t)``, ``optimizer.update``."""
    network, optimizer = state
    grads = network.gradient(x, t)
    optimizer.update(network.params, grads)


# ---------------------------------------------------------------- the leanest numpy step (a bound)


class NumpyBound:
    """The leanest value-and-update step numpy allows for this MLP: labels only, no checks, no allocations.

    Every buffer is preallocated and written with ``out=``; bias and ReLU are applied
    in place; the learning rate is folded into the output gradient ((softmax -
    onehot) * lr/B), so every weight gradient comes out already scaled and the
    update is one pass ``p -= g`` per leaf. The 14 matrix products are the floor's.
    """

    def __init__(self, params, batch=BATCH):
        self.W = [layer["W"] for layer in params]  # updated in place, as the other implementations do
        self.b = [layer["b"] for layer in params]
        dtype = self.W[0].dtype
        widths = [w.shape[1] for w in self.W]
        self.z = [np.empty((batch, n), dtype) for n in widths]  # each layer's output (after its ReLU)
        self.dx = [np.empty((batch, w.shape[0]), dtype) for w in self.W]
        self.mask = [np.empty((batch, n), bool) for n in widths]
        self.gW = [np.empty_like(w) for w in self.W]
        self.gb = [np.empty_like(b) for b in self.b]
        self.zeros = [np.zeros(n, dtype) for n in widths]
        self.ones_batch, self.ones_classes = np.ones(batch, dtype), np.ones(widths[-1], dtype)
        self.rows = np.arange(batch)
        self.scale = np.asarray(LR / batch, dtype)

    def step(self, x, t):
        """Forward, loss, backward and SGD update; returns the loss."""
        last = len(self.W) - 1
        h = x
        for i, (W, b, z) in enumerate(zip(self.W, self.b, self.z)):
            np.matmul(h, W, out=z)
            z += b
            if i < last:
                np.maximum(z, self.zeros[i], out=z)
            h = z
        logits, rows = h, self.rows
        m = logits[rows, logits.argmax(axis=1)]
        label_logits = logits[rows, t]
        logits -= m[:, None]
        np.exp(logits, out=logits)  # the logits buffer becomes the output gradient from here on
        norm = logits @ self.ones_classes
        loss = float(np.log(norm).sum() + (m - label_logits).sum()) / len(t)
        logits /= norm[:, None]
        logits[rows, t] -= 1
        logits *= self.scale
        d = logits
        for i in range(last, -1, -1):
            h_in = self.z[i - 1] if i else x
            np.matmul(h_in.T, d, out=self.gW[i])
            np.matmul(self.ones_batch, d, out=self.gb[i])
            if i:
                np.matmul(d, self.W[i].T, out=self.dx[i])
                np.greater(h_in, 0, out=self.mask[i - 1])
                np.multiply(self.dx[i], self.mask[i - 1], out=self.dx[i])
            self.W[i] -= self.gW[i]
            self.b[i] -= self.gb[i]
            d = self.dx[i]
        return loss


def bound_step(bound, x, t):
    """One step of the numpy bound."""
    bound.step(x, t)


# ---------------------------------------------------------------- this library


def library_step(method):
    """A step by ``mg.value_and_grad(..., method)``, then SGD in place: ``g *= lr; p -= g`` (the grads are ours)."""

    def step(state, x, t):
        net, params = state
        _, grads = mg.value_and_grad(net, params, x, t, method=method)
        for layer, layer_grads in zip(params, grads):
            for name, g in layer_grads.items():
                g *= LR
                layer[name] -= g

    return step


class RawAdam:
    """The book's Adam written out in place, over preallocated temporaries (the leanest numpy Adam step)."""

    def __init__(self, params, lr=0.001, beta1=0.9, beta2=0.999):
        self.lr, self.b1, self.b2, self.step_count = lr, beta1, beta2, 0
        leaves = [(layer, name) for layer in params for name in layer]
        self.m = [np.zeros_like(layer[name]) for layer, name in leaves]
        self.v = [np.zeros_like(layer[name]) for layer, name in leaves]
        self.tmp = [np.empty_like(layer[name]) for layer, name in leaves]

    def update(self, params, grads):
        self.step_count += 1
        lr_t = self.lr * np.sqrt(1.0 - self.b2 ** self.step_count) / (1.0 - self.b1 ** self.step_count)
        k = 0
        for layer, layer_grads in zip(params, grads):
            for name, g in layer_grads.items():
                m, v, tmp = self.m[k], self.v[k], self.tmp[k]
                dt = g.dtype.type
                np.subtract(g, m, out=tmp)
                tmp *= dt(1 - self.b1)
                m += tmp
                g *= g  # the gradient is ours: it becomes the scratch of the second moment
                g -= v
                g *= dt(1 - self.b2)
                v += g
                np.sqrt(v, out=tmp)
                tmp += dt(1e-7)
                np.multiply(m, dt(lr_t), out=g)
                g /= tmp
                layer[name] -= g
                k += 1


def library_adam_step(state, x, t):
    """A step by ``mg.value_and_grad(..., 'backprop')``, then ``RawAdam`` in place."""
    net, params, adam = state
    _, grads = mg.value_and_grad(net, params, x, t, method="backprop")
    adam.update(params, grads)


class FitRun:
    """``mg.fit`` as users call it; each call continues from the params the last one returned."""

    def __init__(self, impl, dtype, data, iterations):
        _, self.method, optimizer = impl.split()
        self.net = mg.mlp(SIZES[0], SIZES[1:-1], SIZES[-1], activation="relu", init="he", dtype=dtype)
        self.params = self.net.init(0)
        self.optimizer = mg.sgd(lr=LR) if optimizer == "sgd" else mg.adam(lr=0.001)
        self.data, self.iterations, self.calls = data, iterations, 0

    def run(self):
        """One fit call of ``iterations`` iterations."""
        result = mg.fit(self.net, self.params, self.optimizer, self.data, iterations=self.iterations,
                        batch_size=BATCH, seed=self.calls, method=self.method, eval_every=self.iterations,
                        eval_samples=BATCH, progress=False, threads=int(_THREADS))
        self.params, self.calls = result.params, self.calls + 1
        return result


def fit_data(dtype, source="auto"):
    """fit's training set: ``(x (FIT_IMAGES, 784), labels)``."""
    batches, _ = load_batches(FIT_IMAGES // BATCH, dtype, source)
    return np.concatenate([x for x, _ in batches]), np.concatenate([t for _, t in batches])


def loop_step(step):
    """``step`` fed as the book's training loop feeds it: ``batch_mask = np.random.choice(n, 128)`` over fit's
    training set, ``x_train[batch_mask]`` (the batch given to the step is ignored)."""

    def fed(state, x, t):
        inner, (x_train, t_train), rng = state
        mask = rng.choice(len(x_train), BATCH)
        step(inner, x_train[mask], t_train[mask])

    return fed


def make_state(impl, dtype, data=None):
    """``(state, step)`` for one implementation; every implementation starts from the same params.

    A loop row (``LOOPS``) gathers its minibatches from ``data``, fit's training set."""
    if impl in LOOPS:
        inner, step = make_state(impl.split()[0], dtype)
        return (inner, data, np.random.default_rng(0)), loop_step(step)
    net = mg.mlp(SIZES[0], SIZES[1:-1], SIZES[-1], activation="relu", init="he", dtype=dtype)
    params = net.init(0)
    if impl == "book":
        book_params = {}
        for i, layer in enumerate(params, start=1):
            book_params[f"W{i}"], book_params[f"b{i}"] = layer["W"], layer["b"]
        return (BookMultiLayerNet(book_params), BookSGD(LR)), book_step
    if impl == "numpy-bound":
        return NumpyBound(params), bound_step
    if impl == "backprop adam":
        return (net, params, RawAdam(params)), library_adam_step
    return (net, params), library_step(impl)


def final_params(impl, state):
    """The flat list of parameter arrays after the run, in a common order."""
    if impl == "book":
        p = state[0].params
        return [a for i in range(1, len(p) // 2 + 1) for a in (p[f"W{i}"], p[f"b{i}"])]
    if impl == "numpy-bound":
        return [a for W, b in zip(state.W, state.b) for a in (W, b)]
    return [a for layer in state[1] for a in (layer["W"], layer["b"])]


# ---------------------------------------------------------------- data, floor, FLOPs


def load_batches(count, dtype, source="auto"):
    """``count`` batches ``(x (128, 784) in [0, 1], labels (128,))``: real MNIST images if present, else synthetic."""
    n = count * BATCH
    if source in ("auto", "mnist") and MNIST_IMAGES.exists():
        with gzip.open(MNIST_IMAGES, "rb") as f:  # stream only the first n images, not the whole file
            f.read(16)
            pixels = np.frombuffer(f.read(n * 784), dtype=np.uint8)
        labels_path = MNIST_IMAGES.with_name("train-labels-idx1-ubyte.gz")
        with gzip.open(labels_path, "rb") as f:
            f.read(8)
            labels = np.frombuffer(f.read(n), dtype=np.uint8).astype(np.int64)
        x, used = (pixels.reshape(n, 784) / 255.0).astype(dtype), "mnist (first %d training images)" % n
    elif source == "mnist":
        raise SystemExit(f"MNIST not found at {MNIST_IMAGES}")
    else:
        rng = np.random.default_rng(0)
        x, labels, used = rng.random((n, 784)).astype(dtype), rng.integers(0, 10, n), "synthetic uniform [0, 1)"
    return [(x[i * BATCH:(i + 1) * BATCH], labels[i * BATCH:(i + 1) * BATCH]) for i in range(count)], used


def matmul_flops(sizes=SIZES, batch=BATCH):
    """FLOPs of a step's matrix products: forward, weight gradient, and input gradient except the first layer's."""
    pairs = list(zip(sizes[:-1], sizes[1:]))
    return sum(2 * batch * a * b * (3 if i > 0 else 2) for i, (a, b) in enumerate(pairs))


def matmul_floor(dtype, repeats):
    """Seconds per run of exactly the step's matrix products (same shapes), into preallocated outputs."""
    rng = np.random.default_rng(0)
    pairs = list(zip(SIZES[:-1], SIZES[1:]))
    W = [rng.standard_normal((a, b)).astype(dtype) for a, b in pairs]
    h = [rng.standard_normal((BATCH, a)).astype(dtype) for a, _ in pairs]
    d = [rng.standard_normal((BATCH, b)).astype(dtype) for _, b in pairs]
    out_f = [np.empty((BATCH, b), dtype) for _, b in pairs]
    out_w = [np.empty((a, b), dtype) for a, b in pairs]
    out_x = [np.empty((BATCH, a), dtype) for a, _ in pairs]

    def products():
        for i in range(len(pairs)):
            np.matmul(h[i], W[i], out=out_f[i])
        for i in range(len(pairs) - 1, -1, -1):
            np.matmul(h[i].T, d[i], out=out_w[i])
            if i:
                np.matmul(d[i], W[i].T, out=out_x[i])

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        products()
        times.append(time.perf_counter() - start)
    return np.array(times)


def openblas_core():
    """The kernel set numpy's OpenBLAS runs with (e.g. 'Haswell', 'SkylakeX'), or None if it cannot be asked."""
    import ctypes
    import glob

    libs = glob.glob(str(Path(np.__file__).parent.parent / "numpy.libs" / "*openblas*"))
    for lib_path in libs:
        lib = ctypes.CDLL(lib_path)
        for name in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename", "openblas_get_corename"):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.restype = ctypes.c_char_p
                return fn().decode()
    return None


# ---------------------------------------------------------------- memory (child process)


def peak_rss_child(impl, dtype, steps):
    """Run ``steps`` training steps here (for a fit row: one fit call of ``steps`` iterations, its data
    included) and return this process's peak RSS in MB."""
    if impl in FITS:
        FitRun(impl, dtype, fit_data(dtype), steps).run()
    elif impl == "fit data":
        fit_data(dtype)  # loading fit's training set alone: how much of a fit row's peak is the data
    elif impl != "baseline":
        batches, _ = load_batches(1, dtype)
        state, step = make_state(impl, dtype)
        for _ in range(steps):
            step(state, *batches[0])
    return own_peak_rss_mb()


def own_peak_rss_mb():
    """This process's peak RSS in MB: VmHWM from /proc (Linux), else ru_maxrss.

    ru_maxrss alone would not do for a child: Linux carries the parent's peak
    over fork + exec, so every child would report at least the parent's size.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def peak_rss(impl, dtype, steps):
    """Peak RSS (MB) of a fresh interpreter importing the library and running ``steps`` steps of ``impl``."""
    cmd = [sys.executable, __file__, "--threads", _THREADS, "--memory-child", impl, dtype, str(steps)]
    if _CORETYPE:
        cmd[2:2] = ["--blas-coretype", _CORETYPE]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return float(json.loads(out.strip().splitlines()[-1])["peak_rss_mb"])


# ---------------------------------------------------------------- where the time goes (cProfile)


def profile_steps(impl, dtype, steps):
    """cProfile ``steps`` steps of ``impl``: Python calls and traced autograd operations per step, top functions."""
    import cProfile
    import pstats

    batches, _ = load_batches(1, dtype)
    state, step = make_state(impl, dtype)
    step(state, *batches[0])
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        step(state, *batches[0])
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # (file, line, name) -> (primitive calls, calls, tottime, cumtime, callers)
    total_calls = sum(entry[1] for entry in stats.values())
    total_time = sum(entry[2] for entry in stats.values())
    import autograd.core

    node_init = autograd.core.VJPNode.__init__.__code__
    traced = sum(entry[1] for (file, line, name), entry in stats.items()
                 if (file, line, name) == (node_init.co_filename, node_init.co_firstlineno, "__init__"))
    top = sorted(stats.items(), key=lambda item: -item[1][2])[:8]
    return {
        "impl": impl, "dtype": dtype, "steps": steps,
        "python_calls_per_step": total_calls / steps,
        "traced_operations_per_step": traced / steps,  # autograd graph nodes (VJPNode) built per step
        "profiled_ms_per_step": total_time / steps * 1e3,
        "top_functions": [{"function": f"{Path(file).name}:{line}({name})", "calls_per_step": entry[1] / steps,
                           "share_of_time": entry[2] / total_time} for (file, line, name), entry in top],
    }


# ---------------------------------------------------------------- the run


def run(repeats, block, memory_steps, dtypes, data, profile_steps_count, fit_iterations=FIT_ITERATIONS,
        fit_memory_iterations=FIT_MEMORY_ITERATIONS):
    """All measurements: step and fit times, the matmul floor, peak RSS. Returns the JSON-ready report.

    Interleaved in blocks: each round visits every implementation in a fresh random
    order and runs ``block`` steps of it back to back (as training does, so BLAS
    threads stay awake), timing each step and dropping the block's first; a fit
    row's block is one fit call of ``fit_iterations`` iterations, timed whole.
    """
    batches = {dt: load_batches(4, dt, data) for dt in dtypes}
    fit_sets = {dt: fit_data(dt, data) for dt in dtypes}
    states = {(impl, dt): make_state(impl, dt, fit_sets[dt]) for dt in dtypes for impl in STEPS + LOOPS}
    states.update({(impl, dt): FitRun(impl, dt, fit_sets[dt], fit_iterations) for dt in dtypes for impl in FITS})
    times = {key: [] for key in states}
    floor = {dt: [] for dt in dtypes}
    order = list(IMPLEMENTATIONS)
    rng = np.random.default_rng(0)
    for r in range(-(-repeats // (block - 1))):
        rng.shuffle(order)
        for dt in dtypes:
            data_batches = batches[dt][0]
            for impl in order:
                if impl in FITS:
                    start = time.perf_counter()
                    states[impl, dt].run()
                    times[impl, dt].append((time.perf_counter() - start) / fit_iterations)
                    continue
                state, step = states[impl, dt]
                for i in range(block):
                    x, t = data_batches[i % len(data_batches)]
                    start = time.perf_counter()
                    step(state, x, t)
                    elapsed = time.perf_counter() - start
                    if i:
                        times[impl, dt].append(elapsed)
            floor[dt].extend(matmul_floor(dt, block)[1:])

    flops = matmul_flops()
    results, floors = [], []
    for dt in dtypes:
        floor_median = float(np.median(floor[dt]))
        floors.append({"dtype": dt, "median_ms": floor_median * 1e3, "min_ms": float(np.min(floor[dt])) * 1e3,
                       "gflops": flops / floor_median / 1e9})
        med = {impl: float(np.median(times[impl, dt])) for impl in IMPLEMENTATIONS}
        mins = {impl: float(np.min(times[impl, dt])) for impl in IMPLEMENTATIONS}
        reference = final_params("book", states["book", dt][0])
        for impl in IMPLEMENTATIONS:
            diff = None  # loop and fit rows train on other batches, Adam takes other steps: nothing to compare
            if impl in SAME_STEPS_AS_BOOK:
                got = final_params(impl, states[impl, dt][0])
                diff = max(float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30)) for a, b in zip(got, reference))
            results.append({
                "dtype": dt, "impl": impl, "median_ms": med[impl] * 1e3, "min_ms": mins[impl] * 1e3,
                "max_ms": float(np.max(times[impl, dt])) * 1e3,
                "ratio_to_book": med[impl] / med["book"], "min_ratio_to_book": mins[impl] / mins["book"],
                "ratio_to_backprop": med[impl] / med["backprop"],
                "gflops": flops / med[impl] / 1e9, "fraction_of_matmul_peak": floor_median / med[impl],
                "params_max_rel_diff_vs_book": diff,
            })
    memory = [{"impl": "baseline", "dtype": "-", "peak_rss_mb": peak_rss("baseline", "float64", 0)}]
    memory += [{"impl": "fit data", "dtype": dt, "peak_rss_mb": peak_rss("fit data", dt, 0)} for dt in dtypes]
    memory += [{"impl": impl, "dtype": dt,
                "peak_rss_mb": peak_rss(impl, dt, fit_memory_iterations if impl in FITS else memory_steps)}
               for dt in dtypes for impl in IMPLEMENTATIONS if impl not in LOOPS]  # loops: a step + fit's data
    profiles = [profile_steps(impl, dt, profile_steps_count) for dt in dtypes[:1]
                for impl in ("backprop", "autograd", "autograd-fused")]
    return {
        "benchmark": "train_step",
        "config": {
            "sizes": list(SIZES), "batch": BATCH, "activation": "relu", "lr": LR, "repeats": len(times["book", dtypes[0]]),
            "fit_iterations_per_call": fit_iterations, "fit_calls": len(times[FITS[0], dtypes[0]]),
            "fit_images": FIT_IMAGES, "fit_memory_iterations": fit_memory_iterations,
            "block": block, "threads": int(_THREADS), "blas_core": openblas_core(),
            "blas_coretype_forced": _CORETYPE, "memory_steps": memory_steps, "data": batches[dtypes[0]][1],
            "matmul_flops_per_step": flops, "numpy": np.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "cpus": os.cpu_count(),
        },
        "results": results, "matmul_floor": floors, "memory": memory, "profiles": profiles,
        "targets": fit_targets(results, memory),
    }


# issue 13: (what, fit row, compared with, limit per dtype)
FIT_TARGETS = (
    ("fit backprop sgd ÷ raw backprop step", "fit backprop sgd", "backprop", {"float32": 1.10, "float64": 1.10}),
    ("fit backprop adam ÷ raw backprop step (SGD)", "fit backprop adam", "backprop",
     {"float32": 1.15, "float64": 1.15}),
    ("fit backprop adam ÷ raw backprop step with Adam", "fit backprop adam", "backprop adam",
     {"float32": 1.15, "float64": 1.15}),
    ("fit backprop sgd ÷ backprop loop (raw step + the loop's gather)", "fit backprop sgd", "backprop loop",
     {"float32": 1.10, "float64": 1.10}),
    ("fit autograd-fused sgd ÷ book", "fit autograd-fused sgd", "book", {"float32": 0.60, "float64": 0.65}),
    ("fit autograd-fused sgd ÷ book loop (book step + its loop's gather)", "fit autograd-fused sgd", "book loop",
     {"float32": 0.60, "float64": 0.65}),
    ("fit autograd-fused adam ÷ book", "fit autograd-fused adam", "book", {"float32": None, "float64": None}),
)
FIT_MEMORY_LIMIT_MB = 60  # beyond the imports


def fit_targets(results, memory):
    """The issue's fit targets against this run: ratios of medians, and fit's peak RSS beyond the imports."""
    med = {(r["impl"], r["dtype"]): r["median_ms"] for r in results}
    out = []
    for what, row, reference, limits in FIT_TARGETS:
        for dt, limit in limits.items():
            if (row, dt) in med:
                ratio = med[row, dt] / med[reference, dt]
                out.append({"target": what, "dtype": dt, "value": ratio, "limit": limit,
                            "met": None if limit is None else ratio <= limit})
    baseline = next(m["peak_rss_mb"] for m in memory if m["impl"] == "baseline")
    data = {m["dtype"]: m["peak_rss_mb"] for m in memory if m["impl"] == "fit data"}
    for m in memory:
        if m["impl"] in FITS:
            beyond = m["peak_rss_mb"] - baseline
            out.append({"target": f"{m['impl']} peak RSS beyond the imports (data loading included), MB",
                        "dtype": m["dtype"], "value": beyond, "limit": FIT_MEMORY_LIMIT_MB,
                        "met": beyond <= FIT_MEMORY_LIMIT_MB,
                        "beyond_imports_and_data_mb": m["peak_rss_mb"] - data[m["dtype"]]})
    return out


def print_report(report):
    """The report as plain-text tables."""
    cfg = report["config"]
    print(f"train step: {'-'.join(map(str, cfg['sizes']))} ReLU, batch {cfg['batch']}, {cfg['threads']} threads, "
          f"{cfg['repeats']} timed steps each (interleaved in blocks of {cfg['block']}), data: {cfg['data']}, "
          f"OpenBLAS kernels: {cfg['blas_core']}{' (forced)' if cfg['blas_coretype_forced'] else ''}")
    print(f"{'dtype':8} {'implementation':23} {'median ms':>9} {'min ms':>7} {'max ms':>7} {'÷book':>6} "
          f"{'min÷book':>8} {'÷backprop':>9} {'GFLOP/s':>8} {'of peak':>7}")
    for r in report["results"]:
        print(f"{r['dtype']:8} {r['impl']:23} {r['median_ms']:9.3f} {r['min_ms']:7.3f} {r['max_ms']:7.3f} "
              f"{r['ratio_to_book']:6.2f} {r['min_ratio_to_book']:8.2f} {r['ratio_to_backprop']:9.2f} "
              f"{r['gflops']:8.1f} {r['fraction_of_matmul_peak']:7.0%}")
    for f in report["matmul_floor"]:
        print(f"{f['dtype']:8} {'matmul floor':23} {f['median_ms']:9.3f} {f['min_ms']:7.3f} {'':7} {'':6} {'':8} "
              f"{'':9} {f['gflops']:8.1f} {'100%':>7}")
    print("peak RSS (fresh process each): " + ", ".join(
        f"{m['impl']}{'' if m['dtype'] == '-' else ' ' + m['dtype']} {m['peak_rss_mb']:.1f} MB" for m in report["memory"]))
    for p in report["profiles"]:
        top = ", ".join(f"{f['function']} {f['share_of_time']:.0%}" for f in p["top_functions"][:4])
        print(f"profile {p['impl']} {p['dtype']}: {p['python_calls_per_step']:.0f} Python calls and "
              f"{p['traced_operations_per_step']:.0f} traced operations per step; top self time: {top}")
    print(f"fit rows: {cfg['fit_calls']} calls of {cfg['fit_iterations_per_call']} iterations each, "
          f"on {cfg['fit_images']} images; targets:")
    for t in report["targets"]:
        verdict = "(no target)" if t["met"] is None else ("met" if t["met"] else "MISSED")
        limit = "" if t["limit"] is None else f" (limit {t['limit']})"
        print(f"  {t['target']}, {t['dtype']}: {t['value']:.3f}{limit} {verdict}")


def write_json(report, path):
    """Write ``report`` to ``path`` atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(report, f, indent=2)
    os.replace(tmp, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few repeats only (seconds; for CI)")
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON to PATH")
    parser.add_argument("--threads", default=_THREADS, help="BLAS threads (default 2)")
    parser.add_argument("--blas-coretype", metavar="NAME",
                        help="force OpenBLAS's kernel set (OPENBLAS_CORETYPE, e.g. SkylakeX) for every implementation; "
                             "by default OpenBLAS picks from the CPU it detects")
    parser.add_argument("--repeats", type=int, help="timed steps per implementation and dtype (default 400)")
    parser.add_argument("--dtypes", default="float32,float64", help="comma-separated (default float32,float64)")
    parser.add_argument("--data", choices=("auto", "mnist", "synthetic"), default="auto",
                        help="input batches: real MNIST images if found (auto), or synthetic")
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
    repeats = args.repeats or (6 if args.quick else 400)
    report = run(repeats, 4 if args.quick else 11, 3 if args.quick else 50, dtypes, args.data, 2 if args.quick else 100,
                 10 if args.quick else FIT_ITERATIONS, 5 if args.quick else FIT_MEMORY_ITERATIONS)
    report["config"]["quick"] = bool(args.quick)
    print_report(report)
    if args.json:
        write_json(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
