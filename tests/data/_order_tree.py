"""Stand-in copies of the order-learning age benchmarks (MORPH II setting A, CLAP 2015, UTKFace with CORAL's
split, CACD): tiny generated JPEG files and split lists in the published layouts, and manifests with the
stand-in counts and checksums."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import yaml
from _faces_tree import jpeg

from clss.data.faces import FACE_DATASETS


def morph_tree(root: Path, *, folds: int = 5, n_train: int = 10, n_test: int = 4) -> dict[int, dict]:
    """morph/<id>_<n><M|F><age>.JPG and SettingA_fold{k}_{train,test}.txt: the Order Learning lists (comma,
    CRLF, an unnamed index column); fold 1 in the MWR code's space-separated form. Each fold draws its own
    rows from a shared pool (as setting A does). Returns per fold ``{"train": [(path, age)], "test": ...}``.
    """
    (root / "morph").mkdir(parents=True)
    pool = []
    for i in range(n_train + n_test + folds):
        age = 16 + (5 * i) % 60
        name = f"{100000 + i:06d}_{i % 3}{'MF'[i % 2]}{age}.JPG"
        jpeg(root / "morph" / name, i, size=(10, 12))
        pool.append((name, age, i % 2))
    out = {}
    for k in range(folds):
        rows = pool[k:k + n_train + n_test]
        parts = {"train": rows[:n_train], "test": rows[n_train:]}
        out[k] = {s: [(f"morph/{n}", a) for n, a, _ in r] for s, r in parts.items()}
        for split, part in parts.items():
            if k == 1:
                lines = ["race gender age filename database"] + [f"0 {g} {a} {n} morph " for n, a, g in part]
            else:
                lines = [",race,gender,age,filename,database"] + [
                    f"{7 * j},0,{g},{a},{n},morph" for j, (n, a, g) in enumerate(part)]
            (root / f"SettingA_fold{k}_{split}.txt").write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return out


def clap_tree(root: Path, *, sizes: tuple[int, int, int] = (10, 4, 5)) -> list[tuple[str, float, str]]:
    """{train,val,test}/image_<n>.jpg and total_2015.xlsx (filename, age, stdv, database), written by
    openpyxl. Returns the (image path, age, split) rows in file order."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["filename", "age", "stdv", "database"])
    rows = []
    n = 0
    for split, size in zip(("train", "val", "test"), sizes, strict=True):
        (root / split).mkdir(parents=True)
        for _ in range(size):
            n += 1
            name, age = f"image_{3 * n + 1}.jpg", 3 + (11 * n) % 80
            jpeg(root / split / name, n, size=(14, 11))
            sheet.append([name, age, 2.5 + n / 7, split])
            rows.append((f"{split}/{name}", float(age), split))
    book.save(root / "total_2015.xlsx")
    return rows


def utk_coral_tree(root: Path, *, n_train: int = 12, n_test: int = 5) -> dict[str, list[tuple[str, int]]]:
    """UTKFace/<age>_<g>_<r>_<time>.jpg.chip.jpg and CORAL's utk_{train,test}.csv (``,file,age`` with the
    age stored minus 21). Returns per split the (image path, true age) rows."""
    (root / "UTKFace").mkdir(parents=True)
    out: dict[str, list[tuple[str, int]]] = {}
    n = 0
    for split, size in (("train", n_train), ("test", n_test)):
        lines, out[split] = [",file,age"], []
        for _ in range(size):
            n += 1
            age = 21 + (13 * n) % 40
            name = f"{age}_{n % 2}_{n % 5}_2017011{n:010d}.jpg.chip.jpg"
            jpeg(root / "UTKFace" / name, n, size=(9, 9))
            lines.append(f"{3 * n},{name},{age - 21}")
            out[split].append((f"UTKFace/{name}", age))
        (root / f"utk_{split}.csv").write_text("\n".join(lines) + "\n")
    return out


def cacd_tree(root: Path) -> list[tuple[str, int, str]]:
    """CACD2000/<age>_<Name>_<nnnn>.jpg and CACD.csv (filename, age, fold, database). Returns the (image
    path, age, split) rows."""
    (root / "CACD2000").mkdir(parents=True)
    lines, rows = ["filename,age,fold,database"], []
    for n in range(18):
        split = "train" if n < 10 else "val" if n < 14 else "test"
        age = 14 + (7 * n) % 49
        name = f"{age}_Person_{n // 3}_{n:04d}.jpg"
        jpeg(root / "CACD2000" / name, n, size=(12, 12))
        lines.append(f"{name},{age},{split},CACD2000")
        rows.append((f"CACD2000/{name}", age, split))
    (root / "CACD.csv").write_text("\n".join(lines) + "\n")
    return rows


def order_manifest(name: str, root: Path, out: Path, splits: dict[str, int]) -> Path:
    """The built-in manifest of ``name`` with the stand-in files' checksums and ``splits`` rows, written to
    ``out``."""
    m = copy.deepcopy(FACE_DATASETS[name].manifest)
    for f in m["files"]:
        f["sha256"] = hashlib.sha256((root / f["path"]).read_bytes()).hexdigest()
    m["splits"] = splits
    if m["images"].get("count") is not None:
        m["images"]["count"] = sum(1 for _ in (root / m["images"]["folder"]).iterdir())
    m.update(source={"url": "stand-in"}, citation=[], protocol={"note": "stand-in"}, reference_results={})
    out.write_text(yaml.safe_dump(m, sort_keys=False))
    return out
