"""Result records shared by the eigen- and linear solvers behind :func:`clss.seriation.seriate`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray


@dataclass
class EigenSolution:
    """Smallest eigenpairs of a graph Laplacian of one connected graph.

    ``values``: ascending eigenvalues found, shape ``(k,)``; ``values[0]`` is the null eigenvalue (≈ 0),
    ``values[1]`` the Fiedler value λ2, ``values[2]`` (when ``k >= 3``) λ3.
    ``vectors``: matching eigenvectors as columns, shape ``(n, k)``, unit 2-norm.
    ``residuals``: ``||L v - λ v||_2`` per pair, shape ``(k,)``.
    ``converged``: every residual met the solver's tolerance.
    ``iterations``: solver iterations (0 for direct solvers).
    ``solver``: the name of the route taken (e.g. ``"dense-evr"``, ``"lobpcg-amg"``, ``"multilevel"``).
    ``info``: solver-specific extras (setup time, levels, tolerance, ...).
    """

    values: NDArray[np.float64]
    vectors: NDArray[np.float64]
    residuals: NDArray[np.float64]
    converged: bool
    iterations: int
    solver: str
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class LinearSolution:
    """Solution of the anchored (harmonic) system ``L_uu x = b`` for the unanchored items.

    ``x``: shape ``(u,)``. ``residual``: ``||L_uu x - b|| / ||b||``. ``converged``, ``iterations``, ``solver``
    and ``info`` as in :class:`EigenSolution`.
    """

    x: NDArray[np.float64]
    residual: float
    converged: bool
    iterations: int
    solver: str
    info: dict[str, Any] = field(default_factory=dict)
