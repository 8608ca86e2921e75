"""Stand-in copies of UTKFace and AgeDB-DIR for the tests: tiny generated JPEG files with the real naming and
the real split-file layouts, and small manifests with the stand-in counts and checksums.

The labelled rows follow the official recipe (legacy ``np.random.seed(0)``, shuffle the TRAIN file names in
file order, the first n are LABELED).
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from clss.data.faces import FACE_DATASETS

UTK_HEADER = "index,Unnamed: 0,FileName,age,SPLIT,SSL_SPLIT"
# label count of each published file -> its stand-in count
UTK_LABELS = {333: 3, 500: 4, 1000: 6}
AGEDB_LABELS = {407: 2, 488: 3, 610: 4, 814: 5}
# A published name malformed after its age (missing dot before the extension): part of the split files.
ODD_BUT_AGED = "55_0_0_20170116232725357jpg.chip.jpg"
# Malformed names outside the split files (the folder scan skips them).
MALFORMED = ("61_1_20170109142408075.jpg.chip.jpg", "notes.jpg")


def jpeg(path: Path, seed: int, size: tuple[int, int] = (8, 8)) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path, "JPEG")


def official_labeled(train_names: list[str], n: int) -> set[str]:
    names = np.array(train_names)
    np.random.RandomState(0).shuffle(names)  # the official legacy stream: np.random.seed(0); shuffle
    return set(names[:n].tolist())


def utk_rows(n_train: int = 14, n_val: int = 4, n_test: int = 5) -> list[tuple[str, int, str]]:
    """(file name, true age, SPLIT) rows with ages in 21-60; one name is malformed after its age."""
    rows = []
    for i in range(n_train + n_val + n_test):
        split = "TRAIN" if i < n_train else "VAL" if i < n_train + n_val else "TEST"
        age = 21 + (7 * i) % 40
        rows.append((f"{age}_{i % 2}_{i % 5}_2017011{i:010d}.jpg.chip.jpg", age, split))
    rows[3] = (ODD_BUT_AGED, 55, "TRAIN")
    return rows


def utk_tree(root: Path, *, offset_1000: bool = True) -> list[tuple[str, int, str]]:
    """UTKFace/ images and FileList_ssl_{333,500,1000}_0.csv (the 1000 file with age - 21)."""
    rows = utk_rows()
    (root / "UTKFace").mkdir(parents=True)
    for i, (name, _, _) in enumerate(rows):
        jpeg(root / "UTKFace" / name, i)
    for i, name in enumerate(MALFORMED):
        jpeg(root / "UTKFace" / name, 100 + i)
    train = [n for n, _, s in rows if s == "TRAIN"]
    for published, n in UTK_LABELS.items():
        labeled = official_labeled(train, n)
        rest = "UNLABELED" if published == 333 else "EXCLUDE"
        shift = 21 if published == 1000 and offset_1000 else 0
        lines = [UTK_HEADER] + [
            f"{i},{i + 7},{name},{age - shift},{split},{'LABELED' if name in labeled else rest}"
            for i, (name, age, split) in enumerate(rows)]
        (root / f"FileList_ssl_{published}_0.csv").write_text("\n".join(lines) + "\n")
    return rows


def rankup_tree(root: Path) -> dict[str, list[tuple[str, int]]]:
    """UTKFace/ images of all ages and meta/{train,test}.csv (file_name,label)."""
    (root / "UTKFace").mkdir(parents=True)
    (root / "meta").mkdir()
    out: dict[str, list[tuple[str, int]]] = {"train": [], "test": []}
    for i in range(16):
        age = 1 + (13 * i) % 116
        name = f"{age}_{i % 2}_{i % 5}_2017012{i:010d}.jpg.chip.jpg"
        jpeg(root / "UTKFace" / name, i, size=(12, 10))
        out["train" if i < 11 else "test"].append((name, age))
    for split, items in out.items():
        text = "file_name,label\n" + "".join(f"{n},{a}\n" for n, a in items)
        (root / "meta" / f"{split}.csv").write_text(text)
    return out


def agedb_rows() -> list[tuple[str, int, str]]:
    rows = []
    for i in range(18):
        split = "train" if i < 10 else "val" if i < 14 else "test"
        age = 1 + (11 * i) % 100
        rows.append((f"{1000 + i}_Person{i % 6}_{age}_{'mf'[i % 2]}.jpg", age, split))
    return rows


def agedb_tree(root: Path) -> list[tuple[str, int, str]]:
    """AgeDB/ images, agedb.csv (age,path,split) and the CLSS FileList_ssl_{407,...}_0.csv files."""
    rows = agedb_rows()
    (root / "AgeDB").mkdir(parents=True)
    for i, (name, _, _) in enumerate(rows):
        jpeg(root / "AgeDB" / name, i, size=(10, 9))
    (root / "agedb.csv").write_text("age,path,split\n" + "".join(f"{a},AgeDB/{n},{s}\n" for n, a, s in rows))
    train = [n for n, _, s in rows if s == "train"]
    for published, n in AGEDB_LABELS.items():
        labeled = official_labeled(train, n)
        text = "ground_truth,FileName,SPLIT,SSL_SPLIT\n" + "".join(
            f"{a},{name},{s.upper()},{'LABELED' if name in labeled else 'EXCLUDE'}\n" for name, a, s in rows)
        (root / f"FileList_ssl_{published}_0.csv").write_text(text)
    return rows


def stand_in_manifest(name: str, root: Path, out: Path) -> Path:
    """The built-in manifest of ``name`` with the stand-in tree's counts and checksums, written to ``out``."""
    m = copy.deepcopy(FACE_DATASETS[name].manifest)
    labels = {**UTK_LABELS, **AGEDB_LABELS}
    for f in m["files"]:
        f["sha256"] = hashlib.sha256((root / f["path"]).read_bytes()).hexdigest()
        if "labels" in f:
            f["labels"] = labels[f["labels"]]
    if name == "utkface":
        m["splits"] = {"train": 14, "val": 4, "test": 5}
    elif name == "utkface-rankup":
        m["splits"] = {"train": 11, "test": 5}
    else:
        m["splits"] = {"train": 10, "val": 4, "test": 4}
    m["images"]["count"] = sum(1 for _ in (root / m["images"]["folder"]).iterdir())
    m.update(source={"url": "stand-in"}, citation=[], protocol={"note": "stand-in"}, reference_results={})
    out.write_text(yaml.safe_dump(m, sort_keys=False))
    return out


ADIENCE_HEADER = "\t".join(("user_id", "original_image", "face_id", "age", "gender", "x", "y", "dx", "dy",
                            "tilt_ang", "fiducial_yaw_angle", "fiducial_score"))
# Spellings outside the eight groups (single ages, other ranges, None): the protocol leaves them out.
ADIENCE_ODD = ("35", "None", "(38, 42)")


def adience_tree(root: Path, *, subjects_per_fold: int = 4, faces: int = 3
                 ) -> dict[int, list[tuple[str, int]]]:
    """aligned/<user>/landmark_aligned_face.<face>.<image> files and fold_{0..4}_data.txt (tab-separated,
    the real columns); every fold's subjects are its own. Returns per fold the (image path, class) rows kept
    by the protocol; each fold also holds one row of each of :data:`ADIENCE_ODD`."""
    from clss.data.face_files import ADIENCE_AGE_GROUPS

    kept: dict[int, list[tuple[str, int]]] = {}
    n = 0
    for fold in range(5):
        lines, kept[fold] = [ADIENCE_HEADER], []
        for s in range(subjects_per_fold):
            user = f"{1000 + 10 * fold + s}@N0{fold}"
            (root / "aligned" / user).mkdir(parents=True)
            for f in range(faces):
                n += 1
                image, face_id = f"{n:08d}_{s}f{f}_o.jpg", 100 + n
                cls = (n * 3) % 8
                age = ADIENCE_AGE_GROUPS[cls] if (n % 2) else ADIENCE_AGE_GROUPS[cls].replace(" ", "")
                rel = f"aligned/{user}/landmark_aligned_face.{face_id}.{image}"
                jpeg(root / rel, n, size=(12, 12))
                lines.append(f"{user}\t{image}\t{face_id}\t{age}\t{'mf'[n % 2]}\t0\t0\t10\t10\t0\t0\t{n}")
                kept[fold].append((rel, cls))
        for j, odd in enumerate(ADIENCE_ODD):  # named images exist, their ages are not a group
            n += 1
            image, user = f"{n:08d}_odd_o.jpg", f"{1000 + 10 * fold}@N0{fold}"
            jpeg(root / f"aligned/{user}/landmark_aligned_face.{900 + j}.{image}", n, size=(12, 12))
            lines.append(f"{user}\t{image}\t{900 + j}\t{odd}\tf\t0\t0\t10\t10\t0\t0\t{n}")
        (root / f"fold_{fold}_data.txt").write_text("\n".join(lines) + "\n")
    return kept
