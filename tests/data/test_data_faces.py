"""UTKFace and AgeDB-DIR: file names, split files, the age-offset trap, protocols and loading into DataSplits,
on stand-in trees of tiny generated JPEG files with the real names and CSV layouts."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from _faces_tree import (
    AGEDB_LABELS,
    MALFORMED,
    ODD_BUT_AGED,
    UTK_LABELS,
    agedb_tree,
    official_labeled,
    rankup_tree,
    stand_in_manifest,
    utk_tree,
)

from clss.data import load_dataset
from clss.data.face_files import label_offset, name_ages, parse_utkface_name, read_index, scan_utkface
from clss.data.faces import FACE_DATASETS, builtin_manifest, load_face_dataset
from clss.data.manifest import manifest_from_dict

ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------------------ file names


@pytest.mark.parametrize("name, fields", [
    ("35_0_0_20170117175619787.jpg.chip.jpg", (35, 0, 0, "20170117175619787")),
    ("116_1_4_20170120134921760.jpg.chip.jpg", (116, 1, 4, "20170120134921760")),
    ("UTKFace/1_0_2_20161219140530307.jpg.chip.jpg", (1, 0, 2, "20161219140530307")),
])
def test_utkface_names_parse(name, fields):
    p = parse_utkface_name(name)
    assert (p.age, p.gender, p.race, p.datetime) == fields


@pytest.mark.parametrize("name", [
    "61_1_20170109142408075.jpg.chip.jpg",     # no race field (a published name)
    "55_0_0_20170116232725357jpg.chip.jpg",    # missing dot (a published name)
    "24_0_1_20170116220224657 .jpg.chip.jpg",  # space before the extension (a published name)
    "35_2_0_20170117175619787.jpg.chip.jpg",   # gender 2
    "35_0_5_20170117175619787.jpg.chip.jpg",   # race 5
    "35_0_0_20170117175619787.jpg",            # not the aligned-and-cropped archive
    "notes.jpg",
])
def test_malformed_utkface_names_are_none(name):
    assert parse_utkface_name(name) is None


def test_name_ages_read_the_leading_age_of_published_malformed_names():
    ages = name_ages(["UTKFace/" + ODD_BUT_AGED, "24_0_1_20170116220224657 .jpg.chip.jpg", "notes.jpg"])
    assert ages[:2].tolist() == [55.0, 24.0] and np.isnan(ages[2])


def test_scan_skips_malformed_names_with_a_count_and_names(tmp_path):
    rows = utk_tree(tmp_path)
    with pytest.warns(UserWarning, match=r"skipped 3 image\(s\).*61_1_20170109142408075.*notes.jpg"):
        good, bad = scan_utkface(tmp_path / "UTKFace")
    # the published name malformed after its age counts as malformed in a scan
    assert bad == sorted([ODD_BUT_AGED, *MALFORMED])
    assert good == sorted(n for n, _, _ in rows if n != ODD_BUT_AGED)


# ---------------------------------------------------------------------------------------- split files


def test_filelist_reader_keeps_the_real_columns(tmp_path):
    rows = utk_tree(tmp_path)
    t = read_index(tmp_path / "FileList_ssl_333_0.csv", "filelist", image_dir="UTKFace")
    assert t.files.tolist() == [f"UTKFace/{n}" for n, _, _ in rows]
    assert t.labels.tolist() == [a for _, a, _ in rows]
    assert t.counts() == {"train": 14, "val": 4, "test": 5}
    assert t.lines.tolist() == list(range(2, 2 + len(rows)))
    assert set(t.ssl.tolist()) == {"LABELED", "UNLABELED"}
    train_names = [n for n, _, s in rows if s == "TRAIN"]
    flagged = {f.removeprefix("UTKFace/") for f in t.files[t.labeled()]}
    assert flagged == official_labeled(train_names, UTK_LABELS[333])


def test_dir_csv_and_rankup_meta_readers(tmp_path):
    rows = agedb_tree(tmp_path / "agedb")
    t = read_index(tmp_path / "agedb" / "agedb.csv", "dir-csv")
    assert t.files.tolist() == [f"AgeDB/{n}" for n, _, _ in rows] and t.ssl is None
    assert t.counts() == {"train": 10, "val": 4, "test": 4}
    meta = rankup_tree(tmp_path / "utk")
    t = read_index(tmp_path / "utk" / "meta" / "test.csv", "rankup-meta", image_dir="UTKFace", split="test")
    assert t.files.tolist() == [f"UTKFace/{n}" for n, _ in meta["test"]]
    assert t.counts() == {"test": 5} and not t.labeled().any()


# ------------------------------------------------------------------------------------ the offset trap


def test_offset_trap_is_detected_from_the_file_names(tmp_path):
    utk_tree(tmp_path)
    raw = read_index(tmp_path / "FileList_ssl_500_0.csv", "filelist", image_dir="UTKFace")
    shifted = read_index(tmp_path / "FileList_ssl_1000_0.csv", "filelist", image_dir="UTKFace")
    assert label_offset(raw) == 0
    assert label_offset(shifted) == 21
    np.testing.assert_array_equal(shifted.labels + 21, raw.labels)


def test_offset_that_differs_between_rows_is_refused_as_ambiguous(tmp_path):
    utk_tree(tmp_path)
    path = tmp_path / "FileList_ssl_1000_0.csv"
    lines = path.read_text().splitlines()
    cells = lines[5].split(",")
    cells[3] = str(int(cells[3]) + 21)  # one row with the true age, the others shifted
    lines[5] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    table = read_index(path, "filelist", image_dir="UTKFace")
    with pytest.raises(ValueError, match=r"differs from the ages in the file names by 0.0, 21.0 .*line 6"):
        label_offset(table)


def test_an_unknown_constant_offset_is_refused(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text("FileName,age,SPLIT\n30_0_0_20170101000000001.jpg.chip.jpg,25,TRAIN\n")
    with pytest.raises(ValueError, match=r"known offset\(s\) \[21\]"):
        label_offset(read_index(path, "filelist"))


# ------------------------------------------------------------------------------------------ protocols


def _load(name: str, root: Path, tmp_path: Path, **kw):
    manifest = stand_in_manifest(name, root, tmp_path / f"{name}.yaml")
    return load_face_dataset(name, data_root=root, manifest=manifest, **kw)


def _names(ds, rows=None) -> list[str]:
    idx = range(len(ds)) if rows is None else rows
    return [Path(ds.source(int(i))).name for i in idx]


def test_utkface_clss_protocol_loads_the_official_labelled_and_unlabelled_rows(tmp_path):
    root = tmp_path / "utk"
    rows = utk_tree(root)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the 333 file has true ages: no offset warning
        splits = _load("utkface", root, tmp_path, labels=333)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (14, 4, 5)
    train_names = [n for n, _, s in rows if s == "TRAIN"]
    assert _names(splits.train) == train_names
    assert set(_names(splits.train, splits.labeled)) == official_labeled(train_names, 3)
    # unlabelled = every other TRAIN row (the UNLABELED flags of this file), never val/test rows
    assert sorted(splits.labeled.tolist() + splits.unlabeled.tolist()) == list(range(14))
    assert _names(splits.val) == [n for n, _, s in rows if s == "VAL"]
    np.testing.assert_array_equal(splits.test.targets, [a for _, a, s in rows if s == "TEST"])
    assert splits.input.shape == (3, 200, 200)
    prep = splits.meta["preprocessing"]
    assert prep["order"] == "bgr" and prep["resize"] == [200, 200] and prep["normalize"] == "estimate"
    assert len(prep["mean"]) == 3 and splits.train.preprocessing == splits.test.preprocessing
    assert splits.meta["protocol"] == "utkface" and splits.meta["labels"] == 333
    x = splits.train[0]
    assert x.shape == (3, 200, 200) and torch.isfinite(x).all()


def test_utkface_offset_file_is_corrected_with_a_warning(tmp_path):
    root = tmp_path / "utk"
    rows = utk_tree(root)
    with pytest.warns(UserWarning, match=r"true age - 21 .*21 is added to every label"):
        splits = _load("utkface", root, tmp_path, labels=1000)
    np.testing.assert_array_equal(splits.train.targets, [a for _, a, s in rows if s == "TRAIN"])
    assert splits.labeled.size == UTK_LABELS[1000] and splits.unlabeled.size == 14 - UTK_LABELS[1000]
    assert next(iter(splits.meta["label_offsets"].values())) == 21


def test_utkface_without_labels_leaves_the_labelled_draw_to_the_trainer(tmp_path):
    root = tmp_path / "utk"
    utk_tree(root)
    splits = _load("utkface", root, tmp_path)
    assert splits.labeled is None and splits.unlabeled is None and len(splits.train) == 14


def test_utkface_rankup_protocol_validates_on_its_test_split(tmp_path):
    root = tmp_path / "utk"
    meta = rankup_tree(root)
    splits = _load("utkface-rankup", root, tmp_path)
    assert splits.val is splits.test and len(splits.train) == 11 and len(splits.test) == 5
    np.testing.assert_array_equal(splits.train.targets, [a for _, a in meta["train"]])
    assert splits.input.shape == (3, 40, 40)  # 12x10 images resized to RankUp's 40 px
    assert splits.meta["preprocessing"]["order"] == "rgb"
    assert "test split" in splits.meta["validation"]
    with pytest.raises(ValueError, match=r"labels=250 has no published split file.*--labeled"):
        _load("utkface-rankup", root, tmp_path, labels=250)


def test_agedb_dir_clss_split_files_and_agedb_csv(tmp_path):
    root = tmp_path / "agedb"
    rows = agedb_tree(root)
    train_names = [n for n, _, s in rows if s == "train"]
    for published, n in AGEDB_LABELS.items():
        splits = _load("agedb-dir", root, tmp_path, labels=published)
        assert set(_names(splits.train, splits.labeled)) == official_labeled(train_names, n)
        # EXCLUDE rows of TRAIN are the unlabelled set, as in the official code
        unlabeled = set(train_names) - official_labeled(train_names, n)
        assert set(_names(splits.train, splits.unlabeled)) == unlabeled
    base = _load("agedb-dir", root, tmp_path)
    assert base.labeled is None and base.meta["index_files"][0].endswith("agedb.csv")
    assert (len(base.train), len(base.val), len(base.test)) == (10, 4, 4)
    assert base.input.shape == (3, 224, 224)


def test_agedb_bgr_and_rgb_preprocessing_decode_the_same_pixels_in_reverse_order(tmp_path):
    root = tmp_path / "agedb"
    agedb_tree(root)
    bgr = _load("agedb-dir", root, tmp_path)
    rgb = _load("agedb-dir-rgb", root, tmp_path)
    assert rgb.meta["preprocessing"]["mean"] == [0.5, 0.5, 0.5]
    a = bgr.train.preprocessing.denormalise(bgr.train[0])
    b = rgb.train.preprocessing.denormalise(rgb.train[0])
    torch.testing.assert_close(a.flip(0), b, atol=1e-5, rtol=1e-5)


def test_weak_view_keeps_the_shape_and_changes_the_pixels(tmp_path):
    root = tmp_path / "agedb"
    agedb_tree(root)
    splits = _load("agedb-dir-rgb", root, tmp_path)
    x = splits.train[0]
    torch.manual_seed(0)
    views = [splits.pipelines["weak"](x) for _ in range(4)]
    assert all(v.shape == x.shape for v in views)
    assert any(not torch.equal(v, x) for v in views)
    assert splits.meta["augment"] == {"pad": 16, "pad_mode": "zeros", "crop": [224, 224], "hflip": True,
                                      "views": ["weak", "strong"]}
    assert set(splits.pipelines) == {"weak", "strong"}


def test_a_data_root_under_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    agedb_tree(tmp_path / "agedb")
    manifest = stand_in_manifest("agedb-dir-rgb", tmp_path / "agedb", tmp_path / "m.yaml")
    splits = load_face_dataset("agedb-dir-rgb", data_root="~/agedb", manifest=manifest)
    assert splits.train.source(0).startswith("AgeDB/") and splits.train[0].shape == (3, 224, 224)


def test_load_dataset_reaches_the_face_protocols(tmp_path):
    root = tmp_path / "agedb"
    agedb_tree(root)
    manifest = stand_in_manifest("agedb-dir", root, tmp_path / "m.yaml")
    splits = load_dataset("agedb-dir", data_root=str(root), labels=407, manifest=manifest)
    assert splits.name == "agedb-dir" and splits.labeled.size == AGEDB_LABELS[407]


# ------------------------------------------------------------------------- the check before loading


def test_loading_refuses_a_copy_with_a_missing_image(tmp_path):
    root = tmp_path / "utk"
    rows = utk_tree(root)
    manifest = stand_in_manifest("utkface", root, tmp_path / "m.yaml")
    (root / "UTKFace" / rows[7][0]).unlink()
    gone = rows[7][0]
    with pytest.raises(ValueError, match=rf"1 of 23 images .* missing: UTKFace/{gone}.*clss data check"):
        load_face_dataset("utkface", data_root=root, labels=500, manifest=manifest)


def test_loading_refuses_an_edited_split_file(tmp_path):
    root = tmp_path / "agedb"
    agedb_tree(root)
    manifest = stand_in_manifest("agedb-dir", root, tmp_path / "m.yaml")
    path = root / "FileList_ssl_488_0.csv"
    path.write_text(path.read_text().replace("EXCLUDE", "LABELED", 1))
    with pytest.raises(ValueError, match=r"FileList_ssl_488_0.csv: sha256 .* differs from the published"):
        load_face_dataset("agedb-dir", data_root=root, labels=488, manifest=manifest)
    # the other split files are not read, so they load
    load_face_dataset("agedb-dir", data_root=root, labels=407, manifest=manifest)


def test_the_builtin_manifests_hold_the_published_facts():
    utk = builtin_manifest("utkface")
    assert utk.splits == {"train": 10518, "val": 2629, "test": 3287}
    assert utk.file("FileList_ssl_1000_0.csv").label_offset == 21 and utk.label_range == (21.0, 60.0)
    assert builtin_manifest("utkface-rankup").splits == {"train": 18964, "test": 4741}
    agedb = builtin_manifest("agedb-dir")
    assert agedb.splits == {"train": 12208, "val": 2140, "test": 2140}
    published = (407, 488, 610, 814)
    assert [agedb.file(f"FileList_ssl_{n}_0.csv").labels for n in published] == list(published)
    assert builtin_manifest("agedb-dir-rgb") == agedb


@pytest.mark.parametrize("name, yaml_file", [("utkface", "utkface.yaml"),
                                             ("utkface-rankup", "utkface_rankup.yaml"),
                                             ("agedb-dir", "agedb_dir.yaml"), ("adience", "adience.yaml"),
                                             ("morph2", "morph2.yaml"), ("clap2015", "clap2015.yaml"),
                                             ("utkface-coral", "utkface_coral.yaml"), ("cacd", "cacd.yaml")])
def test_the_manifest_files_agree_with_the_loaders(name, yaml_file):
    """data_manifests/*.yaml and the loaders' built-in check fields never drift apart."""
    values = yaml.safe_load((ROOT / "data_manifests" / yaml_file).read_text())
    assert manifest_from_dict(values) == builtin_manifest(name)
    assert set(FACE_DATASETS) >= {name}
