"""The semi-supervised loader: the same batches for any number of worker processes, exact states under
prefetching, the tabular fast path, and evaluation through a loader."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clss.data import (
    DataSplits,
    InputSpec,
    RegressionDataset,
    SemiSupervisedLoader,
    SemiSupervisedSampler,
    TabularDataset,
    predict_dataset,
)


class TinyImages(RegressionDataset):
    """``n`` random 1x8x8 "images" (targets: their mean), read from memory as a file-backed set would be."""

    def __init__(self, n: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.images = torch.rand(n, 1, 8, 8, generator=g)
        self.targets = self.images.mean(dim=(1, 2, 3)).double().numpy()
        self.input = InputSpec("image", (1, 8, 8))

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i].clone()

    def source(self, i: int) -> str:
        return f"images/{i:03d}.png"


def jitter(x: torch.Tensor) -> torch.Tensor:
    """A random pipeline drawing from torch's global generator, as torchvision transforms do."""
    return x + 0.1 * torch.randn_like(x) + torch.rand(()) * 0.01


def tiny_splits(n: int = 40) -> DataSplits:
    return DataSplits("tiny", TinyImages(n), TinyImages(12, 1), TinyImages(12, 2), "mean",
                      pipelines={"weak": jitter})


def _loader(workers: int, *, state: dict | None = None,
            views: tuple[str, ...] = ("weak", "weak@2", "strong")) -> SemiSupervisedLoader:
    data = tiny_splits()
    sampler = SemiSupervisedSampler(np.arange(20), np.arange(20, 40), batch_size=4, seed=5)  # 5 steps/epoch
    if state is not None:
        sampler.load_state_dict(state)
    return SemiSupervisedLoader(data.train, sampler, labeled_views=views, unlabeled_views=("weak",),
                                targets=torch.as_tensor(data.train.targets), hidden_truth=True,
                                pipelines=data.pipelines, seed=11, device=torch.device("cpu"),
                                workers=workers)


def _take(loader: SemiSupervisedLoader, n: int) -> list:
    it = iter(loader)
    return [next(it) for _ in range(n)]


def _assert_same(a: list, b: list) -> None:
    assert len(a) == len(b)
    for (la, ua), (lb, ub) in zip(a, b, strict=True):
        for x, y in ((la, lb), (ua, ub)):
            assert torch.equal(x.index, y.index)
            assert torch.equal(x.y, y.y)
            assert sorted(x.views) == sorted(y.views)
            for name in x.views:
                assert torch.equal(x.views[name], y.views[name]), name


def test_batches_are_identical_for_zero_and_two_worker_processes() -> None:
    """5 steps per epoch: 7 batches cross an epoch boundary; workers draw their augmentations by seed."""
    before = torch.get_rng_state()
    in_process = _take(_loader(0), 7)
    assert torch.equal(torch.get_rng_state(), before)  # augmentation leaves the global RNG alone
    _assert_same(in_process, _take(_loader(2), 7))


def test_views_are_independent_draws_and_unaugmented_views_are_the_plain_input() -> None:
    data = tiny_splits()
    lab, ulb = _take(_loader(0), 1)[0]
    plain = torch.stack([data.train[int(i)] for i in lab.index])
    assert torch.equal(lab.view("strong"), plain)  # the dataset has no "strong" pipeline
    assert not torch.allclose(lab.view("weak"), plain)
    assert not torch.allclose(lab.view("weak"), lab.view("weak@2"))
    assert (lab.view("weak") - plain).abs().max() < 1.0  # a jitter, not another image
    assert torch.allclose(lab.y.double(), torch.as_tensor(data.train.targets[lab.index.numpy()]), rtol=1e-6)
    assert ulb is not None and ulb.y is not None and len(ulb) == 4


def test_the_same_row_draws_differently_in_another_epoch() -> None:
    """Epochs 0 and 1 (5 steps each) see every labelled row; each row's two draws differ."""
    batches = _take(_loader(0), 10)
    draws: dict[int, list[torch.Tensor]] = {}
    for lab, _ in batches:
        for i, x in zip(lab.index.tolist(), lab.view("weak"), strict=True):
            draws.setdefault(i, []).append(x)
    seen_twice = [d for d in draws.values() if len(d) >= 2]
    assert seen_twice
    assert all(not torch.equal(d[0], d[1]) for d in seen_twice)


@pytest.mark.parametrize("consumed", [3, 5, 6])  # mid-epoch, at the end of epoch 0, into epoch 1
def test_sampler_state_is_the_last_consumed_batch_despite_prefetching(consumed: int) -> None:
    reference = _take(_loader(0), consumed + 4)
    loader = _loader(2)
    it = iter(loader)
    for _ in range(consumed):
        next(it)
    state = loader.sampler_state()  # workers have drawn batches ahead by now
    ahead = (loader.sampler.epoch, loader.sampler.position) != (state["epoch"], state["position"])
    assert ahead or consumed == 5  # (at an epoch's end the next epoch is not drawn before it is asked for)
    _assert_same(_take(_loader(2, state=state), 4), reference[consumed:])


def test_tabular_rows_take_the_fast_path_and_share_one_tensor_across_views() -> None:
    x = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    ds = TabularDataset(x, x.sum(1))
    sampler = SemiSupervisedSampler(np.arange(8), np.arange(8, 20), batch_size=4, seed=0)
    common = {"labeled_views": ("weak", "weak@2"), "unlabeled_views": ("weak",), "hidden_truth": False,
              "targets": torch.as_tensor(ds.targets), "seed": 0, "device": torch.device("cpu")}
    loader = SemiSupervisedLoader(ds, sampler, **common)
    assert loader.fast
    lab, ulb = next(iter(loader))
    assert lab.view("weak") is lab.view("weak@2")
    assert torch.equal(lab.view("weak"), torch.as_tensor(x)[lab.index])
    assert ulb is not None and ulb.y is None
    # a pipeline for a requested view sends the table through the general path
    sampler = SemiSupervisedSampler(np.arange(8), np.arange(8, 20), batch_size=4, seed=0)
    assert not SemiSupervisedLoader(ds, sampler, pipelines={"weak": jitter}, **common).fast


def test_predict_dataset_goes_through_a_loader_in_batches() -> None:
    ds = TinyImages(30)
    expected = ds.images.mean(dim=(1, 2, 3))
    out = predict_dataset(lambda x: x.mean(dim=(1, 2, 3)), ds, device=torch.device("cpu"), batch_size=7,
                          workers=2)
    assert torch.allclose(out, expected, rtol=1e-6, atol=1e-7)
    rows = np.array([4, 0, 29])
    some = predict_dataset(lambda x: x.mean(dim=(1, 2, 3)), ds, device=torch.device("cpu"), rows=rows)
    assert torch.allclose(some, expected[rows], rtol=1e-6, atol=1e-7)


def test_a_pipeline_that_changes_the_shape_is_named_in_one_line_even_from_a_worker() -> None:
    data = tiny_splits()
    sampler = SemiSupervisedSampler(np.arange(10), np.arange(10, 40), batch_size=4, seed=5)
    loader = SemiSupervisedLoader(data.train, sampler, labeled_views=("weak",), unlabeled_views=("weak",),
                                  targets=torch.as_tensor(data.train.targets), hidden_truth=False,
                                  pipelines={"weak": lambda x: x[:, :4]}, seed=0, device=torch.device("cpu"),
                                  workers=1)
    with pytest.raises(ValueError, match=r"^augmentation pipeline 'weak' turned the input of images/\d+\.png "
                                         r"of shape \(1, 8, 8\) into shape \(1, 4, 8\)") as info:
        next(iter(loader))
    assert "\n" not in str(info.value)


def test_sampler_state_at_rebuilds_past_positions_and_the_end_of_the_previous_epoch() -> None:
    def fresh() -> SemiSupervisedSampler:
        return SemiSupervisedSampler(np.arange(6), np.arange(6, 12), batch_size=2, seed=3)  # 3 steps/epoch

    def pairs(sampler: SemiSupervisedSampler, n: int) -> list:
        out: list = []
        while len(out) < n:
            out += list(sampler)
        return out[:n]

    reference = pairs(fresh(), 9)
    live = fresh()
    it = iter(live)
    next(it), next(it), next(it)  # epoch 0 done
    end_of_0 = live.state_at(0, 3)
    next(iter(live))  # the next epoch is drawn (what a prefetching loader does)
    for state, done in ((live.state_at(0, 3), 3), (end_of_0, 3), (live.state_at(1, 1), 4)):
        again = fresh()
        again.load_state_dict(state)
        got = pairs(again, 9 - done)
        assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
                   for a, b in zip(got, reference[done:], strict=True))
