"""``fit``: minibatch training of a Network with an Optimizer, with history, progress and exact resume.

Randomness is a pure function of ``seed`` and the iteration counter, so a run
can stop anywhere and continue bit-identically from a checkpoint:

- the order of epoch ``e`` is a permutation of the training set drawn from
  ``SeedSequence([seed, 0, e])`` (without replacement; the last batch of an
  epoch is smaller when ``batch_size`` does not divide N);
- the dropout key of iteration ``i`` (0-based) is ``(seed, 1, i)``.

Evaluations (train / test accuracy) happen before the first step (iteration 0),
every ``eval_every`` iterations (default: at the end of each epoch), and after
the last step. ``iterations`` / ``epochs`` are totals counted from the start of
training, also when resuming.
"""
import json
import math
import os
import sys
import warnings
import zlib
from importlib import import_module
from typing import NamedTuple

import numpy as np

from .atomic import atomic_write, check_writable_file
from .checks import all_finite, labels_or_targets, raw_pixel_warning
from .gradients import METHODS, TRAINING_METHOD, check_method, value_and_grad
from .threads import parse as parse_threads, training_threads
from .tree import check_same_shapes, tree_leaves_with_paths, tree_map, tree_unflatten

CHECKPOINT_FORMAT = 2  # 2: network state saved, network described by its input shape
EVAL_CHUNK = 1000  # rows per forward pass when measuring accuracy (a convnet chunk of 10,000 peaked at 2.5 GB)


class FitResult(NamedTuple):
    """What ``fit`` returns: the trained params, the optimizer state, the history dict of arrays, and the
    network's state after training (BatchNorm's running statistics; [] for a network without state)."""
    params: list
    opt_state: object
    history: dict
    state: list


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; ``iteration`` is the 1-based step at which it happened."""

    def __init__(self, message, iteration):
        super().__init__(message)
        self.iteration = iteration


HISTORY_KEYS = ("loss", "eval_iteration", "epoch", "train_acc", "test_acc")


def _empty_history():
    return {key: [] for key in HISTORY_KEYS}


def _history_arrays(history):
    """The history lists as arrays: per-iteration 'loss' (float64), per-evaluation the rest."""
    return {"loss": np.asarray(history["loss"], np.float64),
            "eval_iteration": np.asarray(history["eval_iteration"], np.int64),
            "epoch": np.asarray(history["epoch"], np.float64),
            "train_acc": np.asarray(history["train_acc"], np.float64),
            "test_acc": np.asarray(history["test_acc"], np.float64)}


# ---------------------------------------------------------------- inputs


def _as_dataset(data, net, name):
    """``(x (N, *input_shape) in net.dtype, t)`` from a pair, with clear errors.

    A network over flat inputs also takes images, flattened (``load_mnist(flatten=False)`` data).
    """
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(f"{name} must be a pair (x, t) of arrays, got {type(data).__name__}")
    x, t = np.asarray(data[0]), np.asarray(data[1])
    if x.dtype.kind not in "iuf":
        raise TypeError(f"{name} x must be a numeric array, got dtype {x.dtype}")
    shape = ", ".join(map(str, net.input_shape))
    if x.ndim < 2:
        raise ValueError(f"{name} x must have a batch axis: shape (N, {shape}), got {x.shape}")
    if len(net.input_shape) == 1 and x.ndim > 2 and np.prod(x.shape[1:]) == net.input_size:
        x = x.reshape(len(x), -1)
    if x.shape[1:] != net.input_shape:
        raise ValueError(f"{name} x has examples of shape {x.shape[1:]}; the network expects {net.input_shape} "
                         f"(x of shape (N, {shape}))")
    if len(x) == 0:
        raise ValueError(f"{name} is empty")
    labels_or_targets(t, (len(x),), net.output_size, f"{name} t")
    if x.dtype.kind == "f" and not all_finite(x):  # checked once here, so the steps need not check each batch
        row, column = (int(i) for i in np.argwhere(~np.isfinite(x.reshape(len(x), -1)))[0])
        raise ValueError(f"{name} x contains {x.reshape(len(x), -1)[row, column]} in example {row} "
                         f"(entry {column} of it): inputs must be finite")
    hint = raw_pixel_warning(x, f"{name} x")
    if hint:
        warnings.warn(hint, stacklevel=3)
    return x.astype(net.dtype, copy=False), t


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


RESUME_MUST_MATCH = ("format", "seed", "batch_size", "n_train", "data_crc32", "network", "optimizer",
                     "optimizer_hyperparams", "method")


def describe_network(net):
    """What fixes a Network's function, as JSON-able data: shapes, layer names, weight decay, dtype."""
    return {"input_shape": list(net.input_shape), "output_size": net.output_size,
            "layers": [layer.name for layer in net.layers], "weight_decay": float(net.weight_decay),
            "dtype": str(net.dtype)}


def epoch_order(seed, epoch, n):
    """The order in which epoch ``epoch`` visits the ``n`` training examples: a permutation of range(n)."""
    return np.random.default_rng(np.random.SeedSequence([seed, 0, epoch])).permutation(n)


def dropout_key(seed, iteration):
    """The dropout key of 0-based ``iteration``."""
    return (seed, 1, iteration)


def _accuracy(net, params, state, x, t, limit):
    """Accuracy in inference mode (with the running statistics in ``state``) on the first ``limit`` examples."""
    if limit is not None:
        x, t = x[:limit], t[:limit]
    correct = 0.0
    for start in range(0, len(x), EVAL_CHUNK):
        rows = slice(start, start + EVAL_CHUNK)
        correct += net.accuracy(params, x[rows], t[rows], state=state) * len(x[rows])
    return correct / len(x)


# ---------------------------------------------------------------- checkpoints


def _fingerprint(x, t):
    """A cheap checksum of the training data, so a resume on other data is refused."""
    crc = zlib.crc32(np.ascontiguousarray(x).view(np.uint8).reshape(-1))
    return zlib.crc32(np.ascontiguousarray(t).view(np.uint8).reshape(-1), crc)


def save_checkpoint(path, params, opt_state, history, meta, state=()):
    """Write params, optimizer and network state, history and ``meta`` (JSON-able) to ``path`` (.npz), atomically."""
    arrays = {"meta": np.array(json.dumps(meta))}
    arrays.update({f"params{p}": np.asarray(v) for p, v in tree_leaves_with_paths(params)})
    arrays.update({f"state{p}": np.asarray(v) for p, v in tree_leaves_with_paths(list(state))})
    arrays.update({f"opt_state{p}": np.asarray(v) for p, v in tree_leaves_with_paths(opt_state)})
    arrays.update({f"history/{k}": v for k, v in _history_arrays(history).items()})
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, lambda f: np.savez(f, **arrays), binary=True)


def load_checkpoint(path, params_like, opt_state_like, state_like=()):
    """``(params, opt_state, history lists, meta, state)`` from a checkpoint, shaped like the given trees; no pickle."""
    try:
        with np.load(path, allow_pickle=False) as f:
            if not hasattr(f, "files"):
                raise ValueError("a single array, not an .npz archive")
            arrays = {k: f[k] for k in f.files}
    except (ValueError, OSError, EOFError, zlib.error) as err:
        if isinstance(err, (FileNotFoundError, IsADirectoryError, PermissionError)):
            raise
        reason = "an object array" if "allow_pickle" in str(err) else "not a readable .npz archive"
        if "single array" in str(err):
            reason = str(err)
        raise ValueError(f"{path}: not a minigrad_nets checkpoint ({reason})") from None
    if "meta" not in arrays:
        raise ValueError(f"{path}: not a minigrad_nets checkpoint (no 'meta' entry)")
    try:
        meta = json.loads(str(arrays["meta"]))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: corrupt checkpoint: its 'meta' entry is not valid JSON ({err})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("iteration"), int) or meta["iteration"] < 0:
        raise ValueError(f"{path}: corrupt checkpoint: its metadata has no valid 'iteration'")
    missing = [f"history/{k}" for k in HISTORY_KEYS if f"history/{k}" not in arrays]
    if missing:
        raise ValueError(f"{path}: corrupt checkpoint: missing {', '.join(missing)}")

    def rebuild(prefix, like):
        paths = [p for p, _ in tree_leaves_with_paths(like)]
        stored = sorted(k for k in arrays if k.startswith(prefix + "[") or k == prefix)
        if sorted(prefix + p for p in paths) != stored:
            raise ValueError(f"{path}: the checkpoint's {prefix} do not have the structure expected here "
                             f"(different network or optimizer?)")
        tree = tree_unflatten(like, [arrays[prefix + p] for p in paths])
        check_same_shapes(like, tree, f"the expected {prefix}", f"checkpoint {prefix}")
        return tree

    params = rebuild("params", params_like)
    opt_state = rebuild("opt_state", opt_state_like)
    state = rebuild("state", list(state_like))
    history = {k: arrays[f"history/{k}"].tolist() for k in HISTORY_KEYS}
    return params, opt_state, history, meta, state


# ---------------------------------------------------------------- fit


def fit(net, params, optimizer, train_data, *, state=None, test_data=None, epochs=None, iterations=None,
        batch_size=100, seed=0, method=TRAINING_METHOD, eval_every=None, eval_samples=None, progress=True,
        checkpoint=None, checkpoint_every=None, resume=False, log=None, threads=None):
    """Train ``params`` of ``net`` on ``train_data = (x, t)``; returns ``FitResult(params, opt_state, history, state)``.

    Steps run in training mode; ``state`` (default ``net.init_state()``) is
    threaded through them and accuracies are measured in inference mode with it.
    The given params and state are never written: fit trains its own copies (in
    place, when the optimizer has an ``in_place`` variant) and returns them.

    Exactly one of ``epochs`` / ``iterations`` (totals). history: 'loss' (one float64 per iteration: the
    minibatch loss *before* that iteration's update, as the gradient is taken; the book's Trainer records
    it after), and per evaluation 'eval_iteration', 'epoch' (float, iterations / iterations-per-epoch),
    'train_acc', 'test_acc' (empty when there is no ``test_data``). ``eval_samples`` caps the examples
    used for accuracy (the first ones of each set). ``checkpoint`` (an .npz path) is written every
    ``checkpoint_every`` iterations and at the end; with ``resume=True`` an existing checkpoint is
    loaded (the given params only fix the structure) and training continues bit-identically.
    ``log(record)`` is called with a dict after every evaluation. A NaN / inf loss raises
    ``NonFiniteLossError`` (a ``FloatingPointError``) naming the iteration. The progress bar shows on
    a terminal; elsewhere (stderr to a file) it is redrawn once a minute. ``threads``: BLAS threads,
    a count or 'auto' (default: ``minigrad_nets.threads.setting()``).
    """
    net.check_params(params)
    state = net.init_state() if state is None else state
    net.check_state(state)
    if not (callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))):
        raise TypeError(f"optimizer must be an Optimizer with init and update, got {type(optimizer).__name__}")
    x, t = _as_dataset(train_data, net, "train_data")
    test = _as_dataset(test_data, net, "test_data") if test_data is not None else None
    n = len(x)
    batch_size = _positive_int(batch_size, "batch_size")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    seed = int(seed)
    per_epoch = math.ceil(n / batch_size)
    if (epochs is None) == (iterations is None):
        raise ValueError("give exactly one of epochs and iterations")
    total = _positive_int(epochs, "epochs") * per_epoch if epochs is not None else _positive_int(iterations,
                                                                                                  "iterations")
    eval_every = per_epoch if eval_every is None else _positive_int(eval_every, "eval_every")
    if eval_samples is not None:
        eval_samples = _positive_int(eval_samples, "eval_samples")
    if checkpoint_every is not None:
        checkpoint_every = _positive_int(checkpoint_every, "checkpoint_every")
        if checkpoint is None:
            raise ValueError("checkpoint_every needs a checkpoint path")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs a checkpoint path")
    check_method(method)
    threads = None if threads is None else parse_threads(threads, "threads")  # a clear error before training

    if checkpoint is not None:
        check_writable_file(checkpoint, "checkpoint")  # fail now, not after the whole run

    meta = {"format": CHECKPOINT_FORMAT, "seed": seed, "batch_size": batch_size, "n_train": n,
            "data_crc32": _fingerprint(x, t) if checkpoint is not None else None,  # a pass over the data: only if saved
            "network": describe_network(net), "optimizer": getattr(optimizer, "name", "?"),
            "optimizer_hyperparams": dict(getattr(optimizer, "hyperparams", None) or {}), "method": method}
    opt_state = optimizer.init(params)
    history = _empty_history()
    iteration = 0
    if resume and os.path.exists(checkpoint):
        params, opt_state, history, saved, state = load_checkpoint(checkpoint, params, opt_state, state)
        for key in RESUME_MUST_MATCH:
            if saved.get(key) != json.loads(json.dumps(meta[key])):  # compared as stored: tuples become lists
                raise ValueError(f"cannot resume from {checkpoint}: it was made with {key}={saved.get(key)!r}, "
                                 f"this run has {key}={meta[key]!r}")
        iteration = saved["iteration"]
        if len(history["loss"]) != iteration:
            raise ValueError(f"{checkpoint}: inconsistent checkpoint (iteration {iteration}, "
                             f"{len(history['loss'])} losses)")
        if iteration > total:
            raise ValueError(f"cannot resume from {checkpoint}: it already holds {iteration} iterations, more than "
                             f"the {total} asked for (epochs / iterations are totals counted from the start)")
        # An off-schedule evaluation made because that run ended here is dropped: a straight run has none.
        if history["eval_iteration"] and history["eval_iteration"][-1] == iteration \
                and iteration % eval_every and iteration < total:
            for key in HISTORY_KEYS[1:]:
                if history[key]:
                    history[key].pop()

    # fit's own copies, stepped in place when the optimizer can (the caller's arrays are never written)
    params, opt_state = tree_map(np.array, params), tree_map(np.array, opt_state)
    in_place = getattr(optimizer, "in_place", None)
    step_in_place = in_place(params, opt_state) if in_place is not None else None
    gradient = _gradient_function(method)
    model_state = net.check_state(state)  # the state as the model takes it (None for a network without)

    def evaluate():
        record = {"iteration": iteration, "epoch": iteration / per_epoch,
                  "train_acc": _accuracy(net, params, state, x, t, eval_samples),
                  "test_acc": _accuracy(net, params, state, *test, eval_samples) if test else None}
        since = history["eval_iteration"][-1] if history["eval_iteration"] else 0
        recent = history["loss"][since:iteration]
        record["loss"] = float(np.mean(recent)) if recent else float("nan")
        history["eval_iteration"].append(iteration)
        history["epoch"].append(record["epoch"])
        history["train_acc"].append(record["train_acc"])
        if test:
            history["test_acc"].append(record["test_acc"])
        if log is not None:
            log(record)

    def save():
        save_checkpoint(checkpoint, params, opt_state, history, {**meta, "iteration": iteration}, state)

    key_for = (lambda i: dropout_key(seed, i)) if net.model.random else (lambda i: None)
    bar = _progress_bar(total, iteration) if progress else None
    order, order_epoch = None, None
    # each minibatch is gathered into these buffers (a view of their first rows for a short last batch)
    x_batch = np.empty((min(batch_size, n),) + x.shape[1:], x.dtype)
    t_batch = np.empty((min(batch_size, n),) + t.shape[1:], t.dtype)
    losses = history["loss"]
    # overflow shows up as NonFiniteLossError naming the iteration, not as numpy warnings before it
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"), training_threads(threads) as blas:
        if iteration == 0 and not history["eval_iteration"]:
            evaluate()
        try:
            while iteration < total:
                epoch, position = divmod(iteration, per_epoch)
                if order_epoch != epoch:
                    order, order_epoch = epoch_order(seed, epoch, n), epoch
                rows = order[position * batch_size:(position + 1) * batch_size]
                # mode='clip' (rows are in range anyway): with the default 'raise' numpy buffers out=, 4x slower
                xb = np.take(x, rows, axis=0, out=x_batch[:len(rows)], mode="clip")
                tb = np.take(t, rows, axis=0, out=t_batch[:len(rows)], mode="clip")
                try:
                    loss, grads, model_state = gradient(net, params, xb, tb, key_for(iteration), model_state)
                except ValueError as err:  # e.g. "logits contain NaN": say when, and why, if training blew up
                    cause = _blow_up(net, params, state, xb)
                    if cause is None:
                        raise
                    raise NonFiniteLossError(
                        f"the training loss became non-finite at iteration {iteration + 1} (epoch {epoch + 1}): "
                        f"{cause} ({err}); try a smaller learning rate", iteration + 1) from None
                loss = float(loss)
                if not math.isfinite(loss):
                    raise NonFiniteLossError(
                        f"the training loss became {loss} at iteration {iteration + 1} (epoch {epoch + 1}); "
                        f"try a smaller learning rate", iteration + 1)
                if step_in_place is not None:
                    step_in_place(grads)
                else:
                    params, opt_state = optimizer.update(params, grads, opt_state)
                if model_state is not None:
                    state = model_state
                losses.append(loss)
                iteration += 1
                blas.tick()
                if iteration % eval_every == 0 or iteration == total:
                    evaluate()
                if checkpoint_every and iteration % checkpoint_every == 0 and iteration < total:
                    save()
                if bar is not None:
                    bar.update(1)
                    if iteration % 20 == 0 or iteration == total:
                        bar.set_postfix(loss=f"{loss:.4f}", epoch=f"{iteration / per_epoch:.2f}", refresh=False)
        finally:
            if bar is not None:
                bar.close()
    if checkpoint is not None:
        save()
    return FitResult(params, opt_state, _history_arrays(history), state)


def _gradient_function(method):
    """``f(net, params, x, t, key, model_state) -> (loss, grads, new model state)`` for one training step.

    fit checked the data, params and state once; a path with a ``value_and_grad_prepared`` (inputs that
    ``net.prepare`` would pass) skips the per-step checks, the others go through ``value_and_grad``.
    """
    prepared = getattr(import_module(f"{__package__}.gradients.{METHODS[method]}"), "value_and_grad_prepared", None)
    if prepared is not None:
        return lambda net, params, x, t, key, state: prepared(net, params, x, t, key, state, True)

    def checked(net, params, x, t, key, state):
        loss, grads, new_state = value_and_grad(net, params, x, t, method=method, key=key, state=state,
                                                train=True, return_state=True)
        return loss, grads, (new_state if net.has_state else None)

    return checked


def _blow_up(net, params, state, x):
    """What went non-finite (a params leaf, or the logits), or None when everything is finite."""
    for path, leaf in tree_leaves_with_paths(params):
        if not np.all(np.isfinite(leaf)):
            return f"params{path} holds NaN or inf"
    with np.errstate(all="ignore"):
        if not np.all(np.isfinite(net.apply(params, x, state=state))):
            return "the logits overflowed"
    return None


def _progress_bar(total, initial):
    """A tqdm bar over iterations (on a terminal; elsewhere redrawn once a minute), or None without tqdm."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    terminal = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    return tqdm(total=total, initial=initial, unit="it", desc="training", leave=False, dynamic_ncols=True,
                mininterval=0.1 if terminal else 60.0, maxinterval=60.0 if terminal else 600.0)
