"""End-to-end training: every method, run-directory contents, resume, divergence, bad input, CLI."""

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from clss.config import PRESETS, TrainConfig, resolve_config
from clss.data import DataSplits, InputSpec, RegressionDataset
from clss.data.operator_sde import generate_split
from clss.engine import TrainingDiverged, TrainingInterrupted, evaluate_run, train
from clss.engine.checkpoint import load_checkpoint
from clss.engine.predict import load_predictor
from clss_cli.main import main

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "operator_sde"


def tiny(**overrides):
    values = {"dataset": "diabetes", "steps": 20, "eval_every": 10, "progress": False, "threads": 1,
              "batch_size": 12, "unlabeled_batch_size": 12, **overrides}
    return resolve_config({}, values)


@pytest.mark.parametrize(("method", "params"), [
    ("supervised", {}),
    ("supervised", {"contrastive": "rnc", "regression_loss": "l1"}),
    ("clss", {}),
    ("clss", {"unlabeled_loss": "conord", "rank_rows": 8}),
    ("gclss", {}),
    ("gclss", {"mode": "faithful"}),
    ("gclss", {"unlabeled_loss": "rnc", "pseudo_weight": 0.5}),
])
def test_every_method_trains_and_writes_a_run_directory(tmp_path, method, params):
    result = train(tiny(method=method, method_params=params), tmp_path / "run")
    run = result.run_dir
    for name in ("config.yaml", "splits.json", "metrics.jsonl", "summary.json", "predictions.csv",
                 "last.pt", "best.pt", "plots/learning_curves.png", "plots/test_predictions.png"):
        assert (run / name).exists(), name
    assert (run / "plots/unlabeled_similarity.png").exists() == (method != "supervised")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished"
    assert all(math.isfinite(summary[s][k]) for s in ("val", "test") for k in ("mae", "rmse", "r2"))
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 20 and json.loads(lines[9])["val_mae"] > 0
    preds = (run / "predictions.csv").read_text().splitlines()
    assert preds[0] == "split,index,source,y_true,y_pred" and len(preds) == 1 + 88 + 88
    # checkpoints load with weights_only=True
    state = load_checkpoint(run / "last.pt")
    assert state["step"] == 20


def test_resume_after_interrupt_matches_uninterrupted_run(tmp_path):
    cfg = tiny(method="gclss", steps=30)
    full = train(cfg, tmp_path / "full").summary

    def interrupt(step, logs):
        if step == 17:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut", callback=interrupt)
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["step"] == 17
    resumed = train({}, tmp_path / "cut", resume=True).summary
    for split in ("val", "test"):
        for key in ("mae", "rmse", "r2"):
            assert resumed[split][key] == pytest.approx(full[split][key], rel=1e-6, abs=1e-9)
    log = [json.loads(x) for x in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 31))


def test_resume_from_the_last_evaluation_checkpoint(tmp_path):
    # a crash that leaves only the periodic checkpoint (step 10) also resumes to the same result
    cfg = tiny(method="clss", steps=20)
    full = train(cfg, tmp_path / "full").summary

    def crash(step, logs):
        if step == 14:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated"):
        train(cfg, tmp_path / "cut", callback=crash)
    state = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert state["step"] == 14
    # roll back to what a hard kill would have left: the step-10 checkpoint of an identical run
    train(tiny(method="clss", steps=10), tmp_path / "ten")
    (tmp_path / "cut" / "last.pt").write_bytes((tmp_path / "ten" / "last.pt").read_bytes())
    resumed = train({}, tmp_path / "cut", resume=True).summary
    assert resumed["test"]["mae"] == pytest.approx(full["test"]["mae"], rel=1e-6)


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(tmp_path):
    cfg = tiny(method="supervised", steps=40, optimizer={"name": "sgd", "lr": 1e12, "weight_decay": 0.0},
               method_params={"contrastive": "none"}, eval_every=1)
    with pytest.raises(TrainingDiverged, match=r"loss is (nan|inf)"):
        train(cfg, tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "diverged"
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    weights = [v for v in state["method"].values() if isinstance(v, torch.Tensor) and v.is_floating_point()]
    assert weights and all(torch.isfinite(v).all() for v in weights)


def test_evaluate_run_matches_summary(tmp_path):
    result = train(tiny(method="clss"), tmp_path / "run")
    metrics = evaluate_run(result.run_dir, "test")
    assert metrics["mae"] == pytest.approx(result.summary["test"]["mae"], rel=1e-9)


def test_training_is_deterministic_given_the_seed(tmp_path):
    a = train(tiny(method="gclss", seed=3), tmp_path / "a").summary
    b = train(tiny(method="gclss", seed=3), tmp_path / "b").summary
    c = train(tiny(method="gclss", seed=4), tmp_path / "c").summary
    assert a["test"]["mae"] == b["test"]["mae"]
    assert a["test"]["mae"] != c["test"]["mae"]


def test_config_precedence():
    assert TrainConfig().steps == 2000
    preset = resolve_config({}, {"dataset": "diabetes"})
    assert preset.steps == PRESETS["diabetes"]["steps"]
    from_file = resolve_config({"dataset": "diabetes", "steps": 7, "model": {"dropout": 0.3}}, {})
    assert from_file.steps == 7 and from_file.model["dropout"] == 0.3
    assert from_file.model["hidden"] == PRESETS["diabetes"]["model"]["hidden"]  # nested merge
    flags = resolve_config({"dataset": "diabetes", "steps": 7}, {"steps": 9, "seed": None})
    assert flags.steps == 9 and flags.seed == 0
    gclss = resolve_config({}, {"dataset": "operator-sde", "method": "gclss"})
    assert gclss.model["dropout"] > 0  # GCLSS needs two differing stochastic passes
    with pytest.raises(ValueError, match="unknown key 'stepz'; did you mean 'steps'"):
        resolve_config({"stepz": 3}, {})


@pytest.mark.parametrize(("overrides", "error", "match"), [
    ({"method": "nope"}, ValueError, "method must be one of"),
    ({"labeled": "0"}, ValueError, "0"),
    ({"labeled": "5000"}, ValueError, "only 266"),
    ({"labeled": "100%", "method": "gclss"}, ValueError, "unlabeled"),
    ({"dataset": "csv:/no/such/file.csv", "target": "y"}, FileNotFoundError, "file.csv"),
    ({"method_params": {"rank_wieght": 1}, "method": "clss"}, ValueError, "unknown key 'method_params"),
    ({"unlabeled": "paper"}, ValueError, "paper"),
    ({"schedule": {"name": "zigzag"}}, ValueError, "schedule"),
    ({"standardize": "z"}, ValueError, "standardize"),
])
def test_bad_configuration_raises(tmp_path, overrides, error, match):
    with pytest.raises(error, match=match):
        train(tiny(**overrides), tmp_path / "run")


def test_run_directory_protection(tmp_path):
    train(tiny(method="supervised", steps=10), tmp_path / "run")
    with pytest.raises(FileExistsError):
        train(tiny(method="supervised", steps=10), tmp_path / "run")
    with pytest.raises(FileNotFoundError):
        train({}, tmp_path / "empty", resume=True)


@pytest.fixture(scope="module")
def operator_sde_dir(tmp_path_factory):
    """The published files when ../shared is present, else a small set in the same layout."""
    if (SHARED / "train_sde.npz").exists():
        return SHARED
    folder = tmp_path_factory.mktemp("operator_sde")
    for split in ("train", "test"):
        arrays = generate_split(200, seed=0, split=split, mc_samples=200, progress=False)
        np.savez(folder / f"{split}_sde.npz", **arrays)
    return folder


def test_operator_sde_paper_protocol(tmp_path, operator_sde_dir):
    cfg = resolve_config({}, {"dataset": "operator-sde", "data_dir": str(operator_sde_dir), "method": "gclss",
                              "labeled": "20%", "steps": 6, "eval_every": 3, "progress": False})
    result = train(cfg, tmp_path / "run")
    splits = json.loads((tmp_path / "run" / "splits.json").read_text())
    assert result.summary["labeled"] == 200 and result.summary["unlabeled"] == 200
    assert splits["labeled_spec"] == "20%"
    assert math.isfinite(result.summary["test"]["mae"])
    # the preset keeps the KL inputs in their own scales and standardises the target only
    std = load_checkpoint(tmp_path / "run" / "last.pt")["standardizer"]
    assert np.all(np.asarray(std["x_mean"]) == 0) and np.all(np.asarray(std["x_std"]) == 1)
    assert std["y_std"] != 1
    assert evaluate_run(tmp_path / "run", "test")["mae"] == pytest.approx(result.summary["test"]["mae"])
    # the papers' way of writing the fraction reads the same rows
    from clss.engine.trainer import load_data

    for spec in ("1/5", "0.2"):
        same = load_data(dataclasses.replace(cfg, labeled=spec))
        assert same.labeled.tolist() == json.loads((tmp_path / "run" / "splits.json").read_text())["labeled"]
    with pytest.raises(ValueError, match=r"fraction in \(0, 0.5\]"):
        load_data(dataclasses.replace(cfg, labeled="200"))


def test_cli_train_eval_methods(tmp_path):
    runner = CliRunner()
    out = runner.invoke(main, ["train", "--dataset", "diabetes", "--method", "clss", "--labeled", "30",
                               "--steps", "12", "--eval-every", "6", "--out", str(tmp_path / "run"),
                               "--no-progress", "--set", "method_params.rank_weight=0.1",
                               "--set", "model.hidden=[16, 16]"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert "test" in out.output and "run directory" in out.output
    cfg = (tmp_path / "run" / "config.yaml").read_text()
    assert "rank_weight: 0.1" in cfg and "- 16" in cfg
    assert json.loads((tmp_path / "run" / "splits.json").read_text())["labeled_spec"] == "30"
    out = runner.invoke(main, ["eval", str(tmp_path / "run"), "--json"], catch_exceptions=False)
    assert out.exit_code == 0 and json.loads(out.output)["mae"] > 0
    out = runner.invoke(main, ["train", "--dataset", "diabetes", "--method", "gclss",
                               "--unlabeled-loss", "rnc", "--steps", "4", "--eval-every", "2",
                               "--out", str(tmp_path / "rnc"), "--no-progress"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert "unlabeled_loss: rnc" in (tmp_path / "rnc" / "config.yaml").read_text()
    out = runner.invoke(main, ["methods"], catch_exceptions=False)
    assert all(name in out.output for name in ("supervised", "clss", "gclss"))
    (tmp_path / "cfg.yaml").write_text("dataset: diabetes\nsteps: 4\neval_every: 2\nmethod: supervised\n")
    out = runner.invoke(main, ["train", "--config", str(tmp_path / "cfg.yaml"), "--steps", "6",
                               "--out", str(tmp_path / "run2"), "--no-progress"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert json.loads((tmp_path / "run2" / "summary.json").read_text())["steps"] == 6


def test_cli_errors_are_one_line(tmp_path):
    runner = CliRunner()
    out = runner.invoke(main, ["train", "--dataset", "diabetes", "--labeled", "ten percent",
                               "--out", str(tmp_path / "r")])
    assert out.exit_code == 2 and "Traceback" not in out.output
    out = runner.invoke(main, ["train", "--dataset", "diabetes"])
    assert out.exit_code == 2 and "--out" in out.output
    out = runner.invoke(main, ["eval", str(tmp_path / "missing")])
    assert out.exit_code == 2
    out = runner.invoke(main, ["train", "--dataset", "diabetes", "--set", "steps",
                               "--out", str(tmp_path / "s")])
    assert out.exit_code == 2 and "KEY=VALUE" in out.output


def test_tabular_fast_path_reproduces_the_metrics_from_before_the_loader():
    """Tabular rows still train on the in-memory fast path, to the same numbers as before the loader.

    Reference numbers recorded at commit a3acad8 (before the loader) with
    ``clss train --dataset diabetes --method gclss --labeled 20% --steps 30 --eval-every 10 --seed 3
    --threads 1 --device cpu --no-progress --out RUN``: first loss 0.8291724920272827, test MAE
    48.93513974931439, validation MAE 51.20359235407934.
    """
    import tempfile

    cfg = resolve_config({}, {"dataset": "diabetes", "method": "gclss", "labeled": "20%", "steps": 30,
                              "eval_every": 10, "seed": 3, "threads": 1, "device": "cpu", "progress": False,
                              "plots": False})
    with tempfile.TemporaryDirectory() as out:
        result = train(cfg, Path(out) / "run")
        first = json.loads((result.run_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert first["loss"] == pytest.approx(0.8291724920272827, rel=1e-5)
    assert result.summary["test"]["mae"] == pytest.approx(48.93513974931439, rel=1e-5)
    assert result.summary["val"]["mae"] == pytest.approx(51.20359235407934, rel=1e-5)


class ColourImages(RegressionDataset):
    """``n`` random 3x6x6 images in memory standing in for files (target: their mean brightness)."""

    def __init__(self, n: int, seed: int) -> None:
        self.images = torch.rand(n, 3, 6, 6, generator=torch.Generator().manual_seed(seed))
        self.targets = self.images.mean(dim=(1, 2, 3)).double().numpy() * 10
        self.input = InputSpec("image", (3, 6, 6))

    def __getitem__(self, i):
        return self.images[i].clone()

    def source(self, i):
        return f"faces/img_{i:03d}.jpg"


def noise(x):
    return x + 0.05 * torch.randn_like(x)


def _images():
    return DataSplits("colour", ColourImages(48, 0), ColourImages(10, 1), ColourImages(10, 2), "brightness",
                      pipelines={"weak": noise})


def _image_config(**overrides):
    return resolve_config({}, {"dataset": "colour", "method": "clss", "labeled": "25%", "steps": 12,
                               "eval_every": 4, "batch_size": 6, "unlabeled_batch_size": 6, "seed": 1,
                               "threads": 1, "device": "cpu", "progress": False,
                               "model": {"name": "mlp", "hidden": [16, 8]}, **overrides})


def _log(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_image_run_with_worker_processes_resumes_exactly(tmp_path):
    """An uninterrupted run loading in-process equals a run with 2 worker processes interrupted at step 6
    and resumed: augmentations depend on the seed and the batch, never on the workers or prefetching."""
    full = train(_image_config(workers=0), tmp_path / "full", data=_images())

    def interrupt(step, logs):
        if step == 6:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        train(_image_config(workers=2), tmp_path / "cut", data=_images(), callback=interrupt)
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["step"] == 6
    resumed = train({}, tmp_path / "cut", resume=True, data=_images())
    expected = _log(full.run_dir)
    got = _log(resumed.run_dir)
    assert [r["step"] for r in got] == list(range(1, 13))
    for a, b in zip(got, expected, strict=True):
        assert a == pytest.approx(b, rel=1e-6, abs=1e-9)
    for split in ("val", "test"):
        assert resumed.summary[split]["mae"] == pytest.approx(full.summary[split]["mae"], rel=1e-6)


def test_image_run_records_its_input_and_sources_and_predict_refuses_it(tmp_path):
    run = train(_image_config(workers=1, steps=4), tmp_path / "run", data=_images()).run_dir
    splits = json.loads((run / "splits.json").read_text())
    assert splits["input"] == {"kind": "image", "shape": [3, 6, 6], "feature_names": []}
    rows = (run / "predictions.csv").read_text().splitlines()
    assert rows[0] == "split,index,source,y_true,y_pred"
    assert rows[1].startswith("val,0,faces/img_000.jpg,") and len(rows) == 1 + 10 + 10
    unlabeled = (run / "predictions_unlabeled.csv").read_text().splitlines()
    assert unlabeled[0] == "index,source,y_pred"
    index, source, _ = unlabeled[1].split(",")
    assert source == f"faces/img_{int(index):03d}.jpg" and len(unlabeled) == 1 + 36
    assert (run / "plots" / "unlabeled_similarity.png").is_file()
    with pytest.raises(ValueError, match="trained on images of a dataset without an ImagePreprocessing"):
        load_predictor(run)


def test_val_protocol_test_validates_image_splits_on_the_test_split(tmp_path):
    import dataclasses

    from clss.data import DATASETS, DatasetInfo, load_dataset

    DATASETS["colour-test"] = DatasetInfo("test images", lambda *, seed: _images())
    try:
        data = load_dataset("colour-test", val_protocol="test")
        assert isinstance(data, DataSplits) and data.val is data.test
        assert data.meta["val_protocol"] == "test split (optimistic)"
        held = load_dataset("colour-test")
        assert held.val is not held.test and held.meta["val_protocol"] == "holdout"
    finally:
        del DATASETS["colour-test"]
    cfg = _image_config(val_protocol="test", steps=4)
    result = train(cfg, tmp_path / "run", data=dataclasses.replace(_images(), val=_images().test))
    assert result.summary["val"]["mae"] == pytest.approx(result.summary["test"]["mae"], rel=1e-9)


def test_cli_workers_flag_is_recorded_and_may_change_on_resume(tmp_path):
    import yaml

    run = tmp_path / "run"
    args = ["train", "--dataset", "diabetes", "--method", "supervised", "--steps", "2", "--eval-every", "1",
            "--threads", "1", "--no-progress", "--set", "plots=false", "--out", str(run)]
    result = CliRunner().invoke(main, [*args, "--workers", "0"])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((run / "config.yaml").read_text())["workers"] == 0
    result = CliRunner().invoke(main, ["train", "--resume", str(run), "--steps", "3", "--workers", "auto"])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((run / "config.yaml").read_text())["workers"] == "auto"
    assert json.loads((run / "summary.json").read_text())["workers"] == 0  # auto: in-memory table


def test_a_run_written_before_a_configuration_key_existed_still_resumes(tmp_path):
    # Runs of older clss versions lack the keys added since (here precision, workers, pin_memory, data_root)
    # in config.yaml and in the checkpoint; they ran as those keys' defaults do, so they resume.
    import yaml

    from clss.engine.checkpoint import save_checkpoint

    cfg = tiny(method="clss", steps=10)
    full = train(tiny(method="clss", steps=20), tmp_path / "full").summary
    train(cfg, tmp_path / "old")
    newer = ("precision", "workers", "pin_memory", "data_root")
    config = yaml.safe_load((tmp_path / "old" / "config.yaml").read_text())
    (tmp_path / "old" / "config.yaml").write_text(yaml.safe_dump({k: v for k, v in config.items()
                                                                  if k not in newer}))
    for name in ("last", "best"):
        state = load_checkpoint(tmp_path / "old" / f"{name}.pt")
        state["config"] = {k: v for k, v in state["config"].items() if k not in newer}
        save_checkpoint(tmp_path / "old" / f"{name}.pt", state, kind="train" if name == "last" else "weights")
    resumed = train(None, tmp_path / "old", resume=True, overrides={"steps": 20}).summary
    assert resumed["test"]["mae"] == pytest.approx(full["test"]["mae"], rel=1e-6)
