"""Turn any supported similarity input into a validated float64 numpy or CSR matrix.

Checks run in an order that gives the most useful message first (type, shape, size, finiteness,
symmetry, sign), because a NaN reported as "negative weight" sends users looking in the wrong place.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

Matrix = NDArray[np.float64] | sp.csr_matrix

NEGATIVE_POLICIES = ("raise", "clip", "shift")
KERNELS = ("inverse", "gaussian")
# Weights whose largest magnitude leaves [2^-20, 2^20] are rescaled by an exact power of two first:
# row sums, squared norms and eigenvalue products then stay far from float overflow and underflow.
SAFE_EXPONENT = 20


def _to_array_or_sparse(similarity: Any, weight: str | None,
                        nodelist: Sequence[Any] | None) -> tuple[Any, list[Any] | None]:
    """Convert the supported container types; returns ``(matrix, item_labels)``."""
    labels: list[Any] | None = None
    mod = type(similarity).__module__
    if mod.startswith("networkx"):
        import networkx as nx

        if similarity.is_directed():
            raise ValueError("similarity graph is directed; seriation needs an undirected graph "
                             "(convert with G.to_undirected())")
        labels = list(nodelist) if nodelist is not None else list(similarity.nodes())
        return nx.to_scipy_sparse_array(similarity, nodelist=labels, weight=weight,
                                        format="csr"), labels
    if mod.startswith("torch"):
        import torch  # already imported by whoever built the tensor

        t = similarity.detach()
        if t.layout != torch.strided:
            t = t.to_dense()
        t = t.cpu()
        if t.is_complex():
            raise TypeError("similarity must be real-valued, got a complex tensor")
        return t.double().numpy(), None
    if mod.startswith("pandas"):
        labels = list(similarity.index)
        return similarity.to_numpy(), labels
    if sp.issparse(similarity):
        return similarity, None
    return similarity, None


def _first_bad(mask: NDArray[np.bool_]) -> tuple[int, int]:
    i, j = np.argwhere(mask)[0]
    return int(i), int(j)


def as_square_matrix(similarity: Any, *, weight: str | None = "weight",
                     nodelist: Sequence[Any] | None = None,
                     symmetrize: bool | str = False, atol: float = 1e-8, rtol: float = 1e-6,
                     name: str = "similarity") -> tuple[Matrix, list[Any] | None]:
    """Validate shape, size, finiteness and symmetry; return ``(float64 matrix or CSR, labels)``."""
    mat, labels = _to_array_or_sparse(similarity, weight, nodelist)
    if sp.issparse(mat):
        if np.iscomplexobj(mat.data):
            raise TypeError(f"{name} must be real-valued, got complex entries")
        mat = sp.csr_matrix(mat, dtype=np.float64)
        mat.sum_duplicates()
    else:
        try:
            arr = np.asarray(mat)
        except Exception as exc:  # ragged nested lists and the like
            raise TypeError(f"{name} could not be converted to a numeric array: {exc}") from None
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number)
                                       or arr.dtype == np.bool_):
            raise TypeError(f"{name} must be a numeric matrix, got dtype {arr.dtype}")
        if np.iscomplexobj(arr):
            raise TypeError(f"{name} must be real-valued, got a complex array")
        mat = arr.astype(np.float64, copy=False)  # later steps copy before writing
    if mat.ndim != 2 or mat.shape[0] != mat.shape[1]:
        raise ValueError(f"{name} must be a square 2-D matrix, got shape {tuple(mat.shape)}")
    n = mat.shape[0]
    if n < 2:
        raise ValueError(f"{name} must have at least 2 items to order, got n = {n}")
    values = mat.data if sp.issparse(mat) else mat
    # min and max propagate NaN and expose ±inf: two reductions, no n x n temporary
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        finite = np.isfinite(values)
        bad = int((~finite).sum())
        kind = "NaN" if np.isnan(values).any() else "infinite"
        where = ""
        if not sp.issparse(mat):
            i, j = _first_bad(~finite)
            where = f", first at ({i}, {j})"
        raise ValueError(f"{name} contains {bad} non-finite ({kind}) entries{where}")
    mat = _symmetric(mat, symmetrize, atol, rtol, name, max(hi, -lo))
    return mat, labels


def _max_asymmetry(a: NDArray[np.float64], tile: int = 256) -> float:
    """``max |a - a^T|`` over the tiles of the upper triangle: no n x n temporary, half the reads
    of ``np.abs(a - a.T).max()`` and cache-sized transposes (measured ~3x faster at n = 5000)."""
    n = a.shape[0]
    dev = 0.0
    for i in range(0, n, tile):
        for j in range(i, n, tile):
            t = a[i:i + tile, j:j + tile] - a[j:j + tile, i:i + tile].T
            dev = max(dev, float(t.max()), -float(t.min()))
    return dev


def _symmetric(mat: Matrix, symmetrize: bool | str, atol: float, rtol: float,
               name: str, scale: float) -> Matrix:
    """``scale``: the largest |entry| of ``mat``."""
    if symmetrize not in (False, True, "average", "max", "min"):
        raise ValueError(f"symmetrize must be False, True/'average', 'max' or 'min', "
                         f"got {symmetrize!r}")
    if symmetrize is True or symmetrize == "average":  # halves first: no overflow near 1e308
        return mat / 2 + mat.T / 2 if not sp.issparse(mat) else (mat / 2 + mat.T / 2).tocsr()
    if symmetrize == "max":
        return np.maximum(mat, mat.T) if not sp.issparse(mat) else mat.maximum(mat.T).tocsr()
    if symmetrize == "min":
        return np.minimum(mat, mat.T) if not sp.issparse(mat) else mat.minimum(mat.T).tocsr()
    if sp.issparse(mat):
        # In place, no copies (|S - S^T| builds three, ~4.5 GB at n = 1e7 with k = 10): a
        # sequential hash test for exact symmetry, then the exact deviation only when that fails.
        from clss.seriation._sparse_kernels import exactly_symmetric, max_asymmetry

        same, _ = exactly_symmetric(mat.indptr, mat.indices, mat.data)
        dev = 0.0 if same else max_asymmetry(mat.indptr, mat.indices, mat.data)[0]
    else:
        dev = _max_asymmetry(mat)
    if dev > atol + rtol * scale:
        raise ValueError(f"{name} is not symmetric: max |S - S^T| = {dev:.3g} (tolerance "
                         f"{atol + rtol * scale:.3g}); pass symmetrize='average', 'max' or 'min' "
                         f"to symmetrise it explicitly")
    return mat


def check_iteration_options(tol: Any, maxiter: Any, seed: Any) -> None:
    """Reject a bad iterative-solver ``tol`` (None or a number in (0, 1)), ``maxiter`` (None or an
    integer >= 1) or ``seed`` (an integer >= 0) with one line naming the keyword."""
    if tol is not None:
        if isinstance(tol, bool) or not isinstance(tol, (int, float, np.integer, np.floating)):
            raise TypeError(f"tol must be a number in (0, 1) (a relative residual) or None, got "
                            f"{type(tol).__name__}")
        if not 0 < float(tol) < 1:
            raise ValueError(f"tol must be in (0, 1) (a relative residual, e.g. tol=1e-8) or None, "
                             f"got {tol!r}")
    if maxiter is not None:
        if isinstance(maxiter, bool) or not isinstance(maxiter, (int, np.integer)):
            raise TypeError(f"maxiter must be an integer >= 1 or None, got "
                            f"{type(maxiter).__name__}")
        if maxiter < 1:
            raise ValueError(f"maxiter must be >= 1 or None, got {maxiter}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be a non-negative integer, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")


def distance_to_similarity(dist: Matrix, kernel: str | Callable[[NDArray], NDArray],
                           bandwidth: float | None) -> Matrix:
    """Map a dissimilarity to a similarity (R seriation's default is ``1/(1+d)``).

    For sparse input only the stored entries are edges: an absent entry means "no edge", not d = 0.
    """
    values = dist.data if sp.issparse(dist) else dist
    if (values < 0).any():
        raise ValueError("distance matrix has negative entries; distances must be >= 0")
    if callable(kernel):
        func = kernel
    elif kernel == "inverse":
        def func(d: NDArray) -> NDArray:
            return 1.0 / (1.0 + d)
    elif kernel == "gaussian":
        off = values[values > 0] if sp.issparse(dist) else dist[~np.eye(dist.shape[0], dtype=bool)]
        # the median of halves, doubled: averaging the two middle distances overflows near 1e308
        h = float(bandwidth) if bandwidth is not None else 2 * float(np.median(off / 2)) if off.size else 1.0
        if h <= 0:
            h = 1.0

        def func(d: NDArray) -> NDArray:
            return np.exp(-((d / h) ** 2))
    else:
        raise ValueError(f"unknown kernel {kernel!r}; expected one of {KERNELS} or a callable")
    if sp.issparse(dist):
        out = dist.copy()
        out.data = np.asarray(func(out.data), dtype=np.float64)
        return out
    return np.asarray(func(dist), dtype=np.float64)


def apply_negative_policy(mat: Matrix, negative: str, name: str = "similarity") -> Matrix:
    """Enforce non-negative weights; ``mat`` has a zero diagonal on entry.

    ``"shift"`` subtracts the smallest off-diagonal entry: for the unnormalised Laplacian this adds a
    multiple of the identity on the complement of the constant vector, so the spectral order is unchanged
    (it equals the order of the official CLSS code's projection onto 1⊥ for signed cosine similarities).
    """
    if negative not in NEGATIVE_POLICIES:
        raise ValueError(f"negative must be one of {NEGATIVE_POLICIES}, got {negative!r}")
    values = mat.data if sp.issparse(mat) else mat
    if not values.size or values.min() >= 0:
        return mat
    if negative == "raise":
        count = int((values < 0).sum())
        raise ValueError(f"{name} has {count} negative weights (min {values.min():.3g}); a graph "
                         f"Laplacian needs non-negative weights. Choose negative='clip' (set them "
                         f"to 0) or negative='shift' (subtract the minimum; keeps the spectral order)")
    if negative == "clip":
        if sp.issparse(mat):
            out = mat.copy()
            out.data = np.maximum(out.data, 0.0)
            out.eliminate_zeros()
            return out
        return np.maximum(mat, 0.0)
    if sp.issparse(mat):
        raise ValueError("negative='shift' needs a dense matrix (it fills every entry); use "
                         "negative='clip' for sparse input")
    n = mat.shape[0]
    off = ~np.eye(n, dtype=bool)
    out = mat - mat[off].min()
    np.fill_diagonal(out, 0.0)
    return out


def outside_safe_range(top: float) -> bool:
    """Whether a finite, non-zero largest magnitude ``top`` lies outside ``[2^-20, 2^20]``."""
    return math.isfinite(top) and top > 0 and not 2.0**-SAFE_EXPONENT <= top <= 2.0**SAFE_EXPONENT


def rescale_magnitude(mat: Matrix) -> tuple[Matrix, int]:
    """Bring the largest |entry| into ``[0.5, 1)`` by a power of two when it lies outside
    ``[2^-20, 2^20]``; returns ``(matrix, e)`` with ``input = matrix * 2**e`` (``e = 0``: unchanged).

    Seriation orders, anchored positions and stable subsets do not depend on the scale, and scaling by
    a power of two is exact (only entries below ``2^-1074`` times the largest underflow), so entries near
    1e308 or down to subnormals give the same result as the matrix scaled to 1. Quantities in similarity
    units (eigenvalues, residuals, radii) are multiplied back by ``2**e``.
    """
    values = mat.data if sp.issparse(mat) else mat
    top = max(float(values.max()), -float(values.min())) if values.size else 0.0
    if not outside_safe_range(top):
        return mat, 0
    e = int(np.frexp(top)[1])
    if sp.issparse(mat):
        out = mat.copy()
        out.data = np.ldexp(out.data, -e)
        return out, e
    return np.ldexp(mat, -e), e


def zero_diagonal(mat: Matrix) -> Matrix:
    """Drop self-similarities (they cancel in the Laplacian and would only add stored entries)."""
    if sp.issparse(mat):
        # A graph without self-loops or stored zeros (the usual case) is returned as it is: no copy.
        if not (mat.diagonal().any() or (mat.data == 0).any()):
            return mat
        out = mat.copy()
        out.data[out.indices == np.repeat(np.arange(out.shape[0]), np.diff(out.indptr))] = 0.0
        out.eliminate_zeros()
        return out
    out = mat.copy()
    np.fill_diagonal(out, 0.0)
    return out


def as_anchors(anchors: Any, anchor_values: Any, n: int,
               labels: list[Any] | None = None) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Validate anchor indices (or a boolean mask, or node labels) and their values."""
    if anchor_values is None:
        raise ValueError("anchors were given without anchor_values")
    a = _to_numpy(anchors)
    is_mask = a.dtype == np.bool_
    if is_mask:
        if a.shape != (n,):
            raise ValueError(f"boolean anchor mask must have shape ({n},), got {a.shape}")
        a = np.flatnonzero(a)
    elif labels is not None and a.dtype.kind not in "iu":
        index = {lab: i for i, lab in enumerate(labels)}
        missing = [x for x in a.tolist() if x not in index]
        if missing:
            raise ValueError(f"anchors {missing[:5]} are not items of the similarity graph")
        a = np.array([index[x] for x in a.tolist()], dtype=np.int64)
    if a.ndim != 1:
        raise ValueError(f"anchors must be 1-D, got shape {a.shape}")
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
            raise TypeError("anchors must be integer indices (or a boolean mask)")
        a = a.astype(np.int64)
    if a.dtype.kind not in "iu":
        raise TypeError(f"anchors must be integer indices (or a boolean mask), got dtype {a.dtype}")
    a = a.astype(np.int64)
    if a.size == 0:
        raise ValueError("anchors is empty: the anchored method needs at least one labelled item")
    if a.min() < 0 or a.max() >= n:
        bad = a[(a < 0) | (a >= n)]
        raise ValueError(f"anchor indices out of range [0, {n}): {bad[:5].tolist()}")
    uniq, counts = np.unique(a, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"duplicated anchor indices: {uniq[counts > 1][:5].tolist()}")
    v = _to_numpy(anchor_values)
    if v.dtype == object or not (np.issubdtype(v.dtype, np.number) or v.dtype == np.bool_) \
            or np.iscomplexobj(v):
        raise TypeError(f"anchor_values must be real numbers, got dtype {v.dtype}")
    v = v.astype(np.float64).reshape(-1)
    if is_mask and v.shape[0] == n != a.shape[0]:
        v = v[a]  # values given for every item, aligned with the mask
    if v.shape[0] != a.shape[0]:
        raise ValueError(f"anchor_values has {v.shape[0]} entries but there are {a.shape[0]} "
                         f"anchors")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"anchor_values contains {int((~np.isfinite(v)).sum())} NaN/inf entries")
    return a, v


def _to_numpy(x: Any) -> NDArray[Any]:
    if type(x).__module__.startswith("torch"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


# Dense solvers on a sparse input densify it: refuse beyond this many items (n² doubles).
DENSIFY_MAX = 20_000


def check_request(method: str, n: int, sparse: bool, solver: str, laplacian: str, anchors: Any,
                  anchor_values: Any, labels: list[Any] | None
                  ) -> tuple[NDArray[np.int64] | None, NDArray[np.float64] | None]:
    """The checks of :func:`clss.seriation.seriate` that both routes share, once the matrix (``n``
    items) is known; returns the validated ``(anchor indices, anchor values)`` or ``(None, None)``."""
    if sparse and n > DENSIFY_MAX and solver in ("davidson", "evr", "lobpcg", "dense"):
        raise ValueError(f"solver {solver!r} densifies the matrix, which at n = {n} needs "
                         f"{n * n * 8 / 2**30:.0f} GiB; use solver='auto' or a sparse solver")
    anchor_idx = anchor_vals = None
    if anchors is not None or anchor_values is not None:
        if anchors is None:
            raise ValueError("anchor_values were given without anchors")
        anchor_idx, anchor_vals = as_anchors(anchors, anchor_values, n, labels)
    if method == "anchored":
        if anchor_idx is None:
            raise ValueError("method='anchored' needs anchors and anchor_values")
        if laplacian == "symmetric":
            raise ValueError("the anchored (harmonic) solution is defined for the 'unnormalized' "
                             "(= 'random_walk') Laplacian, not laplacian='symmetric' (with "
                             "anchor values the method is 'anchored' unless method='spectral')")
    return anchor_idx, anchor_vals
