"""recovery_tolerance against a plain-loop evaluation of the GCLSS bound."""

import itertools
import math

import numpy as np
import pytest
import torch

from clss.seriation.generators import points_robinson, toeplitz_robinson
from clss.seriation.tolerance import recovery_tolerance


def reference_delta(lm):
    """The bound evaluated literally, with loops, on a reduced Laplacian ``lm`` (m x m, PD)."""
    m = lm.shape[0]
    vals, vecs = np.linalg.eigh(lm)
    for i in range(vecs.shape[1]):  # largest-magnitude entry positive
        if vecs[np.argmax(np.abs(vecs[:, i])), i] < 0:
            vecs[:, i] *= -1
    sigma1 = np.linalg.svd(lm, compute_uv=False).min()
    alpha = min(abs(vecs[k, i] - vecs[k, j])
                for i, j in itertools.combinations(range(m), 2) for k in range(m))
    norm_inf = max(sum(abs(x) for x in row) for row in lm)
    term = vals[0] ** 2 * sigma1 * alpha / (8 * math.sqrt(2) * vals[-1] * m * norm_inf)
    return min(sigma1 / 2, term)


def reference_unanchored(w):
    """Unanchored: the eigenpairs 2..n of L in original coordinates, m = n - 1, ||L||_inf."""
    w = w - np.diag(np.diag(w))
    lap = np.diag(w.sum(1)) - w
    n = lap.shape[0]
    vals, vecs = np.linalg.eigh(lap)
    vals, vecs = vals[1:], vecs[:, 1:]
    for i in range(vecs.shape[1]):
        if vecs[np.argmax(np.abs(vecs[:, i])), i] < 0:
            vecs[:, i] *= -1
    alpha = min(abs(vecs[k, i] - vecs[k, j])
                for i, j in itertools.combinations(range(n - 1), 2) for k in range(n))
    norm_inf = np.abs(lap).sum(1).max()
    term = vals[0] ** 3 * alpha / (8 * math.sqrt(2) * vals[-1] * (n - 1) * norm_inf)
    return min(vals[0] / 2, term)


@pytest.mark.parametrize("seed", range(4))
def test_anchored_bound_matches_literal_formula(seed):
    rng = np.random.default_rng(seed)
    w = points_robinson(12, rng=rng)
    anchors = np.array([0, 5, 11])
    w0 = w - np.diag(np.diag(w))
    lap = np.diag(w0.sum(1)) - w0
    u = np.setdiff1d(np.arange(12), anchors)
    assert recovery_tolerance(w, anchors=anchors) == pytest.approx(
        reference_delta(lap[np.ix_(u, u)]), rel=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_unanchored_bound_matches_literal_formula(seed):
    w = points_robinson(10, rng=np.random.default_rng(seed))
    assert recovery_tolerance(w) == pytest.approx(reference_unanchored(w), rel=1e-9)


def test_disconnected_graph_has_zero_tolerance():
    w = np.zeros((4, 4))
    w[0, 1] = w[1, 0] = w[2, 3] = w[3, 2] = 1.0
    assert recovery_tolerance(w) == 0.0


def test_batched_equals_single_and_mask_equals_indices():
    rng = np.random.default_rng(0)
    mats = np.stack([points_robinson(9, rng=rng) for _ in range(3)])
    batched = recovery_tolerance(torch.tensor(mats), anchors=torch.tensor([0, 4]))
    mask = torch.zeros(3, 9, dtype=torch.bool)
    mask[:, [0, 4]] = True
    assert torch.allclose(batched, recovery_tolerance(torch.tensor(mats), anchors=mask))
    for b in range(3):
        assert batched[b].item() == pytest.approx(recovery_tolerance(mats[b], anchors=[0, 4]))
    ragged = mask.clone()
    ragged[2, 7] = True
    got = recovery_tolerance(torch.tensor(mats), anchors=ragged)
    assert got[2].item() == pytest.approx(recovery_tolerance(mats[2], anchors=[0, 4, 7]))
    assert got[0].item() == pytest.approx(batched[0].item())


def test_blocks_equal_the_joint_matrix():
    from clss.seriation import recovery_tolerance_blocks

    rng = np.random.default_rng(3)
    feats = rng.normal(size=(3, 12, 4))
    feats /= np.linalg.norm(feats, axis=-1, keepdims=True)
    cos = feats @ feats.transpose(0, 2, 1)  # cosines: some negative
    anchors = np.arange(5, 12)
    joint = recovery_tolerance(torch.tensor(cos), anchors=torch.tensor(anchors), negative="clip")
    blocks = recovery_tolerance_blocks(torch.tensor(cos[:, :5, :5]), torch.tensor(cos[:, :5, 5:]),
                                       negative="clip")
    # δ scales with the eigenvalues: compare at the scale of the largest one, not digit by digit
    # (matrix 0 has structurally tied eigenvector entries, so its δ is rounding noise ~1e-20)
    assert torch.allclose(blocks, joint, rtol=1e-9, atol=1e-9 * float(joint.abs().max()))
    assert blocks[2].item() > 1e-9 * float(joint.abs().max())
    single = recovery_tolerance_blocks(cos[1, :5, :5], cos[1, :5, 5:], negative="clip")
    assert single == pytest.approx(joint[1].item(), rel=1e-12)
    with pytest.raises(ValueError, match="negative"):
        recovery_tolerance_blocks(cos[1, :5, :5], cos[1, :5, 5:])
    with pytest.raises(ValueError, match="expected"):
        recovery_tolerance_blocks(cos[1, :5, :5], cos[1, :4, 5:])


def test_structurally_tied_eigenvector_entries_give_zero_not_noise():
    from clss.seriation import recovery_tolerance_blocks

    # clipping the cosines leaves eigenvector entries that are equal in exact arithmetic: their
    # computed gap is rounding noise whose digits depend on the BLAS kernel, so δ must be exactly 0
    rng = np.random.default_rng(3)
    feats = rng.normal(size=(12, 4))
    feats /= np.linalg.norm(feats, axis=-1, keepdims=True)
    cos = feats @ feats.T
    assert recovery_tolerance(cos, anchors=np.arange(5, 12), negative="clip") == 0.0
    assert recovery_tolerance_blocks(cos[:5, :5], cos[:5, 5:], negative="clip") == 0.0


def test_single_unknown_item():
    w = toeplitz_robinson(3, "exp")
    lap = np.diag(w.sum(1) - 1) - (w - np.eye(3))
    assert recovery_tolerance(w, anchors=[0, 2]) == pytest.approx(lap[1, 1] / 2)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"similarity": np.ones((2, 3))}, "shape"),
    ({"similarity": np.array([[0, np.nan], [np.nan, 0]])}, "NaN"),
    ({"similarity": np.array([[0, 1.0], [2.0, 0]])}, "symmetric"),
    ({"similarity": np.array([[0, -1.0], [-1.0, 0]])}, "negative"),
    ({"anchors": [0, 1, 2]}, "at least one"),
    ({"anchors": [5]}, r"\[0, 3\)"),
])
def test_bad_input(kwargs, match):
    args = {"similarity": toeplitz_robinson(3, "exp"), **kwargs}
    with pytest.raises(ValueError, match=match):
        recovery_tolerance(args.pop("similarity"), **args)


def test_input_is_not_modified():
    s = torch.tensor(toeplitz_robinson(6, "exp"))
    before = s.clone()
    recovery_tolerance(s, anchors=[0, 5])
    recovery_tolerance(s)
    assert torch.equal(s, before)
