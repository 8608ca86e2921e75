"""A validated similarity graph on a torch device, for the torch route of ``seriate`` (private).

:func:`as_graph` is the torch twin of ``_validation.as_square_matrix`` + ``distance_to_similarity`` +
``rescale_magnitude`` + ``apply_negative_policy``: the same checks, in the same order, with the same
messages, computed on the input's device in float64 with one host synchronisation on the happy path.
:func:`components` labels connected components on the device (pointer jumping, below).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from clss.seriation._torch_solvers import csr
from clss.seriation._validation import KERNELS, NEGATIVE_POLICIES, outside_safe_range
from clss.seriation.batch import scale_by_power_of_two

# Dense neighbour reductions run over row blocks of about this many entries (bounded scratch memory).
_CHUNK = 1 << 24


class Graph:
    """Symmetric non-negative weights with zero diagonal on one device, dense or sparse.

    ``dense``: ``(n, n)`` float64 tensor, or ``None``; sparse graphs hold COO triplets ``row``, ``col``,
    ``val`` (coalesced, both directions of every edge, no diagonal, no zero) and a CSR copy for products.
    """

    def __init__(self, n: int, device: torch.device, dense: torch.Tensor | None = None,
                 row: torch.Tensor | None = None, col: torch.Tensor | None = None,
                 val: torch.Tensor | None = None) -> None:
        self.n, self.device, self.dense = n, device, dense
        self.row, self.col, self.val = row, col, val
        self._csr: torch.Tensor | None = None

    @property
    def is_sparse(self) -> bool:
        return self.dense is None

    @property
    def csr(self) -> torch.Tensor:
        if self._csr is None:
            self._csr = csr(self.row, self.col, self.val, (self.n, self.n))
        return self._csr

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        """``W x`` for ``x`` of shape ``(n, m)``."""
        return self.dense @ x if self.dense is not None else self.csr @ x

    def degrees(self) -> torch.Tensor:
        if self.dense is not None:
            return self.dense.sum(1)
        return torch.zeros(self.n, dtype=torch.float64, device=self.device).index_add_(0, self.row, self.val)

    def to_dense(self) -> torch.Tensor:
        if self.dense is not None:
            return self.dense
        out = torch.zeros(self.n, self.n, dtype=torch.float64, device=self.device)
        return out.index_put_((self.row, self.col), self.val)

    def laplacian_csr(self, extra: torch.Tensor | None = None) -> torch.Tensor:
        """CSR ``D - W`` (plus ``diag(extra)``) of a sparse graph."""
        ar = torch.arange(self.n, device=self.device)
        d = self.degrees() if extra is None else self.degrees() + extra
        return csr(torch.cat([self.row, ar]), torch.cat([self.col, ar]), torch.cat([-self.val, d]),
                   (self.n, self.n))

    def subgraph(self, items: torch.Tensor) -> Graph:
        """The graph induced on ``items`` (ascending indices on the device), renumbered."""
        m = int(items.shape[0])
        if self.dense is not None:
            return Graph(m, self.device, dense=self.dense[items][:, items])
        local = torch.full((self.n,), -1, dtype=torch.long, device=self.device)
        local[items] = torch.arange(m, device=self.device)
        keep = (local[self.row] >= 0) & (local[self.col] >= 0)
        return Graph(m, self.device, row=local[self.row[keep]], col=local[self.col[keep]],
                     val=self.val[keep])

    def neighbour_min(self, label: torch.Tensor) -> torch.Tensor:
        """``min_j {label_j : w_ij > 0}`` per item (``n`` where an item has no neighbour)."""
        n = self.n
        if self.dense is None:
            out = torch.full((n,), n, dtype=torch.long, device=self.device)
            return out.scatter_reduce_(0, self.row, label[self.col], "amin", include_self=True)
        step = max(1, _CHUNK // n)
        parts = [torch.where(self.dense[s:s + step] > 0, label[None, :], n).amin(1)
                 for s in range(0, n, step)]
        return torch.cat(parts)


def components(g: Graph) -> tuple[int, torch.Tensor]:
    """Connected components: ``(count, label per item)`` numbered by their smallest item index.

    Shiloach–Vishkin-style pointer jumping, vectorised: each item's root label is hooked onto the
    smallest root label among its neighbours, then the forest is flattened by ``p = p[p]`` until it
    is stable. Labels only decrease and every root is its component's smallest index, so a path of
    length n needs O(log n) rounds, not the n of plain label propagation.
    """
    parent = torch.arange(g.n, device=g.device)
    while True:
        m = torch.minimum(g.neighbour_min(parent), parent)
        if not bool((m < parent).any()):
            break
        parent = parent.clone().scatter_reduce_(0, parent, m, "amin", include_self=True)
        while True:
            jumped = parent[parent]
            if torch.equal(jumped, parent):
                break
            parent = jumped
    roots, label = torch.unique(parent, sorted=True, return_inverse=True)
    return int(roots.shape[0]), label


def _as_tensor(similarity: Any) -> torch.Tensor:
    if isinstance(similarity, torch.Tensor):
        return similarity.detach()
    mod = type(similarity).__module__
    if mod.startswith(("networkx", "pandas")):
        raise TypeError("backend='torch' takes a torch tensor, a numpy array or a scipy.sparse matrix; "
                        "use backend='numpy' (or 'auto') for graphs and DataFrames")
    if sp.issparse(similarity):
        coo = sp.coo_matrix(similarity)
        if np.iscomplexobj(coo.data):
            raise TypeError("similarity must be real-valued, got complex entries")
        idx = torch.as_tensor(np.vstack([coo.row, coo.col]).astype(np.int64))
        return torch.sparse_coo_tensor(idx, torch.as_tensor(coo.data.astype(np.float64)), coo.shape,
                                       check_invariants=False)
    try:
        arr = np.asarray(similarity)
    except Exception as exc:
        raise TypeError(f"similarity could not be converted to a numeric array: {exc}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TypeError(f"similarity must be a numeric matrix, got dtype {arr.dtype}")
    return torch.as_tensor(arr)


def as_graph(similarity: Any, *, symmetrize: bool | str, name: str, kind: str,
             kernel: str | Callable[[torch.Tensor], torch.Tensor], bandwidth: float | None,
             negative: str, atol: float = 1e-8, rtol: float = 1e-6) -> tuple[Graph, int]:
    """Validate and convert; returns ``(graph, exponent)`` with ``input = weights * 2**exponent``."""
    t = _as_tensor(similarity)
    if t.is_complex():
        raise TypeError(f"{name} must be real-valued, got a complex tensor")
    if t.dim() != 2 or t.shape[0] != t.shape[1]:
        raise ValueError(f"{name} must be a square 2-D matrix, got shape {tuple(t.shape)}")
    n = int(t.shape[0])
    if n < 2:
        raise ValueError(f"{name} must have at least 2 items to order, got n = {n}")
    if symmetrize not in (False, True, "average", "max", "min"):
        raise ValueError(f"symmetrize must be False, True/'average', 'max' or 'min', got {symmetrize!r}")
    if negative not in NEGATIVE_POLICIES:
        raise ValueError(f"negative must be one of {NEGATIVE_POLICIES}, got {negative!r}")
    if t.layout == torch.strided:
        w = _dense_checked(t.to(torch.float64, copy=True), symmetrize, atol, rtol, name)
        w.fill_diagonal_(0.0)
        if kind == "distance":
            w = _kernel(w, kernel, bandwidth, sparse=False).fill_diagonal_(0.0)
        w, exponent = _rescale(w)
        return Graph(n, w.device, dense=_negative_dense(w, negative, name)), exponent
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse.*", category=UserWarning)
        coo = (t.to_sparse_coo() if t.layout != torch.sparse_coo else t).coalesce()
    idx, val = coo.indices(), coo.values().to(torch.float64)
    row, col, val = _sparse_checked(idx[0], idx[1], val, n, symmetrize, atol, rtol, name)
    keep = (row != col) & (val != 0)  # numpy's zero_diagonal drops stored zeros too
    row, col, val = row[keep], col[keep], val[keep]
    if kind == "distance":
        val = _kernel(val, kernel, bandwidth, sparse=True)
    val, exponent = _rescale(val)
    if bool((val < 0).any()):
        _raise_negative(val, negative, name)
        if negative == "shift":
            raise ValueError("negative='shift' needs a dense matrix (it fills every entry); use "
                             "negative='clip' for sparse input")
        val = val.clamp_min(0.0)
        keep = val != 0
        row, col, val = row[keep], col[keep], val[keep]
    return Graph(n, val.device, row=row, col=col, val=val), exponent


def _nonfinite(values: torch.Tensor, name: str, where: str) -> ValueError:
    bad = int((~torch.isfinite(values)).sum())
    kind = "NaN" if bool(torch.isnan(values).any()) else "infinite"
    return ValueError(f"{name} contains {bad} non-finite ({kind}) entries{where}")


def _asymmetric(dev: float, scale: float, atol: float, rtol: float, name: str) -> ValueError:
    return ValueError(f"{name} is not symmetric: max |S - S^T| = {dev:.3g} (tolerance "
                      f"{atol + rtol * scale:.3g}); pass symmetrize='average', 'max' or 'min' "
                      f"to symmetrise it explicitly")


def _dense_checked(w: torch.Tensor, symmetrize: bool | str, atol: float, rtol: float,
                   name: str) -> torch.Tensor:
    """Finiteness then symmetry in one fused reduction (NaN and inf propagate through both maxima)."""
    dev, top = torch.stack([(w - w.T).abs().amax(), w.abs().amax()]).tolist()
    if not (np.isfinite(dev) and np.isfinite(top)):
        finite = torch.isfinite(w)
        i, j = (~finite).nonzero()[0].tolist()
        raise _nonfinite(w, name, f", first at ({i}, {j})")
    if symmetrize is True or symmetrize == "average":
        return w / 2 + w.T / 2
    if symmetrize == "max":
        return torch.maximum(w, w.T)
    if symmetrize == "min":
        return torch.minimum(w, w.T)
    if dev > atol + rtol * top:
        raise _asymmetric(dev, top, atol, rtol, name)
    return w


def _sparse_checked(row: torch.Tensor, col: torch.Tensor, val: torch.Tensor, n: int,
                    symmetrize: bool | str, atol: float, rtol: float,
                    name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Finiteness and symmetry of coalesced COO triplets; symmetrises on request (absent = 0)."""
    if not bool(torch.isfinite(val).all()):
        raise _nonfinite(val, name, "")
    key = torch.cat([row * n + col, col * n + row])
    both = torch.cat([val, val])
    uniq, inv, counts = torch.unique(key, sorted=True, return_inverse=True, return_counts=True)
    r, c = uniq // n, uniq % n
    if symmetrize is True or symmetrize == "average":
        out = torch.zeros(uniq.shape[0], dtype=val.dtype, device=val.device).index_add_(0, inv, both / 2)
        return r, c, out
    if symmetrize in ("max", "min"):
        reduce = "amax" if symmetrize == "max" else "amin"
        out = torch.zeros(uniq.shape[0], dtype=val.dtype, device=val.device).scatter_reduce_(
            0, inv, both, reduce, include_self=False)
        # an entry stored on one side only meets an absent (zero) partner
        single = counts == 1
        out[single] = (torch.clamp_min if symmetrize == "max" else torch.clamp_max)(out[single], 0.0)
        return r, c, out
    signed = torch.cat([val, -val])  # S - S^T accumulated over the union of both patterns
    diff = torch.zeros(uniq.shape[0], dtype=val.dtype, device=val.device).index_add_(0, inv, signed)
    dev, top = torch.stack([diff.abs().amax() if diff.numel() else diff.new_zeros(()),
                            val.abs().amax() if val.numel() else val.new_zeros(())]).tolist()
    if dev > atol + rtol * top:
        raise _asymmetric(dev, top, atol, rtol, name)
    return row, col, val


def _kernel(values: torch.Tensor, kernel: Any, bandwidth: float | None, *, sparse: bool) -> torch.Tensor:
    """Distances to similarities (``values``: a zero-diagonal dense matrix or sparse edge values)."""
    if bool((values < 0).any()):
        raise ValueError("distance matrix has negative entries; distances must be >= 0")
    if callable(kernel):
        return torch.as_tensor(kernel(values), dtype=torch.float64, device=values.device)
    if kernel == "inverse":
        return 1.0 / (1.0 + values)
    if kernel != "gaussian":
        raise ValueError(f"unknown kernel {kernel!r}; expected one of {KERNELS} or a callable")
    if bandwidth is not None:
        h = float(bandwidth)
    else:
        if sparse:
            off = values[values > 0]
        else:
            off = values.masked_select(~torch.eye(values.shape[0], dtype=torch.bool,
                                                  device=values.device))
        m = int(off.numel())
        # numpy's median of halves, doubled (the two middle order statistics when m is even)
        h = (float(off.div(2).kthvalue((m + 1) // 2).values + off.div(2).kthvalue(m // 2 + 1).values)
             if m else 1.0)
    if h <= 0:
        h = 1.0
    return torch.exp(-((values / h) ** 2))


def _rescale(w: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``rescale_magnitude`` on the device: an exact power of two when the top leaves the safe range."""
    top = float(w.abs().amax()) if w.numel() else 0.0
    if not outside_safe_range(top):
        return w, 0
    e = int(np.frexp(top)[1])
    scaled = scale_by_power_of_two(w.unsqueeze(0), torch.tensor([-e], device=w.device))[0]
    return scaled, e


def _raise_negative(values: torch.Tensor, negative: str, name: str) -> None:
    if negative == "raise":
        neg = values < 0
        count, low = int(neg.sum()), float(values.min())
        raise ValueError(f"{name} has {count} negative weights (min {low:.3g}); a graph "
                         f"Laplacian needs non-negative weights. Choose negative='clip' (set them "
                         f"to 0) or negative='shift' (subtract the minimum; keeps the spectral order)")


def _negative_dense(w: torch.Tensor, negative: str, name: str) -> torch.Tensor:
    low = float(w.amin())
    if not low < 0:
        return w
    _raise_negative(w, negative, name)
    if negative == "clip":
        return w.clamp_min(0.0)
    off = ~torch.eye(w.shape[0], dtype=torch.bool, device=w.device)
    out = w - w.masked_select(off).amin()
    return out.fill_diagonal_(0.0)
