"""The ConOrd recipe: its loss against the paper's terms, k-NN inference against brute force, the index in
the checkpoint, engine runs, resume, pseudo-targets and bad input."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from clss import losses
from clss.config import resolve_config
from clss.engine import evaluate_run, train
from clss.engine.predict import predict_array
from clss.methods import Batch, TrainingContext, build_method
from clss.methods.parts.recipes import bin_index, equal_width_edges
from clss.models import MLPRegressor
from clss_cli.main import main


def batch(rows, seed, d=6):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, d, generator=g, dtype=torch.float64)
    return Batch({"weak": x}, torch.arange(rows), x[:, 0] + 0.5 * x[:, 1])


def conord(**params):
    torch.manual_seed(0)
    method = build_method("conord", lambda: MLPRegressor(6, (16, 16), dropout=0.0).double(), params=params)
    method.setup(TrainingContext(total_steps=10, train_size=60, labeled_y=batch(40, 99).y,
                                 unlabeled_index=torch.arange(40, 60)))
    return method


def test_knn_inference_equals_brute_force():
    method = conord(k=3)
    train_rows, query = batch(25, 1), batch(7, 2)
    method.index_rows(method.embed(train_rows.view("weak")), train_rows.y)
    got = method.predict(query.view("weak")).numpy()
    e = method.embed(train_rows.view("weak")).numpy()
    q = method.embed(query.view("weak")).numpy()
    y = train_rows.y.numpy()
    want = []
    for row in q:  # plain loop: distances to every training row, mean target of the 3 nearest
        dist = [float(np.sum((row - other) ** 2)) for other in e]
        want.append(float(np.mean(y[np.argsort(dist, kind="stable")[:3]])))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_step_loss_is_conord_plus_centre_on_unit_features_and_trains_the_reference_points():
    method = conord(bins=4, center_weight=0.5)
    lab = batch(16, 3)
    ref = conord(bins=4, center_weight=0.5)
    mu0 = ref.center.centers.detach().clone()
    logs = method.training_step(lab, None, 0)
    z = torch.nn.functional.normalize(ref.model(lab.view("weak"))["feat"], dim=-1)
    y = lab.y.numpy()
    lo, hi = batch(40, 99).y.min().item(), batch(40, 99).y.max().item()
    classes = torch.as_tensor([min(max(int(np.ceil((v - lo) / ((hi - lo) / 4))) - 1, 0), 3) for v in y])
    want_center = sum(float(torch.linalg.norm(z[i] - mu0[classes[i]]).detach()) for i in range(16))
    assert logs["center"] == pytest.approx(0.5 * want_center, rel=1e-10)
    assert logs["conord"] == pytest.approx(float(losses.ConOrdLoss()(z, lab.y).detach()), rel=1e-10)
    assert not torch.equal(method.center.centers.detach(), mu0)  # the optimiser holds them


def test_bins_reference():
    y = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    edges = equal_width_edges(y, 4, "conord")
    np.testing.assert_allclose(edges.numpy(), [1.0, 2.0, 3.0])
    values = torch.tensor([-5.0, 0.0, 1.0, 1.5, 4.0, 9.0], dtype=torch.float64)
    assert bin_index(values, edges).tolist() == [0, 0, 0, 1, 3, 3]
    with pytest.raises(ValueError, match="all equal"):
        equal_width_edges(torch.ones(3), 4, "conord")


def test_predict_without_an_index_is_refused():
    with pytest.raises(ValueError, match="conord predicts from the labelled training rows' embeddings"):
        conord().predict(batch(3, 0).view("weak"))


def test_index_travels_with_the_state():
    method = conord()
    rows = batch(20, 5)
    method.index_rows(method.embed(rows.view("weak")), rows.y)
    copy = conord()
    copy.load_state_dict(method.state_dict())
    query = batch(6, 6).view("weak")
    assert torch.equal(copy.predict(query), method.predict(query))


@pytest.mark.parametrize("pseudo", ["anchored", "ranks"])
def test_semi_supervised_forms(pseudo):
    method = conord(unlabeled_weight=0.5, pseudo_targets=pseudo, diagnostics_every=1)
    logs = method.training_step(batch(12, 1), batch(10, 2), 0)
    assert np.isfinite(logs["unlabeled_conord"]) and 0 <= logs["pseudo_target_tau"] <= 1
    assert logs["loss"] == pytest.approx(logs["conord"] + logs["center"] + logs["unlabeled_conord"], rel=1e-9)


def tiny(**overrides):
    values = {"dataset": "diabetes", "method": "conord", "steps": 16, "eval_every": 4, "progress": False,
              "threads": 1, "batch_size": 12, "unlabeled_batch_size": 12, **overrides}
    return resolve_config({}, values)


def test_engine_indexes_before_evaluation_and_eval_answers_from_the_checkpoint(tmp_path):
    result = train(tiny(method_params={"unlabeled_weight": 0.5}), tmp_path / "run")
    summary = result.summary
    assert summary["status"] == "finished" and np.isfinite(summary["test"]["mae"])
    log = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all({"conord", "center", "unlabeled_conord"} <= r.keys() for r in log)
    assert [r["step"] for r in log if "val_mae" in r] == [4, 8, 12, 16]
    again = evaluate_run(result.run_dir, "test")
    assert again["mae"] == pytest.approx(summary["test"]["mae"], rel=1e-9)
    out = CliRunner().invoke(main, ["eval", str(result.run_dir), "--split", "val"])
    assert out.exit_code == 0, out.output
    # the predictor answers from the checkpoint alone: the test rows reproduce predictions.csv
    from clss.data import load_dataset

    x_test = load_dataset("diabetes", seed=0).x_test  # the run's split (seed 0)
    rows = [r.split(",") for r in (result.run_dir / "predictions.csv").read_text().splitlines()[1:]]
    saved = np.array([float(r[4]) for r in rows if r[0] == "test"])
    np.testing.assert_allclose(predict_array(result.run_dir, x_test), saved, rtol=1e-6)


def test_resume_reaches_the_same_result(tmp_path):
    cfg = tiny(steps=14)
    full = train(cfg, tmp_path / "full").summary

    def interrupt(step, logs):
        if step == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut", callback=interrupt)
    resumed = train({}, tmp_path / "cut", resume=True).summary
    for split in ("val", "test"):
        assert resumed[split]["mae"] == pytest.approx(full[split]["mae"], rel=1e-6, abs=1e-9)
