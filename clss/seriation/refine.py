"""``refine_order``: improve an order on one criterion by local search (never making it worse).

The criteria and their names are those of :mod:`clss.seriation.quality` (docs/metrics.md); each
refinable one is minimised exactly as :func:`clss.seriation.quality.criterion` defines it, up to a
constant factor and offset (``D = max(S) - S`` or ``-S`` for a similarity, ``1/(1+d)`` for 2-SUM on
a distance). The search (numba kernels in ``_refine_kernels``) moves one item at a time to the best
slot within ``window`` positions, accumulating exact O(n) swap deltas (O(1) for path length, which
also gets 2-opt segment reversals), and accepts only strict improvements. See docs/seriation.md,
"Optimising a criterion".
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
from clss.seriation.quality import CRITERIA, criterion

__all__ = ["REFINABLE", "Refinement", "refine_order"]

# name -> (kernel code, matrix: "s" similarity-like or "x" dissimilarity D / -S, sign to minimise)
_OBJECTIVES: dict[str, tuple[str, str, float]] = {
    "2sum": ("SQUARE", "s", 1.0),
    "inertia": ("SQUARE", "x", -1.0),
    "ls": ("LINEAR", "x", -1.0),
    "path_length": ("ADJACENT", "x", 1.0),
    "ar_events": ("EVENTS", "x", 1.0),
    "ar_deviations": ("DEVIATIONS", "x", 1.0),
    "gradient_raw": ("GRADIENT", "x", -1.0),
    "gradient_weighted": ("GRADIENT_W", "x", -1.0),
}
# Values computed by the triple kernel rather than by quality.criterion (see refine_order).
_TRIPLE_VALUE = ("EVENTS", "DEVIATIONS", "GRADIENT")
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
        Passes over all items.
    converged : bool
        True when the last pass found no improving move (a local optimum for the move set); False
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
        anywhere. Each pass costs O(n² · window) (O(n · window) for path length).
    max_passes : int, default 20
        Passes over all items (each item visited once per pass, in a seeded random order); the search
        stops earlier at a local optimum.
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
        The refined order, the criterion's value before and after (by
        :func:`clss.seriation.quality.criterion`), moves, passes, convergence and time.

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
    if operand == "s":
        m = distance_to_similarity(mat, "inverse", None) if kind == "distance" else mat
    else:
        m = mat if kind == "distance" else -mat
    if code_name in ("SQUARE", "LINEAR"):
        m = sign * m  # pair objectives carry the sign in the matrix
    m, exponent = rescale_magnitude(np.asarray(m, dtype=np.float64))
    # Exact symmetry, as quality.criterion evaluates it; after rescaling, so subnormals keep digits.
    m = np.ascontiguousarray(m / 2 + m.T / 2)
    np.fill_diagonal(m, 0.0)
    code = getattr(kern, code_name)
    top = float(np.abs(m).max()) if n else 0.0
    tol = (0.5 if code_name in ("EVENTS", "GRADIENT")
           else 1e-13 * n * n * top * (2.0 * n if code_name == "SQUARE" else 1.0))
    reach = n - 1 if window is None else int(min(window, max(n - 1, 1)))

    def value(o: NDArray[np.int64]) -> float:
        if code_name not in _TRIPLE_VALUE:
            return criterion(mat, o, name, kind=kind) if n > 1 else 0.0
        # quality.criterion's O(n³) torch pass takes ~1 min at n = 1000; this kernel sums the same
        # triples (tests check the two agree) on the rescaled matrix, of degree 0 or 1.
        raw = kern.triple_value(m, o, code)
        return float(np.ldexp(raw, exponent)) if code_name == "DEVIATIONS" else raw

    before = value(start_order)
    work = start_order.copy()
    rng = np.random.default_rng(seed)
    moves = passes = 0
    converged = n < 3
    while not converged and passes < max_passes:
        passes += 1
        found = 0
        if code_name == "ADJACENT":
            found += kern.two_opt_pass(m, work, reach, tol)[1]
        found += kern.insertion_pass(m, work, rng.permutation(n).astype(np.int64), code, sign,
                                     reach, tol)[1]
        moves += found
        converged = found == 0
        if time_limit is not None and time.perf_counter() - start > time_limit:
            break
    after = value(work)
    direction = CRITERIA[name].direction
    if (after > before) if direction == "loss" else (after < before):
        work, after = start_order.copy(), before  # rounding only: never return a worse order
    return Refinement(order=work, criterion=name, direction=direction, before=float(before),
                      after=float(after), moves=int(moves), passes=passes, converged=converged,
                      seconds=time.perf_counter() - start)


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
