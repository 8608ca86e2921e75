"""The seed papers' tables run end to end on a stand-in AgeDB-DIR copy (a few tiny images checked against a
stand-in manifest, a tiny CNN and budget): every row's recipe trains, evaluates and reports."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from _faces_tree import agedb_tree, stand_in_manifest

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
