"""The seed papers' tables run end to end on a stand-in AgeDB-DIR copy (a few tiny images checked against a
stand-in manifest, a tiny CNN and budget): every row's recipe trains, evaluates and reports."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from _faces_tree import adience_tree, agedb_tree, stand_in_manifest
from _order_tree import cacd_tree, clap_tree, morph_tree, order_manifest, utk_coral_tree

from clss.reproduce import load_table, plan_table, run_cell, write_report

TINY = {"model": {"name": "cnn", "channels": 4, "blocks": 1}, "batch_size": 6, "unlabeled_batch_size": 6,
        "eval_every": 2, "plots": False, "threads": 1, "workers": 0,
        "preprocessing": {}, "device": "cpu"}


@pytest.mark.parametrize(("name", "setting"), [("rnc-agedb-dir", "all"), ("supremix-agedb-dir", "all"),
                                               ("conord-agedb-dir", "p100")])
def test_recipe_table_runs_on_a_stand_in_copy(tmp_path, name, setting):
    root = tmp_path / "agedb"
    agedb_tree(root)
    manifest = stand_in_manifest("agedb-dir", root, tmp_path / "agedb.yaml")
    table = load_table(name)
    runs = plan_table(table, seeds=[0], settings=[setting], steps=6, data_root=root,
                      overrides={**TINY, "manifest": str(manifest)})
    out = tmp_path / "grid"
    for run in runs:
        run_cell(out, run)
        summary = json.loads((out / run.run_dir / "summary.json").read_text())
        assert summary["status"] == "finished" and np.isfinite(summary["test"]["mae"]), run.name
        assert summary["unlabeled"] == 0  # the recipes train on the labelled rows alone here
    md = write_report(table, out, runs)["md"].read_text()
    for row in table.rows:
        assert f"(`{row.method}`)" in md


@pytest.mark.parametrize("name", ["cloc-adience", "conord-adience"])
def test_adience_tables_run_one_fold_per_seed_on_a_stand_in_copy(tmp_path, name):
    """Seed k tests on fold k; every row is scored as an ordinal classifier (accuracy, MAE in classes)."""
    root = tmp_path / "adience"
    kept = adience_tree(root)
    table = load_table(name)
    runs = plan_table(table, seeds=[0, 2], steps=6, data_root=root, overrides=TINY)
    assert sorted({r.config["run"] for r in runs}) == [0, 2]
    out = tmp_path / "grid"
    for run in runs:
        with pytest.warns(UserWarning, match="rows whose label is not one of the protocol's classes"):
            run_cell(out, run)
        summary = json.loads((out / run.run_dir / "summary.json").read_text())
        test = summary["test"]
        assert summary["status"] == "finished", run.name
        assert 0.0 <= test["accuracy"] <= 1.0 and test["mae_classes"] >= 0.0 and "qwk" in test
        rows = (out / run.run_dir / "predictions.csv").read_text().splitlines()[1:]
        fold = sorted(r.split(",")[2] for r in rows if r.startswith("test,"))
        assert fold == sorted(p for p, _ in kept[run.config["run"]])  # the fold's kept rows, no others
    md = write_report(table, out, runs)["md"].read_text()
    assert "MAE_CLASSES" in md and all(f"(`{row.name}`)" in md for row in table.rows)


ORDER_TREES = {
    "morph2": (morph_tree, {"train": 10, "test": 4}, 1),
    "clap2015": (clap_tree, {"train": 10, "val": 4, "test": 5}, 0),
    "utkface-coral": (utk_coral_tree, {"train": 12, "test": 5}, 0),
    "cacd": (cacd_tree, {"train": 10, "val": 4, "test": 4}, 0),
}


@pytest.mark.parametrize("dataset", list(ORDER_TREES))
def test_conord_age_tables_run_every_row_on_a_stand_in_copy(tmp_path, dataset):
    """ConOrd's Table 2 on each order-learning benchmark: every row trains and reports its test MAE."""
    make, splits, seed = ORDER_TREES[dataset]
    root = tmp_path / dataset
    make(root)
    manifest = order_manifest(dataset, root, tmp_path / "m.yaml", splits)
    table = load_table(f"conord-{dataset}")
    runs = plan_table(table, seeds=[seed], steps=6, data_root=root,
                      overrides={**TINY, "manifest": str(manifest), "batch_size": 4,
                                 "unlabeled_batch_size": 4})
    assert len(runs) == len(table.rows)
    out = tmp_path / "grid"
    for run in runs:
        if dataset == "utkface-coral":
            with pytest.warns(UserWarning, match="the true age - 21"):
                run_cell(out, run)
        else:
            run_cell(out, run)
        summary = json.loads((out / run.run_dir / "summary.json").read_text())
        assert summary["status"] == "finished" and np.isfinite(summary["test"]["mae"]), run.name
        if "run" in table.seed_keys:
            assert run.config["run"] == seed
    md = write_report(table, out, runs)["md"].read_text()
    assert all(f"(`{row.name}`)" in md for row in table.rows)
