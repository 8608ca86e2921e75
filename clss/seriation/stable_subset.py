"""GCLSS memory-based feature selection: keep the ``k`` samples whose features are most stable.

GCLSS (Wang, Dai, Bai, Li, "Contrastive Learning for Semi-Supervised Deep Regression with
Generalized Ordinal Rankings from Spectral Seriation", arXiv 2512.09267) runs two passes over an
unlabeled batch, measures for each pair of samples how much their cosine similarity varies across
the four cross-view similarity matrices (:func:`cross_view_perturbation`) and keeps the ``k``
samples whose pairwise variation sums to the least (:func:`select_stable_subset`), chosen by a
dynamic program.

The official ``minimize_matrix_sum`` maximises the sum despite its name, i.e. it keeps the *least*
stable samples. ``objective="min"`` (the default) is the paper's intent; ``"max_faithful"``
reproduces the official direction and, with its default ``refine=False``, the official subset.
``docs/stable_subset.md`` reports how often the DP finds the optimum and how it fares against
greedy.
"""

from __future__ import annotations

import math
import operator
from types import SimpleNamespace
from typing import TYPE_CHECKING, Literal

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from clss.seriation._validation import as_square_matrix, outside_safe_range, rescale_magnitude

if TYPE_CHECKING:
    import torch

__all__ = ["cross_view_perturbation", "select_stable_subset"]

OBJECTIVES = ("min", "max_faithful")
METHODS = ("dp", "exact", "greedy", "auto")
BACKENDS = ("numba", "python")
PERTURBATION_MODES = ("cv", "std")

# method="exact" refuses more subsets than this (~20 ms in numba, but tens of seconds with the
# Python backend); "auto" brute-forces up to AUTO_EXACT_MAX_SUBSETS, where it costs about the DP's
# tens of microseconds.
EXACT_MAX_SUBSETS = 2_000_000
AUTO_EXACT_MAX_SUBSETS = 5_000


def select_stable_subset(
    perturbation: NDArray[np.floating] | torch.Tensor,
    k: int,
    *,
    objective: Literal["min", "max_faithful"] = "min",
    method: Literal["dp", "exact", "greedy", "auto"] = "dp",
    backend: Literal["numba", "python"] = "numba",
    refine: bool | None = None,
    symmetrize: bool = False,
) -> NDArray[np.int64]:
    """Choose ``k`` items whose summed pairwise perturbation is smallest (GCLSS feature selection).

    Minimises ``f(S) = sum_{a != b in S} P[a, b]`` over subsets ``S`` of size ``k`` (GCLSS, Wang
    et al., arXiv 2512.09267, "memory-based feature selection"). ``f`` counts each unordered pair
    twice, as the official code does; the returned subset does not depend on this convention.

    Parameters
    ----------
    perturbation : numpy.ndarray or torch.Tensor, shape (n, n)
        Pairwise perturbation scores, e.g. from :func:`cross_view_perturbation`; ``n >= 2``.
        Tensors are detached and moved to the CPU once; the input is converted once to C-contiguous
        float64 (a single numba signature). Only off-diagonal entries are used, but all entries
        must be finite. Must be symmetric within ``1e-8 + 1e-6 * max|P|`` unless ``symmetrize``.
    k : int
        Subset size, ``1 <= k <= n``. ``k == n`` returns every index. ``k == 1`` returns the item
        with the smallest sum of scores to all others (largest for ``"max_faithful"``); the
        official code returns an empty list there.
    objective : {"min", "max_faithful"}, default "min"
        ``"min"`` keeps the most stable samples (the paper's intent). ``"max_faithful"``
        maximises, as the official ``minimize_matrix_sum`` does, for parity runs.
    method : {"dp", "exact", "greedy", "auto"}, default "dp"
        ``"dp"``: the GCLSS dynamic program, O(n^2 k) time, O(n^2 + n k) memory (see Notes).
        ``"exact"``: brute force over all C(n, k) subsets; raises above 2,000,000 subsets.
        ``"greedy"``: the first minimum pair, then the item of least marginal increase, repeatedly.
        ``"auto"``: ``"exact"`` when C(n, k) <= 5,000, else ``"dp"``.
    backend : {"numba", "python"}, default "numba"
        ``"python"`` runs the same kernels uncompiled (plain loops): a slow reference returning the
        identical subset.
    refine : bool or None, default None
        Polish a heuristic result with best-improvement 1-swap local search. For ``"dp"`` the search
        runs from the DP subset and from the greedy subset and the better local optimum is returned
        (the DP's on ties), so the result is never worse than ``"greedy"``. ``None`` means ``True``
        for ``objective="min"`` with ``"dp"`` (also when chosen by ``"auto"``) and ``False``
        otherwise: greedy stays the bare baseline and ``"max_faithful"`` reproduces the official
        subset. Ignored when the solution is exact.
    symmetrize : bool, default False
        Replace ``P`` by ``(P + P^T) / 2`` instead of checking symmetry.

    Returns
    -------
    numpy.ndarray of int64, shape (k,)
        The chosen indices, sorted ascending. Ties are broken deterministically (smallest index /
        lexicographically first subset).

    Raises
    ------
    ValueError
        Non-square input, ``n < 2``, NaN/inf entries, asymmetric input, ``k`` outside ``[1, n]``,
        an unknown ``objective``/``method``/``backend``, or ``method="exact"`` with more than
        2,000,000 subsets.
    TypeError
        Non-numeric or complex input, or a non-integer ``k``.

    Notes
    -----
    The DP follows the official recurrence with the direction flipped. ``dp[i][j]`` is the best
    value of a ``j``-subset ``sel[i][j]`` of the first ``i`` items; ``dp[i][2] = 2 min_{a<b<i}
    P[a, b]`` (the lexicographically first minimum pair); for ``j >= 3``::

        dp[i][j] = min(dp[i-1][j],
                       min_{k' < i} dp[k'][j-1] + 2 sum_{s in sel[k'][j-1]} P[i-1, s])

    and the answer is ``sel[n][k]``. Only one subset is kept per state, so this is a heuristic (the
    problem is a densest-k-subgraph problem, NP-hard in general); it is exact for additive scores
    ``P[a, b] = u[a] + u[b]``. Deviations from the official code: unreachable states are ``+inf``
    instead of ``-9999`` (the sentinel can win once sums fall below -9999); the inner sums are
    carried forward instead of recomputed (the same float operations, O(n^2 k) instead of
    O(n^2 k^2)); the pair base case is updated incrementally instead of rescanned (the same
    lexicographic tie-breaking). Only the first changes a subset, and only in that case.

    Examples
    --------
    >>> import numpy as np
    >>> p = np.full((4, 4), 5.0); p[0, 2] = p[2, 0] = 0.1
    >>> select_stable_subset(p, 2).tolist()
    [0, 2]
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if isinstance(k, bool):
        raise TypeError("k must be an integer, got a bool")
    try:
        k = operator.index(k)
    except TypeError:
        raise TypeError(f"k must be an integer (the subset size), got {k!r} of type "
                        f"{type(k).__name__}") from None

    mat, _ = as_square_matrix(perturbation, weight=None, symmetrize=symmetrize, name="perturbation")
    # the subset is scale-free: keep sums of entries near 1e308 (or subnormal) finite and exact
    mat, _ = rescale_magnitude(mat)
    a = np.ascontiguousarray(mat.toarray() if sp.issparse(mat) else mat, dtype=np.float64)
    n = a.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k must satisfy 1 <= k <= n = {n}, got k = {k}")
    maximise = objective == "max_faithful"
    if k == n:
        return np.arange(n, dtype=np.int64)
    if k == 1:
        off = a.copy()
        np.fill_diagonal(off, 0.0)
        totals = off.sum(axis=1)
        return np.array([np.argmax(totals) if maximise else np.argmin(totals)], dtype=np.int64)

    n_subsets = math.comb(n, k)
    if method == "auto":
        method = "exact" if n_subsets <= AUTO_EXACT_MAX_SUBSETS else "dp"
    if method == "exact" and n_subsets > EXACT_MAX_SUBSETS:
        raise ValueError(f"method='exact' would enumerate C({n}, {k}) = {n_subsets} subsets (limit "
                         f"{EXACT_MAX_SUBSETS}); use method='dp' or 'greedy'")
    if refine is None:
        refine = not maximise and method == "dp"

    kern = _kernels(backend)
    if maximise:
        a = -a  # exact, so strict "<" on -P is the official strict ">" on P, ties included
    if method == "exact":
        return _checked(kern.exact_select(a, k), k, n)
    if method == "greedy":
        sel = _checked(kern.greedy_select(a, k), k, n)
        return _checked(kern.refine_swap(a, sel), k, n) if refine else sel
    sel = _checked(kern.dp_select(a, k), k, n)
    if not refine:
        return sel
    from_dp = _checked(kern.refine_swap(a, sel), k, n)
    from_greedy = _checked(kern.refine_swap(a, _checked(kern.greedy_select(a, k), k, n)), k, n)
    return from_greedy if _subset_value(a, from_greedy) < _subset_value(a, from_dp) else from_dp


def _checked(sel: NDArray[np.int64], k: int, n: int) -> NDArray[np.int64]:
    """The kernels' contract: ``k`` distinct indices in ``[0, n)``, ascending. O(k); a violation is
    a bug, reported instead of returning an invalid subset."""
    if sel.shape != (k,) or (k and (sel[0] < 0 or sel[-1] >= n)) or bool((np.diff(sel) <= 0).any()):
        raise RuntimeError(f"select_stable_subset produced an invalid subset (expected {k} distinct "
                           f"ascending indices in [0, {n}), got {sel.tolist()[:10]}); please report "
                           f"this with the input matrix")
    return sel


def _subset_value(a: NDArray[np.float64], sel: NDArray[np.int64]) -> float:
    """``f(S)`` over ordered pairs, computed the same way whichever backend produced ``sel``."""
    block = a[np.ix_(sel, sel)]
    np.fill_diagonal(block, 0.0)
    return float(block.sum())


def _kernels(backend: str) -> SimpleNamespace:
    # Imported here so that importing this module does not import numba (survey 7.4, item 7).
    from clss.seriation import _stable_subset_kernels as mod

    names = ("dp_select", "greedy_select", "exact_select", "refine_swap")
    funcs = {name: getattr(mod, name) for name in names}
    if backend == "python":
        # Under NUMBA_DISABLE_JIT=1 the kernels are plain functions without ``py_func``.
        funcs = {name: getattr(f, "py_func", f) for name, f in funcs.items()}
    return SimpleNamespace(**funcs)


def cross_view_perturbation(
    p0: torch.Tensor,
    p1: torch.Tensor,
    *,
    eps: float = 1e-8,
    mode: Literal["cv", "std"] = "cv",
) -> torch.Tensor:
    """Per-pair variation of cosine similarity across two views (GCLSS relative-std matrix).

    With rows L2-normalised, the four cross-similarity matrices ``C00 = P0 P0^T``,
    ``C11 = P1 P1^T``, ``C01 = P0 P1^T`` and ``C10 = P1 P0^T`` give four estimates of each pair's
    similarity; their population standard deviation measures how unstable the pair is between the
    two passes (GCLSS, Wang et al., arXiv 2512.09267). The official code divides by the mean cosine,
    which is infinite or NaN when the mean is ~0; ``mode="cv"`` uses ``std / (|mean| + eps)``.

    Parameters
    ----------
    p0, p1 : torch.Tensor, shape (n, d)
        Features of the same ``n`` samples from two stochastic forward passes; floating point, same
        shape, dtype and device. Gradients are not tracked (the inputs are detached).
    eps : float, default 1e-8
        Guard added to ``|mean|`` in ``mode="cv"``; ``eps >= 0`` (0 is the official division).
    mode : {"cv", "std"}, default "cv"
        ``"cv"``: coefficient of variation ``std / (|mean| + eps)``; ``"std"``: the plain std.

    Returns
    -------
    torch.Tensor, shape (n, n)
        Perturbation matrix on the inputs' device and dtype, without gradient. It is symmetric in
        exact arithmetic (``C10 = C01^T``) and is averaged with its transpose so that round-off
        does not break that. Feed it to :func:`select_stable_subset`.

    Raises
    ------
    TypeError
        Inputs that are not floating-point tensors.
    ValueError
        Shapes that are not equal ``(n, d)`` with ``n, d >= 1``, mismatched dtype or device, an
        unknown ``mode``, a negative or non-finite ``eps``, or NaN/inf features. Features near the
        float maximum or subnormal are rescaled per row first (cosines do not depend on it).
    """
    import torch

    if not (isinstance(p0, torch.Tensor) and isinstance(p1, torch.Tensor)):
        raise TypeError("p0 and p1 must be torch tensors")
    if not (p0.is_floating_point() and p1.is_floating_point()):
        raise TypeError(f"p0 and p1 must be floating point, got {p0.dtype} and {p1.dtype}")
    if p0.ndim != 2 or p0.shape != p1.shape or p0.shape[0] < 1 or p0.shape[1] < 1:
        raise ValueError(f"p0 and p1 must both have shape (n, d) with n, d >= 1, got "
                         f"{tuple(p0.shape)} and {tuple(p1.shape)}")
    if p0.dtype != p1.dtype or p0.device != p1.device:
        raise ValueError(f"p0 and p1 must share dtype and device, got {p0.dtype}/{p0.device} and "
                         f"{p1.dtype}/{p1.device}")
    if mode not in PERTURBATION_MODES:
        raise ValueError(f"mode must be one of {PERTURBATION_MODES}, got {mode!r}")
    if not (math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be finite and >= 0, got {eps!r}")

    with torch.no_grad():
        q0, q1 = p0.detach(), p1.detach()
        # one reduction: NaN propagates through the maximum, which also tells the magnitude
        top = float(torch.stack([q0.abs().amax(), q1.abs().amax()]).amax())
        if not math.isfinite(top):
            raise ValueError("p0 and p1 must be finite (found NaN or inf features)")
        if outside_safe_range(top):  # row norms near the float maximum overflow, subnormal ones vanish
            q0, q1 = (q / q.abs().amax(dim=1, keepdim=True).clamp_min(torch.finfo(q.dtype).tiny)
                      for q in (q0, q1))
        q0 = torch.nn.functional.normalize(q0, dim=1)
        q1 = torch.nn.functional.normalize(q1, dim=1)
        c00, c11, c01 = q0 @ q0.T, q1 @ q1.T, q0 @ q1.T  # C10 = P1 P0^T = C01^T
        # two-pass moments written out (no stacked copy): ~10x faster on CPU than std(dim=0), and
        # centred, because E[x²] - E[x]² cancels catastrophically for cosines near 1 in float32
        mean = (c00 + c11 + c01 + c01.T) / 4
        var = ((c00 - mean).square() + (c11 - mean).square() + (c01 - mean).square()
               + (c01.T - mean).square()) / 4
        out = var.sqrt()
        if mode == "cv":
            out = out / (mean.abs() + eps)
        return (out + out.T) / 2
