"""The book's six optimizers as pure ``(init, update)`` pairs over parameter pytrees.

``state = opt.init(params)`` builds the optimizer state (a pytree of float
arrays, possibly an empty dict, so it fits in a checkpoint);
``new_params, new_state = opt.update(params, grads, state)`` takes one step and
never mutates its inputs. The per-array rules are the book's, with its
defaults and its ``1e-7`` in the denominators; each is lifted leafwise over
the pytree. State arrays have the dtype of the params (float32 training stays
float32); Adam's step counter is a 0-d float64 array.

For code that owns its arrays (``fit`` on its own copies), most optimizers
also offer ``step = opt.in_place(params, state)``: ``step(grads)`` writes the
same step into those params and state arrays (bit-identical to ``update``, in
buffers allocated once) instead of returning fresh ones. ``in_place`` is None
where there is no such variant (then ``update`` is the way).
"""
import math
from typing import Callable, NamedTuple, Optional

import numpy as np

from .tree import (check_same_shapes, check_same_structure, tree_leaves, tree_leaves_with_keys,
                   tree_leaves_with_paths, tree_map, tree_unflatten)

EPS = 1e-7  # the book's guard in AdaGrad / RMSprop / Adam denominators


class Optimizer(NamedTuple):
    """An optimizer: its name, ``init(params) -> state``, ``update(params, grads, state) -> (params, state)``,
    the hyperparameters it was built with (e.g. {'lr': 0.01, 'momentum': 0.9}; None when unknown) and
    ``in_place(params, state) -> step(grads)``, the same update written into the given arrays (or None)."""
    name: str
    init: Callable
    update: Callable
    hyperparams: Optional[dict] = None
    in_place: Optional[Callable] = None


def _check_rate(name, value, low=0.0, high=None, low_open=True):
    """``value`` as a float if it lies in the interval; a clear TypeError / ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    too_low = value <= low if low_open else value < low
    if not math.isfinite(value) or too_low or (high is not None and value >= high):
        interval = f"{'(' if low_open else '['}{low:g}, {'inf' if high is None else f'{high:g}'})"
        raise ValueError(f"{name} must lie in {interval}, got {value}")
    return value


def _zeros_like(params):
    return tree_map(lambda p: np.zeros_like(np.asarray(p)), params)


def _check_floats(tree, name):
    """A TypeError naming the first leaf that is not a float array (an int leaf would round every step away)."""
    for leaf in tree_leaves(tree):
        if np.asarray(leaf).dtype.kind != "f":
            path, bad = next((p, x) for p, x in tree_leaves_with_paths(tree) if np.asarray(x).dtype.kind != "f")
            raise TypeError(f"{name}{path} has dtype {np.asarray(bad).dtype}; optimizers update float arrays only")


def _check_step(params, grads, state, like_state):
    """Clear errors for params / gradients that are not float, or a gradient or state tree that does not fit."""
    check_same_shapes(params, grads, "params", "gradient")
    _check_floats(params, "params")
    _check_floats(grads, "gradient")
    check_same_structure(like_state, state, "the optimizer state for these params", "state")
    for key, like in like_state.items():
        if like is not None:
            check_same_shapes(params, state[key], "params", f"state['{key}']")


def _leafwise(rule, params, grads, *trees):
    """Apply ``rule(p, g, *s) -> (new_p, *new_s)`` leafwise; returns the new params and new state trees."""
    columns = [tree_leaves(t) for t in (params, grads, *trees)]
    results = [rule(*(np.asarray(leaf) for leaf in leaves)) for leaves in zip(*columns)]
    return [tree_unflatten(params, [r[k] for r in results]) for k in range(1 + len(trees))]


def _scalar(p, value):
    """``value`` as a 0-d array of p's dtype, so float32 params stay float32."""
    return np.asarray(value, dtype=p.dtype)


def _leaf_reader(tree):
    """A function reading the leaves of any tree shaped like ``tree``, in ``tree_leaves`` order.

    The keys of each leaf are found once, so a step reads ten leaves in ≈2 µs instead of ≈15 µs.
    """
    paths = [keys for keys, _ in tree_leaves_with_keys(tree)]

    def read(other):
        leaves = []
        for keys in paths:
            node = other
            for k in keys:
                node = node[k]
            leaves.append(node)
        return leaves

    return read


def _in_place(params, state, like_state, leaf_rule, scratch=1, before_step=None):
    """``step(grads)`` stepping ``params`` and the state's trees like params in place, leaf by leaf.

    ``like_state`` is what ``_check_step`` takes: ``{key: params}`` for each
    tree of the state stepped with the params, ``{key: None}`` for other entries.
    ``leaf_rule(p, g, *state_leaves, *scratch_buffers, *constants)`` writes its
    results into ``p`` and the state leaves; ``before_step()`` (if given) runs
    first and returns the step's constants (Adam's step size). The first step
    checks ``grads`` as ``update`` does; later ones only read its leaves.
    """
    state_keys = [k for k, like in like_state.items() if like is not None]
    check_same_structure(like_state, state, "the optimizer state for these params", "state")
    _check_floats(params, "params")
    for key in state_keys:
        check_same_shapes(params, state[key], "params", f"state['{key}']")
    read = _leaf_reader(params)
    columns = [read(params)] + [read(state[k]) for k in state_keys]
    buffers = [[np.empty_like(p) for _ in range(scratch)] for p in columns[0]]
    checked = []

    def step(grads):
        if not checked:
            _check_step(params, grads, state, like_state)
            checked.append(True)
        constants = before_step() if before_step is not None else ()
        for p, g, *rest in zip(columns[0], read(grads), *columns[1:], buffers):
            leaf_rule(p, g.astype(p.dtype, copy=False), *rest[:-1], *rest[-1], *constants)

    return step


def _with_state(name, key, rule, hyperparams, rule_in_place=None, scratch=1):
    """An Optimizer whose state is ``{key: tree like params}`` (zeros at first), stepped leafwise by
    ``rule(p, g, s) -> (new_p, new_s)`` (and in place by ``rule_in_place(p, g, s, *scratch)``, if given)."""

    def init(params):
        return {key: _zeros_like(params)}

    def update(params, grads, state):
        _check_step(params, grads, state, {key: params})
        new_params, new_state = _leafwise(rule, params, grads, state[key])
        return new_params, {key: new_state}

    def in_place(params, state):
        return _in_place(params, state, {key: params}, rule_in_place, scratch)

    return Optimizer(name, init, update, hyperparams, in_place if rule_in_place is not None else None)


def sgd(lr=0.01):
    """Plain SGD: ``p <- p - lr * g``. State: an empty dict."""
    lr = _check_rate("lr", lr)

    def init(params):
        return {}

    def update(params, grads, state):
        _check_step(params, grads, state, {})
        (new,) = _leafwise(lambda p, g: (p - _scalar(p, lr) * g.astype(p.dtype, copy=False),), params, grads)
        return new, {}

    def rule_in_place(p, g, tmp):
        np.multiply(p.dtype.type(lr), g, out=tmp)
        p -= tmp

    return Optimizer("sgd", init, update, {"lr": lr}, lambda params, state: _in_place(params, state, {}, rule_in_place))


def momentum(lr=0.01, momentum=0.9):
    """Momentum SGD: ``v <- momentum*v - lr*g; p <- p + v``. State: {'v': tree like params}."""
    lr, mu = _check_rate("lr", lr), _check_rate("momentum", momentum, 0.0, 1.0, low_open=False)

    def rule(p, g, v):
        v = _scalar(p, mu) * v - _scalar(p, lr) * g.astype(p.dtype, copy=False)
        return p + v, v

    def rule_in_place(p, g, v, tmp):
        np.multiply(p.dtype.type(lr), g, out=tmp)
        v *= p.dtype.type(mu)
        v -= tmp
        p += v

    return _with_state("momentum", "v", rule, {"lr": lr, "momentum": mu}, rule_in_place)


def nesterov(lr=0.01, momentum=0.9):
    """Nesterov momentum as in arXiv 1212.0901 (eq. 7): ``p <- p + mu*mu*v - (1+mu)*lr*g`` with the *old* v,
    then ``v <- mu*v - lr*g``. State: {'v': tree like params}.

    This is Nesterov's accelerated gradient written for the look-ahead point
    ``p = theta + mu*v``, so the gradient is taken where the params are. The
    book's common/optimizer.py, which cites the paper, updates v first and then
    steps with the new v, ``p + mu**3*v - (1+mu+mu**2)*lr*g``: not the paper's rule.
    """
    lr, mu = _check_rate("lr", lr), _check_rate("momentum", momentum, 0.0, 1.0, low_open=False)
    mu2, step = mu * mu, (1 + mu) * lr

    def rule(p, g, v):
        g = g.astype(p.dtype, copy=False)
        new_p = (p + _scalar(p, mu2) * v) - _scalar(p, step) * g
        return new_p, _scalar(p, mu) * v - _scalar(p, lr) * g

    return _with_state("nesterov", "v", rule, {"lr": lr, "momentum": mu})


def adagrad(lr=0.01):
    """AdaGrad: ``h <- h + g*g; p <- p - lr*g/(sqrt(h) + 1e-7)``. State: {'h': tree like params}."""
    lr = _check_rate("lr", lr)

    def rule(p, g, h):
        g = g.astype(p.dtype, copy=False)
        h = h + g * g
        return p - _scalar(p, lr) * g / (np.sqrt(h) + _scalar(p, EPS)), h

    def rule_in_place(p, g, h, tmp, tmp2):
        np.multiply(g, g, out=tmp)
        h += tmp
        _divided_step(p, g, h, lr, tmp, tmp2)

    return _with_state("adagrad", "h", rule, {"lr": lr}, rule_in_place, scratch=2)


def _divided_step(p, g, h, lr, tmp, tmp2):
    """In place, in ``rule``'s order: ``p -= (lr * g) / (sqrt(h) + 1e-7)`` (AdaGrad, RMSprop; Adam with m for g)."""
    np.sqrt(h, out=tmp)
    tmp += p.dtype.type(EPS)
    np.multiply(p.dtype.type(lr), g, out=tmp2)
    tmp2 /= tmp
    p -= tmp2


def rmsprop(lr=0.01, decay_rate=0.99):
    """RMSprop: ``h <- d*h + (1-d)*g*g; p <- p - lr*g/(sqrt(h) + 1e-7)``. State: {'h': tree like params}."""
    lr, decay = _check_rate("lr", lr), _check_rate("decay_rate", decay_rate, 0.0, 1.0, low_open=False)

    def rule(p, g, h):
        g = g.astype(p.dtype, copy=False)
        h = _scalar(p, decay) * h + _scalar(p, 1 - decay) * g * g
        return p - _scalar(p, lr) * g / (np.sqrt(h) + _scalar(p, EPS)), h

    def rule_in_place(p, g, h, tmp, tmp2):
        np.multiply(p.dtype.type(1 - decay), g, out=tmp)
        tmp *= g
        h *= p.dtype.type(decay)
        h += tmp
        _divided_step(p, g, h, lr, tmp, tmp2)

    return _with_state("rmsprop", "h", rule, {"lr": lr, "decay_rate": decay}, rule_in_place, scratch=2)


def adam(lr=0.001, beta1=0.9, beta2=0.999):
    """Adam in the book's form (bias correction folded into the step size).

    ``t += 1; lr_t = lr*sqrt(1-b2^t)/(1-b1^t); m += (1-b1)(g-m); v += (1-b2)(g²-v);
    p <- p - lr_t*m/(sqrt(v) + 1e-7)``. State: {'m', 'v': trees like params, 'step': 0-d float64}.
    """
    lr = _check_rate("lr", lr)
    b1 = _check_rate("beta1", beta1, 0.0, 1.0, low_open=False)
    b2 = _check_rate("beta2", beta2, 0.0, 1.0, low_open=False)

    def init(params):
        return {"m": _zeros_like(params), "step": np.zeros((), np.float64), "v": _zeros_like(params)}

    def update(params, grads, state):
        _check_step(params, grads, state, {"m": params, "step": None, "v": params})
        step = float(np.asarray(state["step"])) + 1.0
        lr_t = lr * math.sqrt(1.0 - b2 ** step) / (1.0 - b1 ** step)

        def rule(p, g, m, v):
            g = g.astype(p.dtype, copy=False)
            m = m + _scalar(p, 1 - b1) * (g - m)
            v = v + _scalar(p, 1 - b2) * (g * g - v)
            return p - _scalar(p, lr_t) * m / (np.sqrt(v) + _scalar(p, EPS)), m, v

        new_params, m, v = _leafwise(rule, params, grads, state["m"], state["v"])
        return new_params, {"m": m, "step": np.asarray(step, np.float64), "v": v}

    def in_place(params, state):
        def before_step():
            step = float(state["step"]) + 1.0
            state["step"][...] = step
            return (lr * math.sqrt(1.0 - b2 ** step) / (1.0 - b1 ** step),)

        def rule_in_place(p, g, m, v, tmp, tmp2, lr_t):
            np.subtract(g, m, out=tmp)
            tmp *= p.dtype.type(1 - b1)
            m += tmp
            np.multiply(g, g, out=tmp)
            tmp -= v
            tmp *= p.dtype.type(1 - b2)
            v += tmp
            _divided_step(p, m, v, lr_t, tmp, tmp2)

        like_state = {"m": params, "step": None, "v": params}
        return _in_place(params, state, like_state, rule_in_place, scratch=2, before_step=before_step)

    return Optimizer("adam", init, update, {"lr": lr, "beta1": b1, "beta2": b2}, in_place)


_CONSTRUCTORS = {"sgd": sgd, "momentum": momentum, "nesterov": nesterov,
                 "adagrad": adagrad, "rmsprop": rmsprop, "adam": adam}
NAMES = tuple(_CONSTRUCTORS)


def get(name, **hyperparams):
    """The optimizer called ``name`` (case-insensitive, one of ``NAMES``) built with ``hyperparams``."""
    key = str(name).lower()
    if key not in _CONSTRUCTORS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {list(NAMES)}")
    return _CONSTRUCTORS[key](**hyperparams)
