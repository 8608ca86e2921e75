# ruff: noqa: E501  (one case per line keeps the tables readable)
"""Fault suite of clss.seriation: bad and extreme inputs at every public entry point.

Each case either raises a clear error (type and a phrase of the message) or returns a result checked
against an independent computation (the same matrix scaled to 1, a brute-force optimum, a float copy).
"""

import importlib.util
import itertools
import json
import subprocess
import sys

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from click.testing import CliRunner

from clss.seriation import (
    align_orders,
    compare_orders,
    criteria,
    criterion,
    criterion_batch,
    cross_view_perturbation,
    harmonic_batch,
    load_anchors,
    load_similarity,
    rank_correlation_batch,
    recovery_tolerance,
    recovery_tolerance_blocks,
    select_stable_subset,
    seriate,
    seriate_batch,
)
from clss.seriation.generators import points_robinson
from clss.seriation.io import MatrixFileError
from clss_cli.main import main

# DataFrames are accepted when pandas is installed (it is not a dependency of clss)
HAS_PANDAS = importlib.util.find_spec("pandas") is not None
NEEDS_PANDAS = pytest.mark.skipif(not HAS_PANDAS, reason="pandas is not installed")


def _frame(m):
    import pandas as pd

    return pd.DataFrame(m)


_rng = np.random.default_rng(0)
_perm = _rng.permutation(8)
S = points_robinson(8, rng=_rng)[np.ix_(_perm, _perm)]
S /= np.abs(S).max()
ORDER = np.arange(8)
T = torch.tensor(np.stack([S, S[::-1, ::-1].copy()]))  # [2, 8, 8]
P = _rng.random((8, 8))
P = (P + P.T) / 2  # a symmetric perturbation matrix
F0 = torch.tensor(_rng.normal(size=(6, 3)))
F1 = F0 + 0.1 * torch.tensor(_rng.normal(size=(6, 3)))
SUBNORMAL = 5e-324


def _with(m, i, j, v, sym=True):
    m = np.array(m, dtype=np.float64)
    m[i, j] = v
    if sym:
        m[j, i] = v
    return m


def _tensor_with(i, j, v):
    t = T.clone()
    t[0, i, j] = t[0, j, i] = v
    return t


ASYM = _with(S, 0, 1, 5.0, sym=False)
NEG = _with(S, 0, 1, -0.5)
DIGRAPH = nx.DiGraph([(0, 1), (1, 2)])
GRAPH = nx.relabel_nodes(nx.from_numpy_array(S), {i: f"n{i}" for i in range(8)})

E = pytest.param
ERRORS = [
    # --- seriate, numpy ---
    E(lambda: seriate(_with(S, 0, 1, np.nan)), ValueError, r"non-finite \(NaN\).*\(0, 1\)", id="seriate-nan"),
    E(lambda: seriate(_with(S, 2, 3, np.inf)), ValueError, "infinite", id="seriate-inf"),
    E(lambda: seriate(_with(S, 2, 3, -np.inf)), ValueError, "infinite", id="seriate-neg-inf"),
    E(lambda: seriate(np.zeros((0, 0))), ValueError, "at least 2 items", id="seriate-empty"),
    E(lambda: seriate(np.ones((1, 1))), ValueError, "at least 2 items", id="seriate-1x1"),
    E(lambda: seriate(np.ones((3, 4))), ValueError, "square 2-D", id="seriate-non-square"),
    E(lambda: seriate(np.ones((2, 3, 3))), ValueError, "square 2-D", id="seriate-3d"),
    E(lambda: seriate(np.ones(4)), ValueError, "square 2-D", id="seriate-1d"),
    E(lambda: seriate(ASYM), ValueError, "not symmetric.*symmetrize='average'", id="seriate-asymmetric"),
    E(lambda: seriate(NEG), ValueError, "negative weights.*negative='clip'", id="seriate-negative"),
    E(lambda: seriate(S.astype(complex)), TypeError, "real-valued", id="seriate-complex"),
    E(lambda: seriate(S.astype(object)), TypeError, "numeric matrix", id="seriate-object"),
    E(lambda: seriate([["a", "b"], ["c", "d"]]), TypeError, "numeric matrix", id="seriate-strings"),
    E(lambda: seriate([[0, 1], [1]]), TypeError, "could not be converted", id="seriate-ragged"),
    E(lambda: seriate(S, method="nope"), ValueError, "unknown method", id="seriate-bad-method"),
    E(lambda: seriate(S, kind="nope"), ValueError, "kind must be", id="seriate-bad-kind"),
    E(lambda: seriate(S, laplacian="nope"), ValueError, "laplacian", id="seriate-bad-laplacian"),
    E(lambda: seriate(S, negative="nope"), ValueError, "negative must be", id="seriate-bad-negative"),
    E(lambda: seriate(S, symmetrize="nope"), ValueError, "symmetrize must be", id="seriate-bad-symmetrize"),
    E(lambda: seriate(S, components="nope"), ValueError, "components must be", id="seriate-bad-components"),
    E(lambda: seriate(S, solver="nope"), ValueError, "does not apply", id="seriate-bad-solver"),
    E(lambda: seriate(S, kind="distance", kernel="nope"), ValueError, "unknown kernel", id="seriate-bad-kernel"),
    E(lambda: seriate(NEG, kind="distance"), ValueError, "distances must be >= 0", id="seriate-negative-distance"),
    E(lambda: seriate(np.ones((12, 12)), method="enumerate"), ValueError, "exhaustive", id="seriate-enumerate-large"),
    E(lambda: seriate(S, method="anchored"), ValueError, "needs anchors", id="seriate-anchored-no-anchors"),
    E(lambda: seriate(S, anchors=[0, 0], anchor_values=[1, 2]), ValueError, "duplicated anchor", id="anchors-duplicate"),
    E(lambda: seriate(S, anchors=[0, 8], anchor_values=[1, 2]), ValueError, r"out of range \[0, 8\)", id="anchors-out-of-range"),
    E(lambda: seriate(S, anchors=[-1, 2], anchor_values=[1, 2]), ValueError, "out of range", id="anchors-negative"),
    E(lambda: seriate(S, anchors=[0.5, 2], anchor_values=[1, 2]), TypeError, "integer indices", id="anchors-float"),
    E(lambda: seriate(S, anchors=["a", "b"], anchor_values=[1, 2]), TypeError, "integer indices", id="anchors-strings"),
    E(lambda: seriate(S, anchors=[0, 2], anchor_values=[1, np.nan]), ValueError, "NaN/inf", id="anchors-nan-value"),
    E(lambda: seriate(S, anchors=[0, 2], anchor_values=[1, np.inf]), ValueError, "NaN/inf", id="anchors-inf-value"),
    E(lambda: seriate(S, anchors=[0, 2], anchor_values=[1]), ValueError, "1 entries but there are 2", id="anchors-length"),
    E(lambda: seriate(S, anchors=[0, 2], anchor_values=["a", "b"]), TypeError, "anchor_values must be real", id="anchors-string-values"),
    E(lambda: seriate(S, anchors=[0, 2], anchor_values=[1j, 2]), TypeError, "anchor_values must be real", id="anchors-complex-values"),
    E(lambda: seriate(S, method=["spectral"]), TypeError, "method must be a string", id="seriate-method-list"),
    E(lambda: seriate(S, anchors=[0, 2]), ValueError, "without anchor_values", id="anchors-no-values"),
    E(lambda: seriate(S, anchor_values=[1.0]), ValueError, "without anchors", id="values-no-anchors"),
    E(lambda: seriate(S, anchors=[], anchor_values=[]), ValueError, "empty", id="anchors-empty"),
    E(lambda: seriate(S, anchors=[[0, 1]], anchor_values=[1, 2]), ValueError, "1-D", id="anchors-2d"),
    E(lambda: seriate(S, anchors=np.ones(3, bool), anchor_values=[1, 2, 3]), ValueError, "mask must have shape", id="anchors-mask-length"),
    E(lambda: seriate(S, anchors=[0], anchor_values=[1.0], isolated="nope"), ValueError, "isolated must be", id="seriate-bad-isolated"),
    E(lambda: seriate(np.kron(np.eye(2), np.ones((3, 3))), anchors=[0], anchor_values=[1.0]), ValueError,
      "contain no anchor.*isolated='nan'", id="anchors-unanchored-component"),
    E(lambda: seriate(S, anchors=[0, 1], anchor_values=[0, 1], laplacian="symmetric"), ValueError,
      "method='spectral'", id="anchored-symmetric-laplacian"),
    # --- seriate, other containers ---
    E(lambda: seriate(sp.csr_matrix(_with(S, 0, 1, np.nan))), ValueError, "NaN", id="sparse-nan"),
    E(lambda: seriate(sp.csr_matrix(np.ones((3, 4)))), ValueError, "square", id="sparse-non-square"),
    E(lambda: seriate(sp.csr_matrix(NEG), negative="shift"), ValueError, "dense matrix", id="sparse-shift"),
    E(lambda: seriate(sp.csr_matrix(S.astype(complex))), TypeError, "real-valued", id="sparse-complex"),
    E(lambda: seriate(torch.tensor(S, dtype=torch.complex128)), TypeError, "real-valued", id="torch-complex"),
    E(lambda: seriate(torch.tensor(_with(S, 1, 2, np.nan))), ValueError, "NaN", id="torch-nan"),
    E(lambda: seriate(torch.ones(3, 4)), ValueError, "square", id="torch-non-square"),
    E(lambda: seriate(DIGRAPH), ValueError, "directed", id="networkx-directed"),
    E(lambda: seriate(GRAPH, anchors=["zz"], anchor_values=[1.0]), ValueError, "not items", id="networkx-unknown-anchor"),
    E(lambda: seriate(_frame(_with(S, 0, 1, np.nan))), ValueError, "NaN", id="dataframe-nan", marks=NEEDS_PANDAS),
    E(lambda: seriate(_frame([["a", "b"], ["c", "d"]])), TypeError, "numeric", id="dataframe-strings",
      marks=NEEDS_PANDAS),
    # --- seriate_batch ---
    E(lambda: seriate_batch(_tensor_with(0, 1, float("nan"))), ValueError, r"NaN/inf.*batch 0", id="batch-nan"),
    E(lambda: seriate_batch(_tensor_with(0, 1, float("inf"))), ValueError, "NaN/inf", id="batch-inf"),
    E(lambda: seriate_batch(_tensor_with(0, 1, -float("inf"))), ValueError, "NaN/inf", id="batch-neg-inf"),
    E(lambda: seriate_batch(torch.tensor(np.stack([ASYM, S]))), ValueError, "not symmetric", id="batch-asymmetric"),
    E(lambda: seriate_batch(_tensor_with(0, 1, -0.5)), ValueError, "negative='shift'", id="batch-negative"),
    E(lambda: seriate_batch(torch.ones(4)), ValueError, "shape", id="batch-1d"),
    E(lambda: seriate_batch(torch.ones(2, 3, 4)), ValueError, "shape", id="batch-non-square"),
    E(lambda: seriate_batch(torch.ones(2, 1, 1)), ValueError, "at least 2 items", id="batch-1x1"),
    E(lambda: seriate_batch(T.to(torch.complex128)), TypeError, "real", id="batch-complex"),
    E(lambda: seriate_batch([T[0], T[0, :5, :5]]), ValueError, "different sizes.*mask=", id="batch-list-sizes"),
    E(lambda: seriate_batch([]), ValueError, "empty list", id="batch-empty-list"),
    E(lambda: seriate_batch("abc"), TypeError, "numeric tensor", id="batch-string"),
    E(lambda: seriate_batch(np.array([[S]], dtype=object)), TypeError, "numeric tensor", id="batch-object"),
    E(lambda: seriate_batch(T, laplacian="nope"), ValueError, "laplacian must be", id="batch-bad-laplacian"),
    E(lambda: seriate_batch(T, backend="nope"), ValueError, "backend must be", id="batch-bad-backend"),
    E(lambda: seriate_batch(T, negative="nope"), ValueError, "negative must be", id="batch-bad-negative"),
    E(lambda: seriate_batch(T, mask=torch.ones(2, 8)), TypeError, "mask must be boolean", id="batch-mask-dtype"),
    E(lambda: seriate_batch(T, mask=torch.ones(2, 7, dtype=torch.bool)), ValueError, "mask must have shape", id="batch-mask-shape"),
    E(lambda: seriate_batch(T, mask=torch.eye(2, 8, dtype=torch.bool)), ValueError, "at least 2 valid", id="batch-mask-one-valid"),
    E(lambda: seriate_batch(T, anchors=torch.tensor([0, 1])), ValueError, "given together", id="batch-anchors-no-values"),
    E(lambda: seriate_batch(T, anchors=torch.tensor([0.0, 1.0]), anchor_values=torch.tensor([0.0, 1.0])), TypeError,
      "boolean mask or integer", id="batch-anchors-float"),
    E(lambda: seriate_batch(T, anchors=torch.tensor([0, 9]), anchor_values=torch.tensor([0.0, 1.0])), ValueError,
      "out of range", id="batch-anchors-range"),
    E(lambda: seriate_batch(T, anchors=torch.tensor([-1, 2]), anchor_values=torch.tensor([0.0, 1.0])), ValueError,
      "out of range", id="batch-anchors-negative"),
    E(lambda: seriate_batch(T, anchors=torch.tensor([1, 1]), anchor_values=torch.tensor([0.0, 1.0])), ValueError,
      "duplicated", id="batch-anchors-duplicate"),
    E(lambda: seriate_batch(T, anchors=torch.tensor([0, 1]), anchor_values=torch.tensor([0.0, float("nan")])), ValueError,
      "NaN/inf", id="batch-anchor-values-nan"),
    E(lambda: seriate_batch(T, anchors=torch.tensor([0, 1]), anchor_values=torch.tensor([0.0, 1j])), TypeError,
      "anchor_values must be real", id="batch-anchor-values-complex"),
    E(lambda: seriate_batch(T, anchors=torch.tensor([0, 1]), anchor_values=torch.tensor([0.0])), ValueError,
      "must match", id="batch-anchors-length"),
    E(lambda: seriate_batch(T, anchors=torch.ones(7, dtype=torch.bool), anchor_values=torch.ones(7)), ValueError,
      "anchor mask must have shape", id="batch-anchor-mask-shape"),
    # --- harmonic_batch ---
    E(lambda: harmonic_batch(_tensor_with(0, 1, float("nan"))[:, :5, :5], T[:, :5, 5:], torch.ones(2, 3)),
      ValueError, "NaN/inf", id="harmonic-nan-uu"),
    E(lambda: harmonic_batch(T[:, :5, :5], torch.full((2, 5, 3), float("nan")), torch.ones(2, 3)),
      ValueError, "s_ul contains NaN", id="harmonic-nan-ul"),
    E(lambda: harmonic_batch(T[:, :5, :5], T[:, :5, 5:], torch.tensor([[1.0, float("nan"), 2]] * 2)),
      ValueError, "anchor_values contain NaN", id="harmonic-nan-values"),
    E(lambda: harmonic_batch(T[:, :5, :5], T[:, :4, 5:], torch.ones(2, 3)), ValueError, "expected s_uu", id="harmonic-shapes"),
    E(lambda: harmonic_batch(T[:, :5, :5].to(torch.complex128), T[:, :5, 5:], torch.ones(2, 3)), TypeError, "s_uu must be real", id="harmonic-complex"),
    E(lambda: harmonic_batch(T[:, :5, :5], T[:, :5, 5:], torch.ones(2, 3) * 1j), TypeError, "anchor_values must be real", id="harmonic-complex-values"),
    E(lambda: harmonic_batch(T[:, :5, :5], T[:, :5, :0], torch.ones(2, 0)), ValueError, "at least one anchor", id="harmonic-no-anchor"),
    E(lambda: harmonic_batch(T[:, :5, :5], -T[:, :5, 5:], torch.ones(2, 3)), ValueError, "negative", id="harmonic-negative"),
    E(lambda: harmonic_batch(T[:, :5, :5], T[:, :5, 5:], torch.ones(2, 3), negative="nope"), ValueError,
      "negative must be", id="harmonic-bad-negative"),
    E(lambda: harmonic_batch(torch.tensor(ASYM)[:5, :5], T[0, :5, 5:], torch.ones(3)), ValueError, "not symmetric",
      id="harmonic-asymmetric"),
    # --- select_stable_subset ---
    E(lambda: select_stable_subset(P, 2.5), TypeError, "k must be an integer.*2.5", id="subset-k-float"),
    E(lambda: select_stable_subset(P, 3.0), TypeError, "k must be an integer", id="subset-k-integral-float"),
    E(lambda: select_stable_subset(P, True), TypeError, "k must be an integer, got a bool", id="subset-k-bool"),
    E(lambda: select_stable_subset(P, "3"), TypeError, "k must be an integer", id="subset-k-string"),
    E(lambda: select_stable_subset(P, 0), ValueError, "1 <= k <= n = 8, got k = 0", id="subset-k-zero"),
    E(lambda: select_stable_subset(P, -2), ValueError, "got k = -2", id="subset-k-negative"),
    E(lambda: select_stable_subset(P, 9), ValueError, "got k = 9", id="subset-k-too-large"),
    E(lambda: select_stable_subset(_with(P, 0, 1, np.nan), 3), ValueError, "NaN", id="subset-nan"),
    E(lambda: select_stable_subset(_with(P, 0, 1, np.inf), 3), ValueError, "infinite", id="subset-inf"),
    E(lambda: select_stable_subset(np.ones((3, 4)), 2), ValueError, "square", id="subset-non-square"),
    E(lambda: select_stable_subset(np.ones((1, 1)), 1), ValueError, "at least 2", id="subset-1x1"),
    E(lambda: select_stable_subset(_with(P, 0, 1, 9.0, sym=False), 3), ValueError, "not symmetric", id="subset-asymmetric"),
    E(lambda: select_stable_subset(P.astype(complex), 3), TypeError, "real-valued", id="subset-complex"),
    E(lambda: select_stable_subset([["a", "b"], ["c", "d"]], 1), TypeError, "numeric", id="subset-strings"),
    E(lambda: select_stable_subset(P, 3, objective="nope"), ValueError, "objective must be", id="subset-bad-objective"),
    E(lambda: select_stable_subset(P, 3, method="nope"), ValueError, "method must be", id="subset-bad-method"),
    E(lambda: select_stable_subset(P, 3, backend="nope"), ValueError, "backend must be", id="subset-bad-backend"),
    E(lambda: select_stable_subset(np.ones((40, 40)), 20, method="exact"), ValueError, "would enumerate",
      id="subset-exact-too-many"),
    # --- cross_view_perturbation ---
    E(lambda: cross_view_perturbation(F0.numpy(), F1.numpy()), TypeError, "torch tensors", id="perturbation-numpy"),
    E(lambda: cross_view_perturbation(F0.long(), F1.long()), TypeError, "floating point", id="perturbation-int"),
    E(lambda: cross_view_perturbation(F0, F1[:5]), ValueError, "shape", id="perturbation-shapes"),
    E(lambda: cross_view_perturbation(F0[0], F1[0]), ValueError, "shape", id="perturbation-1d"),
    E(lambda: cross_view_perturbation(F0[:, :0], F1[:, :0]), ValueError, "d >= 1", id="perturbation-no-features"),
    E(lambda: cross_view_perturbation(F0, F1.float()), ValueError, "dtype", id="perturbation-dtypes"),
    E(lambda: cross_view_perturbation(F0, F1, mode="nope"), ValueError, "mode must be", id="perturbation-bad-mode"),
    E(lambda: cross_view_perturbation(F0, F1, eps=-1.0), ValueError, "eps", id="perturbation-negative-eps"),
    E(lambda: cross_view_perturbation(F0, F1, eps=float("nan")), ValueError, "eps", id="perturbation-nan-eps"),
    E(lambda: cross_view_perturbation(torch.where(F0 > 1, float("nan"), F0), F1), ValueError, "NaN or inf",
      id="perturbation-nan-features"),
    # --- criteria ---
    E(lambda: criterion(_with(S, 0, 1, np.nan), ORDER, "2sum"), ValueError, "NaN", id="criterion-nan"),
    E(lambda: criterion(np.ones((3, 4)), ORDER, "2sum"), ValueError, "square", id="criterion-non-square"),
    E(lambda: criterion(S, [0, 0, 1, 2, 3, 4, 5, 6], "2sum"), ValueError, "not a permutation", id="criterion-order-dup"),
    E(lambda: criterion(S, ORDER[:7], "2sum"), ValueError, "order has 7 items", id="criterion-order-length"),
    E(lambda: criterion(S, ORDER.astype(float), "2sum"), ValueError, "integer item indices", id="criterion-order-float"),
    E(lambda: criterion(S, ORDER[None], "2sum"), ValueError, "1-D", id="criterion-order-2d"),
    E(lambda: criterion(S, ORDER, "nope"), ValueError, "unknown criterion", id="criterion-bad-measure"),
    E(lambda: criterion(S, ORDER, "2sum", window=3), ValueError, "takes parameters", id="criterion-bad-param"),
    E(lambda: criterion(S, ORDER, "rgar", window=1), ValueError, "window", id="criterion-bad-window"),
    E(lambda: criterion(S, ORDER, "2sum", kind="nope"), ValueError, "kind must be", id="criterion-bad-kind"),
    E(lambda: criterion(S, ORDER, "upsets"), ValueError, "comparison", id="criterion-upsets-similarity"),
    E(lambda: criterion(S, ORDER, "upsets", kind="comparison"), ValueError, "skew-symmetric", id="criterion-upsets-symmetric"),
    E(lambda: criterion(S * 1j, ORDER, "upsets", kind="comparison"), TypeError, "real-valued", id="criterion-comparison-complex"),
    E(lambda: criterion(NEG, ORDER, "path_length", kind="distance"), ValueError, "negative", id="criterion-negative-distance"),
    E(lambda: criterion(sp.csr_matrix(S), ORDER, "path_length", kind="distance"), ValueError, "sparse",
      id="criterion-sparse-distance"),
    E(lambda: criterion(sp.csr_matrix(S), ORDER, "ar_events"), ValueError, "toarray", id="criterion-sparse-dense-only"),
    E(lambda: criteria(S, ORDER, ["2sum"], b=2), ValueError, "not taken by any", id="criteria-bad-param"),
    E(lambda: criteria(_with(S, 0, 1, np.inf), ORDER), ValueError, "infinite", id="criteria-inf"),
    E(lambda: criterion_batch(T, torch.tensor(np.stack([ORDER, ORDER])), "nope"), ValueError, "supports", id="batch-criterion-measure"),
    E(lambda: criterion_batch(T, torch.tensor(np.stack([ORDER, ORDER])), "2sum", kind="nope"), ValueError, "kind",
      id="batch-criterion-kind"),
    E(lambda: criterion_batch(T[0], torch.tensor(ORDER), "2sum"), ValueError, "shape", id="batch-criterion-2d"),
    E(lambda: criterion_batch(T, torch.tensor(ORDER), "2sum"), ValueError, "orders must have shape", id="batch-criterion-orders"),
    E(lambda: criterion_batch(T, torch.zeros(2, 8, dtype=torch.long), "2sum"), ValueError, "not a permutation",
      id="batch-criterion-not-permutation"),
    E(lambda: criterion_batch(_tensor_with(0, 1, float("nan")), torch.tensor(np.stack([ORDER, ORDER])), "2sum"),
      ValueError, "NaN", id="batch-criterion-nan"),
    E(lambda: criterion_batch(T.to(torch.complex128), torch.tensor(np.stack([ORDER, ORDER])), "2sum"),
      TypeError, "real", id="batch-criterion-complex"),
    E(lambda: criterion_batch("abc", torch.tensor(np.stack([ORDER, ORDER])), "2sum"), TypeError, "numeric tensor",
      id="batch-criterion-string"),
    # --- order comparison ---
    E(lambda: compare_orders(ORDER, ORDER, "nope"), ValueError, "unknown measure", id="compare-bad-measure"),
    E(lambda: compare_orders(ORDER, ORDER[:7]), ValueError, "8 items but reference has 7", id="compare-lengths"),
    E(lambda: compare_orders([0, 0, 1], [0, 1, 2]), ValueError, "not a permutation", id="compare-not-permutation"),
    E(lambda: compare_orders([0.0, 1.0], [0, 1]), ValueError, "integer item indices", id="compare-float"),
    E(lambda: compare_orders([True, False], [0, 1]), ValueError, "integer item indices", id="compare-bool"),
    E(lambda: compare_orders(np.eye(2, dtype=int), [0, 1]), ValueError, "1-D", id="compare-2d"),
    E(lambda: align_orders([ORDER, ORDER[:7]]), ValueError, "orders\\[1\\] has 7 items", id="align-lengths"),
    E(lambda: align_orders([ORDER, ORDER], method="nope"), ValueError, "method must be", id="align-bad-method"),
    E(lambda: align_orders([ORDER, [0, 0, 1, 2, 3, 4, 5, 6]]), ValueError, "not a permutation", id="align-not-permutation"),
    E(lambda: rank_correlation_batch(torch.ones(2, 3), torch.ones(2, 3), "nope"), ValueError, "method must be",
      id="rankcorr-bad-method"),
    E(lambda: rank_correlation_batch(torch.ones(2, 3), torch.ones(2, 4)), ValueError, "shape", id="rankcorr-shapes"),
    E(lambda: rank_correlation_batch(torch.ones(3), torch.ones(3)), ValueError, "shape", id="rankcorr-1d"),
    E(lambda: rank_correlation_batch(torch.tensor([[1.0, float("nan")]]), torch.ones(1, 2)), ValueError, "finite",
      id="rankcorr-nan"),
    E(lambda: rank_correlation_batch(torch.ones(1, 2), torch.ones(1, 2), mask=torch.ones(1, 2)), ValueError, "mask",
      id="rankcorr-mask-dtype"),
    E(lambda: rank_correlation_batch(torch.ones(1, 2, dtype=torch.complex64), torch.ones(1, 2)), TypeError, "real",
      id="rankcorr-complex"),
    # --- recovery tolerance ---
    E(lambda: recovery_tolerance(_with(S, 0, 1, np.nan)), ValueError, "NaN", id="tolerance-nan"),
    E(lambda: recovery_tolerance(np.ones((3, 4))), ValueError, "shape", id="tolerance-non-square"),
    E(lambda: recovery_tolerance(np.ones((1, 1))), ValueError, "at least 2", id="tolerance-1x1"),
    E(lambda: recovery_tolerance(ASYM), ValueError, "not symmetric", id="tolerance-asymmetric"),
    E(lambda: recovery_tolerance(NEG), ValueError, "negative", id="tolerance-negative"),
    E(lambda: recovery_tolerance(S, negative="nope"), ValueError, "negative must be", id="tolerance-bad-negative"),
    E(lambda: recovery_tolerance(S, anchors=list(range(8))), ValueError, "at least one", id="tolerance-all-anchors"),
    E(lambda: recovery_tolerance(S, anchors=[9]), ValueError, r"\[0, 8\)", id="tolerance-anchor-range"),
    E(lambda: recovery_tolerance(S, anchors=[-1]), ValueError, r"\[0, 8\)", id="tolerance-anchor-negative"),
    E(lambda: recovery_tolerance(S, anchors=[0.5, 2.7]), TypeError, "integer indices", id="tolerance-anchor-float"),
    E(lambda: recovery_tolerance(S + 1j), TypeError, "similarity must be real", id="tolerance-complex"),
    E(lambda: recovery_tolerance([["a", "b"], ["c", "d"]]), TypeError, "numeric", id="tolerance-strings"),
    E(lambda: recovery_tolerance_blocks(S[:5, :5] + 1j, S[:5, 5:]), TypeError, "s_uu must be real", id="tolerance-blocks-complex"),
    E(lambda: recovery_tolerance_blocks(S[:5, :5], S[:4, 5:]), ValueError, "expected", id="tolerance-blocks-shapes"),
    E(lambda: recovery_tolerance_blocks(S[:5, :5], S[:5, :0]), ValueError, "at least one", id="tolerance-blocks-no-anchor"),
    E(lambda: recovery_tolerance_blocks(S[:5, :5], np.full((5, 3), np.nan)), ValueError, "NaN", id="tolerance-blocks-nan"),
    E(lambda: recovery_tolerance_blocks(S[:5, :5], -S[:5, 5:]), ValueError, "negative", id="tolerance-blocks-negative"),
]


@pytest.mark.parametrize(("call", "error", "match"), ERRORS)
def test_bad_input_is_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


def _true(condition):
    assert condition


def _scaled_order_equal(scale):
    np.testing.assert_array_equal(seriate(S * scale).order, seriate(S).order)


def _brute_force_subset(p, k):
    best = min(itertools.combinations(range(p.shape[0]), k),
               key=lambda c: p[np.ix_(c, c)].sum() - np.trace(p[np.ix_(c, c)]))
    return list(best)


def _check_subset(p, k, **kw):
    got = select_stable_subset(p, k, **kw)
    assert got.shape == (k,) and np.unique(got).size == k and got.min() >= 0 and got.max() < p.shape[0]
    return got


R = pytest.param
RESULTS = [
    # extreme magnitudes give the order of the matrix scaled to 1 (seriation is scale-free)
    *[R(lambda c=c: _scaled_order_equal(c), id=f"seriate-scale-{c:g}")
      for c in (1e308, 1.7e308, 1e-308, SUBNORMAL * 2**40)],
    R(lambda: _true(sorted(seriate(np.full((3, 3), SUBNORMAL)).order.tolist()) == [0, 1, 2]),
      id="seriate-all-subnormal"),
    R(lambda: np.testing.assert_array_equal(seriate(sp.csr_matrix(S * 1e308)).order, seriate(S).order),
      id="sparse-scale-1e308"),
    R(lambda: np.testing.assert_array_equal(seriate(torch.tensor(S * 1e-308)).order, seriate(S).order),
      id="torch-scale-1e-308"),
    R(lambda: np.testing.assert_array_equal(seriate(S * 1e308, kind="distance", kernel="gaussian").order,
                                            seriate(S, kind="distance", kernel="gaussian").order),
      id="seriate-distance-scale-1e308"),
    R(lambda: np.testing.assert_allclose(
        seriate(S * 1e308, anchors=[0, 3], anchor_values=[0.0, 1.0]).positions,
        seriate(S, anchors=[0, 3], anchor_values=[0.0, 1.0]).positions, rtol=1e-9, atol=1e-12),
      id="anchored-scale-1e308"),
    R(lambda: np.testing.assert_array_equal(seriate(S > 0.5).order, seriate((S > 0.5).astype(float)).order),
      id="seriate-bool"),
    R(lambda: np.testing.assert_array_equal(seriate((S * 100).astype(np.int64)).order,
                                            seriate((S * 100).astype(np.int64).astype(float)).order), id="seriate-int"),
    R(lambda: _true(seriate(np.array([[0, 2.0], [2.0, 0]])).order.tolist() == [0, 1]), id="seriate-2x2"),
    R(lambda: np.testing.assert_array_equal(seriate(GRAPH).order, seriate(S).order), id="seriate-networkx"),
    R(lambda: np.testing.assert_array_equal(seriate(_frame(S)).order, seriate(S).order), id="seriate-dataframe",
      marks=NEEDS_PANDAS),
    R(lambda: np.testing.assert_array_equal(seriate(NEG, negative="shift").order,
                                            seriate(NEG - NEG[~np.eye(8, dtype=bool)].min()).order),
      id="seriate-negative-shift"),
    R(lambda: np.testing.assert_array_equal(seriate(ASYM, symmetrize="average").order,
                                            seriate((ASYM + ASYM.T) / 2).order), id="seriate-symmetrize"),
    # anchored by default when values are given; explicit spectral keeps the Fiedler coordinates
    R(lambda: np.testing.assert_allclose(seriate(S, anchors=[0, 3], anchor_values=[2.0, 5.0]).positions,
                                         seriate(S, method="anchored", anchors=[0, 3],
                                                 anchor_values=[2.0, 5.0]).positions), id="anchored-default"),
    R(lambda: np.testing.assert_allclose(
        np.abs(seriate(S, method="spectral", anchors=[0, 3], anchor_values=[2.0, 5.0]).positions),
        np.abs(seriate(S).positions)), id="spectral-explicit-orients"),
    # batches
    *[R(lambda c=c, dt=dt: torch.testing.assert_close(seriate_batch(T.to(dt) * c)[1], seriate_batch(T.to(dt))[1]),
        id=f"batch-scale-{c:g}-{str(dt)[6:]}")
      for c, dt in ((1e308, torch.float64), (1e-308, torch.float64), (1e38, torch.float32), (1e-38, torch.float32))],
    R(lambda: torch.testing.assert_close(seriate_batch([T[0], T[1]])[1], seriate_batch(T)[1]), id="batch-list-equal-sizes"),
    R(lambda: torch.testing.assert_close(seriate_batch((T * 100).long())[1], seriate_batch((T * 100).long().float())[1]),
      id="batch-int"),
    R(lambda: torch.testing.assert_close(seriate_batch(T > 0.5)[1], seriate_batch((T > 0.5).float())[1]), id="batch-bool"),
    R(lambda: torch.testing.assert_close(
        harmonic_batch(T[:, :5, :5] * 1e308, T[:, :5, 5:] * 1e308, torch.ones(2, 3).double().cumsum(-1))[0],
        harmonic_batch(T[:, :5, :5], T[:, :5, 5:], torch.ones(2, 3).double().cumsum(-1))[0]), id="harmonic-scale-1e308"),
    # stable subsets: always k distinct indices, scale-free, optimal where brute force can tell
    *[R(lambda c=c: np.testing.assert_array_equal(_check_subset(P * c, 3), _check_subset(P, 3)),
        id=f"subset-scale-{c:g}") for c in (1e308, 1.7e308, 1e-308, SUBNORMAL * 2**30)],
    R(lambda: np.testing.assert_array_equal(_check_subset(P - 0.5, 3, method="exact"), _brute_force_subset(P - 0.5, 3)),
      id="subset-negative-exact"),
    R(lambda: _true(_check_subset(np.zeros((6, 6)), 4).tolist() == [0, 1, 2, 3]), id="subset-all-ties"),
    R(lambda: np.testing.assert_array_equal(_check_subset(P, 8), np.arange(8)), id="subset-k-equals-n"),
    R(lambda: np.testing.assert_array_equal(_check_subset(P, np.int64(3)), _check_subset(P, 3)), id="subset-k-numpy-int"),
    R(lambda: torch.testing.assert_close(cross_view_perturbation(F0 * 1e300, F1 * 1e300), cross_view_perturbation(F0, F1)),
      id="perturbation-scale-1e300"),
    R(lambda: torch.testing.assert_close(cross_view_perturbation(F0 * 1e-310, F1 * 1e-310),
                                         cross_view_perturbation(F0, F1), rtol=1e-4, atol=1e-6),
      id="perturbation-subnormal"),
    # criteria: homogeneous ones scale exactly; never NaN from finite input
    *[R(lambda m=m, c=c, d=d: np.testing.assert_allclose(criterion(S * c, ORDER[::-1].copy(), m) / c**d,
                                                         criterion(S, ORDER[::-1].copy(), m), rtol=1e-9),
        id=f"criterion-{m}-scale-{c:g}")
      for m, d in (("2sum", 1), ("path_length", 1), ("ar_deviations", 1), ("ar_events", 0), ("rho", 0),
                   ("me", 2)) for c in (1e150, 1e-150)],
    R(lambda: _true(criterion(S * 1.7e308, ORDER, "2sum") == np.inf), id="criterion-overflow-inf"),
    R(lambda: _true(not any(np.isnan(v) for v in criteria(S * 1.7e308, ORDER).values())),
      id="criteria-no-nan-at-max"),
    R(lambda: torch.testing.assert_close(criterion_batch(T * 1e300, torch.tensor(np.stack([ORDER, ORDER])), "path_length")
                                         / 1e300, criterion_batch(T, torch.tensor(np.stack([ORDER, ORDER])), "path_length")),
      id="criterion-batch-scale"),
    R(lambda: torch.testing.assert_close(criterion_batch(np.stack([S, S]), np.stack([ORDER, ORDER]), "2sum"),
                                         torch.tensor([criterion(S, ORDER, "2sum")] * 2, dtype=torch.float64)),
      id="criterion-batch-numpy"),
    R(lambda: _true(compare_orders(ORDER, ORDER[::-1].copy()) == 1.0), id="compare-reversal"),
    R(lambda: _true(np.isnan(compare_orders([0], [0]))), id="compare-single"),
    R(lambda: _true(align_orders([]) == []), id="align-empty"),
    R(lambda: torch.testing.assert_close(rank_correlation_batch(np.arange(6.0).reshape(2, 3), np.arange(6).reshape(2, 3)),
                                         torch.ones(2, dtype=torch.float64)), id="rankcorr-numpy"),
    R(lambda: np.testing.assert_allclose(recovery_tolerance(S * 1e300, anchors=[0, 4]) / 1e300,
                                         recovery_tolerance(S, anchors=[0, 4]), rtol=1e-6), id="tolerance-scale-1e300"),
    R(lambda: np.testing.assert_allclose(recovery_tolerance_blocks(S[:5, :5] * 1e-300, S[:5, 5:] * 1e-300) / 1e-300,
                                         recovery_tolerance_blocks(S[:5, :5], S[:5, 5:]), rtol=1e-6),
      id="tolerance-blocks-scale-1e-300"),
]


@pytest.mark.parametrize("check", RESULTS)
def test_extreme_input_gives_the_correct_result(check):
    check()


# --- file readers ---


def _write(tmp_path, name, content):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, np.ndarray):
        np.save(path, content)
    else:
        path.write_text(content)
    return path


FILES = [
    E("load_similarity", "missing.npy", None, FileNotFoundError, "not found", id="io-missing"),
    E("load_similarity", "dir", "DIR", MatrixFileError, "is a directory", id="io-directory"),
    E("load_similarity", "m.bin", b"\x00", MatrixFileError, "unsupported file type", id="io-suffix"),
    E("load_similarity", "m.npy", b"not numpy", MatrixFileError, "pickled data|could not read",
      id="io-corrupt-npy"),
    E("load_similarity", "m.npy", np.array([{"a": 1}, None], dtype=object), MatrixFileError,
      r"holds Python objects \(dtype object\)", id="io-object-npy"),
    E("load_similarity", "m.csv", "a,b\nc,d\n", MatrixFileError, "could not read", id="io-csv-strings"),
    E("load_similarity", "m.csv", "", MatrixFileError, "no numeric data|could not read", id="io-csv-empty"),
    E("load_anchors", "a.csv", "index,value\n0,1\n2,abc\n", MatrixFileError, r"a\.csv, row 3, column 2 \(value\): 'abc'",
      id="anchors-csv-string-value"),
    E("load_anchors", "a.csv", "0,1\nx,2\n", MatrixFileError, r"row 2, column 1 \(index\): 'x'", id="anchors-csv-string-index"),
    E("load_anchors", "a.csv", "0,abc\n1,2\n", MatrixFileError, r"row 1, column 2", id="anchors-csv-first-row-data"),
    E("load_anchors", "a.csv", "0,1\n2.5,2\n", MatrixFileError, "not an integer item index", id="anchors-csv-float-index"),
    E("load_anchors", "a.csv", "0\n1\n", MatrixFileError, "two columns", id="anchors-csv-one-column"),
    E("load_anchors", "a.json", json.dumps({"anchors": [0, "a"], "values": [1, 2]}), MatrixFileError,
      r"anchors\[1\]: 'a'", id="anchors-json-string"),
    E("load_anchors", "a.json", json.dumps({"anchors": [0, True], "values": [1, 2]}), MatrixFileError,
      r"anchors\[1\]: True", id="anchors-json-bool"),
    E("load_anchors", "a.json", json.dumps([0, 1]), MatrixFileError, "JSON object", id="anchors-json-list"),
    E("load_anchors", "a.json", "{", MatrixFileError, "JSON object", id="anchors-json-corrupt"),
    E("load_anchors", "missing.csv", None, FileNotFoundError, "not found", id="anchors-missing"),
    E("load_anchors", "dir", "DIR", MatrixFileError, "is a directory", id="anchors-directory"),
]


@pytest.mark.parametrize(("reader", "name", "content", "error", "match"), FILES)
def test_bad_files_are_clear_errors(tmp_path, reader, name, content, error, match):
    if isinstance(content, str) and content == "DIR":
        (tmp_path / name).mkdir()
        path = tmp_path / name
    else:
        path = tmp_path / name if content is None else _write(tmp_path, name, content)
    with pytest.raises(error, match=match):
        {"load_similarity": load_similarity, "load_anchors": load_anchors}[reader](path)


# --- the CLI ---


def _cli_files(tmp_path):
    files = {"s.npy": S, "asym.npy": ASYM, "neg.npy": NEG, "nan.npy": _with(S, 0, 1, np.nan),
             "big.npy": np.ones((12, 12)), "two.npz": None, "block.npy": np.kron(np.eye(2), np.ones((4, 4)))}
    for name, m in files.items():
        if m is not None:
            np.save(tmp_path / name, m)
    np.savez(tmp_path / "two.npz", a=S, b=S)
    (tmp_path / "bad.csv").write_text("index,value\n0,1\n2,abc\n")
    (tmp_path / "range.csv").write_text("0,1\n99,2\n")
    (tmp_path / "one.csv").write_text("0,1\n")
    (tmp_path / "nan.csv").write_text("0,1\n3,nan\n")
    (tmp_path / "dup.csv").write_text("0,1\n0,2\n")
    (tmp_path / "a.json").write_text(json.dumps({"anchors": [0, 1.5], "values": [0, 1]}))


CLI = [
    E(["asym.npy"], "--symmetrize average, max or min", id="cli-asymmetric"),
    E(["neg.npy"], "--negative clip", id="cli-negative"),
    E(["neg.npy", "--negative", "shift", "--kind", "distance"], "distances must be >= 0", id="cli-negative-distance"),
    E(["nan.npy"], "NaN", id="cli-nan"),
    E(["two.npz"], "--key a", id="cli-npz-key"),
    E(["s.npy", "--anchors", "bad.csv"], "bad.csv, row 3, column 2 (value): 'abc' is not a number", id="cli-anchors-strings"),
    E(["s.npy", "--anchors", "range.csv"], "out of range [0, 8)", id="cli-anchors-range"),
    E(["block.npy", "--anchors", "one.csv"], "--isolated nan, unanchored or ridge", id="cli-isolated"),
    E(["big.npy", "--method", "enumerate"], "--method enumerate is exhaustive", id="cli-enumerate"),
    E(["s.npy", "--solver", "nope"], "does not apply", id="cli-bad-solver"),
    E(["s.npy", "--anchors", "one.csv", "--laplacian", "symmetric"], "--method spectral", id="cli-anchored-symmetric"),
    E(["missing.npy"], "not found", id="cli-missing"),
    E(["s.npy", "--anchors", "nan.csv"], "anchor values contains 1 NaN/inf", id="cli-anchors-nan"),
    E(["s.npy", "--anchors", "dup.csv"], "duplicated anchor indices: [0]", id="cli-anchors-duplicate"),
    E(["s.npy", "--anchors", "a.json"], "anchors[1]: 1.5 is not an integer item index", id="cli-anchors-json-float"),
    E(["s.npy", "--anchors", "missing.csv"], "anchors file not found", id="cli-anchors-missing"),
]


@pytest.mark.parametrize(("args", "phrase"), CLI)
def test_cli_errors_are_one_line_in_cli_terms(tmp_path, monkeypatch, args, phrase):
    _cli_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(main, ["seriate", *args])
    assert out.exit_code != 0 and not isinstance(out.exception, AssertionError)
    assert phrase in " ".join(out.output.split()), out.output
    assert "Traceback" not in out.output
    # advice is in flags: no Python keyword assignments such as negative='clip'
    assert not any(f"{k}=" in out.output for k in ("symmetrize", "negative", "isolated", "key", "method"))


def test_cli_refuses_an_output_suffix_before_the_work(tmp_path):
    np.save(tmp_path / "s.npy", S)
    out = CliRunner().invoke(main, ["seriate", str(tmp_path / "s.npy"), "-o", str(tmp_path / "r.txt")])
    assert out.exit_code == 2 and "r.txt must end in .csv or .json" in out.output
    assert "Seriation of" not in out.output  # nothing was computed


def test_cli_anchored_method_needs_an_anchors_file(tmp_path):
    np.save(tmp_path / "s.npy", S)
    out = CliRunner().invoke(main, ["seriate", str(tmp_path / "s.npy"), "--method", "anchored"])
    assert out.exit_code == 2 and "--method anchored needs --anchors FILE" in out.output


@pytest.mark.slow  # a fresh interpreter imports torch: several seconds per case
@pytest.mark.parametrize(("args", "phrase"), [
    (["asym.npy"], "--symmetrize average"),
    (["s.npy", "--anchors", "bad.csv"], "row 3, column 2"),
])
def test_cli_errors_in_a_real_process(tmp_path, args, phrase):
    _cli_files(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "clss_cli.main", "seriate", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert phrase in proc.stderr + proc.stdout and "Traceback" not in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if line.strip()]) == 1, proc.stderr
