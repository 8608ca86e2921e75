"""Small table files for the reproduce tests: a diabetes grid that trains in a second per run."""

from __future__ import annotations

from pathlib import Path

import yaml

TINY = {
    "name": "diabetes-tiny",
    "title": "Diabetes, a tiny grid",
    "dataset": "diabetes",
    "config": {"steps": 6, "eval_every": 3, "batch_size": 8, "unlabeled_batch_size": 8, "plots": False,
               "model": {"name": "mlp", "hidden": [8, 8], "dropout": 0.1}},
    "seeds": [0, 1],
    "metrics": ["mae", "r2"],
    "columns": [{"name": "p20", "label": "20%", "labeled": "20%"},
                {"name": "p40", "label": "40%", "labeled": "40%"}],
    "rows": [
        {"method": "supervised", "label": "Regression",
         "published": {"mae": ["50.1±2.0", 48.0], "r2": [{"missing": "not reported"}, "40%±2"]}},
        {"method": "clss", "label": "CLSS", "published": {"missing": "no published number"}},
        {"method": "gclss", "label": "GCLSS", "params": {"pseudo_weight": 0.5},
         "published": {"missing": "no published number"}},
    ],
    "source": {"paper": "a test", "selection": "best validation MAE"},
    "quick": {"settings": ["p20"], "config": {"steps": 3}, "note": "20% only, 3 steps"},
    "cost": {"step_seconds": {"supervised": 0.01, "clss": 0.02}, "overhead_seconds": 1},
}


def write_table(folder: Path, values: dict | None = None, name: str = "tiny.yaml") -> Path:
    """``values`` (default: the tiny table) as a YAML file in ``folder``."""
    path = folder / name
    path.write_text(yaml.safe_dump(TINY if values is None else values, sort_keys=False, allow_unicode=True),
                    encoding="utf-8")
    return path
