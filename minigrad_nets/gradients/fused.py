"""The fused autograd path: autograd chains a few large primitives whose VJPs are the layers' own backward rules.

'autograd' traces every elementary operation: 44 a step for the book's
five-layer MLP (≈5,000 Python calls), each boxed, recorded and replayed, with
one container operation (and a zero-filled copy of the params' structure) per
parameter read. Here autograd still traces the loss as a function of the
params pytree and does the chaining, but over six large operations:

- the pytree enters the traced function once, through ``_flat``, as a flat
  tuple of leaves ``(W0, b0, W1, b1, ...)``; its VJP rebuilds the pytree;
- each layer with params and the parameter-free layers after it (Relu,
  Dropout, ...) are one primitive, ``_segment``, whose forward is the layers'
  own ``forward`` and whose VJP is their own ``backward``, chained in reverse;
  the last segment ends with the softmax cross-entropy (each primitive costs
  autograd ≈ 7 µs a step, forward and backward);
- the weight penalty, when there is one, is one more primitive.

'autograd' stays the op-by-op path, the independent reference for gradient checks.
"""
import weakref

import numpy as np
from autograd.core import make_vjp
from autograd.extend import VSpace, defvjp, defvjp_argnums, primitive

from ..layers import layer_rng
from ..tree import tree_leaves, tree_leaves_with_keys, tree_unflatten
from .backprop import softmax_cross_entropy

# ---------------------------------------------------------------- the plan: segments and leaf positions


class _Slot:
    """Where one layer's params sit in the flat leaf tuple, and how to rebuild them from it."""
    __slots__ = ("where", "shape", "keys")

    def __init__(self, start, params):
        leaves = tree_leaves(params)
        self.where = slice(start, start + len(leaves))
        self.shape = tree_unflatten(params, [None] * len(leaves))  # containers only, no arrays kept
        flat_dict = type(params) is dict and all(type(v) not in (dict, list, tuple) for v in params.values())
        self.keys = sorted(params) if flat_dict else None  # fast path for {'W': ..., 'b': ...}

    def build(self, leaves):
        """This layer's params from the flat leaf tuple (or a list of gradients in the same order)."""
        if self.keys is not None:
            return dict(zip(self.keys, leaves[self.where]))
        return tree_unflatten(self.shape, leaves[self.where])

    def flatten(self, tree):
        """This layer's params (or gradients) as leaves in flat-tuple order."""
        if self.keys is not None:
            return [tree[k] for k in self.keys]
        return tree_leaves(tree)


class _Plan:
    """A network cut into segments: each starts at a layer with params and runs to the next one."""

    def __init__(self, net, params):
        self.slots, self.segments, entries, start, states = [], [], [], 0, 0
        for position, layer in enumerate(net.layers):
            slot, state_index = None, None
            if layer.has_params:
                if entries:
                    self.segments.append(entries)
                    entries = []
                slot = _Slot(start, params[len(self.slots)])
                self.slots.append(slot)
                start = slot.where.stop
            if layer.has_state:
                state_index, states = states, states + 1
            entries.append((position, layer, slot, state_index))
        self.segments.append(entries)
        self.state_count = states
        self.leaf_count = start
        # Positions of the network's weight matrices in the flat tuple (which is in tree_leaves order).
        decayed = set(net.weight_keys)
        self.weights = [i for i, (keys, _) in enumerate(tree_leaves_with_keys(params)) if keys in decayed]

    def leaves(self, params):
        """The flat leaf tuple of ``params``."""
        return tuple(leaf for slot, p in zip(self.slots, params) for leaf in slot.flatten(p))

    def unflatten(self, leaves):
        """A params-shaped pytree (list, one entry per layer with params) from flat leaves."""
        return [slot.build(leaves) for slot in self.slots]


_PLANS = weakref.WeakKeyDictionary()  # network -> _Plan; a plan depends only on the network's structure


def _plan(net, params):
    plan = _PLANS.get(net)
    if plan is None:
        plan = _PLANS[net] = _Plan(net, params)
    return plan


# ---------------------------------------------------------------- the leaf tuple and its gradient


class _LeafGrads:
    """A gradient for some leaves of the flat leaf tuple: ``[(first leaf index, [gradient per leaf]), ...]``.

    autograd would start from zero arrays for every leaf and add each layer's
    gradient into them: a pass over every parameter for nothing, since a leaf
    gets its gradient from one layer (and λW from the weight penalty). Here each
    contribution is kept as it comes and summed once, by ``_flat``'s VJP.
    """
    __slots__ = ("parts",)

    def __init__(self, parts):
        self.parts = parts

    def per_leaf(self, count):
        """The gradient of each of ``count`` leaves (None for a leaf nothing reached), contributions summed."""
        total = [None] * count
        for start, grads in self.parts:
            for k, g in enumerate(grads, start):
                total[k] = g if total[k] is None else total[k] + g
        return total


class _LeafGradientSpace(VSpace):
    """autograd's vector space for ``_LeafGrads``: adding two is joining their lists of contributions.

    ``add`` and ``mut_add`` are plain methods here, not autograd primitives (as
    VSpace's are, to be differentiable again): this path computes first
    derivatives only, and a primitive call per layer would cost more than the join.
    """
    __slots__ = ()

    def __init__(self, value):
        pass

    def zeros(self):
        return _LeafGrads([])

    def add(self, x_prev, x_new):
        return _LeafGrads(x_prev.parts + x_new.parts)

    def mut_add(self, x_prev, x_new):
        if x_prev is None:
            return _LeafGrads(list(x_new.parts))
        x_prev.parts.extend(x_new.parts)
        return x_prev


_LeafGradientSpace.register(_LeafGrads)


@primitive
def _flat(params, plan):
    """The params pytree as a flat tuple of its leaves."""
    return plan.leaves(params)


def _flat_vjp(ans, params, plan):
    def vjp(grads):  # a leaf no operation used (none in a network) gets a zero gradient
        per_leaf = grads.per_leaf(len(ans))
        return plan.unflatten([np.zeros_like(leaf) if g is None else g for g, leaf in zip(per_leaf, ans)])

    return vjp


defvjp(_flat, _flat_vjp)

# ---------------------------------------------------------------- layers and loss, penalty


@primitive
def _segment(h, leaves, entries, state, train, key, tape, t):
    """Forward through one segment's layers (their own ``forward``), caches and new state to the tape; for
    the last segment (labels or targets ``t`` given) the mean softmax cross-entropy of its output instead."""
    caches = []
    for position, layer, slot, state_index in entries:
        p = None if slot is None else slot.build(leaves)
        s = None if state_index is None else state[state_index]
        h, cache, s = layer.forward(p, s, h, train, layer_rng(key, position))
        if state_index is not None:
            tape["state"][state_index] = s
        caches.append((p, cache))
    tape[id(entries)] = caches
    if t is None:
        return h
    loss, tape["dlogits"] = softmax_cross_entropy(h, t)
    return loss


def _segment_vjp(argnums, ans, args, kwargs):
    """The loss gradient (last segment), then the segment's layers' own ``backward`` rules in reverse."""
    h, leaves, entries, state, train, key, tape, t = args
    caches = tape[id(entries)]

    def vjp(dy):
        if t is not None:
            dy = dy * tape["dlogits"]
        parts = []
        for i in range(len(entries) - 1, -1, -1):
            slot, (p, cache) = entries[i][2], caches[i]
            # The segment's own input needs a gradient only when autograd asks for one (not for x).
            dp, dy = entries[i][1].backward(p, cache, dy, i > 0 or 0 in argnums)
            if slot is not None:
                parts.append((slot.where.start, slot.flatten(dp)))
        return tuple(dy if argnum == 0 else _LeafGrads(parts) for argnum in argnums)

    return vjp


defvjp_argnums(_segment, _segment_vjp)


@primitive
def _weight_penalty(leaves, net, plan):
    """½λΣ‖W‖², by ``net.weight_penalty`` on the params the leaf tuple holds."""
    return net.weight_penalty(plan.unflatten(leaves))


def _weight_penalty_vjp(ans, leaves, net, plan):
    return lambda g: _LeafGrads([(k, [g * net.weight_decay * leaves[k]]) for k in plan.weights])


defvjp(_weight_penalty, _weight_penalty_vjp)

# ---------------------------------------------------------------- the path


def value_and_grad(net, params, x, t, key=None, state=None, train=False):
    """``(loss, gradient, new state)`` of the network's loss by fused autograd; the gradient has the structure of params."""
    x, t, state = net.prepare(params, x, t, state, train, key)
    return value_and_grad_prepared(net, params, x, t, key, state, train)


def value_and_grad_prepared(net, params, x, t, key=None, state=None, train=False):
    """``value_and_grad`` for arguments ``net.prepare`` has passed (``fit`` checks its data once, not each step)."""
    plan = _plan(net, params)
    tape = {}  # this call's scratch: forward caches, dlogits and the new state, for the VJPs and the caller

    def loss(traced_params):
        tape["state"] = [None] * plan.state_count
        leaves = _flat(traced_params, plan)
        h = x
        for entries in plan.segments[:-1]:
            h = _segment(h, leaves, entries, state, train, key, tape, None)
        value = _segment(h, leaves, plan.segments[-1], state, train, key, tape, t)
        if net.weight_decay:
            value = value + _weight_penalty(leaves, net, plan)
        return value

    # autograd.value_and_grad is this plus argument wrapping and a size check (≈5 µs a call).
    vjp, value = make_vjp(loss, params)
    return value, vjp(np.ones_like(value)), (tape["state"] if net.has_state else None)
