"""Fault suite of ``clss reproduce`` and :mod:`clss.reproduce`: bad tables, seeds, jobs, methods, settings and
output folders end in one clear line (exit code 2 on the command line, ValueError/FileNotFoundError in the
library), raised before anything is trained or written."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from clss.reproduce import load_table, paired_difference, plan_table, run_grid
from clss.reproduce.grid import GridRun, emit_slurm, load_plan
from clss.reproduce.tables import parse_cell
from clss_cli.main import main

TABLE = {
    "name": "faults", "title": "Fault table", "dataset": "diabetes",
    "config": {"steps": 2, "eval_every": 1, "plots": False},
    "metrics": ["mae"], "columns": [{"name": "p20", "label": "20%", "labeled": "20%"}],
    "rows": [{"method": "supervised", "label": "Regression", "published": {"mae": ["1.0±0.1"]}}],
    "source": {"paper": "none", "selection": "validation"}}


@pytest.fixture
def places(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "table.yaml").write_text(yaml.safe_dump(TABLE))
    bad = copy.deepcopy(TABLE)
    bad["rows"][0]["published"]["mae"] = ["1.0 +- 0.1"]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    (tmp_path / "a_file").write_text("not a folder\n")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "supervised" / "p20" / "seed0").mkdir(parents=True)
    (tmp_path / "other" / "supervised" / "p20" / "seed0" / "notes.txt").write_text("x")
    return {"root": tmp_path}


CLI_CASES = [
    pytest.param(["nosuchtable", "--out", "{root}/o"], "unknown table 'nosuchtable'; shipped tables:",
                 id="unknown-table"),
    pytest.param(["{root}/absent.yaml", "--out", "{root}/o"], "table file not found", id="missing-file"),
    pytest.param(["{root}/bad.yaml", "--out", "{root}/o"], "rows[0].published.mae[0]: a published cell is",
                 id="bad-table-cell"),
    pytest.param(["{root}/table.yaml", "--seeds", "a", "--out", "{root}/o"], "'a' is not an integer >= 0",
                 id="bad-seeds"),
    pytest.param(["{root}/table.yaml", "--seeds", "0", "x", "--out", "{root}/o"],
                 "'x' is not an integer >= 0", id="bad-second-seed"),
    pytest.param(["{root}/table.yaml", "--seeds", "1,1", "--out", "{root}/o"], "seeds lists a seed twice",
                 id="repeated-seed"),
    pytest.param(["{root}/table.yaml", "7", "--out", "{root}/o"], "unexpected argument '7'", id="stray-arg"),
    pytest.param(["{root}/table.yaml", "--jobs", "0", "--out", "{root}/o"], "0 is not in the range x>=1",
                 id="jobs-below-1"),
    pytest.param(["{root}/table.yaml", "--steps", "0", "--out", "{root}/o"], "0 is not in the range x>=1",
                 id="steps-below-1"),
    pytest.param(["{root}/table.yaml", "--methods", "supervised,ridge", "--out", "{root}/o"],
                 "methods: 'ridge' is not in this table; choose from supervised", id="unknown-method"),
    pytest.param(["operator-sde", "--methods", "meanteacherr", "--out", "{root}/o"],
                 "methods: 'meanteacherr' is not in this table", id="misspelt-method"),
    pytest.param(["{root}/table.yaml", "--settings", "1/5", "--out", "{root}/o"],
                 "has no setting '1/5'; settings: p20", id="unknown-setting"),
    pytest.param(["{root}/table.yaml", "--out", "{root}/a_file"], "is a file; pass a folder",
                 id="out-is-file"),
    pytest.param(["{root}/table.yaml", "--out", "{root}/other"], "holds other files than a run directory",
                 id="out-holds-other-files"),
    pytest.param(["{root}/table.yaml"], "--out DIR is required", id="no-out"),
    pytest.param(["{root}/table.yaml", "--out", "{root}/o", "--dry-run", "--emit", "slurm"],
                 "--dry-run, --emit and --report-only exclude each other", id="dry-run-and-emit"),
    pytest.param(["{root}/table.yaml", "--out", "{root}/o", "--emit", "pbs"], "'pbs' is not 'slurm'",
                 id="unknown-emitter"),
    pytest.param(["{root}/table.yaml", "--out", "{root}/o", "--set", "stepz=3"], "unknown key 'stepz'",
                 id="bad-set-key"),
    pytest.param(["{root}/table.yaml", "--out", "{root}/o", "--set", "steps"], "--set expects KEY=VALUE",
                 id="bad-set-syntax"),
    pytest.param(["agedb-dir", "--methods", "supervised", "--out", "{root}/o"],
                 "give the folder that holds them as data_root (--data-root DIR)", id="image-table-no-root"),
]


@pytest.mark.parametrize(("args", "phrase"), CLI_CASES)
def test_cli_faults_end_in_one_line_and_exit_code_2(places, args, phrase):
    root = places["root"]
    result = CliRunner().invoke(main, ["reproduce", *[a.replace("{root}", str(root)) for a in args]])
    assert result.exit_code == 2, result.output
    assert phrase in " ".join(result.output.split()), result.output
    assert "Traceback" not in result.output
    assert not (root / "o").exists()  # nothing written


def test_out_holding_a_run_of_another_configuration_is_refused(places):
    root = places["root"]
    (root / "g" / "supervised" / "p20" / "seed0").mkdir(parents=True)
    (root / "g" / "supervised" / "p20" / "seed0" / "config.yaml").write_text(
        "dataset: diabetes\nmethod: supervised\nsteps: 5\n")
    result = CliRunner().invoke(main, ["reproduce", str(root / "table.yaml"), "--seeds", "0", "--out",
                                       str(root / "g")])
    assert result.exit_code == 2 and "holds a run with another configuration: " in result.output
    assert "use another --out" in result.output


def _run() -> GridRun:
    return GridRun(method="supervised", setting="p20", seed=0, run_dir="supervised/p20/seed0", config={})


LIBRARY_CASES = [
    pytest.param(lambda root: run_grid(root / "o", [_run()], jobs=0), ValueError,
                 "jobs must be an integer >= 1, got 0", id="run_grid-jobs-0"),
    pytest.param(lambda root: run_grid(root / "o", [_run()], jobs=1.5), ValueError,
                 "jobs must be an integer >= 1", id="run_grid-jobs-float"),
    pytest.param(lambda root: run_grid(root / "a_file", [_run()]), ValueError, "is a file",
                 id="run_grid-out-file"),
    pytest.param(lambda root: emit_slurm(root / "o", [], report_command="x", job_name="j"), ValueError,
                 "the grid is empty", id="emit_slurm-empty"),
    pytest.param(lambda root: load_plan(root / "nowhere"), FileNotFoundError, "no grid plan at",
                 id="load_plan-missing"),
    pytest.param(lambda root: plan_table(load_table(root / "table.yaml"), seeds=[0, "1"]), ValueError,
                 "seeds must be a non-empty list of integers >= 0", id="plan_table-seed-text"),
    pytest.param(lambda root: plan_table(load_table(root / "table.yaml"), steps=-3), ValueError,
                 "steps must be an integer >= 1", id="plan_table-steps"),
    pytest.param(lambda root: paired_difference({0: 1.0}, {0: 2.0}, confidence=1.0), ValueError,
                 "confidence must be in (0, 1)", id="paired-confidence"),
    pytest.param(lambda root: parse_cell("about 3"), ValueError, "a published cell is 'MEAN±STD'",
                 id="parse_cell-text"),
    pytest.param(lambda root: parse_cell(True), ValueError, "a published cell is", id="parse_cell-bool"),
    pytest.param(lambda root: parse_cell({"missing": "x", "mean": 1}), ValueError,
                 "a missing cell is {missing: REASON}", id="parse_cell-missing-extra"),
]


@pytest.mark.parametrize(("call", "error", "phrase"), LIBRARY_CASES)
def test_library_faults_raise_one_clear_line(places, call, error, phrase):
    with pytest.raises(error) as info:
        call(places["root"])
    assert phrase in str(info.value) and "\n" not in str(info.value)
    assert not (places["root"] / "o").exists()
