"""The order-learning age benchmarks (ConOrd's Table 2) read from stand-in copies: the split lists in their
published layouts (comma / space / CRLF lists, an Excel workbook, CORAL's offset ages), the runs, the holdout
validation, and one-line refusals."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from _order_tree import cacd_tree, clap_tree, morph_tree, order_manifest, utk_coral_tree

from clss.data import load_dataset
from clss.data.face_files import read_index
from clss.data.faces import VALIDATION_SHARE, load_face_dataset
from clss.data.xlsxfile import read_xlsx_table


def _rows(ds) -> list[tuple[str, float]]:
    return list(zip(ds.sources.tolist(), ds.targets.tolist(), strict=True))


def test_the_workbook_reader_reads_what_openpyxl_wrote(tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["filename", "age", "note"])
    sheet.append(["a.jpg", 21, "x y"])
    sheet.append(["b.jpg", 3.25, None])  # an empty cell
    sheet["A5"], sheet["B5"] = "c.jpg", 40  # a blank row between
    book.create_sheet("other")["A1"] = "ignored"
    book.save(tmp_path / "w.xlsx")
    table = read_xlsx_table(tmp_path / "w.xlsx")
    assert table.header == ["filename", "age", "note"]
    assert table.cells.tolist() == [["a.jpg", "21", "x y"], ["b.jpg", "3.25", ""], ["c.jpg", "40", ""]]
    assert table.lines.tolist() == [2, 3, 5] and table.missing_cells[:, 2].tolist() == [False, True, True]


@pytest.mark.parametrize(("content", "phrase"), [
    (b"not a zip", "is not a readable .xlsx workbook"),
    (None, "has a header but no data rows"),
])
def test_bad_workbooks_are_refused_in_one_line(tmp_path, content, phrase):
    path = tmp_path / "w.xlsx"
    if content is None:
        import openpyxl

        book = openpyxl.Workbook()
        book.active.append(["filename", "age"])
        book.save(path)
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=phrase) as info:
        read_xlsx_table(path)
    assert "\n" not in str(info.value)


def test_order_lists_in_each_published_layout(tmp_path):
    folds = morph_tree(tmp_path)
    for k in (0, 1):  # comma + index column + CRLF; spaces + CRLF + a trailing space
        t = read_index(tmp_path / f"SettingA_fold{k}_train.txt", "order-list", split="train")
        assert list(zip(t.files.tolist(), t.labels.tolist(), strict=True)) == folds[k]["train"]
        assert t.counts() == {"train": 10} and t.lines.tolist()[:2] == [2, 3]
    rows = clap_tree(tmp_path / "clap")
    t = read_index(tmp_path / "clap" / "total_2015.xlsx", "order-list")  # the database column names splits
    assert list(zip(t.files.tolist(), t.labels.tolist(), t.split.tolist(), strict=True)) == rows
    cacd = cacd_tree(tmp_path / "cacd")
    t = read_index(tmp_path / "cacd" / "CACD.csv", "order-list", image_dir="")
    assert list(zip(t.files.tolist(), t.labels.tolist(), t.split.tolist(), strict=True)) == cacd
    (tmp_path / "mixed.csv").write_text("filename,age,database\na.jpg,30,\nb.jpg,31,morph\n")
    t = read_index(tmp_path / "mixed.csv", "order-list", image_dir="img", split="test")
    assert t.files.tolist() == ["img/a.jpg", "img/morph/b.jpg"]  # an empty folder cell: no folder
    utk = utk_coral_tree(tmp_path / "utk")
    t = read_index(tmp_path / "utk" / "utk_test.csv", "coral-csv", image_dir="UTKFace", split="test")
    assert t.files.tolist() == [p for p, _ in utk["test"]]
    assert (t.labels + 21).tolist() == [a for _, a in utk["test"]]


def test_morph2_runs_read_their_own_fold_and_validate_on_a_fixed_tenth(tmp_path):
    folds = morph_tree(tmp_path)
    manifest = order_manifest("morph2", tmp_path, tmp_path / "m.yaml", {"train": 10, "test": 4})
    seen = []
    for run in (0, 1, 3):
        data = load_face_dataset("morph2", data_root=tmp_path, run=run, manifest=manifest)
        train, val, test = _rows(data.train), _rows(data.val), _rows(data.test)
        assert test == folds[run]["test"]
        assert sorted(train + val) == sorted(folds[run]["train"])
        assert len(val) == round(VALIDATION_SHARE * 10) and data.meta["fold"] == run
        assert "training rows" in data.meta["validation"]
        again = load_face_dataset("morph2", data_root=tmp_path, run=run, seed=7, manifest=manifest)
        assert _rows(again.val) == val  # fixed by the run, not by the seed
        seen.append(test)
        x = data.train[0]
        assert tuple(x.shape) == (3, 224, 224) and torch_finite(x)
    assert seen[0] != seen[1]
    with pytest.raises(ValueError, match=r"morph2: run must be an integer in \[0, 5\) \(the fold\), got 5"):
        load_face_dataset("morph2", data_root=tmp_path, run=5, manifest=manifest)


def torch_finite(x) -> bool:
    return bool(np.isfinite(x.numpy()).all())


def test_clap2015_uses_the_official_three_splits(tmp_path):
    rows = clap_tree(tmp_path)
    manifest = order_manifest("clap2015", tmp_path, tmp_path / "m.yaml", {"train": 10, "val": 4, "test": 5})
    data = load_face_dataset("clap2015", data_root=tmp_path, manifest=manifest)
    for split, ds in (("train", data.train), ("val", data.val), ("test", data.test)):
        assert _rows(ds) == [(p, a) for p, a, s in rows if s == split]
    assert data.meta["validation"] == "val split"


def test_utkface_coral_adds_back_the_offset_and_holds_out_a_tenth(tmp_path):
    utk = utk_coral_tree(tmp_path)
    manifest = order_manifest("utkface-coral", tmp_path, tmp_path / "m.yaml", {"train": 12, "test": 5})
    with pytest.warns(UserWarning, match=r"the age column is the true age - 21 .* 21 is added"):
        data = load_face_dataset("utkface-coral", data_root=tmp_path, manifest=manifest)
    assert _rows(data.test) == utk["test"]
    assert sorted(_rows(data.train) + _rows(data.val)) == sorted(utk["train"])
    assert len(data.val) == round(VALIDATION_SHARE * 12)


def test_cacd_reads_the_fold_column_and_the_database_folder(tmp_path):
    rows = cacd_tree(tmp_path)
    manifest = order_manifest("cacd", tmp_path, tmp_path / "m.yaml", {"train": 10, "val": 4, "test": 4})
    data = load_dataset("cacd", data_root=tmp_path, manifest=str(manifest))
    for split, ds in (("train", data.train), ("val", data.val), ("test", data.test)):
        assert _rows(ds) == [(p, a) for p, a, s in rows if s == split]


def test_a_copy_that_does_not_match_is_refused_before_loading(tmp_path):
    folds = morph_tree(tmp_path)
    manifest = order_manifest("morph2", tmp_path, tmp_path / "m.yaml", {"train": 10, "test": 4})
    (tmp_path / folds[0]["test"][-1][0]).unlink()
    with pytest.raises(ValueError, match="images named by the index files are missing") as info:
        load_face_dataset("morph2", data_root=tmp_path, run=0, manifest=manifest)
    assert "\n" not in str(info.value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=r"sha256 .* differs from the published"):
            load_face_dataset("morph2", data_root=tmp_path, run=0)  # the built-in manifest's checksums
