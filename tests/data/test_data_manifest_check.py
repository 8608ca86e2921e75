"""check_data and ``clss data check``: a user's copy verified against a manifest (stand-in trees in tmp_path
with manifests holding the stand-in counts and checksums), the report, and the CLI's output and exit codes."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from _faces_tree import agedb_tree, official_labeled, rankup_tree, stand_in_manifest, utk_tree
from click.testing import CliRunner

from clss.data.face_files import read_index, ssl_flags, write_clss_split_file
from clss.data.faces import write_agedb_split_files
from clss.data.manifest import check_data, load_manifest
from clss_cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def _statuses(report) -> dict[str, str]:
    return {c.item: c.status for c in report.checks}


@pytest.fixture
def utk(tmp_path):
    root = tmp_path / "utk"
    rows = utk_tree(root)
    return root, stand_in_manifest("utkface", root, tmp_path / "utk.yaml"), rows


def test_a_matching_copy_passes_with_the_offset_and_malformed_names_as_warnings(utk):
    root, manifest, _ = utk
    report = check_data(manifest, root)
    assert report.ok, report.text()
    status = _statuses(report)
    assert status["FileList_ssl_1000_0.csv labels"] == "warn"  # the age - 21 file: corrected on load
    assert status["FileList_ssl_333_0.csv labels"] == "ok"
    assert status["images"] == "ok" and status["image names"] == "warn"
    assert report.offsets == {"FileList_ssl_333_0.csv": 0, "FileList_ssl_500_0.csv": 0,
                              "FileList_ssl_1000_0.csv": 21}
    assert "3 file(s) do not follow" in report.text()


def test_every_kind_of_problem_is_reported_without_raising(utk, tmp_path):
    root, manifest, rows = utk
    (root / "FileList_ssl_500_0.csv").unlink()                          # a missing split file
    f333 = root / "FileList_ssl_333_0.csv"
    f333.write_text(f333.read_text().replace("UNLABELED", "LABELED", 1))  # edited: checksum, labelled count
    for name, _, _ in rows[:7]:
        (root / "UTKFace" / name).unlink()                              # missing images
    values = yaml.safe_load(manifest.read_text())
    values["splits"]["val"] = 99                                        # other expected counts
    values["label"]["range"] = [21, 50]                                 # some labels out of range
    manifest.write_text(yaml.safe_dump(values))
    report = check_data(manifest, root)
    assert not report.ok
    problems = {c.item: c.detail for c in report.problems}
    assert "missing: expected the file" in problems["FileList_ssl_500_0.csv"]
    assert "differs from the published" in problems["FileList_ssl_333_0.csv"]
    assert problems["FileList_ssl_333_0.csv labelled"].endswith("expected 3")
    assert "expected train 14 / val 99 / test 5" in problems["FileList_ssl_1000_0.csv rows"]
    assert "label(s) outside [21, 50]" in problems["FileList_ssl_1000_0.csv range"]
    assert problems["images"].startswith("7 of 23 images named by the index files are missing: UTKFace/")
    assert "... (7 in all)" in problems["images"]


def test_an_ambiguous_offset_is_a_problem(utk):
    root, manifest, _ = utk
    path = root / "FileList_ssl_1000_0.csv"
    lines = path.read_text().splitlines()
    cells = lines[2].split(",")
    cells[3] = str(int(cells[3]) + 21)
    lines[2] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    values = yaml.safe_load(manifest.read_text())
    for f in values["files"]:
        f["sha256"] = hashlib.sha256((root / f["path"]).read_bytes()).hexdigest()
    manifest.write_text(yaml.safe_dump(values))
    problems = {c.item: c.detail for c in check_data(manifest, root).problems}
    assert list(problems) == ["FileList_ssl_1000_0.csv labels"]
    assert "cannot be corrected safely" in problems["FileList_ssl_1000_0.csv labels"]


def test_a_missing_data_root_is_one_problem(tmp_path, utk):
    report = check_data(utk[1], tmp_path / "nowhere")
    found = [(c.item, c.status, c.detail) for c in report.checks]
    assert found == [("data root", "problem", "does not exist")]


def test_rankup_meta_without_checksums_is_noted_as_not_verified(tmp_path):
    root = tmp_path / "utk"
    rankup_tree(root)
    values = yaml.safe_load(stand_in_manifest("utkface-rankup", root, tmp_path / "m.yaml").read_text())
    for f in values["files"]:
        f["sha256"] = None
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(values))
    report = check_data(tmp_path / "m.yaml", root)
    assert report.ok, report.text()
    assert _statuses(report)["meta/train.csv"] == "warn" and "not verified" in report.text()
    assert _statuses(report)["meta/test.csv rows"] == "ok"


def test_the_operator_sde_manifest_loads_with_the_same_schema():
    m = load_manifest(ROOT / "data_manifests" / "operator_sde.yaml")
    assert [f.path for f in m.files] == ["train_sde.npz", "test_sde.npz"] and m.files[0].fmt is None


# --------------------------------------------------------------------------- regenerated split files


def test_regenerated_agedb_split_files_are_byte_identical_to_the_official_recipe(tmp_path):
    """The stand-in FileList files are written by the official recipe; the library reproduces their bytes."""
    root = tmp_path / "agedb"
    agedb_tree(root)
    expected = (root / "FileList_ssl_407_0.csv").read_bytes()
    out = write_clss_split_file(root / "agedb.csv", tmp_path / "regen.csv", 2)
    assert out.read_bytes() == expected
    table = read_index(root / "FileList_ssl_488_0.csv", "filelist", image_dir="AgeDB")
    base = read_index(root / "agedb.csv", "dir-csv")
    assert (ssl_flags(base, 3) == table.ssl).all()


def test_make_splits_writes_the_published_label_counts_after_checking_agedb_csv(tmp_path):
    """An agedb.csv with enough TRAIN rows for 814 labels (no images needed: only agedb.csv is checked)."""
    rows = [(f"{i}_P{i % 9}_{1 + i % 90}_m.jpg", 1 + i % 90, "train" if i < 900 else "val" if i < 905
             else "test") for i in range(910)]
    text = "age,path,split\n" + "".join(f"{a},AgeDB/{n},{s}\n" for n, a, s in rows)
    (tmp_path / "agedb.csv").write_text(text)
    manifest = tmp_path / "m.yaml"
    manifest.write_text(yaml.safe_dump({
        "name": "agedb-dir", "version": 1, "source": {}, "citation": [], "protocol": {},
        "reference_results": {}, "splits": {"train": 900, "val": 5, "test": 5},
        "files": [{"path": "agedb.csv", "format": "dir-csv",
                   "sha256": hashlib.sha256((tmp_path / "agedb.csv").read_bytes()).hexdigest()}]}))
    (tmp_path / "FileList_ssl_488_0.csv").write_text("kept\n")
    written = write_agedb_split_files(tmp_path, manifest=manifest)
    assert written == ["FileList_ssl_407_0.csv", "FileList_ssl_610_0.csv", "FileList_ssl_814_0.csv"]
    assert (tmp_path / "FileList_ssl_488_0.csv").read_text() == "kept\n"
    train = [n for n, _, s in rows if s == "train"]
    for n in (407, 610, 814):
        table = read_index(tmp_path / f"FileList_ssl_{n}_0.csv", "filelist", image_dir="AgeDB")
        assert {f.removeprefix("AgeDB/") for f in table.files[table.labeled()]} == official_labeled(train, n)
    (tmp_path / "agedb.csv").write_text((tmp_path / "agedb.csv").read_text() + "5,AgeDB/x.jpg,train\n")
    with pytest.raises(ValueError, match=r"agedb.csv: sha256 .* differs"):
        write_agedb_split_files(tmp_path, manifest=manifest, overwrite=True)


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_exit_code_0_on_a_matching_copy_and_plain_text_off_a_terminal(utk):
    root, manifest, _ = utk
    result = CliRunner().invoke(main, ["data", "check", str(manifest), "--data-root", str(root)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == f"data check: utkface at {root}"
    assert result.output.rstrip().endswith("OK: the data matches the manifest")


def test_cli_exit_code_2_and_json_report_on_problems(utk):
    root, manifest, rows = utk
    (root / "UTKFace" / rows[0][0]).unlink()
    result = CliRunner().invoke(main, ["data", "check", str(manifest), "--data-root", str(root), "--json"])
    assert result.exit_code == 2
    report = json.loads(result.output)
    assert report["ok"] is False and report["offsets"]["FileList_ssl_1000_0.csv"] == 21
    assert any(c["item"] == "images" and c["status"] == "problem" for c in report["checks"])


def test_cli_takes_a_builtin_dataset_name(tmp_path):
    result = CliRunner().invoke(main, ["data", "check", "agedb-dir", "--data-root", str(tmp_path)])
    assert result.exit_code == 2
    assert "missing: expected the file at" in result.output and "FileList_ssl_814_0.csv" in result.output


def test_cli_a_malformed_manifest_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nversion: 0\n")
    result = CliRunner().invoke(main, ["data", "check", str(bad), "--data-root", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"Error: manifest {bad}: missing fields ['source', 'citation', 'files', 'protocol', "
        "'reference_results']; a manifest needs ['name', 'version', 'source', 'citation', 'files', "
        "'protocol', 'reference_results']"]


@pytest.mark.slow  # a fresh interpreter importing torch: ~9 s on a loaded machine
def test_cli_in_a_real_subprocess_prints_the_report_and_exits_2(tmp_path):
    root = tmp_path / "agedb"
    gone = agedb_tree(root)[3][0]
    manifest = stand_in_manifest("agedb-dir", root, tmp_path / "m.yaml")
    (root / "AgeDB" / gone).unlink()
    proc = subprocess.run([sys.executable, "-m", "clss_cli.main", "data", "check", str(manifest),
                           "--data-root", str(root)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "PROBLEM images" in proc.stdout and f"AgeDB/{gone}" in proc.stdout
    assert proc.stdout.rstrip().endswith("1 problem(s): fix them before training")
