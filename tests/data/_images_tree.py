"""A stand-in image folder for the tests: random PNG files under ``img/`` and a ``path,target`` CSV
(the ``image-csv`` layout)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def image_csv(root: Path, n: int, size: tuple[int, int], target=lambda i: i) -> Path:
    """``n`` random RGB PNGs of ``size`` (height, width) in ``root/img/`` and ``root/data.csv`` listing
    them with ``target(i)``; returns the CSV's path."""
    rng = np.random.default_rng(0)
    (root / "img").mkdir(parents=True)
    lines = ["path,target"]
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(root / "img" / f"{i}.png")
        lines.append(f"img/{i}.png,{target(i)}")
    (root / "data.csv").write_text("\n".join(lines) + "\n")
    return root / "data.csv"
