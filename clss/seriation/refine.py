"""``refine_order``: improve an order on one criterion by local search (never making it worse).

The criteria and their names are those of :mod:`clss.seriation.quality` (docs/metrics.md); each
refinable one is minimised exactly as :func:`clss.seriation.quality.criterion` defines it, up to a
constant factor and offset (``D = max(S) - S`` or ``-S`` for a similarity, ``1/(1+d)`` for 2-SUM on
a distance). The search (numba kernels in ``_refine_kernels``) moves one item at a time to the best
slot within ``window`` positions; a move's exact change costs O(1) per slot for path length, LS and
gradient_weighted, O(slot distance) for 2SUM and inertia (running sums updated after each accepted
move) and O(n) for the triple criteria (AR events/deviations, gradient_raw). Path length also gets 2-opt
segment reversals. Don't-look bits skip items whose last look found nothing until a move lands next
to them; only strict improvements are accepted. See docs/seriation.md, "Optimising a criterion".
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from clss.seriation._validation import as_square_matrix, distance_to_similarity, rescale_magnitude
from clss.seriation.compare import _as_order
from clss.seriation.quality import CRITERIA

__all__ = ["REFINABLE", "Refinement", "refine_order"]

# name -> (kernel code, matrix: "s" similarity-like or "x" dissimilarity D / -S, sign to minimise).
# gradient_weighted is linear in x: Σ_{a<b} (3(b-a) - n - 1) x_ab, i.e. 3·LINEAR(x) minus a constant.
_OBJECTIVES: dict[str, tuple[str, str, float]] = {
    "2sum": ("SQUARE", "s", 1.0),
    "inertia": ("SQUARE", "x", -1.0),
    "ls": ("LINEAR", "x", -1.0),
    "gradient_weighted": ("LINEAR", "x", -1.0),
    "path_length": ("ADJACENT", "x", 1.0),
    "ar_events": ("EVENTS", "x", 1.0),
    "ar_deviations": ("DEVIATIONS", "x", 1.0),
    "gradient_raw": ("GRADIENT", "x", -1.0),
}
_TRIPLE = ("EVENTS", "DEVIATIONS", "GRADIENT")
#: Criteria that :func:`refine_order` can optimise.
REFINABLE: tuple[str, ...] = tuple(sorted(_OBJECTIVES))
# Dense refinement needs the n² matrix; the same limit as the dense seriation routes.
DENSE_MAX = 20_000


@dataclass(frozen=True)
class Refinement:
    """Outcome of :func:`refine_order`.

    Attributes
    ----------
    order : int64 array, shape (n,)
        The refined order (the start order when nothing improved it).
    criterion : str
        Registry name of the criterion (see :data:`clss.seriation.quality.CRITERIA`).
    direction : {"loss", "merit"}
        Whether lower or higher values are better.
    before, after : float
        The criterion's value (by :func:`clss.seriation.quality.criterion`) for the start and the
        refined order; ``after <= before`` for a loss, ``>=`` for a merit.
    moves : int
        Accepted moves (insertions, and 2-opt reversals for path length).
    passes : int
        Passes: the first looks at every item, each later one at the items a move woke up (its
        neighbours before and after it moved).
    converged : bool
        True when every item's last look found no improving move (don't-look bits all set); False
        when ``max_passes`` or ``time_limit`` stopped the search.
    seconds : float
        Wall time of the search, including the two criterion evaluations.
    """

    order: NDArray[np.int64]
    criterion: str
    direction: str
    before: float
    after: float
    moves: int
    passes: int
    converged: bool
    seconds: float

    def summary(self) -> dict[str, Any]:
        """Everything but the order, as plain Python values (for ``Seriation.info["refine"]``)."""
        out = asdict(self)
        del out["order"]
        return out


def _check_options(criterion_name: Any, kind: Any, window: Any, max_passes: Any, time_limit: Any,
                   seed: Any) -> str:
    if not isinstance(criterion_name, str):
        raise TypeError(f"criterion must be a string, one of {list(REFINABLE)}, got "
                        f"{type(criterion_name).__name__}")
    name = criterion_name.lower()
    if name not in _OBJECTIVES:
        hint = " (it is a criterion, but not one the local search optimises)" if name in CRITERIA else ""
        raise ValueError(f"cannot refine for criterion {criterion_name!r}{hint}; expected one of "
                         f"{list(REFINABLE)}")
    if kind not in ("similarity", "distance"):
        raise ValueError(f"kind must be 'similarity' or 'distance', got {kind!r}")
    for label, value in (("window", window), ("max_passes", max_passes)):
        if value is None and label == "window":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{label} must be an integer >= 1, got {value!r}")
    if time_limit is not None and (isinstance(time_limit, bool)
                                   or not isinstance(time_limit, (int, float, np.floating))
                                   or not math.isfinite(time_limit) or time_limit <= 0):
        raise ValueError(f"time_limit must be a positive number of seconds or None, got {time_limit!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, got {type(seed).__name__}")
    return name


def refine_order(similarity: Any, order: ArrayLike, criterion_name: str = "2sum", *,
                 kind: str = "similarity", window: int | None = 50, max_passes: int = 20,
                 time_limit: float | None = None, seed: int = 0,
                 symmetrize: bool | str = False) -> Refinement:
    """Improve ``order`` on one criterion by local search; the result is never worse.

    Parameters
    ----------
    similarity : array-like (n, n), scipy.sparse matrix or torch.Tensor
        Symmetric similarity (``kind="similarity"``, larger = more alike) or distance. Sparse input is
        densified (n <= 20 000).
    order : array-like of int, shape (n,)
        Start order, a permutation of ``0..n-1`` (e.g. ``seriate(s).order``).
    criterion_name : str, default "2sum"
        One of :data:`REFINABLE`: ``"2sum"``, ``"path_length"``, ``"ls"``, ``"inertia"``,
        ``"ar_events"``, ``"ar_deviations"``, ``"gradient_raw"``, ``"gradient_weighted"``
        (case-insensitive), with the definitions of :func:`clss.seriation.quality.criterion`.
    kind : {"similarity", "distance"}, default "similarity"
        How to read the matrix (the conversion rule of :mod:`clss.seriation.quality`).
    window : int or None, default 50
        Largest distance an item moves in one insertion move (and longest 2-opt segment); ``None``:
        anywhere. A look at one item costs O(window) for path length, LS and gradient_weighted,
        O(window²) for 2SUM and inertia, O(n · window) for the triple criteria.
    max_passes : int, default 20
        Passes (the active items visited once each, in a seeded random order); the search stops
        earlier when no item is active.
    time_limit : float, optional
        Stop after the pass during which this many seconds have elapsed. With it the result can
        depend on the machine's speed; without it the result is deterministic given ``seed``.
    seed : int, default 0
        Seed of the visiting order.
    symmetrize : bool or {"average", "max", "min"}, default False
        Symmetrise explicitly; by default an asymmetric matrix is an error (as in ``seriate``).

    Returns
    -------
    Refinement
        The refined order, the criterion's value before and after (as
        :func:`clss.seriation.quality.criterion` defines it, computed by the kernels in O(n²) or, for
        the triple criteria, O(n² log n), and for those the value after as the value before plus the
        exact changes of the accepted moves), moves, passes, convergence and time.

    Examples
    --------
    >>> import numpy as np
    >>> from clss.seriation import refine_order
    >>> s = np.exp(-np.abs(np.subtract.outer(np.arange(6), np.arange(6))))
    >>> refine_order(s, [1, 0, 2, 3, 5, 4], "2sum").order.tolist()
    [0, 1, 2, 3, 4, 5]
    """
    from clss.seriation import _refine_kernels as kern

    start = time.perf_counter()
    name = _check_options(criterion_name, kind, window, max_passes, time_limit, seed)
    mat, _ = as_square_matrix(similarity, symmetrize=symmetrize,
                              name="distance" if kind == "distance" else "similarity")
    n = mat.shape[0]
    if sp.issparse(mat):
        if kind == "distance":
            raise ValueError("a sparse matrix must be a similarity (an absent entry would be a "
                             "distance of 0); pass kind='similarity' or a dense distance matrix")
        if n > DENSE_MAX:
            raise ValueError(f"refinement works on the dense matrix, which at n = {n} needs "
                             f"{n * n * 8 / 2**30:.0f} GiB; refine at most {DENSE_MAX} items")
        mat = mat.toarray()
    if kind == "distance" and (mat < 0).any():
        raise ValueError("distance matrix has negative entries; distances must be >= 0")
    start_order = _as_order(order, "order")
    if start_order.shape[0] != n:
        raise ValueError(f"order has {start_order.shape[0]} items but the matrix has {n}")
    code_name, operand, sign = _OBJECTIVES[name]
    # The matrix scaled by a power of two into a safe range (exact), then exactly symmetric, as
    # quality.criterion evaluates it (after scaling, so subnormal entries keep their digits).
    base = distance_to_similarity(mat, "inverse", None) if operand == "s" and kind == "distance" \
        else mat
    base, exponent = rescale_magnitude(np.asarray(base, dtype=np.float64))
    sym = base / 2
    sym += sym.T
    triple = code_name in _TRIPLE
    work = start_order.copy()
    flip = -1.0 if operand == "x" and kind == "similarity" else 1.0  # x = D or -S
    if triple:  # the kernels keep the matrix in position order, permuted along with the order
        m = sym[np.ix_(work, work)]
        m *= flip
    else:
        m = sym * (flip * sign)  # pair objectives carry the sign in the matrix
    m = np.ascontiguousarray(m, dtype=np.float64)
    np.fill_diagonal(m, 0.0)
    code = getattr(kern, code_name)
    if code_name in ("EVENTS", "GRADIENT"):  # integer-valued changes
        tol = 0.5
    else:
        top = max(float(m.max()), -float(m.min())) if n else 0.0
        tol = 1e-13 * n * n * top * (2.0 * n if code_name == "SQUARE" else 1.0)
    reach = n - 1 if window is None else int(min(window, max(n - 1, 1)))
    value = _Value(name, code_name, kind, sym, exponent)
    before = value(m, work)
    rng = np.random.default_rng(seed)
    active = np.ones(n, dtype=np.bool_) if n >= 3 else np.zeros(n, dtype=np.bool_)
    moves = passes = 0
    gained = 0.0
    state = None
    while active.any() and passes < max_passes:
        passes += 1
        if code_name == "ADJACENT":
            flips = kern.two_opt_pass(m, work, reach, tol)[1]
            if flips:  # a reversal changes the neighbourhood of every item in it
                active[:] = True
            moves += flips
        if state is None or code_name == "ADJACENT":  # later moves update the sums in place
            state = kern.pair_state(m, work, code)
        change, inserted = kern.insertion_pass(m, work, *state, rng.permutation(n).astype(np.int64),
                                               active, code, sign, reach, tol)
        gained += change
        moves += inserted
        if time_limit is not None and time.perf_counter() - start > time_limit:
            break
    converged = not active.any()
    if triple:  # exact move changes (integers for the counts) instead of a second O(n² log n) pass
        after = before + sign * (float(np.ldexp(gained, exponent)) if code_name == "DEVIATIONS"
                                 else gained)
    else:
        after = value(m, work)
    direction = CRITERIA[name].direction
    if (after > before) if direction == "loss" else (after < before):
        work, after = start_order.copy(), before  # rounding only: never return a worse order
    return Refinement(order=work, criterion=name, direction=direction, before=float(before),
                      after=float(after), moves=int(moves), passes=passes, converged=converged,
                      seconds=time.perf_counter() - start)


class _Value:
    """The criterion's value (as :func:`clss.seriation.quality.criterion` defines it) from the
    kernels' objective on the matrix scaled by ``2^-exponent`` (``sym``, exactly symmetric): O(n²)
    for the pair criteria, O(n² log n) for the triple ones, instead of ``criterion``'s general
    evaluation (0.16 s for a pair criterion at n = 1000, ~1 min for a triple one). Tests check the
    two agree."""

    def __init__(self, name: str, code_name: str, kind: str, sym: NDArray[np.float64],
                 exponent: int) -> None:
        n = sym.shape[0]
        self.name, self.code_name, self.exponent = name, code_name, exponent
        k = np.arange(1, n, dtype=np.float64)
        similarity = kind == "similarity"
        # criterion = (factor * objective + offset) * 2^exponent (D = max(S) - S on a similarity)
        top = float(sym.max()) if n and similarity and name in ("inertia", "ls", "path_length") else 0.0
        if name == "2sum":
            self.factor, self.offset = 2.0, 0.0
        elif name == "inertia":
            self.factor = -2.0
            self.offset = 2.0 * top * float(np.dot(n - k, k * k)) if similarity else 0.0
        elif name == "ls":
            self.factor = -2.0
            self.offset = 2.0 * top * float(np.dot(n - k, k)) if similarity else 0.0
        elif name == "gradient_weighted":  # -(n + 1) Σ_{a<b} x_ab, x = D or -S
            off_diagonal = (float(sym.sum()) - float(np.trace(sym))) / 2.0
            self.factor = -3.0
            self.offset = (n + 1.0) * off_diagonal if similarity else -(n + 1.0) * off_diagonal
        elif name == "path_length":
            self.factor, self.offset = 1.0, (n - 1.0) * top if similarity else 0.0
        else:  # triple sums are unsigned; AR deviations has degree 1, the counts degree 0
            self.factor, self.offset = 1.0, 0.0

    def __call__(self, m: NDArray[np.float64], order: NDArray[np.int64]) -> float:
        from clss.seriation import _refine_kernels as kern

        if order.shape[0] < 2:
            return 0.0
        code = getattr(kern, self.code_name)
        if self.code_name in _TRIPLE:
            raw = kern.triple_value(m, code)
            return float(np.ldexp(raw, self.exponent)) if self.code_name == "DEVIATIONS" else raw
        with np.errstate(over="ignore"):  # inf only when the true value exceeds the float range
            scaled = self.factor * kern.pair_value(m, order, code) + self.offset
            return float(np.ldexp(scaled, self.exponent))


def check_refine(refine: Any, method: str, n: int) -> None:
    """Validate ``seriate``'s ``refine=`` keyword for ``n`` items before any work."""
    if refine is None:
        return
    _check_options(refine, "similarity", 1, 1, None, 0)
    if n > DENSE_MAX:
        raise ValueError(f"refine= works on the dense matrix, which at n = {n} needs "
                         f"{n * n * 8 / 2**30:.0f} GiB; refine at most {DENSE_MAX} items")
    if method == "anchored":
        raise ValueError("refine= reorders items, which would break the anchored positions (values "
                         "on the anchors' scale); call refine_order(similarity, result.order, ...) "
                         "on the anchored result instead, or use method='spectral'")


def refine_seriation(res: Any, matrix: Any, kind: str, criterion_name: str, seed: int) -> Any:
    """``res`` (a :class:`~clss.seriation.result.Seriation`) with its order refined on ``matrix``
    (the validated input of ``seriate``, read as ``kind``).

    When the order changes, ``positions`` become ranks scaled to [0, 1] (as for the combinatorial
    methods), ``tie_groups`` empty and ``safe_radius`` NaN: the spectral coordinates and their
    perturbation bound describe the unrefined order. ``info["refine"]`` holds
    :meth:`Refinement.summary`.
    """
    from dataclasses import replace

    from clss.seriation.compare import ranks_from_order

    out = refine_order(matrix, res.order, criterion_name, kind=kind, seed=seed)
    info = dict(res.info)
    info["refine"] = out.summary()
    if np.array_equal(out.order, res.order):
        return replace(res, info=info)
    ranks = ranks_from_order(out.order)
    return replace(res, order=out.order, ranks=ranks,
                   positions=ranks.astype(np.float64) / max(res.n - 1, 1), tie_groups=(),
                   safe_radius=math.nan, info=info)
