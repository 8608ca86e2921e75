"""``clss compare``: the grid it plans, the verdict, the classical references on the runs' own labelled rows,
and the command end to end on a real (tiny) grid: report files, strict JSON, resume, one-line errors."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import RidgeCV
from sklearn.metrics import mean_absolute_error
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from _images_tree import image_csv

from clss.config import TrainConfig
from clss.data import load_dataset
from clss.reproduce import plan_table
from clss.reproduce.compare import compare_table, reference_scores, verdict
from clss_cli.main import main

FAST = ["--steps", "4", "--set", "eval_every=2", "--set", "batch_size=8", "--set", "unlabeled_batch_size=8",
        "--set", "plots=false", "--set", "model.hidden=[8, 8]", "--no-progress"]


def test_the_grid_adds_the_baseline_and_pairs_the_seeds():
    table = compare_table("csv:/data/my file.csv", ["gclss", "clss"], ["10%", "250"], seeds=[0, 1, 2],
                          config={"target": "y"})
    assert [r.method for r in table.rows] == ["supervised", "gclss", "clss"]
    assert [c.name for c in table.columns] == ["10pct", "250"] and table.name == "compare-my-file"
    runs = plan_table(table, check_data=False)
    assert len(runs) == 3 * 2 * 3
    for run in runs:  # one seed = one split and one initialisation for every method
        assert run.config["seed"] == run.config["split_seed"] == run.seed
        assert run.config["target"] == "y"
    assert all(run.config["run"] == 0 for run in runs)  # a table's rows are one data set
    for dataset in ("operator-sde", "adience", "morph2"):  # protocols with runs or folds: seed k is run k
        runs = plan_table(compare_table(dataset, ["gclss"], ["20%"], seeds=[0, 3]), check_data=False)
        assert [r.config["run"] for r in runs] == [0, 3, 0, 3]
    with pytest.raises(ValueError, match="given twice"):
        compare_table("diabetes", ["gclss"], ["10%", "10%"], seeds=[0])
    with pytest.raises(ValueError, match="at least one label setting"):
        compare_table("diabetes", ["gclss"], [], seeds=[0])


def _values(base, **methods):
    out = {("supervised", "s", "mae"): dict(enumerate(base))}
    out.update({(m, "s", "mae"): dict(enumerate(v)) for m, v in methods.items()})
    return out


def test_verdict_names_a_clear_improvement_with_its_relative_interval():
    base = [10.0, 12.0, 11.0, 9.0, 10.0]
    better = [b * (1 - r) for b, r in zip(base, [0.04, 0.05, 0.03, 0.045, 0.035], strict=True)]
    v = verdict(_values(base, gclss=better, clss=[b * 1.01 for b in base]), ["supervised", "gclss", "clss"],
                "s", "10%", "mae", "val")
    assert v.best == "gclss"
    rel = np.array([0.04, 0.05, 0.03, 0.045, 0.035]) * 100
    from scipy import stats

    half = stats.t.ppf(0.975, 4) * rel.std(ddof=1) / math.sqrt(5)
    assert f"gclss improves MAE by {rel.mean():.1f} % ± {half:.1f} % over supervised on validation" in v.text
    assert "5/5 seeds" in v.text


def test_verdict_leaves_the_fully_supervised_upper_bound_out():
    base = [10.0, 12.0, 11.0]
    v = verdict(_values(base, fullysupervised=[5.0, 6.0, 5.5], gclss=[9.0, 11.0, 10.0]),
                ["supervised", "fullysupervised", "gclss"], "s", "10%", "mae", "val")
    assert v.best == "gclss" and "fullysupervised" not in v.text
    refs = {("ridge", "s", "val", "mae"): {0: 7.0, 1: 7.0, 2: 7.0}}  # beats the trained ones, not the bound
    alone = verdict(_values(base, fullysupervised=[5.0, 6.0, 5.5]), ["supervised", "fullysupervised"], "s",
                    "10%", "mae", "val", refs)
    assert alone.best is None
    assert "ridge on the labelled rows alone (7.000) beats every trained method" in alone.text


def test_verdict_without_a_clear_winner_says_so():
    base = [10.0, 12.0, 11.0]
    mixed = [9.0, 12.5, 10.8]  # better on average, not on every seed
    v = verdict(_values(base, gclss=mixed), ["supervised", "gclss"], "s", "10%", "mae", "val")
    assert v.best is None and v.text.startswith("no method beats supervised clearly") and "gclss" in v.text
    mean = (100 * 1 / 10 - 100 * 0.5 / 12 + 100 * 0.2 / 11) / 3  # per-seed improvement in % of supervised
    assert f"the best, gclss, improves MAE by {mean:.1f} % on average, but its 95 % t-interval [" in v.text
    assert "includes no change (2/3 seeds better)" in v.text
    worse = verdict(_values(base, gclss=[b + 1 for b in base]), ["supervised", "gclss"], "s", "10%", "mae",
                    "test")
    assert worse.best is None
    assert worse.text == "no method beats supervised on test at 10% labels (MAE, mean over seeds)"
    refs = {("ridge", "s", "val", "mae"): {0: 5.0, 1: 5.0, 2: 5.0}}
    with_ref = verdict(_values(base, gclss=mixed), ["supervised", "gclss"], "s", "10%", "mae", "val", refs)
    assert "ridge on the labelled rows alone (5.000) beats every trained method" in with_ref.text


def test_compare_end_to_end_with_references_on_the_runs_rows(tmp_path):
    out = tmp_path / "cmp"
    args = ["compare", "--dataset", "diabetes", "--methods", "gclss", "--labeled", "20%", "--seeds", "2",
            "--out", str(out), "--test", *FAST]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "supervised" in result.output and "compare.md" in result.output
    for name in ("compare.md", "compare.csv", "compare.json", "compare.png"):
        assert (out / name).is_file()
    report = json.loads((out / "compare.json").read_text())  # strict JSON: NaN would not parse here
    assert report["methods"] == ["supervised", "gclss"] and report["seeds"] == [0, 1]
    assert len(report["verdicts"]) == 1 and report["verdicts"][0]["labeled"] == "20%"
    names = {(r["name"], r["split"]) for r in report["records"]}
    assert {("ridge", "val"), ("gbr", "test"), ("gclss", "val"), ("supervised", "test")} <= names
    # the references: fitted on exactly the labelled rows of each seed's supervised run
    for seed in (0, 1):
        run = out / "supervised" / "20pct" / f"seed{seed}"
        labeled = json.loads((run / "splits.json").read_text())["labeled"]
        data = load_dataset("diabetes", seed=seed)
        x, y = data.x_train[labeled].astype(np.float64), data.y_train[labeled].astype(np.float64)
        scaler = StandardScaler().fit(x)
        ridge = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(scaler.transform(x), y)
        want = mean_absolute_error(data.y_val, ridge.predict(scaler.transform(data.x_val)))
        got = next(r["values"][str(seed)] for r in report["records"]
                   if (r["name"], r["split"], r["metric"]) == ("ridge", "val", "mae"))
        assert got == pytest.approx(want, rel=1e-6)  # the run stores float32 inputs
        gbr = HistGradientBoostingRegressor(random_state=seed).fit(x, y)
        want = mean_absolute_error(data.y_test, gbr.predict(data.x_test.astype(np.float64)))
        got = next(r["values"][str(seed)] for r in report["records"]
                   if (r["name"], r["split"], r["metric"]) == ("gbr", "test", "mae"))
        assert got == pytest.approx(want, rel=1e-6)  # the run stores float32 inputs
    # the runs' own validation numbers, paired per seed
    rows = (out / "compare.csv").read_text().splitlines()
    assert rows[0].startswith("split,metric,labeled,name,kind,n_seeds,mean,std,vs_supervised_mean")
    summary = {s: json.loads((out / "gclss" / "20pct" / f"seed{s}" / "summary.json").read_text())["val"]
               ["mae"] for s in (0, 1)}
    gclss = next(r for r in report["records"]
                 if (r["name"], r["split"], r["metric"]) == ("gclss", "val", "mae"))
    assert gclss["mean"] == pytest.approx(np.mean(list(summary.values())), rel=1e-12)
    # a rerun trains nothing and rebuilds the same report; --report-only as well
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "0 runs trained" not in again.output  # progress lines are off
    assert json.loads((out / "compare.json").read_text())["records"] == report["records"]
    only = CliRunner().invoke(main, [*args, "--report-only"])
    assert only.exit_code == 0, only.output


def test_small_in_memory_images_get_references_on_their_pixels_and_image_files_none(tmp_path):
    from clss.engine.trainer import load_data
    from clss.reproduce import run_grid

    runs = plan_table(compare_table("digits-rotation", ["supervised"], ["10%"], seeds=[0]),
                      overrides={"steps": 1})
    scores, note = reference_scores(tmp_path / "digits", runs, ["mae"])
    assert scores == {} and note == ""  # nothing finished yet: nothing to fit
    run_grid(tmp_path / "digits", runs, progress=False)
    scores, note = reference_scores(tmp_path / "digits", runs, ["mae"])
    assert note == ""
    assert set(scores) == {(m, "10pct", s, "mae") for m in ("ridge", "gbr") for s in ("val", "test")}
    # independent: scikit-learn on the raw 8x8 pixels of the run's own labelled rows
    data = load_data(TrainConfig.from_dict(runs[0].config))
    labeled = json.loads((tmp_path / "digits" / runs[0].run_dir / "splits.json").read_text())["labeled"]
    pixels = data.train.images.reshape(len(data.train.images), -1).numpy().astype(np.float64)
    gbr = HistGradientBoostingRegressor(random_state=0).fit(pixels[labeled], data.train.targets[labeled])
    test = data.test.images.reshape(len(data.test.images), -1).numpy().astype(np.float64)
    want = mean_absolute_error(data.test.targets, gbr.predict(test))
    assert scores[("gbr", "10pct", "test", "mae")][0] == pytest.approx(want, rel=1e-9)
    # image files: no references, and the note says why
    csv_file = image_csv(tmp_path / "folder", 24, (8, 8), lambda i: i % 7)
    runs = plan_table(compare_table(f"image-csv:{csv_file}", ["supervised"], ["50%"], seeds=[0]),
                      overrides={"steps": 1, "model": {"name": "cnn", "channels": 4, "blocks": 1},
                                 "batch_size": 4, "unlabeled_batch_size": 4, "workers": 0, "plots": False})
    run_grid(tmp_path / "files", runs, progress=False)
    scores, note = reference_scores(tmp_path / "files", runs, ["mae"])
    assert scores == {} and "images are files" in note


@pytest.mark.parametrize(("args", "phrase"), [
    (["--methods", "gclsss"], "gclsss"),
    (["--labeled", "ten"], "labeled"),
    (["--set", "steps"], "KEY=VALUE"),
    (["--seeds", "0"], "--seeds"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, args, phrase):
    out = tmp_path / "cmp"
    result = CliRunner().invoke(main, ["compare", "--dataset", "diabetes", "--out", str(out), *args])
    assert result.exit_code != 0 and phrase in result.output, result.output
    assert "Traceback" not in result.output and not out.exists()


def test_labelled_loss_note_names_the_methods_with_another_labelled_loss():
    from clss.reproduce.compare import labelled_loss_note
    from clss.reproduce.grid import GridRun

    def run(method, **params):
        return GridRun(method=method, setting="s", seed=0, run_dir=f"{method}/s/seed0",
                       config={"method": method, "method_params": params})

    note = labelled_loss_note([run("supervised"), run("gclss"), run("pimodel"), run("cps"),
                               run("meanteacher", contrastive="rnc", contrastive_weight=0.5)])
    assert note.startswith("the labelled loss differs from supervised's (mse + oe x 1): cps, pimodel: mse "
                           "alone; meanteacher: mse + rnc x 0.5. Part of a difference")
    assert "gclss" not in note  # GCLSS keeps supervised's labelled terms
    same = [run(m, contrastive="none") for m in ("supervised", "gclss", "pimodel")]
    assert labelled_loss_note(same) == ""
