"""Table files: every shipped table loads, its published numbers are the papers', bad files give one line."""

import copy
import math
from pathlib import Path

import pytest
import yaml
from _reproduce_helpers import TINY, write_table

from clss.reproduce.tables import Cell, list_tables, load_table, parse_cell, table_path

SHIPPED = ["agedb-dir", "operator-sde", "utkface", "utkface-rankup", "rnc-agedb-dir", "supremix-agedb-dir",
           "conord-agedb-dir", "cloc-adience", "conord-adience", "conord-morph2", "conord-clap2015",
           "conord-utkface-coral", "conord-cacd"]
RECIPE_TABLES = ["rnc-agedb-dir", "supremix-agedb-dir", "conord-agedb-dir", "cloc-adience", "conord-adience",
                 "conord-morph2", "conord-clap2015", "conord-utkface-coral", "conord-cacd"]


def test_the_shipped_tables_validate():
    from clss.methods import METHODS

    assert set(SHIPPED) <= set(list_tables())
    for name in list_tables():
        table = load_table(name)
        assert table.name == name and table.path == table_path(name)
        for row in table.rows:
            assert set(row.published) == set(table.metrics)
            for cells in row.published.values():
                assert len(cells) == len(table.columns)
                assert all((c.mean is None) == (c.missing is not None) for c in cells)
        # the upper bound beside every table of semi-supervised methods (the seed papers' recipes are
        # supervised there: their tables label every row they use)
        recipe = {m for m, cls in METHODS.items() if "pseudo_targets" in cls.Params().to_dict()}
        if any(METHODS[r.method].semi_supervised and r.method not in recipe for r in table.rows):
            assert "fullysupervised" in [r.method for r in table.rows]


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tables" / "digits-rotation.yaml"


def test_every_row_method_is_registered():
    from clss.methods import METHODS

    tables = [load_table(name) for name in list_tables()] + [load_table(EXAMPLE)]
    missing = sorted({r.method for table in tables for r in table.rows} - set(METHODS))
    assert not missing, f"table rows name unregistered methods: {missing}"


def test_the_example_table_runs_every_method():
    from clss.methods import METHODS

    table = load_table(EXAMPLE)
    assert {r.method for r in table.rows} == set(METHODS)


@pytest.mark.parametrize(("table", "method", "column", "metric", "mean", "std"), [
    ("operator-sde", "gclss", "1-5", "mae", 0.024, 0.009),
    ("operator-sde", "supervised", "1-2", "r2", 0.909, 0.051),
    ("operator-sde", "ucvme", "1-2", "mae", 0.028, 0.021),
    ("utkface", "clss", "1-30", "mae", 6.19, 0.04),
    ("utkface", "gclss", "1-10", "r2", 0.583, 0.002),
    ("agedb-dir", "rankup", "1-30", "mae", 9.84, 0.10),
    ("agedb-dir", "gclss", "1-15", "mae", 8.42, 0.11),
    ("utkface-rankup", "rankup_rda", "lb250", "mae", 6.570, 0.184),
    ("utkface-rankup", "supervised", "lb50", "mae", 14.128, 0.555),
    ("utkface-rankup", "mixmatch", "lb2000", "r2", 0.824, 0.004),
    ("utkface-rankup", "fullysupervised", "lb50", "mae", 4.851, 0.006),
    ("supremix-agedb-dir", "supremix", "all", "mae", 7.12, None),
    ("supremix-agedb-dir", "supcon", "all", "gm", 5.31, None),
    ("supremix-agedb-dir", "supervised", "all", "mse", 101.60, None),
    ("rnc-agedb-dir", "rnc", "all", "mae", 6.14, None),
    ("rnc-agedb-dir", "supervised", "all", "r2", 0.828, None),
    ("rnc-agedb-dir", "supcon", "all", "mae", 8.13, None),
    ("conord-agedb-dir", "conord", "p10", "mae", 6.690, None),
    ("conord-agedb-dir", "rnc", "p100", "mae", 5.192, None),
    ("conord-agedb-dir", "supcon", "p50", "mae", 5.855, None),
    ("cloc-adience", "cloc", "all", "accuracy", 0.6302, None),
    ("cloc-adience", "cloc", "all", "mae_classes", 0.41, None),
    ("cloc-adience", "supcon", "all", "accuracy", 0.5774, None),
    ("cloc-adience", "rnc", "all", "mae_classes", 0.86, None),
    ("conord-adience", "conord", "all", "mae_classes", 0.26, None),
    ("conord-adience", "ranksim", "all", "mae_classes", 0.60, None),
    ("conord-adience", "supervised", "all", "mae_classes", 0.53, None),
    ("conord-adience", "cloc", "all", "mae_classes", 0.41, None),
    ("conord-adience", "rnc", "all", "mae_classes", 0.40, None),
    ("conord-morph2", "conord", "all", "mae", 1.96, None),
    ("conord-morph2", "ranksim", "all", "mae", 3.10, None),
    ("conord-clap2015", "conord", "all", "mae", 2.46, None),
    ("conord-clap2015", "supervised", "all", "mae", 5.66, None),
    ("conord-utkface-coral", "conord", "all", "mae", 3.92, None),
    ("conord-utkface-coral", "cloc", "all", "mae", 4.81, None),
    ("conord-cacd", "conord", "all", "mae", 4.18, None),
    ("conord-cacd", "rnc", "all", "mae", 5.14, None),
])
def test_published_cells_hold_the_papers_numbers(table, method, column, metric, mean, std):
    t = load_table(table)
    index = [c.name for c in t.columns].index(column)
    cell = next(r for r in t.rows if r.name == method).published[metric][index]
    assert cell.mean == pytest.approx(mean, rel=1e-9)
    assert cell.std is None if std is None else cell.std == pytest.approx(std, rel=1e-9)


@pytest.mark.parametrize("name", RECIPE_TABLES)
@pytest.mark.parametrize("quick", [False, True])
def test_recipe_tables_plan_runs_the_recipes_accept(tmp_path, name, quick):
    from clss.config import TrainConfig
    from clss.methods import METHODS
    from clss.methods.probe import stage_lengths
    from clss.reproduce import plan_table

    runs = plan_table(load_table(name), seeds=[0], quick=quick, data_root=tmp_path)
    assert runs and all(r.config["unlabeled"] == "rest" for r in runs)
    for run in runs:
        cfg = TrainConfig.from_dict(run.config)  # every key and method parameter checked
        params = METHODS[cfg.method].Params.from_dict(cfg.method_params, cfg.method)
        if hasattr(params, "stage1_steps"):
            first, second = stage_lengths(cfg.steps, params.stage1_steps, params.stage2_steps, cfg.method)
            assert first >= second  # the papers pretrain at least as long as they probe


def test_unavailable_cells_are_missing_with_a_reason():
    rankup = load_table("utkface-rankup")
    rda = next(r for r in rankup.rows if r.method == "rda")
    assert rda.published["mae"][2].missing and "rda_utkface_lb2000" in rda.published["mae"][2].missing
    assert rda.published["mae"][1] == Cell(mean=8.644, std=0.217)
    assert all(c.missing for c in next(r for r in rankup.rows if r.method == "gclss").published["mae"])


def test_selection_rules():
    assert "holdout" in load_table("operator-sde").selection
    assert "optimistic" in load_table("utkface-rankup").selection  # RankUp's protocol: best on test
    assert "independently" in load_table("utkface-rankup").source["selection"]


@pytest.mark.parametrize(("text", "mean", "std"), [
    ("0.098±0.095", 0.098, 0.095), ("27.1%±1.5", 0.271, 0.015), (" 6.18 ± 0.03 ", 6.18, 0.03),
    ("0.875±0.000", 0.875, 0.0), (4.851, 4.851, None), ("1e-3±2e-4", 1e-3, 2e-4), ("-0.5", -0.5, None)])
def test_parse_cell(text, mean, std):
    cell = parse_cell(text)
    assert math.isclose(cell.mean, mean, rel_tol=1e-12)
    assert (cell.std is None) if std is None else math.isclose(cell.std, std, rel_tol=1e-12, abs_tol=1e-15)


def _mutated(change):
    values = copy.deepcopy(TINY)
    change(values)
    return values


@pytest.mark.parametrize(("change", "phrase"), [
    (lambda v: v.update(colour="red"), "top level: unknown key 'colour'"),
    (lambda v: v.pop("source"), "top level: missing key 'source'"),
    (lambda v: v["rows"][0]["published"]["mae"].pop(),
     r"rows\[0\].published.mae: must list one cell per column"),
    (lambda v: v["rows"][0]["published"]["mae"].__setitem__(0, "0.1+-0.2"),
     r"rows\[0\].published.mae\[0\]: a published cell is 'MEAN±STD'"),
    (lambda v: v["rows"][0]["published"]["mae"].__setitem__(0, float("nan")), "must be finite"),
    (lambda v: v["rows"][0]["published"].pop("r2"), r"rows\[0\].published: missing key 'r2'"),
    (lambda v: v["rows"][0]["published"]["r2"].__setitem__(1, {"missing": ""}), "non-empty reason"),
    (lambda v: v["rows"][1].update(metod="clss"), r"rows\[1\]: unknown key 'metod'; did you mean 'method'"),
    (lambda v: v["columns"][0].update(name="1/5"), r"columns\[0\].name: is a folder name"),
    (lambda v: v["columns"][1].update(name="p20"), "the column name 'p20' appears twice"),
    (lambda v: v["config"].update(stepz=3), "config.stepz: unknown key 'stepz'"),
    (lambda v: v["config"].update(method="clss"), "config.method: is set by the table's rows"),
    (lambda v: v.update(metrics=["mae", "f1"]), "metrics: must be a non-empty list of mae"),
    (lambda v: v.update(seeds=[0, -1]), "seeds: must be a non-empty list of integers >= 0"),
    (lambda v: v.update(seed_keys=["run"]), "seed_keys: must be a list holding 'seed'"),
    (lambda v: v["quick"].update(settings=["p99"]), r"quick.settings: must list some of \['p20', 'p40'\]"),
    (lambda v: v["cost"].update(step_seconds={"clss": -1}), "cost.step_seconds: must map method names"),
    (lambda v: v["rows"].append(copy.deepcopy(v["rows"][1])), "the row 'clss' appears twice"),
    (lambda v: v["rows"][2].update(name="clss"), "the row 'clss' appears twice"),
    (lambda v: v["rows"][1].update(name="clss w/ oe"), r"rows\[1\].name: is a folder name"),
])
def test_a_bad_table_file_gives_one_line_naming_file_and_key(tmp_path, change, phrase):
    path = write_table(tmp_path, _mutated(change))
    with pytest.raises(ValueError, match=phrase) as info:
        load_table(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_file_that_is_not_a_table(tmp_path):
    (tmp_path / "list.yaml").write_text(yaml.safe_dump([1, 2]))
    with pytest.raises(ValueError, match="must hold a mapping"):
        load_table(tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ValueError, match="is not valid YAML"):
        load_table(tmp_path / "broken.yaml")
    with pytest.raises(FileNotFoundError, match="table file not found"):
        load_table(tmp_path / "absent.yaml")
    with pytest.raises(ValueError, match="unknown table 'operator'; shipped tables: agedb-dir, cloc-adience"):
        load_table("operator")
