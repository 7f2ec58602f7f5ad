"""The numerical path: central differences in float64, for any scalar function of a pytree and, fast, for networks.

Every estimate is ``(f(x + h) - f(x - h)) / (x_plus - x_minus)`` with
``h = eps**(1/3) * max(1, |x|)``; dividing by the step actually realised in
floating point (``x_plus - x_minus``) rather than by ``2h`` is what makes the
step exactly representable. The caller's params are never touched: work is done
on float64 copies.

Modes of ``numerical_grad``:

- ``full``: every element; a gradient pytree shaped like params.
- ``sampled``: ``samples`` seeded random elements per leaf (without
  replacement); each leaf becomes a ``(k,)`` array of the derivatives at the
  flat indices ``sample_indices(params, samples, seed)`` gives.
- ``directional``: ``samples`` seeded random unit directions per leaf; each
  leaf becomes a ``(k,)`` array of directional derivatives along the
  directions ``random_directions(params, samples, seed)`` gives.

``analytic_probes`` turns an analytic gradient into the same ``(k,)`` values,
so the two can be compared leaf by leaf.

For a network's loss (``numerical_grad(net.loss, params, x, t[, key])`` or
``value_and_grad``) the full mode is vectorised: see ``network_full_grad``.
"""
import dataclasses
import functools
import numbers
import warnings

import numpy as np

from .. import layers as L
from ..checks import labels_unless_soft
from ..network import Network
from ..tree import tree_leaves, tree_leaves_with_paths, tree_unflatten

MODES = ("full", "sampled", "directional")
STEP_SCALE = np.finfo(np.float64).eps ** (1 / 3)
DEFAULT_SAMPLES = 8
DEFAULT_MAX_BYTES = 200_000_000


# ---------------------------------------------------------------- steps and probes


def step_size(x):
    """The central-difference step ``eps**(1/3) * max(1, |x|)``, elementwise: array -> array of the same shape."""
    return STEP_SCALE * np.maximum(1.0, np.abs(np.asarray(x, dtype=np.float64)))


def perturbed(x):
    """``(x + h, x - h)`` rounded to float64, elementwise; the realised step is their difference."""
    x = np.asarray(x, dtype=np.float64)
    h = step_size(x)
    return x + h, x - h


def _check_seed(seed):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise TypeError(f"seed must be a non-negative int, got {seed!r}")
    return int(seed)


def _check_samples(samples):
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise ValueError(f"samples must be a positive int, got {samples!r}")
    return int(samples)


def _leaf_rng(seed, leaf_number):
    """Each leaf draws from its own stream, so adding a leaf never changes another leaf's probes."""
    return np.random.default_rng([_check_seed(seed), leaf_number])


def _float64_leaves(params):
    """Float64 copies of the leaves of ``params`` (never views of the caller's arrays)."""
    out = []
    for path, leaf in tree_leaves_with_paths(params):
        arr = np.asarray(leaf)
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"params{path} must be a float array, got dtype {arr.dtype}")
        out.append(np.array(arr, dtype=np.float64, copy=True))
    return out


def sample_indices(params, samples=DEFAULT_SAMPLES, seed=0):
    """Pytree of sorted flat indices, ``min(samples, size)`` distinct ones per leaf, drawn from ``seed``."""
    samples = _check_samples(samples)
    picks = []
    for number, leaf in enumerate(tree_leaves(params)):
        size = int(np.size(leaf))
        picks.append(np.sort(_leaf_rng(seed, number).choice(size, size=min(samples, size), replace=False)))
    return tree_unflatten(params, picks)


def _direction_probes(leaf, samples, rng):
    """``(plus, minus, h, v)``: (k, n) perturbed copies of a flat float64 leaf and the directions v actually probed."""
    flat = leaf.reshape(-1)
    u = rng.standard_normal((samples, flat.size))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    h = STEP_SCALE * max(1.0, float(np.max(np.abs(flat), initial=0.0)))
    plus, minus = flat + h * u, flat - h * u
    return plus, minus, h, (plus - minus) / (2 * h)


def random_directions(params, samples=DEFAULT_SAMPLES, seed=0):
    """Pytree of (samples, *leaf.shape) unit directions per leaf (as realised in float64), drawn from ``seed``."""
    samples = _check_samples(samples)
    out = []
    for number, leaf in enumerate(_float64_leaves(params)):
        if leaf.size == 0:
            out.append(np.zeros((0,) + leaf.shape))
            continue
        v = _direction_probes(leaf, samples, _leaf_rng(seed, number))[3]
        out.append(v.reshape((samples,) + leaf.shape))
    return tree_unflatten(params, out)


def analytic_probes(grads, params, mode, samples=DEFAULT_SAMPLES, seed=0):
    """An analytic gradient pytree seen as ``numerical_grad(..., mode)`` sees it: per leaf, (k,) values (full: as is)."""
    _check_mode(mode)
    if mode == "full":
        return grads
    probes = sample_indices(params, samples, seed) if mode == "sampled" else random_directions(params, samples, seed)
    out = []
    for g, probe in zip(tree_leaves(grads), tree_leaves(probes)):
        g = np.asarray(g, dtype=np.float64).reshape(-1)
        out.append(g[probe] if mode == "sampled" else probe.reshape(probe.shape[0], -1) @ g)
    return tree_unflatten(params, out)


def _check_mode(mode):
    if mode not in MODES:
        raise ValueError(f"unknown numerical mode {mode!r}; choose one of {list(MODES)}")


# ---------------------------------------------------------------- any scalar function


def _scalar(value, what):
    """``value`` as a Python float; a clear error if it is not a finite scalar."""
    arr = np.asarray(getattr(value, "_value", value))
    if arr.shape != () or arr.dtype.kind not in "fiu":
        raise TypeError(f"f must return a real scalar, got {type(value).__name__} of shape {arr.shape}")
    out = float(arr)
    if not np.isfinite(out):
        raise ValueError(f"f is not finite ({out}) {what}; central differences need finite values")
    return out


def numerical_grad(f, params, *args, mode="full", seed=0, samples=DEFAULT_SAMPLES,
                   vectorize=True, max_bytes=DEFAULT_MAX_BYTES, **kwargs):
    """Central-difference gradient of scalar ``f(params, *args, **kwargs)`` in float64: pytree -> pytree (modes: module doc).

    ``f`` must be pure: it is called on float64 copies of params, never on the
    caller's arrays. When ``f`` is a network's ``loss`` (``net.loss``), the full
    mode uses the vectorised network path unless ``vectorize=False``, which
    keeps the element-by-element loop; ``max_bytes`` bounds that path's memory.
    """
    _check_mode(mode)
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, numbers.Real) or not max_bytes > 0:
        raise ValueError(f"max_bytes must be a positive number of bytes, got {max_bytes!r}")
    if not callable(f):
        raise TypeError(f"f must be callable, got {type(f).__name__}")
    net = _network_of(f)
    if mode == "full" and vectorize and net is not None and set(kwargs) <= {"key", "state", "train"} \
            and 2 <= len(args) <= 3:
        return network_full_grad(net, params, *args, **kwargs, max_bytes=max_bytes)
    if kwargs:
        f = functools.partial(f, **kwargs)
    leaves = _float64_leaves(params)
    paths = [path for path, _ in tree_leaves_with_paths(params)]
    if mode == "full":
        return tree_unflatten(params, _loop(f, params, leaves, paths, args, None))
    if mode == "sampled":
        return tree_unflatten(params, _loop(f, params, leaves, paths, args,
                                            tree_leaves(sample_indices(params, samples, seed))))
    return tree_unflatten(params, _directional(f, params, leaves, paths, args, _check_samples(samples), seed))


def _loop(f, like, leaves, paths, args, picks):
    """The element-by-element loop: for each leaf, the derivatives at ``picks`` (all elements when None)."""
    tree = tree_unflatten(like, leaves)
    grads = []
    for number, (path, leaf) in enumerate(zip(paths, leaves)):
        flat = leaf.reshape(-1)  # a view: writes go into the tree f sees
        where = range(flat.size) if picks is None else picks[number]
        out = np.empty(len(where))
        for slot, index in enumerate(where):
            x = flat[index]
            plus, minus = perturbed(x)
            flat[index] = plus
            f_plus = _scalar(f(tree, *args), f"at params{path} flat index {index} + h")
            flat[index] = minus
            f_minus = _scalar(f(tree, *args), f"at params{path} flat index {index} - h")
            flat[index] = x
            out[slot] = (f_plus - f_minus) / (plus - minus)
        grads.append(out.reshape(leaf.shape) if picks is None else out)
    return grads


def _directional(f, like, leaves, paths, args, samples, seed):
    """For each leaf, (k,) directional derivatives along the directions ``random_directions`` gives."""
    out = []
    for number, (path, leaf) in enumerate(zip(paths, leaves)):
        if leaf.size == 0:
            out.append(np.zeros(0))
            continue
        plus, minus, h, _ = _direction_probes(leaf, samples, _leaf_rng(seed, number))
        values = np.empty(samples)
        for k in range(samples):
            trial = list(leaves)
            trial[number] = plus[k].reshape(leaf.shape)
            f_plus = _scalar(f(tree_unflatten(like, trial), *args), f"along direction {k} of params{path} (+h)")
            trial[number] = minus[k].reshape(leaf.shape)
            f_minus = _scalar(f(tree_unflatten(like, trial), *args), f"along direction {k} of params{path} (-h)")
            values[k] = (f_plus - f_minus) / (2 * h)
        out.append(values)
    return out


# ---------------------------------------------------------------- networks


def _network_of(f):
    """The network when ``f`` is a ``Network.loss`` bound method (not overridden); None otherwise."""
    net = getattr(f, "__self__", None)
    if isinstance(net, Network) and getattr(f, "__func__", None) is Network.loss:
        return net
    return None


class SlowPathWarning(UserWarning):
    """The vectorised numerical path cannot use a layer's declarations and falls back to the element loop."""


def as_float64(net, params, x, t, state=None, train=False, key=None):
    """``(net64, params64, x64, t, state64)``: the same network and a checked batch in float64, as copies."""
    x, t, state = net.prepare(params, x, t, state, train, key)
    net64 = net if net.dtype == np.float64 else dataclasses.replace(net, dtype=np.float64)
    params64 = tree_unflatten(params, _float64_leaves(params))
    state64 = None if state is None else tree_unflatten(state, _float64_leaves(state))
    return net64, params64, np.array(x, dtype=np.float64, copy=True), t, state64


def value_and_grad(net, params, x, t, key=None, state=None, train=False):
    """``(loss, gradient, new state)`` of the network's loss by full central differences (float64 inside).

    The loss has the network's dtype; the gradient the structure of params and
    each leaf's dtype. The state is held fixed under every perturbation; the new
    state is that of the unperturbed forward pass.
    """
    net64, params64, x64, t, state64 = as_float64(net, params, x, t, state, train, key)
    loss, new_state = net64.batch_loss(params64, x64, t, state64, train, key)
    grads = network_full_grad(net64, params64, x64, t, key, state=state64, train=train)
    if new_state is not None:
        new_state = tree_unflatten(new_state, [np.asarray(s, dtype=net.dtype) for s in tree_leaves(new_state)])
    return net.dtype.type(loss), tree_unflatten(params, [g.astype(np.asarray(p).dtype, copy=False)
                                         for g, p in zip(tree_leaves(grads), tree_leaves(params))]), new_state


@dataclasses.dataclass(frozen=True)
class _Block:
    """A dense layer and the elementwise layers after it, with the unperturbed batch through them."""
    W: np.ndarray          # (n_in, n_out)
    b: np.ndarray          # (n_out,)
    inputs: np.ndarray     # (B, n_in): the dense layer's input
    pre: np.ndarray        # (B, n_out): its output
    post: np.ndarray       # (B, n_out): after the layers that follow it
    ops: tuple             # ('fn', elementwise function) | ('scale', (B, n_out) multiplier)


def _flat_layers(net, params, train, key):
    """``[(position, layer, params, key)]``: the network's layers with nested ``serial`` layers opened."""
    return [(".".join(map(str, position)), layer, p, k)
            for position, layer, p, _, k, _ in L.leaf_layers(net.layers, params, None, key if train else None)]


def _unvectorisable(flat):
    """The layers (position, name) the vectorised path cannot take, judged by what they declare."""
    kinds = [layer.kind for _, layer, _, _ in flat]
    first = next((i for i, k in enumerate(kinds) if k == L.DENSE), None)
    if first is None:
        return [(pos, layer.name) for pos, layer, _, _ in flat if layer.has_params] or [("-", "no dense layer")]
    return [(pos, layer.name) for i, (pos, layer, _, _) in enumerate(flat)
            if layer.has_state or (layer.has_params and layer.kind != L.DENSE)
            or (i > first and not (layer.kind in (L.DENSE, L.MASK, L.RESHAPE) or isinstance(layer.kind, L.Elementwise)))]


def _baseline_blocks(flat, x, train):
    """The forward pass split into blocks, one per dense layer (``_unvectorisable(flat)`` is empty)."""
    dense_at = [i for i, (_, layer, _, _) in enumerate(flat) if layer.kind == L.DENSE]
    a = x
    for _, layer, _, key in flat[:dense_at[0]]:  # the prefix: untouched by any parameter
        a = layer.apply(None, None, a, train, key)[0]
    blocks = []
    for number, start in enumerate(dense_at):
        W, b = flat[start][2]["W"], flat[start][2]["b"]
        pre = a @ W + b
        stop = dense_at[number + 1] if number + 1 < len(dense_at) else len(flat)
        post, ops = pre, []
        for position, layer, _, key in flat[start + 1:stop]:
            out = layer.apply(None, None, post, train, key)[0]
            if isinstance(layer.kind, L.Elementwise):
                ops.append(("fn", layer.kind.fn))
            elif layer.kind == L.MASK:
                scale = np.asarray(layer.apply(None, None, np.ones_like(post), train, key)[0])
                if not np.all(scale == 1):
                    ops.append(("scale", scale))
            elif out.shape != post.shape:  # a reshape after a dense layer is the identity on (B, n)
                raise ValueError(f"layer {position} ({layer.name}) changes the shape of a dense layer's output")
            post = out
        blocks.append(_Block(W, b, a, pre, post, tuple(ops)))
        a = post
    return blocks


def _apply_ops(ops, values, gather, in_place=False):
    """The block's elementwise layers on ``values``; ``gather(S)`` picks the dropout multipliers matching ``values``.

    ``in_place`` lets it overwrite ``values``.
    """
    for kind, what in ops:
        if kind == "fn":
            values = np.asarray(what(values))
        elif in_place:
            values *= gather(what)
        else:
            values = values * gather(what)
        in_place = True
    return values


def _targets(t, batch, classes):
    """``(labels (B,), None)`` or ``(None, targets (B, C))``, read as ``cross_entropy`` reads them."""
    kind, tv = labels_unless_soft(t, (batch,), classes)
    return (tv, None) if kind == "labels" else (None, tv.astype(np.float64))


def _row_half_losses(logits, rows, labels, targets):
    """Half the per-row cross-entropy of (R, C) logits for batch rows ``rows``, in ``cross_entropy``'s form.

    ``cross_entropy`` is ``2 * mean(log_norm / 2 + (max z - z_y) / 2)``: halves keep the gap from
    overflowing, so the same halves are used here.
    """
    m = logits.max(axis=1, keepdims=True)
    with np.errstate(over="ignore"):
        log_norm = np.log(np.exp(logits - m).sum(axis=1))
        if labels is not None:
            half_gap = m[:, 0] / 2 - logits[np.arange(len(rows)), labels[rows]] / 2
        else:
            tv = targets[rows]
            half_gap = np.sum(tv * np.where(tv > 0, m / 2 - logits / 2, 0.0), axis=1)
    return log_norm / 2 + half_gap


def _push(blocks, start, pre, rows):
    """Rows of block ``start``'s pre-activation (R, n), which it may overwrite, through the rest -> (R, C) outputs."""
    gather = lambda scale: scale[rows]
    values = _apply_ops(blocks[start].ops, pre, gather, in_place=True)
    for block in blocks[start + 1:]:
        values = values @ block.W
        values += block.b
        values = _apply_ops(block.ops, values, gather, in_place=True)
    return values


def network_full_grad(net, params, x, t, key=None, state=None, train=False, max_bytes=DEFAULT_MAX_BYTES):
    """Full central-difference gradient of ``net.loss(params, x, t, key, state=state, train=train)``: pytree -> float64 pytree.

    Vectorised for networks whose layers declare themselves dense, elementwise,
    a mask or a reshape (``layers.Layer.kind``). Each perturbation of
    ``W_k[i, j]`` (or ``b_k[j]``) changes only column j of layer k's output, by
    ``±h * input[:, i]``; after the elementwise layers only that column changes,
    so the next layer's output gets a rank-1 update, and only the batch rows
    whose column actually changed are pushed through the rest of the network,
    in stacks bounded by ``max_bytes``. Rows that do not change contribute
    exactly zero to ``f(+h) - f(-h)``, which is accumulated per row (the loss
    is a mean over rows, each row's term in ``cross_entropy``'s own halved
    form) plus the weight penalty's difference at the one perturbed entry.
    Deterministic for given arguments. A network with other layers (opaque,
    or with state) is differentiated by the element loop, with a
    ``SlowPathWarning`` naming those layers.
    """
    net64, params64, x64, t, state64 = as_float64(net, params, x, t, state, train, key)
    net64.batch_loss(params64, x64, t, state64, train, key)  # bad targets or key: the usual clear errors
    flat = _flat_layers(net64, params64, train, key)
    bad = _unvectorisable(flat)
    if bad:
        names = ", ".join(f"layer {i} ({name})" for i, name in bad)
        warnings.warn(f"the vectorised numerical path cannot use {names}: it declares no structure that path "
                      f"knows (layers.Layer.kind) or keeps state; using the element-by-element loop (slow)",
                      SlowPathWarning, stacklevel=2)
        loss = functools.partial(net64.loss, key=key, state=state64, train=train)
        leaves = _float64_leaves(params64)
        paths = [path for path, _ in tree_leaves_with_paths(params64)]
        return tree_unflatten(params, _loop(loss, params64, leaves, paths, (x64, t), None))
    blocks = _baseline_blocks(flat, x64, train)
    batch, classes = blocks[-1].post.shape
    labels, targets = _targets(t, batch, classes)
    widest = max(max(b.W.shape) for b in blocks)
    lam = net64.weight_decay
    grads = []
    for k, block in enumerate(blocks):
        grads.append(_block_grad(blocks, k, labels, targets, lam, widest, max_bytes))
    return tree_unflatten(params, [g for pair in grads for g in pair])


def _block_grad(blocks, k, labels, targets, lam, widest, max_bytes):
    """``(dW, db)`` of block k by central differences, streaming perturbed rows through the later blocks."""
    block = blocks[k]
    batch, n_in = block.inputs.shape
    n_out = block.W.shape[1]
    # Row i < n_in of the augmented weights is W[i]; row n_in is the bias, whose "input" is 1.
    inputs = np.hstack([block.inputs, np.ones((batch, 1))])
    values = np.vstack([block.W, block.b[None, :]])
    plus, minus = perturbed(values)
    up, down = plus - values, values - minus
    sums = np.zeros(values.size)
    last = k + 1 == len(blocks)
    # A group of candidates (batch, units, columns) takes about twelve 8-byte arrays; a stack of rows about
    # eight of width `widest`. Cache-sized row stacks are fastest.
    cap = max(1, max_bytes // (12 * 8 * batch))
    units_per_group = min(n_in + 1, cap)
    columns = max(1, min(n_out, cap // units_per_group))
    row_chunk = max(1, min(4096, max_bytes // (2 * 8 * 8 * widest)))
    groups = [(i0, j0) for i0 in range(0, n_in + 1, units_per_group) for j0 in range(0, n_out, columns)]
    for i0, j0 in groups:
        iv = slice(i0, min(n_in + 1, i0 + units_per_group))
        js = np.arange(j0, min(n_out, j0 + columns))
        gather = lambda scale: scale[:, js][:, None, :]
        col_pre = block.pre[:, js][:, None, :]
        col_post = block.post[:, js][:, None, :]
        new_up = _apply_ops(block.ops, col_pre + inputs[:, iv, None] * up[None, iv, js], gather)
        new_down = _apply_ops(block.ops, col_pre - inputs[:, iv, None] * down[None, iv, js], gather)
        change_up, change_down = new_up - col_post, new_down - col_post
        rows, units, cols = np.nonzero((change_up != 0) | (change_down != 0))
        for r0 in range(0, len(rows), row_chunk):
            sl = slice(r0, r0 + row_chunk)
            r, u, c = rows[sl], units[sl], cols[sl]
            j, count = js[c], len(r)
            both = np.concatenate([r, r])  # the +h rows, then the -h rows
            if last:
                out = block.post[both]
                out[np.arange(2 * count), np.concatenate([j, j])] = np.concatenate(
                    [new_up[r, u, c], new_down[r, u, c]])
            else:
                nxt = blocks[k + 1]
                pre = nxt.pre[both]
                w_rows = nxt.W[j]
                pre[:count] += change_up[r, u, c][:, None] * w_rows
                pre[count:] += change_down[r, u, c][:, None] * w_rows
                out = _push(blocks, k + 1, pre, both)
            losses = _row_half_losses(out, both, labels, targets)
            sums += np.bincount((u + i0) * n_out + j, weights=losses[:count] - losses[count:], minlength=values.size)
    penalty = np.zeros_like(values)
    if lam:
        penalty[:n_in] = 0.5 * lam * (plus[:n_in] ** 2 - minus[:n_in] ** 2)
    grad = (2 * sums.reshape(values.shape) / batch + penalty) / (plus - minus)
    return grad[:n_in], grad[n_in]
