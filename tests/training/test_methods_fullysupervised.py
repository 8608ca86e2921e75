"""The fully supervised upper bound through the engine: it labels every row a semi-supervised run of the same
configuration sees (labelled + unlabelled rows with a target), and never a row without a target."""

import json

import numpy as np
import pytest

from clss.config import resolve_config
from clss.data import DataSplits, TabularDataset
from clss.engine import train

TINY = {"steps": 2, "eval_every": 0, "progress": False, "plots": False, "threads": 1, "batch_size": 8,
        "unlabeled_batch_size": 8}


def _splits(run):
    return json.loads((run / "splits.json").read_text())


def _pair(tmp_path, values, data=None):
    """splits.json of the same configuration under supervised (with unlabelled rows) and fullysupervised."""
    out = {}
    for method in ("supervised", "fullysupervised"):
        cfg = resolve_config({}, {**TINY, **values, "method": method})
        res = train(cfg, tmp_path / method, data=data)
        out[method] = (_splits(res.run_dir), res.summary)
    return out


def _expected_labelled(semi, no_target=()):
    rows = set(semi["labeled"]) | (set(semi["unlabeled"]) - set(no_target))
    return sorted(rows)


def test_fullysupervised_labels_every_row_of_the_semi_supervised_split(tmp_path):
    runs = _pair(tmp_path, {"dataset": "diabetes", "labeled": "20%", "unlabeled": 100})
    (semi, _), (full, summary) = runs["supervised"], runs["fullysupervised"]
    assert len(semi["labeled"]) == 53 and len(semi["unlabeled"]) == 100
    assert full["labeled"] == _expected_labelled(semi) and full["unlabeled"] == []
    assert full["all_labels"] is True
    assert summary["labeled"] == 153 and summary["unlabeled"] == 0 and summary["status"] == "finished"


def test_fullysupervised_leaves_out_csv_rows_with_an_empty_target(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    y = x @ np.array([1.0, -0.5, 0.2])
    lines = ["a,b,c,y"] + [",".join(f"{v:.6f}" for v in row) + "," + ("" if i % 6 == 0 else f"{t:.6f}")
                          for i, (row, t) in enumerate(zip(x, y, strict=True))]
    src = tmp_path / "table.csv"
    src.write_text("\n".join(lines) + "\n")
    runs = _pair(tmp_path, {"dataset": f"csv:{src}", "target": "y", "labeled": "25%"})
    (semi, _), (full, summary) = runs["supervised"], runs["fullysupervised"]
    assert len(semi["no_target"]) > 0 and set(semi["no_target"]) <= set(semi["unlabeled"])
    assert full["labeled"] == _expected_labelled(semi, semi["no_target"])
    assert not set(full["labeled"]) & set(semi["no_target"]) and full["unlabeled"] == []
    assert np.isfinite(summary["test"]["mae"])


def _paper_data():
    """A table with a fixed (paper-style) labelled/unlabelled protocol; two unlabelled rows have no target."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(70, 4)).astype(np.float32)
    y = x[:, 0] - x[:, 1]
    y_train = y[:50].astype(np.float64)
    y_train[[30, 41]] = np.nan
    ds = [TabularDataset(x[:50], y_train), TabularDataset(x[50:60], y[50:60]), TabularDataset(x[60:], y[60:])]
    return DataSplits("paper-table", *ds, "y", labeled=np.arange(10), unlabeled=np.arange(20, 50))


def test_fullysupervised_with_the_paper_protocol(tmp_path):
    runs = _pair(tmp_path, {"dataset": "diabetes", "unlabeled": "paper"}, data=_paper_data())
    (semi, _), (full, summary) = runs["supervised"], runs["fullysupervised"]
    assert semi["labeled"] == list(range(10)) and semi["unlabeled"] == list(range(20, 50))
    assert full["labeled"] == _expected_labelled(semi, (30, 41))
    assert summary["labeled"] == 38 and np.isfinite(summary["test"]["mae"])


@pytest.mark.parametrize("method", ["supervised", "fullysupervised"])
def test_fullysupervised_shares_the_supervised_parameters(method):
    from clss.methods import METHODS

    assert METHODS["fullysupervised"].Params is METHODS["supervised"].Params
    assert METHODS[method].semi_supervised is False
    assert METHODS[method].all_labels is (method == "fullysupervised")
