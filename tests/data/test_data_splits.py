"""Labeled-amount parsing, seeded labeled/unlabeled splits and splits.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clss.data import LabeledSpec, Splits, parse_labeled, split_labeled


@pytest.mark.parametrize(
    ("spec", "kind", "value", "text"),
    [
        ("10%", "fraction", 0.1, "10%"),
        (" 12.5 % ", "fraction", 0.125, "12.5%"),
        ("100%", "fraction", 1.0, "100%"),
        ("0.1", "fraction", 0.1, "0.1"),
        (".25", "fraction", 0.25, ".25"),
        ("1.0", "fraction", 1.0, "1.0"),
        ("1e-1", "fraction", 0.1, "1e-1"),
        (0.1, "fraction", 0.1, "0.1"),
        (np.float32(0.5), "fraction", 0.5, "0.5"),
        ("250", "count", 250, "250"),
        (250, "count", 250, "250"),
        (np.int64(7), "count", 7, "7"),
        ("1", "count", 1, "1"),
        ("1/30", "fraction", 1 / 30, "1/30"),
        (" 1 / 5 ", "fraction", 0.2, "1/5"),
        ("3/3", "fraction", 1.0, "3/3"),
    ],
)
def test_parse_labeled_accepted_forms(spec: object, kind: str, value: float, text: str) -> None:
    parsed = parse_labeled(spec)
    assert parsed.kind == kind and parsed.value == pytest.approx(value)
    assert parsed.text == text
    assert parse_labeled(parsed) is parsed


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("ten percent", "cannot parse"),
        ("150%", r"percent must be in \(0, 100\]"),
        ("0%", r"percent must be in \(0, 100\]"),
        ("-3", "cannot parse"),
        (-3, "count must be >= 1"),
        ("0.0", r"fraction must be in \(0, 1\]"),
        (0.0, r"fraction must be in \(0, 1\]"),
        (1.5, r"fraction must be in \(0, 1\]"),
        (float("nan"), r"fraction must be in \(0, 1\]"),
        ("0", "count must be >= 1"),
        (0, "count must be >= 1"),
        ("", "cannot parse"),
        ("%", "cannot parse"),
        ("1/0", "cannot parse"),
        ("0/5", r"fraction must be in \(0, 1\]"),
        ("4/3", r"fraction must be in \(0, 1\]"),
        ("1/3.5", "cannot parse"),
        (True, "percent, fraction or count"),
        (None, "percent, fraction or count"),
    ],
)
def test_parse_labeled_errors(spec: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_labeled(spec)


def test_labeled_counts_floor_fractions_without_float_artefacts() -> None:
    assert LabeledSpec("fraction", 0.29, "0.29").count(100) == 29  # 0.29 * 100 = 28.999...
    assert parse_labeled("10%").count(442) == 44
    assert parse_labeled("33%").count(1000) == 330
    assert parse_labeled(250).count(10) == 250


@pytest.mark.parametrize("labeled", ["10%", "0.1", 0.1, "25", 25])
def test_split_labeled_sizes_disjoint_sorted_and_deterministic(labeled: object) -> None:
    s = split_labeled(250, labeled, seed=3)
    assert s.labeled.size == 25 and s.unlabeled.size == 225
    assert not np.intersect1d(s.labeled, s.unlabeled).size
    np.testing.assert_array_equal(np.union1d(s.labeled, s.unlabeled), np.arange(250))
    assert (np.diff(s.labeled) > 0).all() and (np.diff(s.unlabeled) > 0).all()
    again = split_labeled(250, labeled, seed=3)
    np.testing.assert_array_equal(s.labeled, again.labeled)
    assert not np.array_equal(s.labeled, split_labeled(250, labeled, seed=4).labeled)
    assert s.seed == 3 and s.n_train == 250


def test_split_labeled_unlabeled_amounts() -> None:
    s = split_labeled(1000, "20%", seed=0, unlabeled=200)
    assert s.labeled.size == s.unlabeled.size == 200
    s = split_labeled(1000, "20%", seed=0, unlabeled=0.5)
    assert s.unlabeled.size == 500
    full = split_labeled(1000, "20%", seed=0)
    np.testing.assert_array_equal(s.labeled, full.labeled)  # same permutation prefix
    assert split_labeled(10, 1.0, seed=0, require_unlabeled=False).unlabeled.size == 0
    assert split_labeled(10, 3, seed=0, unlabeled=0, require_unlabeled=False).unlabeled.size == 0


@pytest.mark.parametrize(
    ("n", "labeled", "kw", "match"),
    [
        (100, "0.5%", {}, "gives 0 labeled rows"),
        (10, 11, {}, "asks for 11 labeled rows but there are only 10"),
        (10, "100%", {}, "leaves no unlabeled rows"),
        (10, 10, {}, "leaves no unlabeled rows"),
        (10, 1.0, {}, "leaves no unlabeled rows"),
        (10, 5, {"unlabeled": 6}, "only 5 rows are left"),
        (10, 5, {"unlabeled": 0}, "leaves no unlabeled rows"),
        (10, 5, {"unlabeled": 1.5}, r"unlabeled fraction must be in \[0, 1\]"),
        (10, 5, {"unlabeled": "all"}, "unlabeled must be 'rest'"),
        (0, 5, {}, "cannot split 0 training rows"),
        (10, "ten percent", {}, "cannot parse"),
    ],
)
def test_split_labeled_errors(n: int, labeled: object, kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        split_labeled(n, labeled, seed=0, **kw)


def test_splits_json_round_trip(tmp_path: Path) -> None:
    s = split_labeled(50, "20%", seed=7)
    path = s.to_json(tmp_path / "run" / "splits.json", dataset="diabetes", run=0)
    payload = json.loads(path.read_text())
    assert payload["spec"] == "20%" and payload["seed"] == 7 and payload["n_train"] == 50
    assert payload["n_labeled"] == 10 and payload["n_unlabeled"] == 40 and payload["dataset"] == "diabetes"
    back = Splits.from_json(path)
    np.testing.assert_array_equal(back.labeled, s.labeled)
    np.testing.assert_array_equal(back.unlabeled, s.unlabeled)
    assert back.labeled.dtype == np.int64
    assert (back.spec, back.seed, back.n_train, back.extra) == (
        "20%",
        7,
        50,
        {"dataset": "diabetes", "run": 0},
    )
    # extra fields survive a second round trip
    again = Splits.from_json(back.to_json(tmp_path / "again.json"))
    assert again.extra == back.extra
    assert list(tmp_path.glob("**/*.tmp")) == []


def test_splits_json_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="splits file not found"):
        Splits.from_json(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        Splits.from_json(tmp_path / "bad.json")
    (tmp_path / "partial.json").write_text('{"labeled": [1]}')
    with pytest.raises(ValueError, match="lacks"):
        Splits.from_json(tmp_path / "partial.json")
    (tmp_path / "count.json").write_text('{"labeled": [1], "unlabeled": [], "n_labeled": 2}')
    with pytest.raises(ValueError, match="n_labeled does not match"):
        Splits.from_json(tmp_path / "count.json")
