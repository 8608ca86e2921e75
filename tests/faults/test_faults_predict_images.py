"""Fault suite: bad inputs to prediction on image runs (and image inputs to table runs), through
`predict_images_file` / `Predictor` and through `clss predict`. Each ends in one error naming the file or
the problem (exit code 2 and one line in the CLI), never a traceback, and no output file."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from _images_tree import image_csv

from clss.config import resolve_config
from clss.data import ImageReadError
from clss.engine import train
from clss.engine.predict import load_predictor, predict_file, predict_images_file
from clss_cli.main import main

FAST = {"progress": False, "plots": False, "threads": 1, "device": "cpu", "workers": 0}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An image-csv run at the images' native 12x10 size (no resize) and a table run."""
    root = tmp_path_factory.mktemp("faults-predict-images")
    image_csv(root, 15, (12, 10))
    image = train(resolve_config({}, {"dataset": f"image-csv:{root / 'data.csv'}", "method": "supervised",
                                      "model": {"name": "cnn", "channels": 4, "blocks": 1},
                                      "preprocessing": {"resize": None}, "labeled": "all", "steps": 1,
                                      "eval_every": 1, "batch_size": 4, **FAST}), root / "image").run_dir
    table_cfg = {"dataset": "diabetes", "method": "supervised", "steps": 2, "eval_every": 1,
                 "model": {"hidden": [4]}, **FAST}
    table = train(resolve_config({}, table_cfg), root / "table").run_dir
    return {"image": image, "table": table, "img": root / "img"}


def _good(tmp: Path, runs) -> Path:
    shutil.copy(runs["img"] / "0.png", tmp / "good.png")
    return tmp / "good.png"


def _folder_with(tmp: Path, runs, name: str, data: bytes | None = None, size=(12, 10)) -> Path:
    folder = tmp / "in"
    folder.mkdir()
    shutil.copy(runs["img"] / "0.png", folder / "good.png")
    if data is not None:
        (folder / name).write_bytes(data)
    else:
        Image.fromarray(np.zeros((*size, 3), dtype=np.uint8)).save(folder / name)
    return folder


def _truncated(tmp: Path, runs) -> tuple[Path, Path]:
    data = (runs["img"] / "1.png").read_bytes()
    return runs["image"], _folder_with(tmp, runs, "trunc.png", data[: len(data) // 2])


def _list(tmp: Path, lines: list[str]) -> Path:
    (tmp / "list.txt").write_text("\n".join(lines) + "\n")
    return tmp / "list.txt"


def _old_run(tmp: Path, runs) -> tuple[Path, Path]:
    old = tmp / "old"
    shutil.copytree(runs["image"], old)
    splits = json.loads((old / "splits.json").read_text())
    del splits["image_preprocessing"]
    (old / "splits.json").write_text(json.dumps(splits))
    return old, runs["img"]


# (maker(tmp, runs) -> (run directory, input), keywords, error type, message phrase)
CASES = [
    pytest.param(lambda t, r: (r["image"], _folder_with(t, r, "bad.png", b"\x89PNG\r\n\x1a\nnot really")), {},
                 ValueError, r"1 of 2 image files cannot be predicted: cannot read image .*bad\.png",
                 id="corrupt-image"),
    pytest.param(_truncated, {}, ImageReadError, r"cannot decode image .*trunc\.png", id="truncated-image"),
    pytest.param(lambda t, r: (r["image"], _list(t, [str(_good(t, r)), str(t / "gone.png")])), {},
                 FileNotFoundError, r"1 of 2 image files cannot be predicted: missing file .*gone\.png",
                 id="missing-file"),
    pytest.param(lambda t, r: (r["image"], _folder_with(t, r, "small.png", size=(9, 7))), {}, ValueError,
                 r"small\.png is 9x7 pixels; this run was trained on 12x10 images and resizes none",
                 id="wrong-size-native-run"),
    pytest.param(lambda t, r: (r["image"], _list(t, ["a,b", "1,2"]).rename(t / "rows.csv")), {}, ValueError,
                 r"rows\.csv has no image path column 'path'.*--path-column", id="table-csv-to-image-run"),
    pytest.param(lambda t, r: (r["image"], np.save(t / "x.npy", np.zeros((2, 3))) or t / "x.npy"), {},
                 ValueError, r"x\.npy is a \.npy array \(table rows\)", id="npy-to-image-run"),
    pytest.param(lambda t, r: (r["image"], (t / "empty").mkdir() or t / "empty"), {}, ValueError,
                 r"the folder .*empty holds no image files", id="empty-folder"),
    pytest.param(lambda t, r: (r["image"], _list(t, ["", "  "])), {}, ValueError,
                 r"the list .*list\.txt names no image paths", id="empty-list"),
    pytest.param(lambda t, r: (r["image"], (t / "b.bin").write_bytes(b"\xff\xfe\x00\x81") and t / "b.bin"),
                 {}, ValueError, r"b\.bin is neither an image, a CSV .* nor a text list", id="binary-list"),
    pytest.param(lambda t, r: (r["image"], _list(t, ["path", "a.png"]).rename(t / "p.csv")),
                 {"target_column": "age"}, ValueError, r"no target column 'age'", id="named-target-absent"),
    pytest.param(lambda t, r: (r["image"], _list(t, ["path,target", f"{_good(t, r)},x"]).rename(t / "p.csv")),
                 {}, ValueError, r"the target column 'target' is not numeric", id="text-target"),
    pytest.param(lambda t, r: (r["image"], _list(t, ["path,target", ",1", "a.png,2"]).rename(t / "p.csv")),
                 {}, ValueError, r"lines \[2\] have an empty 'path' cell", id="empty-path-cell"),
    pytest.param(lambda t, r: (r["image"], r["img"]), {"data_root": "."}, ValueError,
                 r"--data-root.*does not apply to a folder", id="data-root-with-folder"),
    pytest.param(lambda t, r: (r["image"], t / "nothing"), {}, FileNotFoundError,
                 r"input .*nothing does not exist", id="missing-input"),
    pytest.param(lambda t, r: (r["image"], r["img"]), {"out": "."}, ValueError,
                 r"output .* is a directory; name a file", id="out-is-a-directory"),
    pytest.param(lambda t, r: (r["table"], r["img"]), {}, ValueError,
                 r"input .*img is a directory; pass a \.csv or \.npy file .*trained on table rows",
                 id="folder-to-table-run"),
    pytest.param(lambda t, r: (r["table"], _good(t, r)), {}, ValueError,
                 r"good\.png is an image; pass a \.csv or \.npy file", id="image-to-table-run"),
    pytest.param(_old_run, {}, ValueError, r"older clss that did not record its image preprocessing",
                 id="run-without-recorded-preprocessing"),
    pytest.param(lambda t, r: (r["image"], _list(t, [str(t / "gone.png")])), {"skip_bad": True}, ValueError,
                 r"none of the 1 image files could be predicted; the first: missing file",
                 id="all-bad-skipped"),
]


def _cli_args(kwargs: dict, tmp: Path) -> list[str]:
    args = []
    for key, value in kwargs.items():
        flag = "--" + key.replace("_", "-")
        args += [flag] if value is True else [flag, str(tmp if value == "." else value)]
    return args


@pytest.mark.parametrize(("make", "kwargs", "error", "message"), CASES)
def test_predict_images_file_refuses_bad_input(runs, tmp_path, make, kwargs, error, message):
    run, src = make(tmp_path, runs)
    kwargs = dict(kwargs)
    out = tmp_path if kwargs.pop("out", None) == "." else tmp_path / "preds.csv"
    call = predict_file if run == runs["table"] else predict_images_file
    with pytest.raises(error, match=message):
        call(run, src, out, **{k: tmp_path if v == "." else v for k, v in kwargs.items()})
    assert not (tmp_path / "preds.csv").exists()


@pytest.mark.parametrize(("make", "kwargs", "error", "message"), CASES)
def test_clss_predict_refuses_bad_image_input_in_one_line(runs, tmp_path, make, kwargs, error, message):
    run, src = make(tmp_path, runs)
    kwargs = dict(kwargs)
    out = tmp_path if kwargs.pop("out", None) == "." else tmp_path / "preds.csv"
    result = CliRunner().invoke(main, ["predict", str(run), str(src), "--out", str(out), "--workers", "0",
                                       *_cli_args(kwargs, tmp_path)] if run != runs["table"] else
                                ["predict", str(run), str(src), "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in result.output, lines
    assert re.search(message, lines[0]), lines[0]
    assert not (tmp_path / "preds.csv").exists()


OTHER_CLI = [
    pytest.param("table", ["--skip-bad", "--data-root", "."],
                 r"--data-root, --skip-bad apply to runs trained on images", id="image-options-to-table-run"),
    pytest.param("image", ["--id-column", "x"], r"--id-column applies to runs trained on table rows",
                 id="id-column-to-image-run"),
    pytest.param("image", ["--input", "."], r"give the input once", id="input-twice"),
    pytest.param("image", ["--workers", "two"], r"--workers.*must be an integer >= 0 or 'auto'",
                 id="bad-workers"),
    pytest.param("image", ["--batch-size", "0"], r"--batch-size", id="zero-batch"),
]


@pytest.mark.parametrize(("kind", "args", "message"), OTHER_CLI)
def test_clss_predict_refuses_bad_options_in_one_line(runs, tmp_path, kind, args, message):
    src = runs["img"] if kind == "image" else tmp_path / "rows.csv"
    src.parent.mkdir(exist_ok=True)
    result = CliRunner().invoke(main, ["predict", str(runs[kind]), str(src), "--out", str(tmp_path / "p.csv"),
                                       *args])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert re.search(message, result.output), result.output
    assert not (tmp_path / "p.csv").exists()


def test_a_corrupt_file_decoded_in_a_worker_is_named_in_one_line(runs, tmp_path):
    run, src = _truncated(tmp_path, runs)
    result = CliRunner().invoke(main, ["predict", str(run), str(src), "--out", str(tmp_path / "p.csv"),
                                       "--workers", "1"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "cannot decode image" in lines[0] and "trunc.png" in lines[0], lines


PYTHON = [
    pytest.param(lambda p, r: p["image"].predict(np.zeros((2, 3))), ValueError,
                 r"was trained on images; pass image files", id="rows-to-image-predictor"),
    pytest.param(lambda p, r: p["table"].predict_images([str(r["img"] / "0.png")]), ValueError,
                 r"was trained on table rows; pass a CSV", id="images-to-table-predictor"),
    pytest.param(lambda p, r: p["image"].predict_images([]), ValueError, r"no image files to predict",
                 id="no-files"),
    pytest.param(lambda p, r: p["image"].predict_images(str(r["img"] / "0.png")), TypeError,
                 r"files must be a list of image paths; wrap one path in a list",
                 id="one-path-not-in-a-list"),
    pytest.param(lambda p, r: p["image"].predict_images([str(r["img"] / "0.png")], batch_size=0), ValueError,
                 r"batch_size must be an integer >= 1", id="zero-batch"),
    pytest.param(lambda p, r: p["image"].predict_images([str(r["img"] / "0.png")], workers=-1), ValueError,
                 r"workers must be an integer >= 0 or 'auto'", id="negative-workers"),
    pytest.param(lambda p, r: p["image"].predict_images([str(r["img"] / "0.png")], y_true=[1.0, 2.0]),
                 ValueError, r"y_true has 2 values for 1 image files", id="y-true-length"),
    pytest.param(lambda p, r: predict_file(p["image"], r["img"] / "0.png"), ValueError,
                 r"was trained on images", id="predict-file-on-image-run"),
]


@pytest.mark.parametrize(("call", "error", "message"), PYTHON)
def test_predictor_refuses_the_wrong_kind_and_bad_settings(runs, call, error, message):
    predictors = {k: load_predictor(runs[k]) for k in ("image", "table")}
    with pytest.raises(error, match=message):
        call(predictors, runs)
