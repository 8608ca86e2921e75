"""seriate(method="olo"): optimal leaf ordering on D = max(S) - S, checked by brute force and vs scipy."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.cluster.hierarchy import leaves_list, linkage, optimal_leaf_ordering, to_tree
from scipy.spatial.distance import squareform

from clss.seriation import criterion, list_methods, seriate
from clss.seriation.generators import permute_matrix, points_robinson, toeplitz_robinson
from clss.seriation.olo import olo_order


def random_similarity(n, seed):
    a = np.random.default_rng(seed).random((n, n))
    s = (a + a.T) / 2
    np.fill_diagonal(s, 0.0)
    return s


def dissimilarity(s):
    d = s.max() - s
    np.fill_diagonal(d, 0.0)
    return squareform(d, checks=False)


def all_leaf_orders(node):
    """Every order of the dendrogram's leaves obtained by flipping internal nodes (2^(n-1))."""
    if node.is_leaf():
        return [[node.id]]
    out = []
    for left in all_leaf_orders(node.left):
        for right in all_leaf_orders(node.right):
            out += [left + right, right + left]
    return out


@pytest.mark.parametrize("method", ["average", "complete", "single", "weighted"])
@pytest.mark.parametrize("seed", range(4))
def test_olo_is_the_shortest_path_among_the_dendrogram_leaf_orders(method, seed):
    s = random_similarity(8, seed)
    order = olo_order(s, method)
    tree = to_tree(linkage(dissimilarity(s), method=method))
    best = min(criterion(s, o, "path_length") for o in all_leaf_orders(tree))
    assert criterion(s, order, "path_length") == pytest.approx(best, rel=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_olo_never_longer_than_scipy_and_strictly_shorter_where_scipy_misses(seed):
    """scipy's optimal_leaf_ordering is not always optimal (scipy issue #11227); ours is."""
    shorter = 0
    for k in range(8):
        s = random_similarity(12, 10 * seed + k)
        cond = dissimilarity(s)
        theirs = leaves_list(optimal_leaf_ordering(linkage(cond, "average"), cond))
        ours = seriate(s, method="olo").order
        a, b = criterion(s, ours, "path_length"), criterion(s, theirs, "path_length")
        assert a <= b * (1 + 1e-12)
        shorter += a < b * (1 - 1e-9)
    assert shorter >= 1


def test_olo_on_a_dendrogram_of_unbalanced_and_balanced_merges_matches_brute_force():
    s = random_similarity(9, 99)
    for method in ("single", "complete"):
        tree = to_tree(linkage(dissimilarity(s), method=method))
        best = min(criterion(s, o, "path_length") for o in all_leaf_orders(tree))
        assert criterion(s, olo_order(s, method), "path_length") == pytest.approx(best, rel=1e-12)


def test_olo_result_fields():
    s = random_similarity(30, 6)
    res = seriate(s, method="olo")
    assert "olo" in list_methods()
    assert res.method == "olo" and res.solver == "olo"
    assert res.order[0] < res.order[-1]  # the combinatorial methods' orientation convention
    assert np.array_equal(res.order[res.ranks], np.arange(30))
    assert np.allclose(res.positions, res.ranks / 29)


@pytest.mark.parametrize("make", [lambda: toeplitz_robinson(40), lambda: points_robinson(40, rng=2)])
def test_olo_recovers_permuted_robinson_matrices(make):
    s = make()
    perm = np.random.default_rng(7).permutation(40)
    order = seriate(permute_matrix(s, perm), method="olo").order
    truth = np.argsort(perm)
    assert np.array_equal(order, truth) or np.array_equal(order, truth[::-1])


def test_olo_sparse_input_densified_and_refused_beyond_the_limit():
    s = random_similarity(25, 8)
    s[s < 0.5] = 0.0
    assert np.array_equal(seriate(sp.csr_matrix(s), method="olo").order, seriate(s, method="olo").order)
    with pytest.raises(ValueError, match="method='olo' works on the dense matrix"):
        olo_order(sp.csr_matrix(s), dense_max=10)


def test_olo_tiny_inputs():
    assert olo_order(np.zeros((1, 1))).tolist() == [0]
    assert sorted(seriate(np.array([[0, 1.0], [1.0, 0]]), method="olo").order.tolist()) == [0, 1]
