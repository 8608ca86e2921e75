"""threads: auto picks one torch thread for small models; a run sets threads for itself only."""

import json

import numpy as np
import pytest
import torch
import yaml

from clss.config import TrainConfig, resolve_config
from clss.data import InputSpec
from clss.engine import train
from clss.engine.threads import (
    AUTO_ONE_THREAD_BELOW,
    choose_threads,
    restores_torch_threads,
    run_threads,
    work_per_step,
)
from clss.models import build_model


@pytest.fixture
def two_threads():
    """The process runs with 2 torch threads during the test (the suite's conftest sets 1)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield 2
    torch.set_num_threads(previous)


def test_auto_is_the_default_and_explicit_ints_are_honoured():
    assert TrainConfig().threads == "auto"
    assert choose_threads(3, n_params=10**9, rows=10**9) == 3
    assert choose_threads(1, n_params=1, rows=1) == 1
    assert type(choose_threads(np.int64(2), n_params=1, rows=1)) is int  # e.g. from a parameter grid


def test_auto_uses_one_thread_below_the_threshold_and_the_current_setting_above(two_threads):
    small = AUTO_ONE_THREAD_BELOW // 64 - 1
    assert work_per_step(small, 64) < AUTO_ONE_THREAD_BELOW
    assert choose_threads("auto", n_params=small, rows=64) == 1
    assert choose_threads("auto", n_params=AUTO_ONE_THREAD_BELOW, rows=1) == two_threads
    assert choose_threads(None, n_params=1, rows=1) == two_threads  # None: leave the setting alone


def test_run_threads_counts_trainable_parameters_and_both_batches(two_threads):
    model = build_model("mlp", InputSpec("tabular", (10,)), hidden=[100, 100])
    n = sum(p.numel() for p in model.parameters())
    rows_at_threshold = -(-AUTO_ONE_THREAD_BELOW // n)  # ceil: the first row count at the threshold
    assert run_threads("auto", model, labeled_rows=rows_at_threshold - 2, unlabeled_rows=1) == 1
    assert run_threads("auto", model, labeled_rows=rows_at_threshold - 1, unlabeled_rows=1) == two_threads
    assert run_threads("auto", model, labeled_rows=32, unlabeled_rows=32) == 1
    for p in model.parameters():
        p.requires_grad_(False)
    assert run_threads("auto", model, labeled_rows=10**9) == 1  # frozen weights do no work


@pytest.mark.parametrize("bad", [0, -2, 1.5, "many", True, "2.5"])
def test_bad_settings_are_refused_by_name(bad):
    with pytest.raises(ValueError, match="threads must be an integer >= 1, 'auto' or null"):
        choose_threads(bad, n_params=1, rows=1)


def test_settings_are_read_as_the_configuration_reads_them():
    assert choose_threads("2", n_params=1, rows=1) == 2  # as from --set threads=2


def test_restores_torch_threads_after_return_and_after_an_exception(two_threads):
    @restores_torch_threads
    def sets(n, fail=False):
        torch.set_num_threads(n)
        if fail:
            raise RuntimeError("boom")
        return torch.get_num_threads()

    assert sets(1) == 1
    assert torch.get_num_threads() == two_threads
    with pytest.raises(RuntimeError):
        sets(1, fail=True)
    assert torch.get_num_threads() == two_threads


def test_train_chooses_one_thread_for_a_small_model_records_it_and_restores_the_caller(tmp_path, two_threads):
    cfg = resolve_config({}, {"dataset": "diabetes", "method": "supervised", "steps": 2, "eval_every": 1,
                              "progress": False, "plots": False, "threads": "auto"})
    seen = []
    run = train(cfg, tmp_path / "run", callback=lambda step, logs: seen.append(torch.get_num_threads()))
    assert seen == [1, 1]
    assert torch.get_num_threads() == two_threads
    assert json.loads((run.run_dir / "summary.json").read_text())["threads"] == 1
    assert yaml.safe_load((run.run_dir / "config.yaml").read_text())["threads"] == "auto"
