"""clss.data.catalog.describe_datasets and `clss datasets`: sizes, presets and local availability."""

import json

from click.testing import CliRunner

from clss.config import PRESETS
from clss.data import DATASETS, load_dataset
from clss.data.catalog import _generator_folder, describe_datasets
from clss.data.operator_sde import generate_operator_sde
from clss_cli.main import main


def _by_name(entries):
    return {e.name: e for e in entries}


def test_every_dataset_is_listed_with_its_presets(monkeypatch, tmp_path):
    monkeypatch.delenv("CLSS_OPERATOR_SDE_DIR", raising=False)
    monkeypatch.setenv("CLSS_CACHE_DIR", str(tmp_path))
    entries = _by_name(describe_datasets())
    assert list(entries) == list(DATASETS)
    assert entries["diabetes"].preset == PRESETS["diabetes"]
    assert entries["operator-sde"].method_presets["gclss"]["method_params"]["rank_weight"] > 0
    assert entries["csv:PATH"].available is None and entries["csv:PATH"].features is None
    assert entries["diabetes"].available is True
    sde = entries["operator-sde"]
    assert sde.available is False and "not generated yet" in sde.location and str(tmp_path) in sde.location


def test_the_diabetes_sizes_are_those_the_loader_gives():
    data = load_dataset("diabetes", seed=0)
    entry = _by_name(describe_datasets())["diabetes"]
    assert entry.rows == {"train": len(data.y_train), "val": len(data.y_val), "test": len(data.y_test)}
    assert entry.features == data.n_features and entry.target == data.target_name


def test_image_datasets_show_their_sizes_inputs_and_presets():
    entries = _by_name(describe_datasets())
    digits = load_dataset("digits-rotation", seed=0)
    entry = entries["digits-rotation"]
    assert entry.rows == {"train": len(digits.train), "val": len(digits.val), "test": len(digits.test)}
    assert entry.inputs.startswith("x".join(map(str, digits.input.shape))) and entry.available is True
    assert entries["image-csv:PATH"].preset == PRESETS["image-csv"]
    assert entries["utkface"].rows == {"train": 10518, "val": 2629, "test": 3287}
    assert "clss data check utkface" in entries["utkface"].location and entries["utkface"].available is None


def test_operator_sde_files_in_data_dir_or_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("CLSS_OPERATOR_SDE_DIR", raising=False)
    (tmp_path / "train_sde.npz").write_bytes(b"")
    sde = _by_name(describe_datasets(tmp_path))["operator-sde"]
    assert sde.available is False and "lacks test_sde.npz" in sde.location and "--data-dir" in sde.location
    (tmp_path / "test_sde.npz").write_bytes(b"")
    assert _by_name(describe_datasets(tmp_path))["operator-sde"].available is True
    monkeypatch.setenv("CLSS_OPERATOR_SDE_DIR", str(tmp_path))
    sde = _by_name(describe_datasets())["operator-sde"]
    assert sde.available is True and "$CLSS_OPERATOR_SDE_DIR" in sde.location


def test_the_cache_folder_it_checks_is_the_one_the_generator_writes(monkeypatch, tmp_path):
    monkeypatch.setenv("CLSS_CACHE_DIR", str(tmp_path))
    params = {"seed": 3, "n_functions": 1, "n_points": 2, "mc_samples": 8}
    written = generate_operator_sde(**params, progress=False)
    assert written == _generator_folder(**params)


def test_cli_datasets_text_and_json(monkeypatch, tmp_path):
    monkeypatch.setenv("CLSS_CACHE_DIR", str(tmp_path))
    result = CliRunner().invoke(main, ["datasets"])
    assert result.exit_code == 0, result.output
    for name in DATASETS:
        assert name in result.output
    result = CliRunner().invoke(main, ["datasets", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert [d["name"] for d in listed] == list(DATASETS)
    assert listed[1]["rows"]["test"] == 88 and listed[1]["available"] is True
