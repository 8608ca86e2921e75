"""Fault suite of the loader side of the data → step contract: worker and pinned-memory settings, loader
arguments, sampler states, evaluation rows, prediction sources, data given to ``train`` and image runs
handed to ``clss predict``. Every case: one line naming the parameter and what is accepted."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from clss.config import TrainConfig, resolve_config
from clss.data import (
    DataSplits,
    InputSpec,
    RegressionDataset,
    SemiSupervisedLoader,
    SemiSupervisedSampler,
    TabularDataset,
    predict_dataset,
)
from clss.data.loader import resolve_pin_memory, resolve_workers
from clss.engine import RunDir, train
from clss_cli.main import main

CPU = torch.device("cpu")


class Squares(RegressionDataset):
    """6 one-channel 4x4 images; ``bad_row`` returns the wrong shape (an undersized decoded file)."""

    def __init__(self, n: int = 6, bad_row: int | None = None) -> None:
        self.targets = np.arange(n, dtype=np.float64)
        self.input = InputSpec("image", (1, 4, 4))
        self.bad_row = bad_row

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.full((1, 3, 4) if i == self.bad_row else (1, 4, 4), float(i))

    def source(self, i: int) -> str:
        return f"img/{i}.png"


def _loader(dataset: RegressionDataset | None = None, **kw):
    ds = Squares() if dataset is None else dataset
    sampler = SemiSupervisedSampler(np.arange(3), np.arange(3, 6), batch_size=3, seed=0)
    args = {"labeled_views": ("weak",), "unlabeled_views": ("weak",), "hidden_truth": False, "seed": 0,
            "targets": torch.as_tensor(ds.targets), "device": CPU, **kw}
    return SemiSupervisedLoader(ds, sampler, **args)


@pytest.mark.parametrize(("value", "match"), [
    pytest.param(-1, r"workers must be an integer >= 0 or 'auto' \(CLI: --workers N", id="negative"),
    pytest.param(1.5, r"workers must be an integer >= 0 or 'auto'", id="float"),
    pytest.param("many", r"workers must be an integer >= 0 or 'auto'", id="word"),
    pytest.param(True, r"workers must be an integer >= 0 or 'auto'", id="bool"),
    pytest.param(None, r"workers must be an integer >= 0 or 'auto'", id="none"),
])
def test_resolve_workers_refuses(value, match):
    with pytest.raises(ValueError, match=match):
        resolve_workers(value, in_memory=False)


@pytest.mark.parametrize("value", [pytest.param("yes", id="word"), pytest.param(1, id="int"),
                                   pytest.param(None, id="none")])
def test_resolve_pin_memory_refuses(value):
    with pytest.raises(ValueError, match=r"pin_memory must be true, false or 'auto'"):
        resolve_pin_memory(value, CPU)


@pytest.mark.parametrize(("key", "value", "match"), [
    pytest.param("workers", -2, r"^workers must be an integer >= 0 or 'auto', got -2$", id="workers-neg"),
    pytest.param("workers", 2.5, r"^workers must be an integer >= 0 or 'auto', got 2\.5$", id="workers-2.5"),
    pytest.param("workers", "lots", r"^workers must be an integer >= 0 or 'auto'", id="workers-word"),
    pytest.param("workers", False, r"^workers must be an integer >= 0 or 'auto'", id="workers-bool"),
    pytest.param("pin_memory", "sometimes", r"^pin_memory must be true or false or 'auto'", id="pin-word"),
    pytest.param("pin_memory", 1, r"^pin_memory must be true or false or 'auto'", id="pin-int"),
])
def test_config_refuses_loader_keys(key, value, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**{key: value})


@pytest.mark.parametrize(("kw", "match"), [
    pytest.param({"prefetch": 0}, r"prefetch must be an integer >= 1, got 0", id="prefetch-0"),
    pytest.param({"workers": -1}, r"workers must be an integer >= 0", id="workers-negative"),
    pytest.param({"labeled_views": ("weak@0",)}, r"a view name is PIPELINE or PIPELINE@N", id="view-draw-0"),
    pytest.param({"unlabeled_views": ("@2",)}, r"a view name is PIPELINE or PIPELINE@N", id="view-empty"),
])
def test_loader_refuses_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        _loader(**kw)


@pytest.mark.parametrize("workers", [pytest.param(0, id="in-process"), pytest.param(1, id="worker")])
def test_an_input_of_the_wrong_shape_names_its_source_in_one_line(workers):
    with pytest.raises(ValueError, match=r"^img/\d\.png gave an input of shape \(1, 3, 4\); the dataset "
                                         r"declares \(1, 4, 4\)") as info:
        for _ in zip(range(4), _loader(Squares(bad_row=4), workers=workers), strict=False):
            pass
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("epoch", "position"), [
    pytest.param(1, 0, id="future-epoch"),
    pytest.param(0, 2, id="not-yet-drawn"),
    pytest.param(-1, 1, id="previous-epoch-mid"),
])
def test_sampler_state_at_refuses_states_it_cannot_rebuild(epoch, position):
    sampler = SemiSupervisedSampler(np.arange(4), np.arange(4, 8), batch_size=2, seed=0)
    it = iter(sampler)
    next(it)
    with pytest.raises(ValueError, match=rf"no state at epoch {epoch}, position {position}: the sampler "
                                         r"is at epoch 0, position 1"):
        sampler.state_at(epoch, position)


@pytest.mark.parametrize(("dataset", "rows", "match"), [
    pytest.param(Squares(), np.array([0, 6]),
                 r"rows must be a non-empty 1-D array of row indices in \[0, 6\)", id="image-out-of-range"),
    pytest.param(TabularDataset(np.zeros((4, 2)), np.zeros(4)), np.array([-1]), r"in \[0, 4\), got shape",
                 id="table-negative"),
    pytest.param(Squares(), np.zeros((2, 2), dtype=int), r"got shape \(2, 2\)", id="2-d"),
    pytest.param(Squares(), np.array([], dtype=int), r"non-empty .* got shape \(0,\)$", id="empty"),
])
def test_predict_dataset_refuses_bad_rows(dataset, rows, match):
    with pytest.raises(ValueError, match=match):
        predict_dataset(lambda x: x.sum(), dataset, device=CPU, rows=rows)


def test_write_predictions_refuses_sources_of_another_length(tmp_path):
    run = RunDir.create(tmp_path / "run", lambda staged: None)
    with pytest.raises(ValueError, match=r"index, source, y_true and y_pred must have the same length, "
                                         r"got 2, 1"):
        run.write_predictions("test", [0, 1], [1.0, 2.0], [1.0, 2.0], source=["a.png"])


@pytest.mark.parametrize("data", [pytest.param(np.zeros((3, 2)), id="array"),
                                  pytest.param("diabetes", id="name")])
def test_train_refuses_data_that_is_no_dataset(tmp_path, data):
    cfg = resolve_config({}, {"dataset": "diabetes", "steps": 1, "progress": False})
    with pytest.raises(TypeError, match=r"^data must be a RegressionData or a DataSplits, got "):
        train(cfg, tmp_path / "run", data=data)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("flag", "match"), [
    pytest.param("-1", "'-1' is not an integer >= 0 or 'auto'", id="negative"),
    pytest.param("two", "'two' is not an integer >= 0 or 'auto'", id="word"),
    pytest.param("1.5", "'1.5' is not an integer >= 0 or 'auto'", id="float"),
])
def test_cli_refuses_bad_workers(tmp_path, flag, match):
    result = CliRunner().invoke(main, ["train", "--dataset", "diabetes", "--workers", flag, "--out",
                                       str(tmp_path / "run")])
    assert result.exit_code == 2
    assert match in result.output
    assert not (tmp_path / "run").exists()


def test_cli_predict_refuses_an_image_run_in_one_line(tmp_path):
    images = DataSplits("squares", Squares(), Squares(), Squares(), "value")
    cfg = resolve_config({}, {"dataset": "squares", "method": "supervised", "labeled": "all", "steps": 2,
                              "eval_every": 1, "batch_size": 3, "threads": 1, "progress": False,
                              "plots": False, "device": "cpu"})
    run = train(cfg, tmp_path / "run", data=images).run_dir
    np.save(tmp_path / "x.npy", np.zeros((2, 16), dtype=np.float32))
    result = CliRunner().invoke(main, ["predict", str(run), "--input", str(tmp_path / "x.npy"), "--out",
                                       str(tmp_path / "p.csv")])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "trained on images of a dataset without an ImagePreprocessing" in lines[0]
    assert not (tmp_path / "p.csv").exists()
