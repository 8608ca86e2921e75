"""Labeled / unlabeled splitting of the training rows: ``--labeled 10%``, ``0.1`` or ``250``.

The split is a seeded permutation of the training rows (``numpy.random.default_rng(seed)``); the first
``k`` rows are labeled, the next ones unlabeled. It is saved to a run directory as ``splits.json``.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from clss.atomic import atomic_write_bytes

__all__ = ["LabeledSpec", "Splits", "check_seed", "parse_labeled", "split_labeled"]

_INT_RE = re.compile(r"^\+?\d+$")
_FLOAT_RE = re.compile(r"^\+?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?$")
_RATIO_RE = re.compile(r"^(\d+)\s*/\s*(\d+)$")

# The labeled amount when none is given and every training row has a target.
DEFAULT_LABELED = "20%"
# Relative slack so that e.g. 29% of 100 rows gives 29 labels despite 0.29 * 100 = 28.999...
_FLOOR_SLACK = 1e-9


def check_seed(seed: Any, name: str = "seed") -> int:
    """``seed`` as an int; a ValueError unless it is a non-negative integer (``numpy``'s seeds)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{name} must be a non-negative integer (--seed / --split-seed N), got {seed!r}")
    return int(seed)


@dataclass(frozen=True)
class LabeledSpec:
    """A parsed ``--labeled`` value: a fraction of the training rows or an absolute count.

    Attributes
    ----------
    kind : {"fraction", "count"}
    value : float or int
        Fraction in (0, 1] or count >= 1.
    text : str
        Canonical spelling (``"10%"``, ``"0.25"``, ``"250"``), recorded in ``splits.json``.
    """

    kind: Literal["fraction", "count"]
    value: float | int
    text: str

    def count(self, n_train: int) -> int:
        """Number of labeled rows out of ``n_train`` (fractions are floored)."""
        if self.kind == "count":
            return int(self.value)
        return math.floor(n_train * float(self.value) * (1 + _FLOOR_SLACK))


def parse_labeled(spec: LabeledSpec | str | int | float) -> LabeledSpec:
    """Parse a labeled-amount specification.

    Accepted forms: ``"10%"`` (percent, in (0, 100]), ``"0.1"`` / ``0.1`` (a fraction in (0, 1]; a string
    needs a decimal point), ``"1/30"`` (a ratio of whole numbers, as the papers write their label settings),
    ``"250"`` / ``250`` (a count >= 1), ``"all"`` (every row with a target).

    Parameters
    ----------
    spec : LabeledSpec, str, int or float

    Returns
    -------
    LabeledSpec

    Raises
    ------
    ValueError
        For anything else, e.g. ``"ten percent"``, ``"150%"``, ``"-3"``, ``"0.0"``, ``0``, ``True``.
    """
    if isinstance(spec, LabeledSpec):
        return spec
    if isinstance(spec, bool) or not isinstance(spec, (str, int, float, np.integer, np.floating)):
        raise ValueError(f"labeled amount must be a percent, fraction or count, got {spec!r}")
    hint = "use a percent like '10%', a fraction like '0.1' or '1/30', a count like '250' or 'all'"
    if isinstance(spec, (int, np.integer)):
        if spec < 1:
            raise ValueError(f"labeled count must be >= 1, got {spec}; {hint}")
        return LabeledSpec("count", int(spec), str(int(spec)))
    if isinstance(spec, (float, np.floating)):
        return _fraction(float(spec), repr(float(spec)), hint)
    text = spec.strip()
    if text.lower() == "all":
        return LabeledSpec("fraction", 1.0, "all")
    if text.endswith("%"):
        number = text[:-1].strip()
        if not _FLOAT_RE.match(number):
            raise ValueError(f"cannot parse labeled amount {spec!r}; {hint}")
        pct = float(number)
        if not 0 < pct <= 100:
            raise ValueError(f"labeled percent must be in (0, 100], got {spec!r}")
        return LabeledSpec("fraction", pct / 100, f"{number}%")
    if _INT_RE.match(text):
        count = int(text)
        if count < 1:
            raise ValueError(f"labeled count must be >= 1, got {spec!r}; {hint}")
        return LabeledSpec("count", count, str(count))
    if _FLOAT_RE.match(text):
        return _fraction(float(text), text, hint)
    ratio = _RATIO_RE.match(text)
    if ratio and int(ratio[2]) > 0:  # "1/30", as the papers write their label settings
        return _fraction(int(ratio[1]) / int(ratio[2]), f"{int(ratio[1])}/{int(ratio[2])}", hint)
    raise ValueError(f"cannot parse labeled amount {spec!r}; {hint}")


def _fraction(value: float, text: str, hint: str) -> LabeledSpec:
    if not math.isfinite(value) or not 0 < value <= 1:
        raise ValueError(f"labeled fraction must be in (0, 1], got {text}; {hint}")
    return LabeledSpec("fraction", value, text)


@dataclass
class Splits:
    """Labeled and unlabeled row indices into the training split.

    Attributes
    ----------
    labeled, unlabeled : np.ndarray
        int64 ``[n_labeled]`` / ``[n_unlabeled]``, disjoint.
    spec : str or None
        The labeled specification it came from (``"10%"``, ``"250"``, a protocol name).
    seed : int or None
        Seed of the permutation.
    n_train : int or None
        Number of training rows the indices refer to.
    no_target : np.ndarray
        int64, sorted: the unlabeled rows that have no target at all (empty target cells); stored in
        ``splits.json`` as ``no_target``.
    extra : dict
        Further JSON-able fields stored with the split (dataset name, run, ...).
    """

    labeled: np.ndarray
    unlabeled: np.ndarray
    spec: str | None = None
    seed: int | None = None
    n_train: int | None = None
    no_target: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self, path: str | os.PathLike[str], **extra: Any) -> Path:
        """Write ``splits.json`` atomically; ``extra`` keyword fields are stored alongside.

        Returns
        -------
        Path
            The written file.
        """
        payload = {
            "spec": self.spec,
            "seed": self.seed,
            "n_train": self.n_train,
            "n_labeled": int(self.labeled.size),
            "n_unlabeled": int(self.unlabeled.size),
            "n_no_target": int(self.no_target.size),
            **self.extra,
            **extra,
            "labeled": [int(i) for i in self.labeled],
            "unlabeled": [int(i) for i in self.unlabeled],
            "no_target": [int(i) for i in self.no_target],
        }
        return atomic_write_bytes(path, (json.dumps(payload, indent=1) + "\n").encode())

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> Splits:
        """Read a file written by :meth:`to_json` (checks the stored counts)."""
        try:
            payload = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"splits file not found: {path}") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not valid JSON: {exc}") from None
        missing = {"labeled", "unlabeled"} - set(payload)
        if missing:
            raise ValueError(f"{path} lacks {sorted(missing)}")
        labeled = np.asarray(payload.pop("labeled"), dtype=np.int64)
        unlabeled = np.asarray(payload.pop("unlabeled"), dtype=np.int64)
        no_target = np.asarray(payload.pop("no_target", []), dtype=np.int64)
        for key, arr in (("n_labeled", labeled), ("n_unlabeled", unlabeled), ("n_no_target", no_target)):
            if payload.pop(key, arr.size) != arr.size:
                raise ValueError(f"{path}: {key} does not match the stored indices")
        return cls(
            labeled=labeled,
            unlabeled=unlabeled,
            spec=payload.pop("spec", None),
            seed=payload.pop("seed", None),
            n_train=payload.pop("n_train", None),
            no_target=no_target,
            extra=payload,
        )


def split_labeled(
    n_train: int,
    labeled: LabeledSpec | str | int | float | None = None,
    *,
    seed: int,
    unlabeled: Literal["rest"] | int | float = "rest",
    require_unlabeled: bool = True,
    no_target: np.ndarray | list[int] | None = None,
) -> Splits:
    """Split ``n_train`` training rows into labeled and unlabeled sets (seeded, deterministic).

    Rows listed in ``no_target`` have no target: they are always unlabeled. The other rows (all of them
    when ``no_target`` is empty) are permuted by ``numpy.random.default_rng(seed)``; the first ``k`` are
    labeled and the following ones unlabeled (all of them for ``unlabeled="rest"``, the ``--allsplt``
    setting of the official scripts). Both index arrays are returned sorted.

    Parameters
    ----------
    n_train : int
        Number of training rows.
    labeled : LabeledSpec, str, int, float or None
        See :func:`parse_labeled`; a fraction counts the rows with a target. ``None`` (the default): every
        row with a target (``"all"``) when some rows have none, else ``"20%"``.
    seed : int
        Permutation seed.
    unlabeled : "rest", int or float, default "rest"
        Which rows with a target, besides the labeled ones, are unlabeled: all of them, a count, or a
        fraction of ``n_train`` (e.g. the paper's synthetic protocol uses as many unlabeled as labeled
        rows). The ``no_target`` rows come on top.
    require_unlabeled : bool, default True
        Raise if there are no unlabeled rows (semi-supervised methods need some).
    no_target : array-like of int, optional
        Training rows without a target.

    Returns
    -------
    Splits

    Raises
    ------
    ValueError
        Zero labels, more labels than rows with a target, too many unlabeled rows requested, or no
        unlabeled rows when ``require_unlabeled``.
    """
    seed = check_seed(seed)
    if n_train < 1:
        raise ValueError(f"cannot split {n_train} training rows")
    missing = np.unique(np.asarray([] if no_target is None else no_target, dtype=np.int64))
    if missing.size and (missing[0] < 0 or missing[-1] >= n_train):
        raise ValueError(f"no_target indices must lie in [0, {n_train})")
    pool = np.setdiff1d(np.arange(n_train), missing)
    if labeled is None:
        labeled = "all" if missing.size else DEFAULT_LABELED
    spec = parse_labeled(labeled)
    k = spec.count(pool.size)
    have = f"{pool.size} training rows" + (" with a target" if missing.size else "")
    if k < 1:
        raise ValueError(f"--labeled {spec.text} of {have} gives 0 labeled rows")
    if k > pool.size:
        raise ValueError(f"--labeled {spec.text} asks for {k} labeled rows but there are only {have}")
    rest = pool.size - k
    if unlabeled == "rest":
        m = rest
    elif isinstance(unlabeled, bool) or not isinstance(unlabeled, (int, float, np.integer, np.floating)):
        raise ValueError(f"unlabeled must be 'rest', a count or a fraction, got {unlabeled!r}")
    elif isinstance(unlabeled, (float, np.floating)):
        if not 0 <= unlabeled <= 1:
            raise ValueError(f"unlabeled fraction must be in [0, 1], got {unlabeled}")
        m = math.floor(n_train * float(unlabeled) * (1 + _FLOOR_SLACK))
    else:
        m = int(unlabeled)
    if m < 0 or m > rest:
        raise ValueError(f"asked for {m} unlabeled rows but only {rest} rows are left after {k} labeled")
    if require_unlabeled and m + missing.size == 0:
        raise ValueError(
            f"--labeled {spec.text} of {have} leaves no unlabeled rows; a semi-supervised method needs some "
            "(label fewer, e.g. --labeled 20%, leave target cells empty for unlabelled rows, or use "
            "--method supervised)"
        )
    # pool[permutation] is the plain permutation when every row has a target (splits stay as before).
    perm = pool[np.random.default_rng(seed).permutation(pool.size)]
    return Splits(
        labeled=np.sort(perm[:k]),
        unlabeled=np.sort(np.concatenate([perm[k : k + m], missing])),
        spec=spec.text,
        seed=int(seed),
        n_train=int(n_train),
        no_target=missing,
    )
