"""image-csv:PATH: a folder of generated images with a path,target CSV."""

from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image

from clss.config import PRESETS, TrainConfig, _preset_key, merge_dicts
from clss.data import DATASETS
from clss.data.imagecsv import DEFAULT_SIZE, load_image_csv


def make_folder(root, n=10, size=(16, 20)):
    """``n`` images of mixed sizes and modes under ``root/img`` and the matching ``path,target`` rows."""
    os.makedirs(root / "img", exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        h, w = size if i % 3 else (size[0] + 4, size[1] - 2)
        arr = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        img = Image.fromarray(arr) if i % 2 else Image.fromarray(arr[..., 0])  # RGB and grayscale
        name = f"img/{i}.{'png' if i % 4 else 'jpg'}"
        img.save(root / name)
        rows.append((name, f"{i * 1.5:.1f}"))
    return rows


def write_csv(path, header, rows):
    path.write_text("\n".join([",".join(header), *(",".join(r) for r in rows)]) + "\n")
    return path


def test_loads_with_a_seeded_split_and_the_default_preprocessing(tmp_path):
    rows = make_folder(tmp_path)
    csv = write_csv(tmp_path / "labels.csv", ["path", "target"], rows)
    data = load_image_csv(csv, seed=3)
    assert (len(data.train), len(data.val), len(data.test)) == (6, 2, 2)
    first_train = data.train.files[0]
    with Image.open(first_train) as img:
        w, h = img.size
    assert data.input.shape == (3, h, w)  # small images keep the first one's size, not 224
    prep = data.train.preprocessing
    assert prep.normalize == "imagenet" and prep.order == "rgb" and prep.resize == (h, w)
    for ds in (data.train, data.val, data.test):
        for i in range(len(ds)):
            assert ds[i].shape == (3, h, w)
    lines = {s: data.meta["lines"][s] for s in ("train", "val", "test")}
    assert sorted(np.concatenate(list(lines.values())).tolist()) == list(range(2, 12))
    assert data.train.targets[0] == float(rows[lines["train"][0] - 2][1])
    assert data.train.source(0) == str(tmp_path / rows[lines["train"][0] - 2][0])
    again = load_image_csv(csv, seed=3)
    np.testing.assert_array_equal(again.test.targets, data.test.targets)
    assert data.labeled is None and data.meta["labeled"] == "--labeled"
    assert data.pipelines["weak"].ops == ("translate",)
    assert DATASETS["image-csv:PATH"].loader is load_image_csv


def test_large_images_default_to_224(tmp_path):
    (tmp_path / "a").mkdir()
    Image.fromarray(np.zeros((230, 300, 3), np.uint8)).save(tmp_path / "a" / "x.jpg")
    rows = [("a/x.jpg", str(i)) for i in range(5)]
    data = load_image_csv(write_csv(tmp_path / "l.csv", ["path", "target"], rows))
    assert data.input.shape == (3, DEFAULT_SIZE, DEFAULT_SIZE)


def test_split_and_labeled_columns_and_unlabelled_rows(tmp_path):
    rows = make_folder(tmp_path)
    split = ["train"] * 6 + ["val"] * 2 + ["test"] * 2
    labeled = ["1", "0", "1", "0", "0", "0", "", "", "", ""]
    target = [r[1] for r in rows]
    target[3] = ""  # an unlabelled training row
    body = [(r[0], t, s, lab) for r, t, s, lab in zip(rows, target, split, labeled, strict=True)]
    data = load_image_csv(write_csv(tmp_path / "l.csv", ["path", "target", "split", "labeled"], body))
    assert len(data.train) == 6 and len(data.val) == 2
    np.testing.assert_array_equal(data.labeled, [0, 2])
    np.testing.assert_array_equal(data.unlabeled, [1, 3, 4, 5])
    np.testing.assert_array_equal(data.no_target, [3])
    assert data.meta["n_no_target"] == 1


def test_data_root_elsewhere_and_absolute_paths_inside_it(tmp_path):
    rows = make_folder(tmp_path / "images")
    rows[0] = (str(tmp_path / "images" / rows[0][0]), rows[0][1])  # absolute, inside the root
    (tmp_path / "meta").mkdir()
    csv = write_csv(tmp_path / "meta" / "labels.csv", ["path", "target"], rows)
    data = load_image_csv(csv, data_root=tmp_path / "images")
    assert data.meta["data_root"] == str(tmp_path / "images")
    assert len(data.train) + len(data.val) + len(data.test) == 10


def test_preprocessing_and_invariances_can_be_chosen(tmp_path):
    rows = make_folder(tmp_path)
    csv = write_csv(tmp_path / "labels.csv", ["path", "target"], rows)
    data = load_image_csv(csv, preprocessing={"channels": 1, "resize": [8, 8], "normalize": "estimate"},
                          invariant_to=("translate", "hflip"))
    assert data.input.shape == (1, 8, 8) and data.val.preprocessing == data.train.preprocessing
    assert data.pipelines["weak"].ops == ("translate", "hflip")
    torch.manual_seed(0)
    assert data.pipelines["strong"](data.train[0]).shape == (1, 8, 8)


def test_preset_resnet18_and_data_root_option(tmp_path):
    assert _preset_key("image-csv:/x/labels.csv") == "image-csv" and _preset_key("csv:/x.csv") == "csv"
    model = merge_dicts(TrainConfig().to_dict(), PRESETS["image-csv"])["model"]
    assert model == {"name": "resnet18"}
    cfg = TrainConfig(data_root=str(tmp_path))
    assert cfg.data_options() == {"data_root": str(tmp_path)} and TrainConfig().data_options() == {}


def test_cli_data_root_flag_reaches_the_loader(tmp_path):
    from click.testing import CliRunner

    from clss_cli.main import main

    result = CliRunner().invoke(main, ["train", "--dataset", "diabetes", "--data-root", str(tmp_path),
                                       "--out", str(tmp_path / "run"), "--no-progress"])
    message = "diabetes does not read files under a data root: leave --data-root unset"
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())
