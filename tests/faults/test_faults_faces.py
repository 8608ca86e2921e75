"""Fault suite for the face-age datasets: bad and extreme inputs to the split-file readers, the offset check,
the split regeneration, manifests, the data check, the loaders and ``clss data``; each row names the error
type and a phrase of its message. Inputs are real files written to ``tmp_path``."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from clss.data.face_files import label_offset, read_index, scan_utkface, ssl_flags
from clss.data.faces import load_face_dataset, write_agedb_split_files
from clss.data.images import ImageReadError
from clss.data.manifest import check_data, load_manifest, manifest_from_dict
from clss_cli.main import main

UTK = "index,Unnamed: 0,FileName,age,SPLIT,SSL_SPLIT"
NAME = "30_0_0_20170101000000001.jpg.chip.jpg"


def _csv(tmp: Path, text: str, name: str = "f.csv") -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def _filelist(tmp: Path, *rows: str) -> Path:
    return _csv(tmp, "\n".join([UTK, *rows]) + "\n")


# ---------------------------------------------------------------------------------- split-file readers

READ_CASES = [
    pytest.param(lambda t: read_index(_filelist(t, f"0,0,{NAME},30,TRAIN,LABELED"), "xlsx"),
                 ValueError, r"index format must be one of \['filelist', 'dir-csv', 'rankup-meta', 'adience",
                 id="unknown format"),
    pytest.param(lambda t: read_index(_csv(t, "file_name,label\na.jpg,3\n"), "rankup-meta"),
                 ValueError, "split= is required for", id="rankup meta without split"),
    pytest.param(lambda t: read_index(_filelist(t, f"0,0,{NAME},30,TRAIN,LABELED"), "filelist",
                                      split="train"),
                 ValueError, "refused for the others", id="split for a filelist"),
    pytest.param(lambda t: read_index(_csv(t, "filename,age\na.jpg,3\n"), "order-list"),
                 ValueError, "no 'fold' column and no 'database' column naming the splits",
                 id="order list without a split"),
    pytest.param(lambda t: read_index(_csv(t, "filename,age,fold\na.jpg,3,dev\n"), "order-list"),
                 ValueError, r"line 2: fold 'dev' is not one of \['train', 'val', 'test'\]",
                 id="order list with a bad fold"),
    pytest.param(lambda t: read_index(_csv(t, "filename,age\n../a.jpg,3\n"), "order-list", split="train"),
                 ValueError, "line 2: image path '../a.jpg' is outside the data root",
                 id="order list escape"),
    pytest.param(lambda t: read_index(_csv(t, ",file,age\n1,a.jpg,x\n"), "coral-csv", split="test"),
                 ValueError, "line 2: label 'age' is 'x', not a number", id="coral csv bad age"),
    pytest.param(lambda t: read_index(_csv(t, "file_name,label\na.jpg,3\n"), "rankup-meta", split="dev"),
                 ValueError, r"split must be one of \['train', 'val', 'test'\]", id="unknown split name"),
    pytest.param(lambda t: read_index(_csv(t, "Name,age,SPLIT\na.jpg,3,TRAIN\n"), "filelist"),
                 ValueError, "no file name column 'FileName'", id="missing FileName"),
    pytest.param(lambda t: read_index(_csv(t, "FileName,years,SPLIT\na.jpg,3,TRAIN\n"), "filelist"),
                 ValueError, "no label column 'age'", id="missing label column"),
    pytest.param(lambda t: read_index(_filelist(t, f"0,0,{NAME},30,TRAIN,LABELED",
                                                f"1,1,{NAME},30,DEV,EXCLUDE"), "filelist"),
                 ValueError, r"line 3: SPLIT 'DEV' is not one of \['TRAIN', 'VAL', 'TEST'\]", id="bad SPLIT"),
    pytest.param(lambda t: read_index(_filelist(t, f"0,0,{NAME},30,TRAIN,LABELLED"), "filelist"),
                 ValueError, "line 2: SSL_SPLIT 'LABELLED' is not one of", id="bad SSL_SPLIT"),
    pytest.param(lambda t: read_index(_filelist(t, f"0,0,{NAME},,TRAIN,LABELED"), "filelist"),
                 ValueError, "line 2: label 'age' is missing or not finite", id="empty label"),
    pytest.param(lambda t: read_index(_filelist(t, f"0,0,{NAME},nan,TRAIN,LABELED"), "filelist"),
                 ValueError, "line 2: label 'age' is missing or not finite", id="NaN label"),
    pytest.param(lambda t: read_index(_filelist(t, f"0,0,{NAME},inf,TRAIN,LABELED"), "filelist"),
                 ValueError, "line 2: label 'age' is missing or not finite", id="infinite label"),
    pytest.param(lambda t: read_index(_filelist(t, f"0,0,{NAME},30,TRAIN,LABELED", f"1,1,{NAME},3O,TRAIN,X"),
                                      "filelist"),
                 ValueError, "line 3: label 'age' is '3O', not a number", id="typo in a label"),
    pytest.param(lambda t: read_index(_csv(t, "age,path,split\n3,AgeDB/../../etc/passwd,train\n"), "dir-csv"),
                 ValueError, "line 2: image path 'AgeDB/../../etc/passwd' is outside the data root",
                 id="path leaves the root"),
    pytest.param(lambda t: read_index(_csv(t, "age,path,split\n3,AgeDB/a.jpg,train\n3,/etc/a.jpg,test\n"),
                                      "dir-csv"),
                 ValueError, "line 3: image path '/etc/a.jpg' is outside", id="absolute path"),
    pytest.param(lambda t: read_index(_csv(t, "age,path,split\n3,C:\\x\\a.jpg,train\n"), "dir-csv"),
                 ValueError, "is outside the data root", id="windows drive path"),
    pytest.param(lambda t: read_index(_csv(t, "age,path,split\n3,AgeDB/a.jpg,Train\n"), "dir-csv"),
                 ValueError, "line 2: split 'Train' is not one of", id="split in the wrong case"),
    pytest.param(lambda t: read_index(t / "absent.csv", "dir-csv"),
                 FileNotFoundError, "CSV file not found", id="missing file"),
    pytest.param(lambda t: read_index(_csv(t, ""), "dir-csv"), ValueError, "is empty", id="empty file"),
    pytest.param(lambda t: scan_utkface(t / "UTKFace"),
                 FileNotFoundError, "UTKFace image folder not found", id="scan of a missing folder"),
]


@pytest.mark.parametrize(("call", "error", "match"), READ_CASES)
def test_reader_faults(tmp_path: Path, call: Callable[[Path], Any], error: type[Exception],
                       match: str) -> None:
    with pytest.raises(error, match=match):
        call(tmp_path)


# --------------------------------------------------------------------------- offsets and regeneration

OFFSET_CASES = [
    pytest.param([("notes.jpg", 30)], (21,), "1 file name\\(s\\) do not start with the age .*lines 2",
                 id="name without an age"),
    pytest.param([(NAME, 25)], (21,), r"differs .* by 5.0 .*known offset\(s\) \[21\]", id="unknown offset"),
    pytest.param([(NAME, 9), (NAME, 30)], (21,), "cannot be corrected safely", id="mixed offsets"),
    pytest.param([(NAME, 9)], (), "cannot be corrected safely", id="no offset allowed"),
    pytest.param([(NAME, 30.5)], (21,), "by -0.5", id="fractional label"),
]


@pytest.mark.parametrize(("rows", "known", "match"), OFFSET_CASES)
def test_label_offset_faults(tmp_path: Path, rows: list[tuple[str, float]], known: tuple[int, ...],
                             match: str) -> None:
    path = _csv(tmp_path, "FileName,age,SPLIT\n" + "".join(f"{n},{a},TRAIN\n" for n, a in rows))
    with pytest.raises(ValueError, match=match):
        label_offset(read_index(path, "filelist"), known)


def _base(tmp: Path):
    return read_index(_csv(tmp, "age,path,split\n1,AgeDB/a.jpg,train\n2,AgeDB/b.jpg,train\n"
                                "3,AgeDB/c.jpg,train\n4,AgeDB/d.jpg,val\n"), "dir-csv")


@pytest.mark.parametrize(("kw", "match"), [
    pytest.param({"n_labeled": 0}, r"n_labeled must be an integer in \[1, 3\]", id="no labels"),
    pytest.param({"n_labeled": 4}, r"in \[1, 3\] .*got 4", id="more labels than TRAIN rows"),
    pytest.param({"n_labeled": True}, "got True", id="bool count"),
    pytest.param({"n_labeled": 2.0}, "got 2.0", id="float count"),
    pytest.param({"n_labeled": 2, "rest": "unlabeled"}, "rest must be 'EXCLUDE' or 'UNLABELED'",
                 id="bad rest"),
])
def test_ssl_flags_faults(tmp_path: Path, kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ssl_flags(_base(tmp_path), **kw)


def test_ssl_flags_extreme_all_train_rows_labelled(tmp_path: Path) -> None:
    assert ssl_flags(_base(tmp_path), 3).tolist() == ["LABELED"] * 3 + ["EXCLUDE"]


# ------------------------------------------------------------------------------------------ manifests

GOOD = {"name": "m", "version": 1, "source": {}, "citation": [], "protocol": {}, "reference_results": {},
        "files": [{"path": "a.csv", "format": "dir-csv", "sha256": None}]}


def _with(**changes: Any) -> dict[str, Any]:
    out = {**GOOD, **changes}
    return {k: v for k, v in out.items() if v is not ...}


def _file(**changes: Any) -> dict[str, Any]:
    return _with(files=[{**GOOD["files"][0], **changes}])


MANIFEST_CASES = [
    pytest.param([1, 2], "the file must be a mapping", id="a list"),
    pytest.param(_with(source=...), r"missing fields \['source'\]", id="missing source"),
    pytest.param(_with(name=""), "name must be a non-empty string", id="empty name"),
    pytest.param(_with(version=0), "version must be an integer >= 1, got 0", id="version 0"),
    pytest.param(_with(version=True), "version must be an integer >= 1, got True", id="bool version"),
    pytest.param(_with(source="web"), "source must be a mapping", id="source not a mapping"),
    pytest.param(_with(citation="a paper"), "citation must be a list of strings", id="citation string"),
    pytest.param(_with(files=[]), "files must be a non-empty list", id="no files"),
    pytest.param(_with(files=["a.csv"]), r"files\[0\] must be a mapping", id="file not a mapping"),
    pytest.param(_file(sha256="ab9f8d4c"), r"files\[0\].sha256 must be 64 lower-case hex digits or null",
                 id="sha256 prefix"),
    pytest.param(_file(sha256="AB" * 32), "64 lower-case hex digits", id="upper-case sha256"),
    pytest.param(_file(format="xlsx"), r"files\[0\].format must be one of", id="bad format"),
    pytest.param(_file(format="rankup-meta"), r"files\[0\].split is required for rankup-meta and coral-csv",
                 id="rankup meta without split"),
    pytest.param(_file(format="coral-csv"), r"files\[0\].split is required for rankup-meta and coral-csv",
                 id="coral csv without split"),
    pytest.param(_file(split="train"), "refused for the others", id="split on a csv"),
    pytest.param(_file(format="order-list", split="all"), "order-list files .* got 'all'",
                 id="order list with a bad split"),
    pytest.param(_file(path="/data/a.csv"), r"files\[0\].path must be a path relative to the data root",
                 id="absolute path"),
    pytest.param(_file(path="../a.csv"), "no '..'", id="parent path"),
    pytest.param(_file(path=3), "must be a path relative", id="path not a string"),
    pytest.param(_file(image_dir="/img"), r"files\[0\].image_dir must be a path relative",
                 id="absolute image dir"),
    pytest.param(_file(labels=0), r"files\[0\].labels must be an integer >= 1, got 0", id="zero labels"),
    pytest.param(_file(label_offset=-21), r"label_offset must be an integer >= 0", id="negative offset"),
    pytest.param(_file(label_offset=21), r"label_offset 21, which is not in label.known_offsets \[\]",
                 id="offset not declared"),
    pytest.param(_with(files=[GOOD["files"][0]] * 2), r"files lists \['a.csv'\] more than once",
                 id="duplicate"),
    pytest.param(_with(splits={"dev": 3}), "splits keys must be among", id="unknown split"),
    pytest.param(_with(splits={"train": 0}), "splits.train must be an integer >= 1, got 0", id="empty split"),
    pytest.param(_with(splits=[1, 2]), "splits must be a mapping", id="splits a list"),
    pytest.param(_with(label={"range": [60, 21]}), r"label.range must be \[low, high\]", id="reversed range"),
    pytest.param(_with(label={"range": [21]}), r"label.range must be \[low, high\]", id="short range"),
    pytest.param(_with(label={"range": ["a", 3]}), r"label.range must be", id="text range"),
    pytest.param(_with(label={"known_offsets": 21}), "label.known_offsets must be a list", id="offsets int"),
    pytest.param(_with(label={"known_offsets": [0]}), r"label.known_offsets\[\] must be an integer >= 1",
                 id="zero known offset"),
    pytest.param(_with(label={"check_names": "yes"}), "label.check_names must be true or false",
                 id="text bool"),
    pytest.param(_with(images={"count": 3}), "images.folder must be a path relative", id="images no folder"),
    pytest.param(_with(images={"folder": "AgeDB", "count": 0}), "images.count must be an integer >= 1",
                 id="zero images"),
    pytest.param(_with(images={"folder": "AgeDB", "naming": "agedb"}), "images.naming must be 'utkface'",
                 id="unknown naming"),
]


@pytest.mark.parametrize(("values", "match"), MANIFEST_CASES)
def test_manifest_faults(values: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        manifest_from_dict(values)


@pytest.mark.parametrize(("write", "error", "match"), [
    pytest.param(None, FileNotFoundError, "manifest not found", id="missing file"),
    pytest.param("dir", ValueError, "is a directory; pass a .yaml file", id="a directory"),
    pytest.param("name: [unclosed\n", ValueError, "is not a readable YAML file", id="bad YAML"),
    pytest.param(b"\xff\xfe\x00", ValueError, "is not a readable YAML file", id="binary"),
    pytest.param("", ValueError, "the file must be a mapping", id="empty file"),
])
def test_load_manifest_faults(tmp_path: Path, write: Any, error: type[Exception], match: str) -> None:
    path = tmp_path / "m.yaml"
    if write == "dir":
        path.mkdir()
    elif isinstance(write, bytes):
        path.write_bytes(write)
    elif write is not None:
        path.write_text(write)
    with pytest.raises(error, match=match):
        load_manifest(path)


def test_check_data_of_a_file_the_manifest_does_not_list(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"manifest 'm' lists no file 'b.csv'; it lists \['a.csv'\]"):
        check_data(manifest_from_dict(GOOD), tmp_path, files=["b.csv"])


def test_check_data_of_a_file_as_root_is_a_problem_not_an_error(tmp_path: Path) -> None:
    report = check_data(manifest_from_dict(GOOD), _csv(tmp_path, "x"))
    assert not report.ok and report.problems[0].detail == "not a folder"


# ------------------------------------------------------------------------------------------- loaders


def _agedb(tmp: Path, n_train: int = 3) -> tuple[Path, Any]:
    """A minimal AgeDB-DIR copy and a manifest object with its counts and checksum."""
    root = tmp / "agedb"
    (root / "AgeDB").mkdir(parents=True)
    rows = [(f"{i}_P_{20 + i}_m.jpg", 20 + i, "train" if i < n_train else "val" if i == n_train else "test")
            for i in range(n_train + 2)]
    rng = np.random.default_rng(0)
    for name, _, _ in rows:
        Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).save(root / "AgeDB" / name, "JPEG")
    (root / "agedb.csv").write_text("age,path,split\n" + "".join(f"{a},AgeDB/{n},{s}\n" for n, a, s in rows))
    sha = hashlib.sha256((root / "agedb.csv").read_bytes()).hexdigest()
    manifest = manifest_from_dict(_with(files=[{"path": "agedb.csv", "format": "dir-csv", "sha256": sha}],
                                        splits={"train": n_train, "val": 1, "test": 1}))
    return root, manifest


LOAD_CASES = [
    pytest.param({"name": "imdb-wiki"}, ValueError,
                 r"unknown face dataset 'imdb-wiki'; available: \['adience', 'agedb", id="unknown dataset"),
    pytest.param({"name": "utkface"}, ValueError, r"give data_root \(--data-root DIR\)", id="no data root"),
    pytest.param({"name": "utkface", "data_root": ".", "labels": 334}, ValueError,
                 r"labels=334 has no published split file; available: \[333, 500, 1000\]",
                 id="unpublished count"),
    pytest.param({"name": "agedb-dir", "data_root": ".", "labels": True}, ValueError,
                 "labels=True has no published split file", id="bool labels"),
    pytest.param({"name": "utkface", "data_root": "EMPTY"}, ValueError,
                 r"does not match the utkface manifest: FileList_ssl_333_0.csv: missing"
                 r".*clss data check utkface",
                 id="empty data root"),
    pytest.param({"name": "agedb-dir", "data_root": "ABSENT"}, ValueError, "data root: does not exist",
                 id="absent data root"),
]


@pytest.mark.parametrize(("kw", "error", "match"), LOAD_CASES)
def test_load_face_dataset_faults(tmp_path: Path, kw: dict[str, Any], error: type[Exception],
                                  match: str) -> None:
    kw = dict(kw)
    if kw.get("data_root") == "EMPTY":
        kw["data_root"] = tmp_path
    elif kw.get("data_root") == "ABSENT":
        kw["data_root"] = tmp_path / "absent"
    with pytest.raises(error, match=match):
        load_face_dataset(**kw)


def test_corrupt_image_bytes_are_named_when_decoded(tmp_path: Path) -> None:
    root, manifest = _agedb(tmp_path)
    bad = root / "AgeDB" / "1_P_21_m.jpg"
    bad.write_bytes(b"\xff\xd8\xff" + b"\x00" * 40)  # a JPEG header and nothing else
    splits = load_face_dataset("agedb-dir-rgb", data_root=root, manifest=manifest)  # fixed statistics
    splits.train[0]
    with pytest.raises(ImageReadError, match=r"cannot decode image .*1_P_21_m.jpg"):
        splits.train[1]


def test_corrupt_image_among_the_estimate_images_stops_the_load(tmp_path: Path) -> None:
    root, manifest = _agedb(tmp_path)
    (root / "AgeDB" / "2_P_22_m.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ImageReadError, match=r"2_P_22_m.jpg"):
        load_face_dataset("agedb-dir", data_root=root, manifest=manifest)


def test_a_single_training_row_loads(tmp_path: Path) -> None:
    root, manifest = _agedb(tmp_path, n_train=1)
    splits = load_face_dataset("agedb-dir", data_root=root, manifest=manifest)
    assert len(splits.train) == 1 and np.isfinite(splits.train.preprocessing.std).all()


def test_make_splits_without_agedb_csv(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"agedb.csv: missing: expected the file at"):
        write_agedb_split_files(tmp_path)


# ----------------------------------------------------------------------------------------------- CLI


@pytest.mark.parametrize(("args", "phrase"), [
    pytest.param(["data", "check", "agedb-dir"], "Missing option '--data-root'", id="check without root"),
    pytest.param(["data", "check", "DIR", "--data-root", "."], "is a directory; pass a .yaml file",
                 id="manifest is a directory"),
    pytest.param(["data", "check", "nothere.yaml", "--data-root", "."], "manifest not found: nothere.yaml",
                 id="manifest missing"),
    pytest.param(["data", "make-splits", "utkface", "--data-root", "."], "'utkface' is not 'agedb-dir'",
                 id="make-splits of another dataset"),
    pytest.param(["data", "make-splits", "agedb-dir", "--data-root", "."], "agedb.csv: missing",
                 id="make-splits without agedb.csv"),
])
def test_cli_data_faults(tmp_path: Path, args: list[str], phrase: str) -> None:
    args = [str(tmp_path) if a == "DIR" else str(tmp_path) if a == "." else a for a in args]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert phrase in result.output
    assert "Traceback" not in result.output
