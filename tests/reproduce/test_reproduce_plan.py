"""The plan of a grid: one resolved configuration per (row, column, seed), subsets, profiles, costs."""

import json
from pathlib import Path

import pytest
from _reproduce_helpers import TINY, write_table

from clss.config import TrainConfig, resolve_config
from clss.reproduce import load_table, plan_table
from clss.reproduce.plan import ASSUMED_RATIO, estimate_cost


def test_the_plan_is_rows_by_columns_by_seeds(tmp_path):
    table = load_table(write_table(tmp_path))
    runs = plan_table(table, seeds=[3, 5])
    assert [r.name for r in runs[:4]] == ["supervised/p20/seed3", "supervised/p20/seed5",
                                          "supervised/p40/seed3", "supervised/p40/seed5"]
    assert len(runs) == 3 * 2 * 2 and len({r.run_dir for r in runs}) == len(runs)
    for run in runs:
        cfg = TrainConfig.from_dict(run.config)  # a complete, valid configuration
        assert run.run_dir == f"{run.method}/{run.setting}/seed{run.seed}"
        assert (cfg.method, cfg.seed, cfg.steps, cfg.progress) == (run.method, run.seed, 6, False)
        assert cfg.labeled == {"p20": "20%", "p40": "40%"}[run.setting]
    gclss = next(r for r in runs if r.method == "gclss")
    assert gclss.config["method_params"]["pseudo_weight"] == 0.5  # the row's params
    # the run's configuration is what clss train would resolve from the same keys
    direct = resolve_config({**table.config, "dataset": "diabetes", "method": "gclss", "labeled": "20%",
                             "seed": 3, "method_params": {"pseudo_weight": 0.5}}, {"progress": False})
    assert gclss.config == json.loads(json.dumps(direct.to_dict()))


def test_two_rows_of_one_method_are_told_apart_by_name(tmp_path):
    """A row's name is its folder and --methods key; the registry method and its params go to the run."""
    import copy

    from clss.reproduce import run_cell, write_report

    values = copy.deepcopy(TINY)
    values["rows"].append({"name": "supervised-ranksim", "method": "supervised", "label": "RankSim",
                           "params": {"contrastive": "ranksim"}, "published": {"missing": "none"}})
    table = load_table(write_table(tmp_path, values))
    runs = plan_table(table, seeds=[0], settings=["p20"], methods=["supervised-ranksim", "supervised"])
    assert [r.run_dir for r in runs] == ["supervised-ranksim/p20/seed0", "supervised/p20/seed0"]
    assert [r.config["method"] for r in runs] == ["supervised", "supervised"]
    assert [r.config["method_params"].get("contrastive", "oe") for r in runs] == ["ranksim", "oe"]
    out = tmp_path / "grid"
    for run in runs:
        run_cell(out, run)
    md = write_report(table, out, runs, figure=False)["md"].read_text()
    assert "| RankSim (`supervised-ranksim`) |" in md and "| `supervised-ranksim` |" in md


def test_subsets_overrides_and_the_quick_profile(tmp_path):
    table = load_table(write_table(tmp_path))
    runs = plan_table(table, seeds=[0], methods=["gclss", "supervised"], settings=["40%"], steps=9,
                      overrides={"model": {"dropout": 0.2}, "optimizer": {"lr": 0.01}})
    assert [r.name for r in runs] == ["gclss/p40/seed0", "supervised/p40/seed0"]  # in the order asked
    assert all(r.config["steps"] == 9 and r.config["model"]["dropout"] == 0.2
               and r.config["optimizer"]["lr"] == 0.01 for r in runs)
    quick = plan_table(table, quick=True)
    assert {r.setting for r in quick} == {"p20"} and {r.config["steps"] for r in quick} == {3}
    assert len(quick) == 3 * 2  # every row, the table's two seeds
    assert {r.config["steps"] for r in plan_table(table, quick=True, steps=4)} == {4}  # --steps wins


def test_operator_sde_seeds_are_the_papers_runs():
    table = load_table("operator-sde")
    runs = plan_table(table, seeds=[0, 4], methods=["supervised", "gclss"], settings=["1-5", "1-2"])
    assert len(runs) == 8
    for run in runs:
        cfg = run.config
        assert cfg["run"] == run.seed == cfg["seed"]  # seed k is the paper's run k
        assert (cfg["unlabeled"], cfg["val_protocol"], cfg["steps"]) == ("paper", "holdout", 20000)
        assert cfg["labeled"] == {"1-5": "20%", "1-2": "50%"}[run.setting]
        assert cfg["batch_size"] is None  # the preset's full batch
    quick = plan_table(table, quick=True, methods=["supervised"])
    assert {r.setting for r in quick} == {"1-5", "1-2"} and {r.config["steps"] for r in quick} == {10000}


def test_image_tables_take_the_published_split_files_and_a_data_root(tmp_path):
    runs = plan_table(load_table("agedb-dir"), methods=["supervised", "clss"], seeds=[0], data_root=tmp_path)
    assert [r.config["labeled"] for r in runs[:4]] == ["407", "488", "610", "814"]
    assert all(r.config["unlabeled"] == "paper" and r.config["data_root"] == str(tmp_path.resolve())
               and r.config["model"]["name"] == "resnet50" for r in runs)
    rankup = plan_table(load_table("utkface-rankup"), methods=["supervised"], seeds=[1], data_root=tmp_path)
    assert [r.config["labeled"] for r in rankup] == ["50", "250", "2000"]
    assert all(r.config["val_protocol"] == "test" and r.config["model"]["name"] == "wrn28_2" for r in rankup)
    with pytest.raises(ValueError, match=r"trains on the utkface image files: .* \(--data-root DIR\)"):
        plan_table(load_table("utkface"), methods=["supervised"])
    assert len(plan_table(load_table("utkface"), methods=["supervised"], check_data=False)) == 9


@pytest.mark.parametrize(("kwargs", "phrase"), [
    ({"methods": ["supervised", "ridge"]}, "methods: 'ridge' is not in this table; choose from supervised"),
    ({"settings": ["p99"]}, "has no setting 'p99'; settings: p20, p40"),
    ({"seeds": []}, "seeds must be a non-empty list"),
    ({"seeds": [0, 0]}, "seeds lists a seed twice"),
    ({"seeds": [-1]}, "seeds must be a non-empty list of integers >= 0"),
    ({"steps": 0}, "steps must be an integer >= 1"),
    ({"overrides": {"stepz": 3}}, "supervised at p20: unknown key 'stepz'"),
    ({"overrides": {"model": {"dropout": 2}}}, "model.dropout"),
])
def test_bad_plans_are_refused_by_name(tmp_path, kwargs, phrase):
    with pytest.raises(ValueError, match=phrase):
        plan_table(load_table(write_table(tmp_path)), **kwargs)


def test_unregistered_methods_are_refused_before_anything_runs(tmp_path):
    bad = {**TINY, "rows": [*TINY["rows"], {"method": "nosuchmethod", "label": "X",
                                            "published": {"missing": "none"}}]}
    table = load_table(write_table(tmp_path, bad))  # a table loads whatever is registered
    with pytest.raises(ValueError, match=r"method 'nosuchmethod' is not registered .* \(--methods\)"):
        plan_table(table)
    assert len(plan_table(table, methods=["supervised"])) == 4


def test_cost_is_documented_measured_or_assumed(tmp_path):
    table = load_table(write_table(tmp_path))
    runs = plan_table(table, seeds=[0])
    costs = estimate_cost(table, runs, None)
    assert costs["supervised/p20/seed0"].seconds == pytest.approx(0.01 * 6 + 1)
    assert costs["supervised/p20/seed0"].basis == "documented"
    assert costs["gclss/p20/seed0"].seconds == pytest.approx(ASSUMED_RATIO * 0.01 * 6 + 1)
    assert costs["gclss/p20/seed0"].basis == "assumed"
    # a finished run of the grid: its measured step time replaces the documented one for its cell
    out = tmp_path / "grid"
    run = out / "clss/p20/seed0"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("{}")
    (run / "summary.json").write_text(json.dumps({"status": "finished", "seconds": 3.0, "steps": 6}))
    runs2 = plan_table(table, seeds=[0, 1], methods=["clss"])
    costs = estimate_cost(table, runs2, out)
    assert costs["clss/p20/seed0"].seconds == 0 and costs["clss/p20/seed1"].basis == "measured"
    assert costs["clss/p20/seed1"].seconds == pytest.approx(0.5 * 6 + 1)
    assert costs["clss/p40/seed1"].basis == "documented"
    assert Path(out).exists()
