"""An image table runs like a tabular one: stand-in image files under --data-root, a tiny CNN and budget."""

import json

import numpy as np
import pytest
import yaml
from PIL import Image

from clss.reproduce import load_table, plan_table, run_cell, write_report


def _stand_in_images(root, n=24):
    """``root/img/*.png`` whose brightness is the target, and a CSV elsewhere naming them relative to root."""
    rng = np.random.default_rng(0)
    (root / "img").mkdir(parents=True)
    lines = ["path,target"]
    for i in range(n):
        t = float(rng.uniform(0, 1))
        Image.fromarray((rng.uniform(0, 255, (8, 8, 3)) * t).astype(np.uint8)).save(root / "img" / f"{i}.png")
        lines.append(f"img/{i}.png,{round(10 * t, 4)}")
    (root.parent / "index").mkdir()
    csv_file = root.parent / "index" / "faces.csv"
    csv_file.write_text("\n".join(lines) + "\n")
    return csv_file


@pytest.mark.slow
def test_an_image_table_runs_with_a_data_root(tmp_path):
    csv_file = _stand_in_images(tmp_path / "images")
    table_file = tmp_path / "images.yaml"
    table_file.write_text(yaml.safe_dump({
        "name": "stand-in-images", "title": "Stand-in images", "dataset": f"image-csv:{csv_file}",
        "config": {"steps": 2, "eval_every": 2, "batch_size": 4, "unlabeled_batch_size": 4, "plots": False,
                   "threads": 1, "device": "cpu", "workers": 0,
                   "model": {"name": "cnn", "channels": 4, "blocks": 1}},
        "seeds": [0, 1], "metrics": ["mae"],
        "columns": [{"name": "half", "label": "1/2", "labeled": "50%"}],
        "rows": [{"method": "supervised", "label": "Regression", "published": {"mae": ["2.5±0.1"]}},
                 {"method": "gclss", "label": "GCLSS", "published": {"mae": [{"missing": "stand-in data"}]}}],
        "source": {"paper": "none", "selection": "validation MAE"}}, allow_unicode=True))
    table = load_table(table_file)
    runs = plan_table(table, data_root=tmp_path / "images")
    assert {r.config["data_root"] for r in runs} == {str((tmp_path / "images").resolve())}
    out = tmp_path / "grid"
    for run in runs:
        run_cell(out, run)
    summary = json.loads((out / "gclss/half/seed1/summary.json").read_text())
    assert summary["status"] == "finished" and np.isfinite(summary["test"]["mae"])
    md = write_report(table, out, runs)["md"].read_text()
    assert "\\| 2.500 ± 0.100" in md and "GCLSS (`gclss`)" in md
