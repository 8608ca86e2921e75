"""The :class:`Seriation` result object returned by :func:`clss.seriation.seriate`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray


@dataclass(frozen=True)
class ComponentInfo:
    """Diagnostics of one connected component of the similarity graph.

    ``items``: the component's item indices (ascending). ``lambda2``/``lambda3``: its Laplacian's second
    and third smallest eigenvalues (NaN where undefined: single items, anchored solves); ``eigengap``:
    ``lambda3 - lambda2``; ``residual``: solver residual; ``safe_radius``: Davis–Kahan radius (see
    :attr:`Seriation.safe_radius`); ``anchored``: whether the component contains an anchor; ``solver``:
    the route taken; ``converged``: whether the solver met its tolerance.
    """

    items: NDArray[np.int64]
    lambda2: float = math.nan
    lambda3: float = math.nan
    eigengap: float = math.nan
    residual: float = 0.0
    safe_radius: float = math.nan
    anchored: bool = False
    solver: str = "trivial"
    converged: bool = True

    @property
    def size(self) -> int:
        return int(self.items.shape[0])


@dataclass(frozen=True)
class Seriation:
    """An ordering of the items of a similarity matrix, with its coordinates and diagnostics.

    Attributes
    ----------
    order : int64 array, shape (n,)
        Item indices from one end of the seriation to the other.
    ranks : int64 array, shape (n,)
        Position of each item in ``order`` (the inverse permutation): ``order[ranks[i]] == i``.
    positions : float64 array, shape (n,)
        Continuous coordinates that ``order`` sorts: the Fiedler vector (``method="spectral"``; unit norm
        per component, comparable only within a component) or the harmonic solution on the anchor values'
        scale (``method="anchored"``; usable as pseudo-values).
    method : str
        ``"spectral"``, ``"anchored"``, ``"rcm"``, ``"enumerate"`` or ``"olo"``.
    laplacian : str
        ``"unnormalized"``, ``"symmetric"`` or ``"random_walk"``.
    components : int64 array, shape (n,)
        Connected-component label of each item; labels are numbered by their smallest item index.
    component_info : tuple of ComponentInfo
        Per-component diagnostics, in label order (the order in which components are concatenated).
    lambda2, lambda3, eigengap : float
        Fiedler value, next eigenvalue and their gap for a connected graph (``lambda2 = 0`` when the graph
        is disconnected; per-component values are in ``component_info``). NaN for anchored solves.
    residual : float
        Largest solver residual over components (eigen-residual ``||L v - λ v||`` or relative linear
        residual).
    safe_radius : float
        Davis–Kahan radius ``γ g / (4√2)`` with ``γ = min(λ2 - λ1, λ3 - λ2)`` and ``g`` the smallest gap
        between consecutive sorted entries of the unit Fiedler vector: any symmetric perturbation ``E`` of
        the Laplacian with ``||E||_2 < safe_radius`` provably leaves the order unchanged (up to reversal).
        A similarity perturbation ``ΔS`` changes the Laplacian by at most ``2 max_i Σ_j |ΔS_ij|`` in norm,
        so ``safe_radius_similarity = safe_radius / 2`` bounds that row-sum norm. 0 for disconnected
        graphs; NaN where no bound applies (anchored, normalised random-walk, rcm, enumerate).
    converged : bool
        Whether every solver met its tolerance.
    solver : str
        The solver route(s) taken.
    tie_groups : tuple of int64 arrays
        Groups of items (each of size >= 2) whose positions are equal within the numerical tolerance: the
        order among them is not determined by the data (they are listed in index order).
    conditioning : float
        Anchored only: 2-norm condition number of the reduced Laplacian ``L_uu`` (NaN when not computed).
    labels : list or None
        Item labels (networkx nodes, DataFrame index) in index order, when the input carried them.
    warnings : tuple of str
        Every :class:`~clss.seriation.SeriationWarning` raised for this result, each naming the cause
        and the remedy (disconnected graph, multiple λ2, weak or localised items, large tie groups,
        non-convergence, items set aside by ``weak="peel"``); empty when the order is clean.
    info : dict
        Further solver details: ``participation_ratio`` of the spectral vector (about 0.67 when the
        order is spread over all items, about m/n when m items carry it); with ``weak="peel"``,
        ``peeled`` (the set-aside items), ``peel_rounds`` and ``core_components``.
    """

    order: NDArray[np.int64]
    ranks: NDArray[np.int64]
    positions: NDArray[np.float64]
    method: str
    laplacian: str
    components: NDArray[np.int64]
    component_info: tuple[ComponentInfo, ...]
    lambda2: float = math.nan
    lambda3: float = math.nan
    eigengap: float = math.nan
    residual: float = 0.0
    safe_radius: float = math.nan
    converged: bool = True
    solver: str = ""
    tie_groups: tuple[NDArray[np.int64], ...] = ()
    conditioning: float = math.nan
    labels: list[Any] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def n(self) -> int:
        return int(self.order.shape[0])

    @property
    def n_components(self) -> int:
        return len(self.component_info)

    @property
    def connected(self) -> bool:
        return self.n_components == 1

    @property
    def safe_radius_similarity(self) -> float:
        """Bound on ``max_i Σ_j |ΔS_ij|`` below which the order provably cannot change."""
        return self.safe_radius / 2

    @property
    def ordered_labels(self) -> list[Any]:
        """Item labels in seriation order (indices when the input had no labels)."""
        if self.labels is None:
            return self.order.tolist()
        return [self.labels[i] for i in self.order]

    def reversed(self) -> Seriation:
        """The same seriation read from the other end (positions negated for spectral methods)."""
        n = self.n
        order = self.order[::-1].copy()
        ranks = (n - 1 - self.ranks).astype(np.int64)
        positions = self.positions if self.method == "anchored" else -self.positions
        return replace(self, order=order, ranks=ranks, positions=positions)

    def permute(self, matrix: Any) -> Any:
        """Reorder the rows and columns of a square matrix (numpy, scipy.sparse or torch) by ``order``."""
        if sp.issparse(matrix):
            m = sp.csr_matrix(matrix)
            return m[self.order][:, self.order]
        if type(matrix).__module__.startswith("torch"):
            import torch

            idx = torch.as_tensor(self.order, device=matrix.device)
            return matrix.index_select(0, idx).index_select(1, idx)
        m = np.asarray(matrix)
        return m[np.ix_(self.order, self.order)]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary (order, ranks, positions and diagnostics)."""

        def num(x: float) -> float | None:
            return None if math.isnan(x) else float(x)

        return {
            "n": self.n,
            "method": self.method,
            "laplacian": self.laplacian,
            "order": self.order.tolist(),
            "ranks": self.ranks.tolist(),
            "positions": [num(float(p)) for p in self.positions],
            "labels": None if self.labels is None else [str(x) for x in self.labels],
            "n_components": self.n_components,
            "components": self.components.tolist(),
            "lambda2": num(self.lambda2),
            "lambda3": num(self.lambda3),
            "eigengap": num(self.eigengap),
            "residual": num(self.residual),
            "safe_radius": num(self.safe_radius),
            "converged": bool(self.converged),
            "solver": self.solver,
            "conditioning": num(self.conditioning),
            "tie_groups": [g.tolist() for g in self.tie_groups],
            "warnings": list(self.warnings),
            "component_info": [
                {"size": c.size, "lambda2": num(c.lambda2), "lambda3": num(c.lambda3),
                 "eigengap": num(c.eigengap), "residual": num(c.residual),
                 "safe_radius": num(c.safe_radius), "anchored": c.anchored, "solver": c.solver,
                 "converged": c.converged}
                for c in self.component_info
            ],
        }

    def __repr__(self) -> str:
        head = self.order[:8].tolist()
        more = ", ..." if self.n > 8 else ""
        return (f"Seriation(n={self.n}, method={self.method!r}, order=[{', '.join(map(str, head))}"
                f"{more}], n_components={self.n_components}, lambda2={self.lambda2:.4g}, "
                f"converged={self.converged})")
