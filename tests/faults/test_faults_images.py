"""Fault suite for image data: bad and extreme inputs to every public entry point of the image layer
(ImagePreprocessing, ImageDataset, ArrayImageDataset, the view-pipeline builders, load_image_csv,
load_digits_rotation), each with the error type and a phrase of its one-line message."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
from PIL import Image

from clss.data import ArrayImageDataset, ImageDataset, ImagePreprocessing, ImageReadError, load_image_csv
from clss.data.augment import build_pipelines, strong_pipeline, weak_pipeline
from clss.data.digits import load_digits_rotation

P = pytest.param

# ---------------------------------------------------------------------------------------- ImagePreprocessing
PREPROCESSING_CASES = [
    P({"channels": 2}, ValueError, r"channels must be 1 \(grayscale\) or 3", id="two channels"),
    P({"channels": 4}, ValueError, "channels must be 1", id="four channels"),
    P({"channels": True}, ValueError, "channels must be 1", id="bool channels"),
    P({"order": "rgba"}, ValueError, "order must be 'rgb' or 'bgr'", id="unknown order"),
    P({"order": "bgr", "channels": 1}, ValueError, "order='bgr' needs channels=3", id="bgr gray"),
    P({"resize": 0}, ValueError, "resize must hold positive integer sizes", id="resize 0"),
    P({"resize": (-1, 5)}, ValueError, "resize must hold positive integer sizes", id="negative resize"),
    P({"resize": (1.5, 2)}, ValueError, "resize must hold positive integer sizes", id="float resize"),
    P({"resize": "big"}, ValueError, r"resize must be None, a size S or a pair \(H, W\)", id="text resize"),
    P({"resize": (1, 2, 3)}, ValueError, "resize must be None, a size S or a pair", id="three sizes"),
    P({"crop": (0, 4)}, ValueError, "crop must hold positive integer sizes", id="crop 0"),
    P({"resize": 8, "crop": 9}, ValueError, r"crop \(9, 9\) does not fit in the resized image \(8, 8\)",
      id="crop too big"),
    P({"normalize": "zscore"}, ValueError, "normalize must be one of", id="unknown normalisation"),
    P({"estimate_images": 0}, ValueError, "estimate_images must be an integer >= 1", id="no estimate images"),
    P({"estimate_seed": -1}, ValueError, "estimate_seed must be a non-negative integer", id="negative seed"),
    P({"mean": (0.5, 0.5, 0.5)}, ValueError, "give mean and std together", id="mean without std"),
    P({"mean": (0.5,), "std": (0.2,)}, ValueError, r"mean and std need 3 values \(one per channel\), got 1",
      id="short mean"),
    P({"mean": (0.5, 0.5, 0.5), "std": (0.2, 0.0, 0.2)}, ValueError, "std finite and > 0", id="zero std"),
    P({"mean": (0.5, float("nan"), 0.5), "std": (0.2,) * 3}, ValueError, "mean must be finite",
      id="nan mean"),
    P({"mean": (0.5,) * 3, "std": (0.2, float("inf"), 0.2)}, ValueError, "std finite", id="inf std"),
]


@pytest.mark.parametrize(("kw", "error", "match"), PREPROCESSING_CASES)
def test_image_preprocessing_refuses(kw: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        ImagePreprocessing(**kw)


def test_preprocessing_from_dict_refuses_unknown_keys() -> None:
    with pytest.raises(ValueError, match=r"unknown image preprocessing keys \['size'\]"):
        ImagePreprocessing.from_dict({"size": 224})


def test_normalise_needs_estimated_statistics() -> None:
    import torch

    with pytest.raises(ValueError, match="not estimated yet"):
        ImagePreprocessing(normalize="estimate").normalise(torch.zeros(3, 2, 2))


# ----------------------------------------------------------------------------------------------- ImageDataset
@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / "b.jpg")
    Image.fromarray(rng.integers(0, 256, (9, 8, 3), dtype=np.uint8)).save(tmp_path / "tall.png")
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    good = (tmp_path / "b.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(good[: len(good) // 3])
    (tmp_path / "empty.png").write_bytes(b"")
    return tmp_path


R8 = ImagePreprocessing(resize=8)
DATASET_CASES = [
    P(["a.png"], [1.0, 2.0], R8, {}, ValueError, "1 image paths but 2 targets", id="length mismatch"),
    P([], [], R8, {}, ValueError, "needs at least one image", id="no images"),
    P(["a.png"], [1.0], {"resize": 8}, {}, TypeError, "preprocessing must be an ImagePreprocessing",
      id="dict preprocessing"),
    P(["a.png"], [1.0], R8, {"sources": ["x", "y"]}, ValueError, "2 sources for 1 images", id="sources"),
    P(["a.png", "nope.png"], [1.0, 2.0], R8, {}, FileNotFoundError, r"1 of 2 image files are missing.*nope",
      id="missing file"),
    P(["a.png", "."], [1.0, 2.0], R8, {}, FileNotFoundError, "missing \\(or not files\\)", id="a folder"),
    P(["a.png", "tall.png"], [1.0, 2.0], ImagePreprocessing(), {}, ValueError,
      "images differ in size.*set a resize", id="mixed native sizes"),
    P(["a.png", "junk.png"], [1.0, 2.0], ImagePreprocessing(), {}, ImageReadError,
      "cannot read image .*junk.png", id="unreadable header, native size"),
    P(["empty.png"], [1.0], ImagePreprocessing(), {}, ImageReadError, "cannot read image .*empty.png",
      id="empty file, native size"),
    P(["a.png"], [1.0], ImagePreprocessing(crop=9), {}, ValueError, r"crop \(9, 9\) does not fit in images",
      id="crop beyond native size"),
]


@pytest.mark.parametrize(("paths", "targets", "prep", "kw", "error", "match"), DATASET_CASES)
def test_image_dataset_refuses(files, paths, targets, prep, kw, error, match) -> None:
    with pytest.raises(error, match=match):
        ImageDataset(files, paths, targets, prep, **kw)


@pytest.mark.parametrize("bad", ["junk.png", "cut.jpg", "empty.png"])
def test_corrupt_bytes_stop_loading_with_the_file_named(files, bad) -> None:
    ds = ImageDataset(files, ["a.png", bad], [1.0, 2.0], R8)
    with pytest.raises(ImageReadError, match=rf"cannot decode image .*{bad}"):
        ds[1]


def test_a_file_deleted_after_construction_is_named(files) -> None:
    ds = ImageDataset(files, ["a.png", "b.jpg"], [1.0, 2.0], R8)
    os.remove(files / "b.jpg")
    with pytest.raises(FileNotFoundError, match=r"disappeared after the dataset was built: .*b\.jpg"):
        ds[1]


ARRAY_CASES = [
    P(np.zeros((2, 8)), [1.0, 2.0], {"channels": 1}, ValueError, r"needs images \[n, C, H, W\]", id="2-D"),
    P(np.zeros((2, 1, 4, 4)), [1.0], {"channels": 1}, ValueError, "and n targets", id="length mismatch"),
    P(np.full((2, 1, 4, 4), 2.0), [1.0, 2.0], {"channels": 1}, ValueError, r"on the \[0, 1\] scale",
      id="values above 1"),
    P(np.full((2, 1, 4, 4), np.nan), [1.0, 2.0], {"channels": 1}, ValueError, "must be finite", id="NaN"),
    P(np.zeros((2, 1, 4, 4)), [1.0, 2.0], {"channels": 3}, ValueError, "1 channels, the preprocessing 3",
      id="channel mismatch"),
    P(np.zeros((2, 1, 4, 4)), [1.0, 2.0], {"channels": 1, "resize": 2}, ValueError, "leave resize, crop",
      id="resize in memory"),
]


@pytest.mark.parametrize(("images", "targets", "prep", "error", "match"), ARRAY_CASES)
def test_array_image_dataset_refuses(images, targets, prep, error, match) -> None:
    with pytest.raises(error, match=match):
        ArrayImageDataset(images, targets, ImagePreprocessing(**prep))


# ---------------------------------------------------------------------------------------------- pipelines
PREP = ImagePreprocessing(normalize="imagenet")
PIPELINE_CASES = [
    P(weak_pipeline, ("translate",), {"pad": -1}, ValueError, "pad must be an integer >= 0",
      id="negative pad"),
    P(weak_pipeline, ("translate",), {"pad": True}, ValueError, "pad must be an integer", id="bool pad"),
    P(weak_pipeline, ("translate",), {"pad": 2, "hflip": True}, ValueError, "hflip would change the target",
      id="flip of an angle"),
    P(weak_pipeline, (), {"pad": 2}, ValueError, "translate would change the target", id="no invariance"),
    P(weak_pipeline, ("spin",), {"pad": 0}, ValueError, r"unknown geometric ops \['spin'\]", id="unknown op"),
    P(weak_pipeline, "translate", {"pad": 0}, TypeError, "must be a sequence of op names", id="string"),
    P(strong_pipeline, ("rotate",), {"pad": 0, "ops": ("rotate",)}, ValueError, "are geometric",
      id="rotate in strong ops"),
    P(strong_pipeline, (), {"pad": 0, "ops": ("blur",)}, ValueError, "non-empty selection", id="unknown op"),
    P(strong_pipeline, (), {"pad": 0, "ops": ()}, ValueError, "non-empty selection", id="no ops"),
    P(strong_pipeline, (), {"pad": 0, "num_ops": 0}, ValueError, "num_ops must be an integer >= 1",
      id="zero ops"),
    P(strong_pipeline, (), {"pad": 0, "magnitude": 1.5}, ValueError, r"magnitude must lie in \[0, 1\]",
      id="magnitude"),
    P(strong_pipeline, (), {"pad": 0, "cutout": -0.1}, ValueError, r"cutout must lie in \[0, 1\]",
      id="cutout"),
    P(strong_pipeline, (), {"pad": 0, "magnitude": float("nan")}, ValueError, "magnitude must lie",
      id="NaN magnitude"),
]


@pytest.mark.parametrize(("builder", "invariant", "kw", "error", "match"), PIPELINE_CASES)
def test_pipeline_builders_refuse(builder, invariant, kw, error, match) -> None:
    with pytest.raises(error, match=match):
        builder(invariant, PREP, **kw)


def test_build_pipelines_refuses_a_forbidden_flip_and_unresolved_statistics() -> None:
    with pytest.raises(ValueError, match="hflip would change the target"):
        build_pipelines(("translate",), PREP, (3, 8, 8), hflip=True)
    with pytest.raises(ValueError, match="not estimated yet"):
        build_pipelines(("translate",), ImagePreprocessing(normalize="estimate"), (3, 8, 8))


# ---------------------------------------------------------------------------------------------- image-csv
def _tree(root) -> None:
    (root / "img").mkdir()
    for i in range(6):
        Image.fromarray(np.full((6, 6, 3), 40 * i, np.uint8)).save(root / "img" / f"{i}.png")


ROWS = [f"img/{i}.png,{i}.5" for i in range(6)]
SPLIT = [f"img/{i}.png,{i}.5,{s}" for i, s in enumerate(["train", "train", "train", "train", "val", "test"])]


def _swap(rows: list[str], i: int, row: str) -> list[str]:
    out = list(rows)
    out[i] = row
    return out


CSV_CASES = [
    P(["path,target", *_swap(SPLIT, 4, "img/4.png,,val")], ["path,target,split"], {}, ValueError,
      r"lines \[6\] are in the val/test split but have no target", id="empty val target"),
    P(["path,target,split", *_swap(SPLIT, 5, "img/5.png,NaN,test")], None, {}, ValueError,
      r"lines \[7\] are in the val/test split but have no target", id="NaN test target"),
    P(["path,target", *_swap(ROWS, 2, "img/2.png,abc")], None, {}, ValueError,
      r"values that are not numbers, e.g. \['abc'\] on lines \[4\]", id="text target cell"),
    P(["path,target", *[f"img/{i}.png,v{i}" for i in range(6)]], None, {}, ValueError,
      "target column 'target' is not numeric", id="text target column"),
    P(["path,target", *_swap(ROWS, 1, "img/1.png,inf")], None, {}, ValueError,
      r"infinite values on lines \[3\]", id="infinite target"),
    P(["path,target", *[f"img/{i}.png," for i in range(6)]], None, {}, ValueError, "no row has a target",
      id="no target at all"),
    P(["path,target", *_swap(ROWS, 3, "../outside.png,1")], None, {}, ValueError,
      r"lines \[5\] name files outside the data root .*'\.\./outside\.png'.*--data-root", id="dot-dot path"),
    P(["path,target", *_swap(ROWS, 0, "/etc/hostname,1")], None, {}, ValueError,
      r"lines \[2\] name files outside the data root", id="absolute path elsewhere"),
    P(["path,target", *_swap(ROWS, 2, "img/escape.png,1")], None, {}, ValueError,
      r"lines \[4\] name files outside the data root", id="symlink escape"),
    P(["path,target", *_swap(ROWS, 1, ",1")], None, {}, ValueError, r"lines \[3\] have an empty path",
      id="empty path"),
    P(["path,target", *_swap(ROWS, 1, "img/none.png,1")], None, {}, FileNotFoundError,
      r"1 of \d image files are missing.*none.png", id="missing image"),
    P(["file,target", *ROWS], None, {}, ValueError, "no image path column 'path'", id="no path column"),
    P(["path,age", *ROWS], None, {}, ValueError, "no target column 'target'", id="no target column"),
    P(["path,target,split", *_swap(SPLIT, 0, "img/0.png,1,dev")], None, {}, ValueError,
      r"has values \['dev'\] \(lines \[2\]\); use train/val/test", id="bad split value"),
    P(["path,target,split,labeled", *[r + (",1" if i < 4 else ",") for i, r in enumerate(SPLIT)]], None,
      {}, None, None, id="labeled column loads"),
    P(["path,target,split,labeled", *[r + (",yes" if i < 4 else ",") for i, r in enumerate(SPLIT)]], None,
      {}, ValueError, r"column 'labeled' must be 1 or 0 on every training row; lines \[2, 3, 4, 5\]",
      id="labeled yes"),
    P(["path,target,split,labeled",
       *[r + (",1" if i < 4 else ",") for i, r in enumerate(_swap(SPLIT, 1, "img/1.png,,train"))]], None, {},
      ValueError, r"lines \[3\] are marked labeled=1 but have no target", id="labeled without target"),
    P(["path,target,split,labeled", *[r + (",0" if i < 4 else ",") for i, r in enumerate(SPLIT)]], None,
      {}, ValueError, "no training row has labeled=1", id="nothing labeled"),
    P(["path,target", *ROWS[:2]], None, {}, ValueError, "too few for a", id="two rows"),
    P(["path,target", *ROWS], None, {"invariant_to": ("twirl",)}, ValueError, "unknown geometric ops",
      id="unknown invariance"),
    P(["path,target", *ROWS], None, {"preprocessing": {"size": 3}}, ValueError,
      "unknown image preprocessing keys", id="bad preprocessing"),
    P(["path,target", *ROWS], None, {"data_root": "missing-folder"}, FileNotFoundError,
      r"data root .*missing-folder is not a folder \(--data-root", id="data root missing"),
    P(["path,target", *ROWS], None, {"val_size": 0.9}, ValueError, "need 0 < val_size", id="val size"),
]


@pytest.mark.parametrize(("lines", "header", "kw", "error", "match"), CSV_CASES)
def test_image_csv_refuses(tmp_path, lines, header, kw, error, match) -> None:
    _tree(tmp_path)
    outside = tmp_path.parent / f"{tmp_path.name}-outside.png"
    Image.fromarray(np.zeros((6, 6, 3), np.uint8)).save(outside)
    os.symlink(outside, tmp_path / "img" / "escape.png")
    if header is not None:
        lines = [*header, *lines[1:]]
    csv = tmp_path / "labels.csv"
    csv.write_text("\n".join(lines) + "\n")
    if "data_root" in kw:
        kw = {**kw, "data_root": tmp_path / kw["data_root"]}
    if error is None:
        data = load_image_csv(csv, **kw)
        np.testing.assert_array_equal(data.labeled, [0, 1, 2, 3])
        return
    with pytest.raises(error, match=match):
        load_image_csv(csv, **kw)


def test_image_csv_missing_file_is_named() -> None:
    with pytest.raises(FileNotFoundError, match="CSV file not found"):
        load_image_csv("/nonexistent/labels.csv")


# ---------------------------------------------------------------------------------------- digits-rotation
@pytest.mark.parametrize(("kw", "match"), [
    P({"seed": -1}, "seed must be a non-negative integer", id="negative seed"),
    P({"angle_seed": -2}, "angle_seed must be a non-negative integer", id="negative angle seed"),
    P({"val_size": 0.5, "test_size": 0.5}, "val_size \\+ test_size < 1", id="no training rows"),
])
def test_digits_rotation_refuses(kw, match) -> None:
    with pytest.raises(ValueError, match=match):
        load_digits_rotation(**kw)
