"""The report of a grid (table.md, table.csv, runs.csv, figure) from real finished runs, the paired statistics
against scipy's t interval, and the states of run directories."""

import csv
import json
import math

import numpy as np
import pytest
from _reproduce_helpers import write_table
from scipy import stats

from clss.reproduce import load_table, paired_difference, plan_table, run_cell, run_state, write_report
from clss.reproduce.grid import check_existing


def test_paired_difference_is_the_student_t_interval_of_the_per_seed_differences():
    rng = np.random.default_rng(0)
    base = {s: float(v) for s, v in enumerate(rng.normal(1.0, 0.1, 5))}
    ours = {s: base[s] + float(rng.normal(-0.05, 0.02)) for s in base}
    ours[9] = 0.0  # a seed the baseline lacks is not paired
    p = paired_difference(ours, base, lower_is_better=True)
    d = np.array([ours[s] - base[s] for s in range(5)])
    low, high = stats.t.interval(0.95, df=4, loc=d.mean(), scale=stats.sem(d))
    assert p.n == 5 and p.mean == pytest.approx(d.mean(), rel=1e-12)
    assert (p.low, p.high) == (pytest.approx(low, rel=1e-10), pytest.approx(high, rel=1e-10))
    assert (p.wins, p.losses, p.ties) == (int((d < 0).sum()), int((d > 0).sum()), 0)
    # higher-is-better metrics count the other way; 90 % intervals are narrower
    q = paired_difference(ours, base, lower_is_better=False, confidence=0.9)
    assert (q.wins, q.losses) == (p.losses, p.wins) and q.high - q.low < p.high - p.low
    one = paired_difference({0: 1.0}, {0: 1.0})
    assert one.n == 1 and one.mean == 0 and math.isnan(one.low) and one.ties == 1
    assert paired_difference({}, {0: 1.0}).n == 0


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """A tiny diabetes grid (2 methods x 1 setting x 2 seeds) trained in this process."""
    folder = tmp_path_factory.mktemp("grid")
    table = load_table(write_table(folder))
    runs = plan_table(table, methods=["supervised", "gclss"], settings=["p20"])
    out = folder / "out"
    for run in runs:
        assert run_cell(out, run) == "new"
    return table, runs, out


def test_finished_runs_are_left_alone(grid):
    table, runs, out = grid
    summary = out / runs[0].run_dir / "summary.json"
    before = summary.stat().st_mtime_ns
    assert run_cell(out, runs[0]) == "finished" and summary.stat().st_mtime_ns == before
    assert set(check_existing(out, runs).values()) == {"finished"}
    other = plan_table(table, methods=["supervised"], settings=["p20"], steps=7)
    with pytest.raises(ValueError, match=r"another configuration: steps \(there: 6, planned: 7"):
        check_existing(out, other)


def test_the_report_puts_ours_beside_the_paper(grid):
    table, runs, out = grid
    paths = write_report(table, out, runs, note="a note")
    md = paths["md"].read_text()
    summaries = {r.name: json.loads((out / r.run_dir / "summary.json").read_text()) for r in runs}
    sup = [summaries[f"supervised/p20/seed{k}"]["test"]["mae"] for k in (0, 1)]
    assert f"{np.mean(sup):.2f} ± {np.std(sup, ddof=1):.2f} (2) \\| 50.10 ± 2.00" in md
    assert "selection: best validation mae" in md and "Profile: a note." in md
    assert "`supervised` at 20%: not reported" in md and "paired difference to `supervised`" in md
    rows = list(csv.DictReader(paths["csv"].open()))
    assert len(rows) == 2 * 2  # metrics x methods x settings
    gclss = next(r for r in rows if (r["metric"], r["method"], r["setting"]) == ("r2", "gclss", "p20"))
    ours = [summaries[f"gclss/p20/seed{k}"]["test"]["r2"] for k in (0, 1)]
    base = [summaries[f"supervised/p20/seed{k}"]["test"]["r2"] for k in (0, 1)]
    assert float(gclss["mean"]) == pytest.approx(np.mean(ours), rel=1e-12)
    expected = paired_difference(dict(enumerate(ours)), dict(enumerate(base)), lower_is_better=False)
    assert float(gclss["vs_supervised_mean_diff"]) == pytest.approx(expected.mean, rel=1e-12, abs=1e-15)
    assert int(gclss["wins"]) + int(gclss["losses"]) + int(gclss["ties"]) == 2
    assert gclss["paper_missing"] == "no published number"
    sup_row = next(r for r in rows if (r["metric"], r["method"]) == ("mae", "supervised"))
    assert float(sup_row["paper_mean"]) == pytest.approx(50.1)
    assert float(sup_row["paper_std"]) == pytest.approx(2)
    assert sup_row["vs_supervised_n"] == ""
    assert len(list(csv.DictReader(paths["runs"].open()))) == len(runs) * 2
    assert paths["figure"].stat().st_size > 10_000


def test_unfinished_runs_are_listed_not_invented(grid, tmp_path):
    table, _, out = grid
    extra = plan_table(table, seeds=[0, 1, 2], methods=["supervised"], settings=["p20"])
    paths = write_report(table, out, extra, figure=False)
    assert "- supervised/p20/seed2: new" in paths["md"].read_text()
    assert "figure" not in paths


def test_run_states(tmp_path):
    assert run_state(tmp_path / "absent") == "new"
    (tmp_path / "empty").mkdir()
    assert run_state(tmp_path / "empty") == "new"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a run directory"):
        run_state(tmp_path / "file")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="holds other files than a run directory"):
        run_state(tmp_path / "other")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("{}")
    assert run_state(tmp_path / "run") == "partial"
    (tmp_path / "run" / "summary.json").write_text('{"status": "diverged"}')
    assert run_state(tmp_path / "run") == "diverged"
