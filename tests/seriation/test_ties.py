"""tie_groups against a plain-loop reading of its definition, and the tie warning on long chains."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from clss.seriation import SeriationWarning, seriate
from clss.seriation.spectral import tie_groups


def reference_groups(positions, order, tol):
    """Walk the sorted items once: a group grows while the next item lies within the larger tolerance
    of its predecessor (a chain) and of the group's first item; groups of one item are dropped."""
    t = np.broadcast_to(np.asarray(tol, dtype=float), positions.shape)
    groups, current = [], [order[0]]
    for i in order[1:]:
        s, prev = current[0], current[-1]
        if np.isfinite(positions[i]) and np.isfinite(positions[prev]) and \
                positions[i] - positions[prev] <= max(t[prev], t[i]) and \
                positions[i] - positions[s] <= max(t[s], t[i]):
            current.append(i)
        else:
            groups.append(current)
            current = [i]
    groups.append(current)
    return [sorted(g) for g in groups if len(g) >= 2]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("per_item", [False, True])
def test_matches_the_loop_reference(seed, per_item):
    rng = np.random.default_rng(seed)
    n = 400
    # clusters of near-equal values and long runs of small steps, in random item order
    steps = rng.choice([0.0, 1e-9, 4e-9, 1e-3], size=n, p=[0.3, 0.3, 0.3, 0.1])
    positions = np.cumsum(steps)[rng.permutation(n)]
    positions[rng.choice(n, 3, replace=False)] = np.nan
    order = np.argsort(positions, kind="stable")
    tol = rng.uniform(2e-9, 2e-8, n) if per_item else 1e-8
    got = [g.tolist() for g in tie_groups(positions, order, tol)]
    assert got == reference_groups(positions, order, tol)
    for g in got:  # every group is a real tie: its extent stays within the tolerances
        assert np.ptp(positions[g]) <= np.max(np.broadcast_to(tol, positions.shape)[g]) * (1 + 1e-12)


def test_long_chain_of_small_gaps_is_not_one_tie():
    positions = np.arange(10_000) * 1e-9  # every gap below the tolerance, the range far above it
    groups = tie_groups(positions, np.arange(10_000), 1e-7)
    assert max(g.size for g in groups) <= 101
    assert sum(g.size for g in groups) == 10_000


def test_long_band_graph_orders_without_a_tie_warning():
    # a band graph of 1e5 items: neighbouring entries of the unit Fiedler vector differ by ~1e-7, below
    # the solver-accuracy tolerance, so chaining alone "tied" all 1e5 items and warned, though the
    # order is exact
    n, k = 100_000, 5
    offsets = [d for d in range(1, k + 1)] + [-d for d in range(1, k + 1)]
    w = sp.diags([np.ones(n - abs(d)) for d in offsets], offsets, format="csr")
    perm = np.random.default_rng(0).permutation(n)
    w = w[perm][:, perm]
    with warnings.catch_warnings():
        warnings.simplefilter("error", SeriationWarning)
        res = seriate(w)
    assert max(g.size for g in res.tie_groups) < n // 100
    assert abs(np.corrcoef(res.ranks, perm)[0, 1]) > 0.999  # item j is the band's node perm[j]
