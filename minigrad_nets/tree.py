"""The few pytree helpers autograd does not give: paths, flatten, map, structure checks.

A pytree is a nest of exact ``dict`` / ``list`` / ``tuple`` containers whose
leaves are arrays. Dict keys are visited in sorted order, as autograd does.
"""
import numpy as np

_CONTAINERS = (dict, list, tuple)


def _children(node):
    if type(node) is dict:
        return [(f"[{k!r}]", node[k]) for k in sorted(node)]
    return [(f"[{i}]", child) for i, child in enumerate(node)]


def tree_leaves_with_paths(tree, prefix=""):
    """Leaves of ``tree`` in a fixed order, as ``[(path, leaf), ...]`` with paths like ``[2]['W']``."""
    if type(tree) in _CONTAINERS:
        out = []
        for step, child in _children(tree):
            out.extend(tree_leaves_with_paths(child, prefix + step))
        return out
    return [(prefix, tree)]


def tree_leaves_with_keys(tree, prefix=()):
    """Leaves of ``tree`` in ``tree_leaves`` order, as ``[(keys, leaf), ...]``: keys index the leaf, e.g. ``(2, 'W')``."""
    kind = type(tree)
    if kind is dict:
        return [item for k in sorted(tree) for item in tree_leaves_with_keys(tree[k], prefix + (k,))]
    if kind in (list, tuple):
        return [item for i, c in enumerate(tree) for item in tree_leaves_with_keys(c, prefix + (i,))]
    return [(prefix, tree)]


def tree_leaves(tree):
    """Leaves of ``tree`` in the same order as ``tree_leaves_with_paths``."""
    return [leaf for _, leaf in tree_leaves_with_paths(tree)]


def tree_structure(tree):
    """A hashable description of the containers of ``tree`` (leaves become ``'*'``)."""
    kind = type(tree)
    if kind is dict:
        return ("dict", tuple((k, tree_structure(tree[k])) for k in sorted(tree)))
    if kind in (list, tuple):
        return (kind.__name__, tuple(tree_structure(c) for c in tree))
    return "*"


def tree_unflatten(like, leaves):
    """Build a tree shaped like ``like`` from ``leaves`` (in ``tree_leaves`` order)."""
    leaves = list(leaves)
    it = iter(leaves)

    def build(node):
        kind = type(node)
        if kind is dict:
            return {k: build(node[k]) for k in sorted(node)}
        if kind in (list, tuple):
            return kind([build(c) for c in node])
        return next(it)

    expected = len(tree_leaves(like))
    if len(leaves) != expected:
        raise ValueError(f"tree_unflatten got {len(leaves)} leaves for a tree that holds {expected}")
    return build(like)


def tree_map(fn, tree, *rest):
    """Apply ``fn`` leafwise over ``tree`` and trees of the same structure in ``rest``."""
    for i, other in enumerate(rest):
        check_same_structure(tree, other, "first tree", f"tree {i + 2}")
    columns = [tree_leaves(t) for t in (tree, *rest)]
    return tree_unflatten(tree, [fn(*leaves) for leaves in zip(*columns)])


def _structure_difference(a, b, path=""):
    ka, kb = type(a), type(b)
    a_node, b_node = ka in _CONTAINERS, kb in _CONTAINERS
    if not a_node and not b_node:
        return None
    if ka is not kb:
        name = lambda k, node: k.__name__ if node else "a leaf"
        return f"at {path or 'the root'}: expected {name(ka, a_node)}, got {name(kb, b_node)}"
    if ka is dict:
        if set(a) != set(b):
            return f"at {path or 'the root'}: expected keys {sorted(map(str, a))}, got {sorted(map(str, b))}"
    elif len(a) != len(b):
        return f"at {path or 'the root'}: expected length {len(a)}, got {len(b)}"
    for (step, ca), (_, cb) in zip(_children(a), _children(b)):
        diff = _structure_difference(ca, cb, path + step)
        if diff:
            return diff
    return None


def check_same_structure(a, b, a_name="params", b_name="gradient"):
    """Raise ``TypeError`` naming the first place where trees ``a`` and ``b`` differ in containers."""
    diff = _structure_difference(a, b)
    if diff:
        raise TypeError(f"{b_name} does not have the structure of {a_name}: {diff}")


def check_same_shapes(a, b, a_name="params", b_name="gradient"):
    """Raise if ``a`` and ``b`` differ in structure or in the shape of any leaf (naming the leaf)."""
    check_same_structure(a, b, a_name, b_name)
    for (path, la), lb in zip(tree_leaves_with_paths(a), tree_leaves(b)):
        if np.shape(la) != np.shape(lb):
            raise ValueError(f"{b_name}{path} has shape {np.shape(lb)}; {a_name}{path} has shape {np.shape(la)}")


def tree_size(tree):
    """Total number of scalar entries over all leaves."""
    return int(sum(np.size(leaf) for leaf in tree_leaves(tree)))


def tree_astype(tree, dtype):
    """A copy of ``tree`` with every leaf cast to ``dtype``."""
    return tree_map(lambda leaf: np.asarray(leaf, dtype=dtype).copy(), tree)
