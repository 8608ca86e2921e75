"""Diagnostics that catch a spectral order the data do not support, and the peeling fix.

Spectral seriation fails silently on ordinary graphs: a k-NN graph weighted ``exp(-d²/h²)`` with one
global bandwidth gives its outliers degrees many orders of magnitude below the median, and a part
attached by a single weak edge (a dangling tree) has a cut far cheaper than any cut of the main chain.
The Fiedler vector then localises on the weakest items (a few large entries, the rest almost
constant), and sorting it orders almost nothing. The checks here are O(n) on the solved vector:

* weak items: degree far below the median and at the scale of λ2 (the cost of cutting an item off is
  its degree; once that is below λ2, the Fiedler vector prefers isolating it to ordering the chain);
* localisation: the participation ratio ``(Σ x²)² / (n Σ x⁴)`` of the centred vector (about 2/3 for
  a cosine-like chain vector, about ``m / n`` for a vector carried by ``m`` items);
* a tie group holding a large share of the items, and non-convergence of the eigensolver.

The fix (``weak="peel"``, the default of :func:`clss.seriation.seriate`): set the weak and localised
items aside, order the rest, and insert the set-aside items beside their most similar kept item
(:func:`insertion_keys`); the result replaces the plain order only where the two disagree
(:func:`same_placement`), so orders that a weak item does not distort stay exactly as they were.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as sla
from numpy.typing import NDArray
from scipy.sparse.csgraph import connected_components

from clss.seriation._validation import Matrix

# An item is weak when its degree is below this fraction of the median degree.
WEAK_RELATIVE = 1e-3
# A centred Fiedler vector whose participation ratio is below this is carried by few items.
LOCALIZED_PR = 0.1
# A tie group holding at least this share of a component (and at least TIE_MIN items) is reported:
# an iterative solve at its default tolerance leaves smaller groups on large chains (the fine order
# of neighbours within the solver's accuracy); a localised vector ties nearly everything.
TIE_SHARE = 0.5
TIE_MIN = 10
# Items carrying a localised vector: entries above this fraction of the largest centred entry.
CARRIER_FRACTION = 0.1
# Never set aside more than this share of a component: beyond it there is no "rest" to order.
PEEL_MAX_SHARE = 0.25
PEEL_ROUNDS = 3
# The peeled order replaces the plain one only if the two disagree on the kept items (|Spearman|).
AGREEMENT = 0.99
# ... or a set-aside item sits farther than this share of the items from its strong kept neighbours.
DISPLACEMENT = 0.05
# Weak-item and localisation checks need a component this large: in a handful of items one weakly
# similar item legitimately sits at an end, and there is no "rest" to order without it.
MIN_ITEMS = 20


@dataclass(frozen=True)
class Finding:
    """One diagnosed problem: a short ``code``, the items it concerns and the message (cause, remedy)."""

    code: str
    message: str
    items: NDArray[np.int64]


def participation_ratio(x: NDArray[np.float64]) -> float:
    """``(Σ c²)² / (n Σ c⁴)`` of ``c = x - median(x)``: ~2/3 for a cosine, ~m/n when m items carry it.

    ``x``: shape ``(n,)``. Returns 1.0 for a constant vector (nothing to localise) and for n < 2.
    """
    if x.shape[0] < 2:
        return 1.0
    c = x - np.median(x)
    top = float(np.abs(c).max())
    if not top > 0:
        return 1.0
    c = c / top  # scale-free, and keeps c⁴ far from underflow
    s2 = float(c @ c)
    return s2 * s2 / (c.shape[0] * float((c * c) @ (c * c)))


def weak_items(d: NDArray[np.float64], lambda2: float) -> NDArray[np.int64]:
    """Items whose degree is below ``WEAK_RELATIVE`` × the median degree, when at least one of them is
    at the scale of λ2 (degree at most ``10 λ2``: the localisation mechanism); else none.

    All of them, not only those at the λ2 scale: degrees of global-bandwidth outliers spread over many
    orders of magnitude, and setting aside only the weakest makes the next weakest localise the vector.
    """
    positive = d[d > 0]
    if positive.size == 0:
        return np.empty(0, np.int64)
    weak = d < WEAK_RELATIVE * float(np.median(positive))
    if not (math.isfinite(lambda2) and (d[weak] <= 10.0 * lambda2).any()):
        return np.empty(0, np.int64)
    return np.flatnonzero(weak).astype(np.int64)


def carriers(x: NDArray[np.float64]) -> NDArray[np.int64]:
    """Items whose centred entry exceeds ``CARRIER_FRACTION`` of the largest: where a localised vector
    lives."""
    c = np.abs(x - np.median(x))
    top = float(c.max()) if c.size else 0.0
    if not top > 0:
        return np.empty(0, np.int64)
    return np.flatnonzero(c > CARRIER_FRACTION * top).astype(np.int64)


def diagnose_component(items: NDArray[np.int64], x: NDArray[np.float64], d: NDArray[np.float64],
                       lambda2: float, converged: bool, largest_tie: int,
                       laplacian: str) -> list[Finding]:
    """The problems of one solved component (``items`` global, ``x``/``d`` its positions and degrees)."""
    m = items.shape[0]
    found: list[Finding] = []
    if m < 3:
        return found
    if laplacian == "unnormalized" and m >= MIN_ITEMS:
        weak = weak_items(d, lambda2)
        if weak.size:
            found.append(Finding(
                "weak_items",
                f"{weak.size} item(s) have a degree below {WEAK_RELATIVE:g} × the median, some at the "
                f"scale of λ2 = {lambda2:.3g} (smallest degree {float(d.min()):.3g}, median "
                f"{float(np.median(d)):.3g}): cutting them off is cheaper than ordering the rest, so "
                f"the Fiedler vector localises on them. Typical cause: one global kernel bandwidth; "
                f"use a self-tuning (local-scaling) kernel, binary k-NN weights or "
                f"laplacian='random_walk'", items[weak]))
    pr = participation_ratio(x)
    if m >= MIN_ITEMS and pr < LOCALIZED_PR:
        car = carriers(x)
        found.append(Finding(
            "localized",
            f"the Fiedler vector of a {m}-item component is localised on {car.size} item(s) "
            f"(participation ratio {pr:.3g}; about 0.67 for a well-spread order): a weakly attached "
            f"part (dangling tree, near-isolated items) has a cheaper cut than the main order. Check "
            f"those items' similarities, or order without them", items[car]))
    if largest_tie >= max(TIE_MIN, TIE_SHARE * m):
        found.append(Finding(
            "ties",
            f"{largest_tie} of {m} items share one position within the solver's accuracy: their "
            f"order is not determined. If the data do not have such ties, the vector is localised "
            f"elsewhere or the solver stopped early (pass a smaller tol)", items[:0]))
    if not converged:
        found.append(Finding(
            "not_converged",
            f"the eigensolver did not reach its tolerance on a {m}-item component: the order is "
            f"approximate. Pass a larger maxiter or a looser tol, or another solver=", items[:0]))
    return found


def peel_set(findings: list[Finding], comp: NDArray[np.int64]) -> NDArray[np.int64]:
    """Items to set aside: weak and localisation carriers, never more than ``PEEL_MAX_SHARE`` of a
    component (or all but one of its items)."""
    chosen = [f.items for f in findings if f.code in ("weak_items", "localized") and f.items.size]
    if not chosen:
        return np.empty(0, np.int64)
    cand = np.unique(np.concatenate(chosen))
    sizes = np.bincount(comp)
    per_comp = np.bincount(comp[cand], minlength=sizes.shape[0])
    ok = (per_comp <= PEEL_MAX_SHARE * sizes) & (per_comp <= sizes - 2)
    return cand[ok[comp[cand]]]


def _rows(w: Matrix, items: NDArray[np.int64]) -> sp.csr_matrix:
    """The rows ``items`` of ``w`` as CSR (a dense ``w`` is sliced first, never converted whole)."""
    return sp.csr_matrix(w.tocsr()[items] if sp.issparse(w) else w[items])


def rank_agreement(a: NDArray[np.int64], b: NDArray[np.int64]) -> float:
    """|Spearman ρ| between two orderings of the same items, given as (not necessarily dense) ranks."""
    m = a.shape[0]
    if m < 3:
        return 1.0
    ra = np.argsort(np.argsort(a, kind="stable"), kind="stable").astype(np.float64)
    rb = np.argsort(np.argsort(b, kind="stable"), kind="stable").astype(np.float64)
    diff = ra - rb
    return abs(1.0 - 6.0 * float(diff @ diff) / (m * (m * m - 1.0)))


def same_placement(w: Matrix, plain: NDArray[np.int64], core: NDArray[np.int64],
                   items: NDArray[np.int64], agreement: float) -> bool:
    """Whether the plain order stands: the rest agrees (``agreement >= AGREEMENT``) and every
    set-aside item sits, in the plain order, within ``max(len(items) + 1, DISPLACEMENT · n)`` places
    of one of its strong kept neighbours (similarity at least half its largest to a kept item; ties
    in similarity make "the most similar" ambiguous). Items without kept neighbours are not checked.
    """
    if agreement < AGREEMENT:
        return False
    n = plain.shape[0]
    to_core = _rows(w, items)[:, core]
    to_core.eliminate_zeros()
    if to_core.nnz == 0:
        return True
    row = np.repeat(np.arange(items.size), np.diff(to_core.indptr))
    top = np.zeros(items.size)
    np.maximum.at(top, row, to_core.data)
    strong = to_core.data >= 0.5 * top[row]
    dist = np.abs(plain[items][row] - plain[core[to_core.indices]]).astype(np.float64)
    nearest = np.full(items.size, np.inf)
    np.minimum.at(nearest, row[strong], dist[strong])
    nearest = nearest[np.isfinite(nearest)]
    return bool(nearest.max(initial=0) <= max(items.size + 1, DISPLACEMENT * n))


def insertion_keys(w: Matrix, core: NDArray[np.int64], core_ranks: NDArray[np.int64],
                   peeled: NDArray[np.int64]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Sort keys that insert set-aside items into the core's order.

    An item with kept neighbours goes right next to its most similar kept item ``j``, on the side of
    the similarity-weighted mean rank of its kept neighbours (so a Robinson matrix's weak end item
    stays at the end; an average alone would pull it inside); items sharing a slot are ordered by
    that mean. Items without kept neighbours take the harmonic extension of the core ranks (a dangling
    tree sits at its attachment point). Returns ``(keys on the core-rank scale, j or -1)``.
    """
    to_core = _rows(w, peeled)[:, core]
    strength = np.asarray(to_core.sum(axis=1)).ravel()
    best = np.asarray(to_core.argmax(axis=1)).ravel()
    r = core_ranks.astype(np.float64)
    touch = strength > 0
    mean = np.where(touch, (to_core @ r) / np.where(touch, strength, 1.0), np.nan)
    side = np.sign(mean - r[best])
    # ± 0.25 keeps the slot strictly between j and its neighbours in the core order; the mean breaks
    # ties among items sharing a slot (it is within the neighbours' rank range, scaled into 0.1).
    keys = r[best] + 0.25 * side + 0.1 * np.tanh((mean - r[best]) / max(r.size, 1))
    anchor = np.where(touch, core[best], -1).astype(np.int64)
    if not touch.all():
        rest = np.flatnonzero(~touch)
        keys[rest] = harmonic_extension(w, core, r, peeled)[rest]
    return keys, anchor


def harmonic_extension(w: Matrix, known: NDArray[np.int64], values: NDArray[np.float64],
                       unknown: NDArray[np.int64]) -> NDArray[np.float64]:
    """Positions of ``unknown`` items: the harmonic extension of ``values`` given on ``known``.

    Solves ``(D_uu - W_uu) x = W_uk y`` row-scaled by ``1/d`` (degrees span many orders of magnitude
    here). Unknown items with no path to a known one get NaN; the caller handles them.
    """
    n = w.shape[0]
    rows = _rows(w, unknown)
    d = np.asarray(rows.sum(axis=1)).ravel()
    w_uu = rows[:, unknown]
    y = np.zeros(n)
    y[known] = values
    b = rows @ y
    inv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1.0), 0.0)
    a = (sp.identity(unknown.size, format="csr") - sp.diags(inv) @ w_uu).tocsc()
    rhs = inv * b
    # Unknown items without a path to a known one make singular blocks: they get NaN.
    contact = np.asarray(rows[:, known].sum(axis=1)).ravel() > 0
    x = np.full(unknown.size, math.nan)
    u = unknown.size
    hub = sp.csr_matrix((np.ones(int(contact.sum())), (np.flatnonzero(contact),
                                                       np.zeros(int(contact.sum()), np.int64))),
                        shape=(u, 1))
    graph = sp.bmat([[w_uu, hub], [hub.T, None]], format="csr")
    _, lab = connected_components(graph, directed=False)
    idx = np.flatnonzero(lab[:u] == lab[u])
    if idx.size:
        x[idx] = np.atleast_1d(sla.spsolve(a[idx][:, idx], rhs[idx]))
    return x
