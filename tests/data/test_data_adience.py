"""Adience's five-fold age-group benchmark on a stand-in copy (tiny JPEG files with the real folder layout and
fold-file columns): the fold reader, the fold protocol (test fold, subject-exclusive validation), the
classes every method is scored on, and the errors a user meets."""

from __future__ import annotations

import warnings

import pytest
from _faces_tree import ADIENCE_ODD, adience_tree

from clss.data import load_dataset
from clss.data.face_files import ADIENCE_AGE_GROUPS, read_index
from clss.data.faces import builtin_manifest
from clss.data.manifest import check_data


@pytest.fixture
def adience(tmp_path):
    root = tmp_path / "adience"
    return root, adience_tree(root)


def _load(root, run=0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_dataset("adience", data_root=root, run=run)


def test_the_fold_reader_maps_the_eight_groups_and_counts_the_rest(adience):
    root, kept = adience
    table = read_index(root / "fold_2_data.txt", "adience-fold", image_dir="aligned")
    assert table.files.tolist() == [path for path, _ in kept[2]]
    assert table.labels.tolist() == [float(c) for _, c in kept[2]]
    assert set(table.split.tolist()) == {"train"}
    assert table.excluded == dict.fromkeys(ADIENCE_ODD, 1)
    assert table.lines.tolist() == list(range(2, 2 + len(kept[2])))  # header is line 1, odd rows last
    assert len(ADIENCE_AGE_GROUPS) == 8


@pytest.mark.parametrize("fold", [0, 3])
def test_a_fold_tests_on_its_file_and_validates_on_other_subjects(adience, fold):
    root, kept = adience
    data = _load(root, run=fold)
    test_files = sorted(data.test.sources)
    assert test_files == sorted(p for p, _ in kept[fold])
    assert sorted(data.test.targets.tolist()) == sorted(float(c) for _, c in kept[fold])
    rest = sorted(p for k, rows in kept.items() if k != fold for p, _ in rows)
    assert sorted([*data.train.sources, *data.val.sources]) == rest
    subject = {s.rpartition("/")[0] for s in data.val.sources}
    assert subject and not subject & {s.rpartition("/")[0] for s in data.train.sources}
    # a tenth of the training rows, whole subjects: the smallest prefix reaching it
    assert len(data.val) >= 0.1 * len(rest) and len(data.val) < 0.1 * len(rest) + 3
    assert data.meta["fold"] == fold and data.meta["classes"] == list(range(8))
    assert data.meta["excluded_labels"] == dict.fromkeys(ADIENCE_ODD, 5)
    again = _load(root, run=fold)
    assert list(again.val.sources) == list(data.val.sources)  # fixed per fold


def test_the_excluded_rows_are_announced(adience):
    root, _ = adience
    with pytest.warns(UserWarning, match=r"15 rows whose label is not one of the protocol's classes"):
        load_dataset("adience", data_root=root, run=1)


@pytest.mark.parametrize("run, match", [(5, r"run must be an integer in \[0, 5\) \(the test fold\)"),
                                        (-1, r"run must be")])
def test_a_fold_outside_the_five_is_refused(adience, run, match):
    root, _ = adience
    with pytest.raises(ValueError, match=match):
        _load(root, run=run)


def test_other_face_protocols_have_no_folds(tmp_path):
    with pytest.raises(ValueError, match="agedb-dir has no run slices"):
        load_dataset("agedb-dir", data_root=tmp_path, run=1)


def test_the_check_names_a_missing_image(adience):
    root, kept = adience
    (root / kept[4][0][0]).unlink()
    report = check_data(builtin_manifest("adience"), root)
    assert not report.ok
    assert any("1 of" in c.detail and "missing" in c.detail for c in report.problems)
    with pytest.raises(ValueError, match="missing"):
        _load(root, run=0)


def test_a_fold_file_without_the_age_column_is_named(adience):
    root, _ = adience
    path = root / "fold_1_data.txt"
    path.write_text(path.read_text().replace("\tage\t", "\tyears\t", 1))
    with pytest.raises(ValueError, match="age"):
        read_index(path, "adience-fold", image_dir="aligned")
