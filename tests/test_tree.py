import numpy as np
import pytest

from minigrad_nets import tree


def sample():
    return [{"W": np.ones((2, 3)), "b": np.zeros(3)}, ({"x": np.arange(2.0)},)]


def test_paths_in_fixed_order():
    paths = [p for p, _ in tree.tree_leaves_with_paths(sample())]
    assert paths == ["[0]['W']", "[0]['b']", "[1][0]['x']"]


def test_unflatten_inverts_leaves():
    t = sample()
    rebuilt = tree.tree_unflatten(t, [leaf * 2 for leaf in tree.tree_leaves(t)])
    assert tree.tree_structure(rebuilt) == tree.tree_structure(t)
    assert type(rebuilt[1]) is tuple
    np.testing.assert_array_equal(rebuilt[0]["W"], 2 * np.ones((2, 3)))


def test_tree_map_over_two_trees():
    a, b = sample(), sample()
    out = tree.tree_map(lambda u, v: u + v, a, b)
    np.testing.assert_array_equal(out[1][0]["x"], [0.0, 2.0])


@pytest.mark.parametrize("other, where", [
    ([{"W": np.ones((2, 3))}, ({"x": np.arange(2.0)},)], "[0]"),
    ([{"W": np.ones((2, 3)), "b": np.zeros(3)}], "root"),
    ([{"W": np.ones((2, 3)), "b": np.zeros(3)}, [{"x": np.arange(2.0)}]], "[1]"),
])
def test_structure_mismatch_names_the_place(other, where):
    with pytest.raises(TypeError, match=r"structure.*" + (r"\[1\]" if where == "[1]" else where.replace("[", r"\["))):
        tree.check_same_structure(sample(), other)


def test_shape_mismatch_names_the_leaf():
    other = sample()
    other[0]["b"] = np.zeros(4)
    with pytest.raises(ValueError, match=r"\[0\]\['b'\] has shape \(4,\)"):
        tree.check_same_shapes(sample(), other)


def test_size_and_astype():
    t = sample()
    assert tree.tree_size(t) == 6 + 3 + 2
    t32 = tree.tree_astype(t, np.float32)
    assert all(leaf.dtype == np.float32 for leaf in tree.tree_leaves(t32))
    assert t[0]["W"].dtype == np.float64


def test_unflatten_needs_exactly_the_leaf_count():
    with pytest.raises(ValueError, match="got 2 leaves for a tree that holds 3"):
        tree.tree_unflatten(sample(), [1, 2])
    with pytest.raises(ValueError, match="got 4 leaves"):
        tree.tree_unflatten(sample(), [1, 2, 3, 4])


def test_leaves_with_keys_index_the_tree():
    t = sample()
    for keys, leaf in tree.tree_leaves_with_keys(t):
        node = t
        for k in keys:
            node = node[k]
        assert node is leaf
