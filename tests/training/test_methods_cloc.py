"""CLOC: classes from targets, the loss against its terms, phase 2 keeps the margins bit for bit, ordinal
metrics against scikit-learn, the margins written and plotted, resume, predictor and bad input."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from sklearn.metrics import cohen_kappa_score

from clss.config import resolve_config
from clss.data import RegressionData
from clss.engine import train
from clss.engine.predict import predict_array
from clss.methods import Batch, TrainingContext, build_method
from clss.methods.cloc import ordered_classes
from clss.metrics import ordinal_classification_metrics
from clss.models import MLPRegressor
from clss_cli.main import main


def batch(rows, seed, d=6, classes=5):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, d, generator=g, dtype=torch.float64)
    c = torch.clamp(((x[:, 0] + 2.5) * classes / 5).floor(), 0, classes - 1)
    return Batch({"weak": x}, torch.arange(rows), c)


def cloc(total=10, **params):
    torch.manual_seed(0)
    method = build_method("cloc", lambda: MLPRegressor(6, (16, 16), dropout=0.0).double(), params=params)
    labeled_y = torch.arange(5, dtype=torch.float64).repeat(4)
    method.setup(TrainingContext(total_steps=total, train_size=40, labeled_y=labeled_y,
                                 unlabeled_index=torch.arange(0)))
    return method


def test_classes_are_the_distinct_values_or_equal_width_bins():
    values, edges = ordered_classes(torch.tensor([3.0, 1.0, 2.0, 1.0]), None)
    assert values.tolist() == [1.0, 2.0, 3.0] and edges is None
    values, edges = ordered_classes(torch.tensor([0.0, 10.0, 4.0]), 5)
    np.testing.assert_allclose(values.numpy(), [1, 3, 5, 7, 9])
    np.testing.assert_allclose(edges.numpy(), [2, 4, 6, 8])
    with pytest.raises(ValueError, match=r"set method_params\.bins=K"):
        ordered_classes(torch.linspace(0, 1, 500), None)
    method = cloc(bins=None)
    assert method.classes_of(torch.tensor([-3.0, 0.4, 0.6, 2.0, 9.0])).tolist() == [0, 0, 1, 2, 4]


def test_step_loss_is_cross_entropy_plus_the_margin_loss_on_the_feature():
    method, ref = cloc(mmnp_weight=0.5), cloc(mmnp_weight=0.5)
    lab = batch(20, 1)
    logs = method.training_step(lab, None, 0)
    feat = ref.model(lab.view("weak"))["feat"]
    c = lab.y.long()
    ce = torch.nn.functional.cross_entropy(ref.classifier(feat), c)
    assert logs["ce"] == pytest.approx(float(ce.detach()), rel=1e-10)
    assert logs["mmnp"] == pytest.approx(0.5 * float(ref.mmnp(feat, c).detach()), rel=1e-10)
    assert logs["phase"] == 1.0


def test_phase_two_keeps_the_margins_bit_for_bit():
    method = cloc(total=8, phase1_steps=4)
    start = method.mmnp.raw_margins.detach().clone()
    for step in range(4):
        method.training_step(batch(20, step), None, step)
    learned = method.mmnp.raw_margins.detach().clone()
    assert not torch.equal(learned, start)  # phase 1 learns them
    weights = method.classifier[0].weight.detach().clone()
    for step in range(4, 8):
        logs = method.training_step(batch(20, step), None, step)
        assert logs["phase"] == 2.0
    assert torch.equal(method.mmnp.raw_margins.detach(), learned)
    assert not torch.equal(method.classifier[0].weight.detach(), weights)  # the rest still trains


@pytest.mark.parametrize("seed", range(4))
def test_ordinal_metrics_against_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 6, 200)
    p = np.clip(t + rng.integers(-2, 3, 200), 0, 5)
    got = ordinal_classification_metrics(t, p, 6)
    assert got["accuracy"] == pytest.approx(np.mean(t == p))
    assert got["mae_classes"] == pytest.approx(np.mean(np.abs(t - p)))
    assert got["qwk"] == pytest.approx(cohen_kappa_score(t, p, weights="quadratic"), rel=1e-12)
    assert ordinal_classification_metrics(t, t, 6)["qwk"] == pytest.approx(1.0)


def class_data(n=120, seed=0, classes=5):
    """Ordered class indices 0..4 as the target of four features (the first one carries the order)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    y = np.clip(np.floor((x[:, 0] + 2.5) * classes / 5), 0, classes - 1)
    return RegressionData(name="classes", x_train=x[0::3], y_train=y[0::3], x_val=x[1::3], y_val=y[1::3],
                          x_test=x[2::3], y_test=y[2::3], feature_names=[f"x{i}" for i in range(4)],
                          target_name="class")


def tiny(**overrides):
    values = {"dataset": "diabetes", "method": "cloc", "steps": 12, "eval_every": 4, "progress": False,
              "threads": 1, "batch_size": 16, **overrides}
    return resolve_config({}, values)


def test_engine_run_reports_ordinal_metrics_writes_and_plots_the_margins(tmp_path):
    result = train(tiny(labeled="100%", standardize="none"), tmp_path / "run", data=class_data())
    run, summary = result.run_dir, result.summary
    assert {"accuracy", "mae_classes", "qwk"} <= summary["test"].keys()
    preds = [r.split(",") for r in (run / "predictions.csv").read_text().splitlines()[1:]]
    assert {float(r[4]) for r in preds} <= {0.0, 1.0, 2.0, 3.0, 4.0}  # a class value, never in between
    art = json.loads((run / "method.json").read_text())
    assert len(art["margins"]) == 4 and all(m > 0 for m in art["margins"])
    assert art["positions"] == pytest.approx(np.concatenate([[0], np.cumsum(art["margins"])]))
    assert (run / "plots" / "margins.png").is_file()
    log = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert "val_qwk" in log[3] and [r["phase"] for r in log] == [1.0] * 6 + [2.0] * 6


def test_resume_and_predictor(tmp_path):
    cfg = tiny(labeled="100%", standardize="none", steps=10)
    full = train(cfg, tmp_path / "full", data=class_data()).summary

    def interrupt(step, logs):
        if step == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut", callback=interrupt, data=class_data())
    resumed = train({}, tmp_path / "cut", resume=True, data=class_data()).summary
    assert resumed["test"]["qwk"] == pytest.approx(full["test"]["qwk"], abs=1e-12)
    assert resumed["test"]["mae"] == pytest.approx(full["test"]["mae"], rel=1e-9)
    x = np.random.default_rng(3).normal(size=(7, 4))
    assert set(predict_array(tmp_path / "full", x).tolist()) <= {0.0, 1.0, 2.0, 3.0, 4.0}


def test_a_continuous_target_needs_bins(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 3))  # 300 labelled rows, 300 distinct target values
    table = tmp_path / "continuous.csv"
    table.write_text("a,b,c,y\n" + "".join(f"{r[0]},{r[1]},{r[2]},{r[0] + 0.1 * r[1]}\n" for r in x))
    args = ["train", "--dataset", f"csv:{table}", "--target", "y", "--method", "cloc", "--labeled", "50%"]
    out = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "r")])
    assert out.exit_code != 0 and "set method_params.bins=K" in out.output
    assert "Traceback" not in out.output and not (tmp_path / "r").exists()
    ok = CliRunner().invoke(main, [*args, "--steps", "6", "--set", "method_params.bins=8", "--set",
                                   "threads=1", "--out", str(tmp_path / "b"), "--no-progress"])
    assert ok.exit_code == 0, ok.output
    assert json.loads((tmp_path / "b" / "summary.json").read_text())["test"]["qwk"] <= 1


@pytest.mark.parametrize("pseudo", ["anchored", "ranks"])
def test_semi_supervised_form_adds_a_margin_term_on_pseudo_classes(pseudo):
    method = cloc(unlabeled_weight=0.5, pseudo_targets=pseudo, diagnostics_every=1)
    ulb = batch(12, 9)
    logs = method.training_step(batch(20, 1), ulb, 0)
    assert np.isfinite(logs["unlabeled_mmnp"]) and 0 <= logs["pseudo_target_tau"] <= 1
    assert logs["loss"] == pytest.approx(logs["ce"] + logs["mmnp"] + logs["unlabeled_mmnp"], rel=1e-9)
    plain = cloc()
    seen = []
    plain.model.register_forward_hook(lambda m, i, o: seen.append(o["feat"].shape[0]))
    plain.training_step(batch(20, 1), ulb, 0)
    assert seen == [20]  # at weight 0 the unlabelled rows are not forwarded
