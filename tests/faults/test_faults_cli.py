"""Fault suite of the ``clss`` command line: bad invocations of every command end in one error line, exit
code 2 and no traceback, and a refused ``clss train`` creates nothing on disk.

Cases run through click's CliRunner (the same ``main`` group the console script calls); a few run the
installed ``clss`` script in a real subprocess to prove the exit code and a clean stderr.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from clss.config import TrainConfig, parse_overrides
from clss.methods import METHODS, OptimizerConfig
from clss.schema import specs_of
from clss_cli.console import DEBUG_HINT, fail_cleanly
from clss_cli.main import main

CLSS = shutil.which("clss") or str(Path(sys.executable).parent / "clss")
TRAIN = ["train", "--dataset", "diabetes", "--no-progress"]


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Files and folders the cases point at, and one finished (two-step) run."""
    root = tmp_path_factory.mktemp("cli_faults")
    (root / "a_file.txt").write_text("not a run\n")
    (root / "a_dir").mkdir()
    (root / "nonempty").mkdir()
    (root / "nonempty" / "notes.txt").write_text("keep me\n")
    (root / "bad.yaml").write_text("steps: [1, 2\nmethod: gclss\n")
    (root / "list.yaml").write_text("- steps\n- 100\n")
    (root / "scalar.yaml").write_text("just a string\n")
    (root / "binary.yaml").write_bytes(b"\xff\xfe\x00\x81binary")
    (root / "unknown.yaml").write_text("stepz: 100\n")
    (root / "badtype.yaml").write_text("steps: many\n")
    (root / "badparam.yaml").write_text("method: gclss\nmethod_params:\n  rank_weight: abc\n")
    (root / "matrix.txt").write_text("1 2\n3\n")
    env = {**os.environ, "COLUMNS": "80"}
    done = subprocess.run([CLSS, *TRAIN, "--method", "supervised", "--steps", "2", "--eval-every", "1",
                           "--out", str(root / "finished")], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    (root / "finished_stdout.txt").write_text(done.stdout)
    shutil.copytree(root / "finished", root / "no_best")
    (root / "no_best" / "best.pt").unlink()
    return {"root": root}


def _fill(args: list[str], root: Path) -> list[str]:
    return [a.replace("{root}", str(root)) for a in args]


def _new_out(root: Path, case_id: str) -> Path:
    return root / "new_runs" / case_id


def _check_one_error_line(output: str, phrase: str, usage: bool) -> None:
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, output
    assert phrase.lower() in errors[0].lower(), output
    if not usage:  # our errors are exactly one line; click's usage errors add its usage lines
        assert output.strip() == errors[0], output


# (arguments, phrase of the message, click usage error?) for `clss train ... --out NEW`
TRAIN_CASES = [
    pytest.param(["--batch-size", "0"], "--batch-size", True, id="batch-size-0"),
    pytest.param(["--batch-size", "-3"], "--batch-size", True, id="batch-size-negative"),
    pytest.param(["--batch-size", "many"], "not a positive integer or 'all'", True, id="batch-size-word"),
    pytest.param(["--unlabeled-batch-size", "0"], "--unlabeled-batch-size", True, id="ubatch-0"),
    pytest.param(["--steps", "0"], "--steps", True, id="steps-0"),
    pytest.param(["--steps", "-5"], "--steps", True, id="steps-negative"),
    pytest.param(["--steps", "ten"], "--steps", True, id="steps-word"),
    pytest.param(["--eval-every", "-1"], "--eval-every", True, id="eval-every-negative"),
    pytest.param(["--threads", "0"], "--threads", True, id="threads-0"),
    pytest.param(["--lr", "0"], "--lr", True, id="lr-0"),
    pytest.param(["--lr", "-1e-3"], "--lr", True, id="lr-negative"),
    pytest.param(["--lr", "nan"], "finite", True, id="lr-nan"),
    pytest.param(["--lr", "inf"], "finite", True, id="lr-inf"),
    pytest.param(["--lr", "fast"], "not a number", True, id="lr-word"),
    pytest.param(["--seed", "-1"], "--seed", True, id="seed-negative"),
    pytest.param(["--split-seed", "-1"], "--split-seed", True, id="split-seed-negative"),
    pytest.param(["--run", "-1"], "--run", True, id="run-negative"),
    pytest.param(["--unlabeled-loss", "mse"], "--unlabeled-loss", True, id="unlabeled-loss-choice"),
    pytest.param(["--val-protocol", "cv"], "--val-protocol", True, id="val-protocol-choice"),
    pytest.param(["--standardize", "z"], "--standardize", True, id="standardize-choice"),
    pytest.param(["--bogus"], "no such option", True, id="unknown-flag"),
    pytest.param(["--labeled", "150%"], "labeled percent must be in (0, 100]", False, id="labeled-150pct"),
    pytest.param(["--labeled", "ten"], "cannot parse labeled amount", False, id="labeled-word"),
    pytest.param(["--labeled", "0"], "labeled count must be >= 1", False, id="labeled-0"),
    pytest.param(["--labeled", "-3"], "labeled", False, id="labeled-negative"),
    pytest.param(["--labeled", "1.5"], "labeled fraction must be in (0, 1]", False, id="labeled-fraction"),
    pytest.param(["--unlabeled", "lots"], "unlabeled must be 'rest', 'paper'", False, id="unlabeled-word"),
    pytest.param(["--unlabeled", "0"], "unlabeled must be", False, id="unlabeled-0"),
    pytest.param(["--unlabeled", "2.5"], "unlabeled must be", False, id="unlabeled-fraction"),
    pytest.param(["--method", "gcls"], "method must be one of", False, id="method-unknown"),
    pytest.param(["--device", "gpu"], "device must be", False, id="device-unknown"),
    pytest.param(["--config", "{root}/a_dir"], "is a directory", False, id="config-dir"),
    pytest.param(["--config", "{root}/missing.yaml"], "not found", False, id="config-missing"),
    pytest.param(["--config", "{root}/bad.yaml"], "not valid YAML", False, id="config-invalid-yaml"),
    pytest.param(["--config", "{root}/list.yaml"], "must hold a mapping", False, id="config-list"),
    pytest.param(["--config", "{root}/scalar.yaml"], "must hold a mapping", False, id="config-scalar"),
    pytest.param(["--config", "{root}/binary.yaml"], "not a text", False, id="config-binary"),
    pytest.param(["--config", "{root}/unknown.yaml"], "did you mean 'steps'", False, id="config-unknown-key"),
    pytest.param(["--config", "{root}/badtype.yaml"], "steps must be an integer >= 1, got 'many'", False,
                 id="config-bad-type"),
    pytest.param(["--config", "{root}/badparam.yaml"], "method_params.rank_weight must be a float >= 0",
                 False, id="config-bad-method-param"),
    pytest.param(["--set", "steps"], "KEY=VALUE", False, id="set-no-equals"),
    pytest.param(["--set", "model..dropout=1"], "KEY=VALUE", False, id="set-empty-key-part"),
    pytest.param(["--set", "steps=[1,"], "cannot read the value", False, id="set-bad-yaml"),
    pytest.param(["--set", "stepz=10"], "did you mean 'steps'", False, id="set-unknown-top"),
    pytest.param(["--set", "model.hiden=[8]"], "did you mean 'hidden'", False, id="set-unknown-model"),
    pytest.param(["--set", "model.dropout=2"], "model.dropout must be a float in [0, 1)", False,
                 id="set-model-dropout"),
    pytest.param(["--set", "model.hidden=[0]"], "model.hidden must be", False, id="set-model-hidden-0"),
    pytest.param(["--set", "model.hidden=64"], "model.hidden must be", False, id="set-model-hidden-scalar"),
    pytest.param(["--set", "model.name=resnet152"], "model.name must be one of 'mlp', 'resnet18'", False,
                 id="set-model-name"),
    pytest.param(["--set", "model=3"], "model must be a mapping", False, id="set-model-scalar"),
    pytest.param(["--set", "optimizer.name=rmsprop"], "optimizer.name must be one of", False,
                 id="set-optimizer-name"),
    pytest.param(["--set", "optimizer.lr=-1"], "optimizer.lr must be a float > 0", False, id="set-lr"),
    pytest.param(["--set", "optimizer.lr=.nan"], "optimizer.lr must be", False, id="set-lr-nan"),
    pytest.param(["--set", "optimizer.momentum=1"], "optimizer.momentum", False, id="set-momentum"),
    pytest.param(["--set", "optimizer.betas=[0.9]"], "unknown key 'optimizer.betas'", False,
                 id="set-optimizer-unknown"),
    pytest.param(["--set", "schedule.name=cos"], "schedule.name must be one of", False, id="set-schedule"),
    pytest.param(["--set", "schedule.step_size=0"], "schedule.step_size must be", False,
                 id="set-schedule-step-size"),
    pytest.param(["--set", "batch_size=0"], "batch_size must be an integer >= 1, 'all' or null", False,
                 id="set-batch-size-0"),
    pytest.param(["--set", "unlabeled_batch_size=-1"], "unlabeled_batch_size must be", False,
                 id="set-ubatch-negative"),
    pytest.param(["--set", "steps=1.5"], "steps must be an integer", False, id="set-steps-fraction"),
    pytest.param(["--set", "eval_every=-2"], "eval_every must be an integer >= 0", False,
                 id="set-eval-every"),
    pytest.param(["--set", "threads=0"], "threads must be", False, id="set-threads"),
    pytest.param(["--set", "ssl_mult=0"], "ssl_mult must be", False, id="set-ssl-mult"),
    pytest.param(["--set", "select_metric=r2"], "select_metric must be one of", False,
                 id="set-select-metric"),
    pytest.param(["--set", "hidden_truth=maybe"], "hidden_truth must be true or false", False,
                 id="set-bool"),
    pytest.param(["--set", "method_params=[1]"], "method_params must be a mapping", False,
                 id="set-method-params-list"),
    pytest.param(["--set", "method_params.rank_wieght=0.1"], "did you mean 'rank_weight'", False,
                 id="set-method-param-typo"),
    pytest.param(["--method", "supervised", "--set", "method_params.rank_weight=0.1"],
                 "unknown key 'method_params.rank_weight'", False, id="set-param-of-other-method"),
    pytest.param(["--set", "method_params.keep=2.5"], "fraction in (0, 1] or a count >= 2", False,
                 id="set-keep-fraction"),
    pytest.param(["--set", "method_params.rank_weight=-0.1"],
                 "method_params.rank_weight must be a float >= 0", False, id="set-weight-negative"),
    pytest.param(["--set", "method_params.rank_rows=1"], "method_params.rank_rows must be an integer >= 2",
                 False, id="set-rank-rows-1"),
    pytest.param(["--set", "method_params.anchor_extremes=2.5"], "method_params.anchor_extremes", False,
                 id="set-int-param-fraction"),
]


def _wrong_value_cases() -> list:
    """Every declared parameter of every method given a value of the wrong type."""
    cases = []
    for name, cls in METHODS.items():
        for key, spec in specs_of(cls.Params).items():
            cases.append(pytest.param(name, key, f"method_params.{key} must be {spec.description()}",
                                      id=f"{name}-{key}"))
    return cases


def _run(args: list[str]) -> click.testing.Result:
    return CliRunner().invoke(main, args)


@pytest.mark.parametrize(("args", "phrase", "usage"), TRAIN_CASES)
def test_train_refuses(places, request, args, phrase, usage) -> None:
    root = places["root"]
    out = _new_out(root, request.node.callspec.id)
    result = _run([*TRAIN, *_fill(args, root), "--out", str(out)])
    assert result.exit_code == 2, result.output
    _check_one_error_line(result.output, phrase, usage)
    assert not out.exists()


@pytest.mark.parametrize(("method", "key", "phrase"), _wrong_value_cases())
def test_train_refuses_wrong_type_of_every_method_parameter(places, method, key, phrase) -> None:
    out = _new_out(places["root"], f"param-{method}-{key}")
    result = _run([*TRAIN, "--method", method, "--set", f"method_params.{key}=abc", "--out", str(out)])
    assert result.exit_code == 2, result.output
    _check_one_error_line(result.output, phrase + ", got 'abc'", usage=False)
    assert not out.exists()


# (arguments, phrase, usage error?) with the output directory in the way or the resume target bad
OUT_CASES = [
    pytest.param(["--out", "{root}/a_file.txt"], "is a file", False, id="out-file"),
    pytest.param(["--out", "{root}/finished"], "already holds a finished run", False, id="out-finished-run"),
    pytest.param(["--out", "{root}/nonempty"], "already holds other files", False, id="out-nonempty"),
    pytest.param([], "--out RUN_DIR is required", True, id="out-missing"),
    pytest.param(["--resume", "{root}/missing_run"], "does not exist", False, id="resume-missing"),
    pytest.param(["--resume", "{root}/a_file.txt"], "is a file", False, id="resume-file"),
    pytest.param(["--resume", "{root}/a_dir"], "no checkpoint", False, id="resume-not-a-run"),
]


@pytest.mark.parametrize(("args", "phrase", "usage"), OUT_CASES)
def test_train_output_in_the_way(places, args, phrase, usage) -> None:
    root = places["root"]
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    new_run = ["train"] if "--resume" in args else [*TRAIN, "--steps", "2"]  # --resume takes no run flags
    result = _run([*new_run, *_fill(args, root)])
    assert result.exit_code == 2, result.output
    _check_one_error_line(result.output, phrase, usage)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # nothing written


# Refused for reasons only the data can tell; nothing may be created either.
DATA_CASES = [
    pytest.param(["--dataset", "no-such-data"], "no-such-data", id="dataset-unknown"),
    pytest.param(["--dataset", "csv:{root}/missing.csv"], "missing.csv", id="csv-missing"),
    pytest.param(["--labeled", "100000"], "labeled", id="labeled-more-than-rows"),
]


@pytest.mark.parametrize(("args", "phrase"), DATA_CASES)
def test_train_refused_by_the_data_says_so_in_one_line(places, request, args, phrase) -> None:
    root = places["root"]
    result = _run([*TRAIN, *_fill(args, root), "--steps", "2", "--out",
                   str(_new_out(root, "data-" + request.node.callspec.id))])
    assert result.exit_code == 2, result.output
    _check_one_error_line(result.output, phrase, usage=False)


@pytest.mark.parametrize(("args", "phrase"), DATA_CASES)
def test_train_refused_by_the_data_creates_nothing(places, request, args, phrase) -> None:
    root = places["root"]
    out = _new_out(root, "nothing-" + request.node.callspec.id)
    result = _run([*TRAIN, *_fill(args, root), "--steps", "2", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert not out.exists()


EVAL_CASES = [
    pytest.param(["eval", "{root}/missing_run"], "no run directory at", False, id="eval-missing"),
    pytest.param(["eval", "{root}/a_file.txt"], "is a file, not a run directory", False, id="eval-file"),
    pytest.param(["eval", "{root}/a_dir"], "it has no config.yaml", False, id="eval-not-a-run"),
    pytest.param(["eval", "{root}/no_best"], "best.pt", False, id="eval-no-checkpoint"),
    pytest.param(["eval"], "missing argument", True, id="eval-no-argument"),
    pytest.param(["eval", "{root}/finished", "--split", "holdout"], "--split", True, id="eval-split"),
    pytest.param(["eval", "{root}/finished", "--checkpoint", "first"], "--checkpoint", True,
                 id="eval-checkpoint"),
    pytest.param(["methods", "gclsss"], "unknown method 'gclsss'; available: supervised", False,
                 id="methods-unknown-name"),
    pytest.param(["methods", "--params"], "no such option", True, id="methods-unknown-flag"),
    pytest.param(["seriate"], "give either FILE or --example", True, id="seriate-nothing"),
    pytest.param(["seriate", "{root}/missing.npy"], "missing.npy", False, id="seriate-missing-file"),
    pytest.param(["seriate", "{root}/a_dir"], "a_dir", False, id="seriate-directory"),
    pytest.param(["seriate", "{root}/matrix.txt"], "matrix.txt", False, id="seriate-ragged-text"),
    pytest.param(["seriate", "--example", "spiral"], "--example", True, id="seriate-example-choice"),
    pytest.param(["seriate", "--example", "curve", "--method", "magic"], "--method", True,
                 id="seriate-method-choice"),
    pytest.param(["nosuchcommand"], "no such command", True, id="group-unknown-command"),
    pytest.param(["--verbose", "methods"], "no such option", True, id="group-unknown-flag"),
]


@pytest.mark.parametrize(("args", "phrase", "usage"), EVAL_CASES)
def test_other_commands_refuse(places, args, phrase, usage) -> None:
    result = _run(_fill(args, places["root"]))
    assert result.exit_code == 2, result.output
    _check_one_error_line(result.output, phrase, usage)


def test_a_corrected_command_runs_after_a_refused_one(places) -> None:
    """The issue's sequence: a refused command, then the corrected one, which must not be refused."""
    out = _new_out(places["root"], "rerun")
    refused = _run([*TRAIN, "--method", "supervised", "--steps", "2", "--set", "model.dropout=2",
                    "--out", str(out)])
    assert refused.exit_code == 2 and not out.exists()
    ok = _run([*TRAIN, "--method", "supervised", "--steps", "2", "--eval-every", "1", "--out", str(out)])
    assert ok.exit_code == 0, ok.output
    assert (out / "summary.json").is_file()


def test_a_diverged_run_is_one_line(places) -> None:
    """The engine's TrainingDiverged (a learning rate of 1e30 makes the first loss NaN) is a user error."""
    out = _new_out(places["root"], "diverged")
    result = _run([*TRAIN, "--method", "supervised", "--lr", "1e30", "--steps", "3", "--eval-every", "3",
                   "--out", str(out)])
    assert result.exit_code == 2, result.output
    _check_one_error_line(result.output, "the last good checkpoint is", usage=False)
    assert "Lower the learning rate" in result.output


# ------------------------------------------------------------------ the real console script


@pytest.mark.parametrize(("args", "phrase"), [
    pytest.param(["train", "--config", "{root}/a_dir", "--out", "{root}/new_runs/sub1"], "is a directory",
                 id="config-dir"),
    pytest.param(["train", "--set", "method_params.rank_weight=abc", "--out", "{root}/new_runs/sub2"],
                 "method_params.rank_weight must be a float >= 0, got 'abc'", id="param-type"),
    pytest.param(["eval", "{root}/missing_run"], "no run directory at", id="eval-missing"),
    pytest.param(["train", "--out", "{root}/finished"], "already holds a finished run", id="out-finished"),
])
def test_console_script_exit_code_and_clean_stderr(places, args, phrase) -> None:
    done = subprocess.run([CLSS, *_fill(args, places["root"])], capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if k != "CLSS_DEBUG"})
    assert done.returncode == 2
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and phrase in done.stderr, done.stderr
    assert not (places["root"] / "new_runs" / "sub1").exists()
    assert not (places["root"] / "new_runs" / "sub2").exists()


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback(places, how) -> None:
    root = places["root"]
    env = {**os.environ, "CLSS_DEBUG": "1"} if how == "env" else dict(os.environ)
    args = ["--debug"] if how == "flag" else []
    done = subprocess.run([CLSS, *args, "train", "--config", str(root / "a_dir"), "--out",
                           str(root / "new_runs" / "debug")], capture_output=True, text=True, timeout=300,
                          env=env)
    assert done.returncode != 0
    assert "Traceback" in done.stderr and "IsADirectoryError" in done.stderr


@click.command()
@click.argument("kind")
@fail_cleanly
def _raiser(kind: str) -> None:
    """A command whose body raises: a user error (OSError) or a bug (an IndexError)."""
    if kind == "oserror":
        open(kind + "/nope/missing.csv")  # noqa: SIM115 - the real OSError, with its path
    [][1]  # a genuine bug


def test_internal_errors_exit_1_with_the_debug_hint() -> None:
    result = CliRunner().invoke(_raiser, ["bug"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.output.count("\n") == 1
    assert "internal error (IndexError)" in result.output and DEBUG_HINT in result.output


def test_os_errors_name_their_path() -> None:
    result = CliRunner().invoke(_raiser, ["oserror"])
    assert result.exit_code == 2
    assert result.output.strip() == "Error: No such file or directory: oserror/nope/missing.csv"


def test_keyboard_interrupt_is_not_swallowed() -> None:
    @click.command()
    @fail_cleanly
    def interrupted() -> None:
        raise KeyboardInterrupt

    result = CliRunner().invoke(interrupted, [])
    assert result.exit_code == 1 and "Aborted!" in result.output  # click's own handling


# ------------------------------------------------------------------ output layout


def _run_script(args: list[str], columns: int) -> str:
    done = subprocess.run([CLSS, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": str(columns)})
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("columns", [80, 200])
def test_methods_lists_one_line_per_method(columns) -> None:
    lines = [line for line in _run_script(["methods"], columns).splitlines() if line.strip()]
    starts = [line.split()[0] for line in lines if not line.startswith(" ")]
    assert sorted(starts) == sorted(METHODS)  # every method once, continuation lines (if any) indented
    if columns == 200:
        assert len(lines) == len(METHODS)
        assert all(METHODS[line.split()[0]].description in line for line in lines)


@pytest.mark.parametrize("columns", [40, 80, 200])
def test_methods_lists_every_parameter_in_full(columns) -> None:
    text = _run_script(["methods", "--all"], columns)  # output piped, console width from COLUMNS
    assert "…" not in text
    assert all(len(line.rstrip()) <= columns for line in text.splitlines())
    flat = " ".join(text.split())
    for name, cls in METHODS.items():
        assert name in flat
        for key, value in cls.Params().to_dict().items():
            assert key in flat
            assert ("null" if value is None else str(value)) in flat


def test_methods_shows_the_accepted_values() -> None:
    flat = " ".join(_run_script(["methods", "gclss", "clss"], 200).split())
    assert "supervised (labelled rows only)" not in flat
    assert "rank_weight = 0.05 (a float >= 0)" in flat
    assert "keep = 0.75 (a fraction in (0, 1] or a count >= 2)" in flat
    assert "selection = null (one of 'min', 'max_faithful', null)" in flat


def test_results_heading_is_not_broken_at_80_columns(places) -> None:
    text = (places["root"] / "finished_stdout.txt").read_text()
    assert "…" not in text
    lines = text.splitlines()
    assert any(line.startswith("supervised on diabetes: ") and line.rstrip().endswith(" steps")
               for line in lines), text
    assert all(len(line.rstrip()) <= 80 for line in lines)


# ------------------------------------------------------------------ the library under the CLI


def _build(method: str, params: dict):
    from clss.data import InputSpec
    from clss.methods import build_method
    from clss.models import build_model

    return build_method(method, lambda: build_model("mlp", InputSpec("tabular", (3,)), hidden=[4]),
                        params=params)


LIBRARY_CASES = [
    pytest.param(lambda: _build("gclss", {"rank_weight": "abc"}),
                 r"gclss: method_params\.rank_weight must be a float >= 0, got 'abc'",
                 id="build-method-type"),
    pytest.param(lambda: _build("clss", {"rank_weight": True}), r"rank_weight must be a float",
                 id="build-bool"),
    pytest.param(lambda: _build("clss", {"rank_wieght": 1}), r"did you mean 'rank_weight'", id="build-typo"),
    pytest.param(lambda: _build("supervised", {"contrastive_weight": float("nan")}), r"contrastive_weight",
                 id="build-nan"),
    pytest.param(lambda: _build("gclss", {"keep": 0}), r"keep must be a fraction", id="build-keep-0"),
    pytest.param(lambda: OptimizerConfig(lr=0),
                 r"optimizer\.lr must be a float > 0", id="optimizer-config-lr"),
    pytest.param(lambda: TrainConfig(steps=0),
                 r"steps must be an integer >= 1, got 0", id="train-config-steps"),
    pytest.param(lambda: TrainConfig(batch_size=0),
                 r"batch_size must be an integer >= 1, 'all' or null, got 0", id="train-config-batch-0"),
    pytest.param(lambda: TrainConfig.from_dict([1]),
                 r"must be a mapping", id="train-config-from-list"),
    pytest.param(lambda: parse_overrides(["=3"]),
                 r"KEY=VALUE", id="overrides-empty-key"),
    pytest.param(lambda: parse_overrides(["a=1", "a.b=2"]),
                 r"a is already set", id="overrides-scalar-then-nested"),
]


@pytest.mark.parametrize(("call", "match"), LIBRARY_CASES)
def test_library_refuses_by_name(call, match) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_values_are_coerced_where_the_meaning_is_plain(tmp_path) -> None:
    from clss.config import load_yaml, resolve_config

    assert parse_overrides(["optimizer.lr=1e-3", "steps=1e3"]) == {"optimizer": {"lr": 1e-3}, "steps": 1000.0}
    (tmp_path / "c.yaml").write_text("optimizer:\n  lr: 2e-4\nmethod_params:\n  rank_weight: '0.5'\n")
    cfg = resolve_config(load_yaml(tmp_path / "c.yaml"), {"steps": 1e3, "batch_size": "all"})
    assert cfg.optimizer["lr"] == pytest.approx(2e-4) and isinstance(cfg.optimizer["lr"], float)
    assert cfg.steps == 1000 and isinstance(cfg.steps, int)
    assert cfg.method_params["rank_weight"] == pytest.approx(0.5)
    assert cfg.batch_size == "all"


@pytest.mark.slow
def test_example_prints_no_command_for_its_deleted_folder() -> None:
    script = Path(__file__).resolve().parents[2] / "examples" / "train_python_api.py"
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    assert "clss eval /" not in done.stdout and "temporary and removed at exit" in done.stdout


def test_warnings_are_one_line_on_stderr(places) -> None:
    """A warning of the library (here: fewer labelled rows than the batch) is one ``warning:`` line on
    stderr, not Python's file:line report with a source line (a real process: pytest records warnings)."""
    out = _new_out(places["root"], "warned")
    done = subprocess.run([CLSS, *TRAIN, "--method", "supervised", "--labeled", "10", "--batch-size", "16",
                           "--steps", "2", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == ["warning: batch_size 16 is larger than the 10 labeled rows: every labeled batch uses "
                     "all 10 of them"], done.stderr
