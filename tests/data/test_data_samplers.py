"""SemiSupervisedSampler: the paper's epoch structure (official CLSS code), full batch, exact resume."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from clss.data import SemiSupervisedSampler


def _epoch(sampler: SemiSupervisedSampler) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return list(sampler)


def test_epoch_structure_with_ssl_mult() -> None:
    labeled = np.arange(100, 140)  # 40 labeled rows
    unlabeled = np.arange(0, 100)
    s = SemiSupervisedSampler(labeled, unlabeled, batch_size=16, unlabeled_batch_size=8, ssl_mult=3, seed=0)
    # labeled batches: 120 // 16 = 7; unlabeled: 100 // 8 = 12 -> 7 iterations
    assert s.iterations_per_epoch == len(s) == 7
    batches = _epoch(s)
    assert len(batches) == 7
    for lab, unl in batches:
        assert lab.dtype == unl.dtype == torch.long and lab.shape == (16,) and unl.shape == (8,)
    unl_all = torch.cat([u for _, u in batches])
    assert unl_all.unique().numel() == unl_all.numel()  # unlabeled rows not repeated within an epoch
    assert set(unl_all.tolist()) <= set(unlabeled.tolist())


def test_every_labeled_row_appears_ssl_mult_times_per_epoch() -> None:
    # 30 rows x 4 = 120 = 15 batches of 8, fewer than the 20 unlabeled batches: the whole pool is used.
    s = SemiSupervisedSampler(
        30, np.arange(30, 190), batch_size=8, unlabeled_batch_size=8, ssl_mult=4, seed=1
    )
    assert s.iterations_per_epoch == 15
    for _ in range(2):
        lab = torch.cat([b[0] for b in _epoch(s)])
        assert torch.equal(torch.bincount(lab, minlength=30), torch.full((30,), 4))
    assert s.epoch == 1


def test_epochs_reshuffle_and_seed_determinism() -> None:
    kw = {"batch_size": 4, "unlabeled_batch_size": 4, "seed": 5}
    a = SemiSupervisedSampler(20, np.arange(20, 60), **kw)
    b = SemiSupervisedSampler(20, np.arange(20, 60), **kw)
    e1, e2 = _epoch(a), _epoch(a)
    assert not all(torch.equal(x[0], y[0]) for x, y in zip(e1, e2, strict=True))
    for (l1, u1), (l2, u2) in zip(e1, _epoch(b), strict=True):
        assert torch.equal(l1, l2) and torch.equal(u1, u2)
    c = SemiSupervisedSampler(20, np.arange(20, 60), **{**kw, "seed": 6})
    assert not torch.equal(_epoch(c)[0][0], e1[0][0])


def test_global_rng_untouched() -> None:
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    _epoch(SemiSupervisedSampler(10, np.arange(10, 20), batch_size=2, seed=0))
    assert torch.equal(torch.rand(3), expected)


def test_drop_last_false_keeps_partial_batches() -> None:
    s = SemiSupervisedSampler(
        10, np.arange(10, 35), batch_size=4, unlabeled_batch_size=10, drop_last=False, seed=0
    )
    # labeled ceil(10 / 4) = 3, unlabeled ceil(25 / 10) = 3
    batches = _epoch(s)
    assert [b[0].numel() for b in batches] == [4, 4, 2]
    assert [b[1].numel() for b in batches] == [10, 10, 5]


def test_full_batch_mode() -> None:
    lab, unl = np.array([5, 3, 9]), np.array([0, 1, 2, 4])
    s = SemiSupervisedSampler(lab, unl, seed=0, full_batch=True)
    assert s.iterations_per_epoch == 1
    for _ in range(3):
        ((l_idx, u_idx),) = _epoch(s)
        assert l_idx.tolist() == [5, 3, 9] and u_idx.tolist() == [0, 1, 2, 4]


def test_supervised_only_yields_empty_unlabeled() -> None:
    s = SemiSupervisedSampler(10, [], batch_size=3, ssl_mult=2, seed=0)
    assert s.iterations_per_epoch == 6
    for lab, unl in _epoch(s):
        assert lab.numel() == 3 and unl.numel() == 0 and unl.dtype == torch.long
    ((lab, unl),) = _epoch(SemiSupervisedSampler(4, np.array([], dtype=int), seed=0, full_batch=True))
    assert lab.tolist() == [0, 1, 2, 3] and unl.numel() == 0


@pytest.mark.parametrize("stop_after", [0, 1, 4, 6])
def test_resume_mid_epoch_reproduces_remaining_batches(stop_after: int) -> None:
    kw = {"batch_size": 5, "unlabeled_batch_size": 3, "ssl_mult": 2, "seed": 11}
    reference = SemiSupervisedSampler(17, np.arange(17, 60), **kw)
    ref = [batch for _ in range(4) for batch in _epoch(reference)]
    per_epoch = reference.iterations_per_epoch  # 6

    run = SemiSupervisedSampler(17, np.arange(17, 60), **kw)
    seen = _epoch(run)  # one full epoch, then part of the next
    it = iter(run)
    seen += [next(it) for _ in range(stop_after)]
    buf = io.BytesIO()
    torch.save(run.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)

    resumed = SemiSupervisedSampler(17, np.arange(17, 60), **kw)
    resumed.load_state_dict(state)
    rest = _epoch(resumed)
    assert len(rest) == per_epoch - stop_after if stop_after < per_epoch else per_epoch
    seen += rest + _epoch(resumed)
    assert len(seen) % per_epoch == 0 and resumed.epoch == len(seen) // per_epoch - 1
    for (l1, u1), (l2, u2) in zip(seen, ref[: len(seen)], strict=True):
        assert torch.equal(l1, l2) and torch.equal(u1, u2)


def test_resume_before_first_epoch_and_after_break_at_epoch_end() -> None:
    kw = {"batch_size": 2, "seed": 2}
    ref_sampler = SemiSupervisedSampler(6, np.arange(6, 12), **kw)
    ref = _epoch(ref_sampler) + _epoch(ref_sampler)
    fresh = SemiSupervisedSampler(6, np.arange(6, 12), **kw)
    state = SemiSupervisedSampler(6, np.arange(6, 12), **kw).state_dict()
    fresh.load_state_dict(state)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(_epoch(fresh), ref[:3], strict=True))
    # Consumer stops right after the last batch of epoch 0 (the generator never finishes).
    run = SemiSupervisedSampler(6, np.arange(6, 12), **kw)
    it = iter(run)
    _ = [next(it) for _ in range(3)]
    resumed = SemiSupervisedSampler(6, np.arange(6, 12), **kw)
    resumed.load_state_dict(run.state_dict())
    assert all(torch.equal(a[1], b[1]) for a, b in zip(_epoch(resumed), ref[3:], strict=True))


def test_state_mismatch_and_bad_arguments() -> None:
    s = SemiSupervisedSampler(10, np.arange(10, 20), batch_size=2, seed=0)
    other = SemiSupervisedSampler(10, np.arange(10, 20), batch_size=5, seed=0)
    with pytest.raises(ValueError, match="does not match"):
        other.load_state_dict(s.state_dict())
    with pytest.raises(ValueError, match="labeled set is empty"):
        SemiSupervisedSampler(0, [1, 2], batch_size=1, seed=0)
    with pytest.raises(ValueError, match="batch_size is required"):
        SemiSupervisedSampler(4, [5, 6], seed=0)
    for bad in (0, -3, 2.5, True, "some"):
        with pytest.raises(ValueError, match=r"batch_size must be a positive integer or 'all' \(CLI: "
                                             r"--batch-size N"):
            SemiSupervisedSampler(4, [5, 6], batch_size=bad, seed=0)
        with pytest.raises(ValueError, match="unlabeled_batch_size must be a positive integer"):
            SemiSupervisedSampler(4, [5, 6], batch_size=2, unlabeled_batch_size=bad, seed=0)
    with pytest.raises(ValueError, match="ssl_mult"):
        SemiSupervisedSampler(4, [5, 6], batch_size=1, ssl_mult=0, seed=0)
    with pytest.raises(ValueError, match="integer indices"):
        SemiSupervisedSampler(np.array([0.5, 1.5]), [3], batch_size=1, seed=0)
    with pytest.raises(ValueError, match="negative"):
        SemiSupervisedSampler(4, [-1], batch_size=1, seed=0)


def test_few_labels_use_the_whole_labeled_set_per_batch() -> None:
    # 12 labelled rows and a batch of 32 (a 215-row set at 10 %): every batch is all 12 rows, with a warning.
    with pytest.warns(UserWarning, match="batch_size 32 is larger than the 12 labeled rows"):
        s = SemiSupervisedSampler(12, np.arange(12, 215), batch_size=32, seed=0)
    assert s.batch_size == 12 and s.unlabeled_batch_size == 32 and s.iterations_per_epoch == 1
    lab, unl = next(iter(s))
    assert sorted(lab.tolist()) == list(range(12)) and unl.numel() == 32
    # ssl_mult repeats the set: batches of the set's size, each row ssl_mult times per epoch.
    with pytest.warns(UserWarning):
        s = SemiSupervisedSampler(5, np.arange(5, 100), batch_size=8, ssl_mult=3, seed=0)
    assert s.iterations_per_epoch == 3
    lab = [b[0] for b in s]
    assert all(b.numel() == 5 for b in lab)
    assert torch.equal(torch.bincount(torch.cat(lab), minlength=5), torch.full((5,), 3))


def test_unlabeled_batch_capped_at_the_pool() -> None:
    with pytest.warns(UserWarning, match="unlabeled_batch_size 4 is larger than the 2 unlabeled rows"):
        s = SemiSupervisedSampler(8, [9, 10], batch_size=4, seed=0)
    assert s.unlabeled_batch_size == 2 and s.iterations_per_epoch == 1
    assert sorted(next(iter(s))[1].tolist()) == [9, 10]


def test_batch_size_all_is_explicit_and_silent() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = SemiSupervisedSampler(7, np.arange(7, 30), batch_size="all", unlabeled_batch_size="all", seed=0)
    assert (s.batch_size, s.unlabeled_batch_size, s.iterations_per_epoch) == (7, 23, 1)
    supervised = SemiSupervisedSampler(7, [], batch_size="all", seed=0)
    assert supervised.batch_size == 7 and len(supervised) == 1
