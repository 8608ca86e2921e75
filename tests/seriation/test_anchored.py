"""Label-anchored (harmonic) seriation against direct dense solves and harmonic-function properties."""

import networkx as nx
import numpy as np
import pytest
import scipy.linalg as sl
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from clss.seriation import SeriationWarning, seriate
from clss.seriation.generators import points_robinson


def direct_solve(w, anchors, values):
    """r_u = L_uu^{-1} W_ul y_l from the block system, by a general dense solve."""
    w = w - np.diag(np.diag(w))
    n = w.shape[0]
    lap = np.diag(w.sum(1)) - w
    u = np.setdiff1d(np.arange(n), anchors)
    r = np.empty(n)
    r[anchors] = values
    r[u] = np.linalg.solve(lap[np.ix_(u, u)], -lap[np.ix_(u, anchors)] @ values)
    return r


def random_graph(n, rng, density=0.5):
    w = rng.uniform(size=(n, n)) * (rng.uniform(size=(n, n)) < density)
    w = np.triu(w, 1)
    w = w + w.T
    idx = np.arange(n - 1)
    w[idx, idx + 1] += 0.1  # keep it connected
    w[idx + 1, idx] += 0.1
    return w


@settings(max_examples=40, deadline=None)
@given(n=st.integers(3, 40), m=st.integers(2, 5), seed=st.integers(0, 2**31 - 1))
def test_equals_direct_dense_solve(n, m, seed):
    rng = np.random.default_rng(seed)
    w = random_graph(n, rng)
    anchors = rng.choice(n, size=min(m, n - 1), replace=False)
    values = rng.normal(size=anchors.size)
    res = seriate(w, method="anchored", anchors=anchors, anchor_values=values)
    ref = direct_solve(w, anchors, values)
    assert np.allclose(res.positions, ref, atol=1e-9)
    assert np.array_equal(res.positions[anchors], values)  # labelled entries unchanged
    # maximum principle for non-negative weights
    assert values.min() - 1e-9 <= res.positions.min() and res.positions.max() <= values.max() + 1e-9
    assert res.info["maximum_principle"]
    assert np.array_equal(res.order, np.argsort(res.positions, kind="stable"))


def test_path_graph_gives_linear_interpolation():
    w = nx.to_numpy_array(nx.path_graph(11))
    res = seriate(w, method="anchored", anchors=[0, 4, 10], anchor_values=[0.0, 8.0, 2.0])
    expected = np.concatenate([np.linspace(0, 8, 5), np.linspace(8, 2, 7)[1:]])
    assert np.allclose(res.positions, expected, atol=1e-12)


def test_affine_equivariance_in_the_labels():
    rng = np.random.default_rng(0)
    w = random_graph(20, rng)
    anchors, values = np.array([1, 7, 13]), np.array([0.5, -1.0, 2.0])
    base = seriate(w, method="anchored", anchors=anchors, anchor_values=values)
    moved = seriate(w, method="anchored", anchors=anchors, anchor_values=3 * values + 4)
    assert np.allclose(moved.positions, 3 * base.positions + 4)
    assert np.array_equal(moved.order, base.order)


def test_permutation_equivariance():
    rng = np.random.default_rng(1)
    w = random_graph(15, rng)
    anchors, values = np.array([0, 3, 9]), np.array([1.0, 2.0, 3.0])
    base = seriate(w, method="anchored", anchors=anchors, anchor_values=values)
    perm = rng.permutation(15)
    inv = np.argsort(perm)
    moved = seriate(w[np.ix_(perm, perm)], method="anchored", anchors=inv[anchors],
                    anchor_values=values)
    assert np.allclose(moved.positions, base.positions[perm])


def test_recovers_robinson_order_from_two_extreme_anchors():
    rng = np.random.default_rng(2)
    s = points_robinson(60, rng=rng)
    res = seriate(s, method="anchored", anchors=[0, 59], anchor_values=[0.0, 1.0])
    assert np.array_equal(res.order, np.arange(60))


def test_input_types_and_mask_anchors_agree():
    rng = np.random.default_rng(3)
    w = random_graph(12, rng)
    anchors = np.array([2, 5])
    mask = np.zeros(12, dtype=bool)
    mask[anchors] = True
    full_values = np.zeros(12)
    full_values[anchors] = [1.0, -1.0]
    ref = seriate(w, method="anchored", anchors=anchors, anchor_values=[1.0, -1.0]).positions
    for sim, a, v in [(sp.csr_matrix(w), anchors, [1.0, -1.0]), (w, mask, [1.0, -1.0]),
                      (w, mask, full_values)]:
        got = seriate(sim, method="anchored", anchors=a, anchor_values=v).positions
        assert np.allclose(got, ref)
    g = nx.relabel_nodes(nx.from_numpy_array(w), {i: f"n{i}" for i in range(12)})
    got = seriate(g, method="anchored", anchors=["n2", "n5"], anchor_values=[1.0, -1.0])
    assert np.allclose(got.positions, ref)


def test_conditioning_estimate_tracks_weak_bridge():
    conds = []
    for eps in (1e-2, 1e-4):
        w = sl.block_diag(np.ones((5, 5)), np.ones((5, 5)))
        np.fill_diagonal(w, 0)
        w[4, 5] = w[5, 4] = eps
        with pytest.warns(SeriationWarning, match="equal"):  # one anchor: a single value
            res = seriate(w, method="anchored", anchors=[0], anchor_values=[1.0])
        a = np.diag(w.sum(1)) - w
        exact = np.linalg.cond(a[1:, 1:], 1)
        assert res.conditioning == pytest.approx(exact, rel=0.5)
        conds.append(res.conditioning)
    assert conds[1] > 50 * conds[0]  # cond grows like 1/eps


def two_components():
    w = sl.block_diag(nx.to_numpy_array(nx.path_graph(4)), nx.to_numpy_array(nx.path_graph(3)))
    return w, np.array([0, 3]), np.array([0.0, 3.0])


def test_label_free_component_raises_by_default():
    w, a, v = two_components()
    with pytest.raises(ValueError, match="contain no anchor"):
        seriate(w, method="anchored", anchors=a, anchor_values=v)


def test_isolated_nan_policy():
    w, a, v = two_components()
    res = seriate(w, method="anchored", anchors=a, anchor_values=v, isolated="nan")
    assert np.allclose(res.positions[:4], [0, 1, 2, 3])
    assert np.isnan(res.positions[4:]).all()
    assert res.order[-3:].tolist() == [4, 5, 6]  # NaN last, in index order
    assert [c.anchored for c in res.component_info] == [True, False]


def test_isolated_unanchored_policy_orders_within_label_range():
    w, a, v = two_components()
    res = seriate(w, method="anchored", anchors=a, anchor_values=v, isolated="unanchored")
    free = res.positions[4:]
    assert free.min() == pytest.approx(0.0) and free.max() == pytest.approx(3.0)
    assert np.array_equal(np.argsort(free), [0, 1, 2])  # path order, oriented by index


def test_isolated_ridge_policy_equals_tikhonov_system():
    w, a, v = two_components()
    ridge = 1e-2
    res = seriate(w, method="anchored", anchors=a, anchor_values=v, isolated="ridge", ridge=ridge)
    alpha = ridge * w.sum(1).mean()
    lap = np.diag(w.sum(1)) - w
    u = np.setdiff1d(np.arange(7), a)
    system = lap[np.ix_(u, u)] + alpha * np.eye(u.size)
    rhs = w[np.ix_(u, a)] @ v + alpha * v.mean()
    assert np.allclose(res.positions[u], np.linalg.solve(system, rhs))
    assert np.allclose(res.positions[4:], v.mean())  # the free component shrinks to the mean


def test_equal_anchor_values_warn():
    w = nx.to_numpy_array(nx.path_graph(5))
    with pytest.warns(SeriationWarning, match="equal"):
        res = seriate(w, method="anchored", anchors=[0, 4], anchor_values=[2.0, 2.0])
    assert np.allclose(res.positions, 2.0)


def test_all_items_anchored():
    w = nx.to_numpy_array(nx.path_graph(3))
    res = seriate(w, method="anchored", anchors=[0, 1, 2], anchor_values=[3.0, 1.0, 2.0])
    assert res.order.tolist() == [1, 2, 0]


def test_symmetric_laplacian_rejected_for_anchored():
    with pytest.raises(ValueError, match="symmetric"):
        seriate(np.ones((3, 3)), method="anchored", anchors=[0], anchor_values=[1.0],
                laplacian="symmetric")


def test_isolated_option_validated():
    w, a, v = two_components()
    with pytest.raises(ValueError, match="isolated"):
        seriate(w, method="anchored", anchors=a, anchor_values=v, isolated="drop")
