"""Published tables as data: one YAML file per table, loaded and validated into a :class:`Table`.

A table file names the dataset and protocol (the configuration keys every run shares, the training budget),
its rows (registry method names with the paper's row labels and optional method parameters), its columns
(label settings), the metrics, and the published mean ± std of every cell with its source and the paper's
selection rule. Shipped tables live in ``clss/reproduce/tables/<name>.yaml``; a user's own file is loaded
the same way (``docs/reproduce.md`` describes the format). Every problem is refused on load with one line
naming the file and the key.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clss.config import TrainConfig, load_yaml
from clss.schema import unknown_key_message

__all__ = ["LOWER_IS_BETTER", "METRICS", "Cell", "Column", "Row", "Table", "list_tables", "load_table",
           "parse_cell", "table_path"]

TABLES_DIR = Path(__file__).with_name("tables")

#: Metrics a table may report (keys of a run's ``summary.json`` test metrics) and whether lower is better.
METRICS = {"mae": True, "rmse": True, "mse": True, "gm": True, "r2": False, "pearson": False,
           "spearman": False, "kendall": False, "accuracy": False, "mae_classes": True, "qwk": False}
LOWER_IS_BETTER = {k for k, low in METRICS.items() if low}

#: Configuration keys a seed sets in each run: ``seed`` always; ``split_seed`` and ``run`` (operator-sde's
#: paper runs, one per seed) when the table says so.
SEED_KEYS = ("seed", "split_seed", "run")
# Keys a table's shared ``config`` may not hold: rows, columns and seeds set them.
_PER_RUN = ("dataset", "method", "method_params", "labeled", *SEED_KEYS)

_TOP = {"name", "title", "description", "dataset", "config", "seed_keys", "seeds", "metrics", "columns",
        "rows", "source", "quick", "cost"}
_REQUIRED = ("name", "title", "dataset", "columns", "rows", "metrics", "source")
_COLUMN = {"name", "label", "labeled", "config"}
_ROW = {"name", "method", "label", "params", "config", "published"}
_SOURCE = {"paper", "table", "selection", "seeds", "url", "notes"}
_QUICK = {"config", "settings", "methods", "note"}
_COST = {"step_seconds", "overhead_seconds", "measured"}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_NUMBER = r"\d+(?:\.\d*)?(?:[eE][-+]?\d+)?"
_CELL_RE = re.compile(rf"^\s*([-+]?{_NUMBER})\s*(%?)\s*(?:±\s*({_NUMBER})\s*%?)?\s*$")


@dataclass(frozen=True)
class Cell:
    """One published value: ``mean`` and ``std`` (None when the paper gives none) in the metric's units
    (R² as a fraction), or ``missing`` (the reason) when the paper has no number for it."""

    mean: float | None = None
    std: float | None = None
    missing: str | None = None


@dataclass(frozen=True)
class Column:
    """A label setting: ``name`` (folder name, ``--settings``), ``label`` (the paper's heading), ``labeled``
    (the ``labeled`` configuration value) and extra configuration keys."""

    name: str
    label: str
    labeled: str
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    """A method: registry ``method``, the paper's ``label``, its ``params`` (``method_params``), extra
    configuration keys, the published cells ``published[metric][column index]``, and ``name``: the row's
    folder name and ``--methods`` key (default: ``method``; two rows of one method need their own names)."""

    method: str
    label: str
    params: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    published: dict[str, list[Cell]] = field(default_factory=dict)
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.method)


@dataclass(frozen=True)
class Table:
    """A validated table file (see the module docstring); ``path`` is the file it came from."""

    name: str
    title: str
    dataset: str
    columns: list[Column]
    rows: list[Row]
    metrics: list[str]
    source: dict[str, Any]
    path: Path
    config: dict[str, Any] = field(default_factory=dict)
    seed_keys: list[str] = field(default_factory=lambda: ["seed"])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    description: str = ""
    quick: dict[str, Any] = field(default_factory=dict)
    cost: dict[str, Any] = field(default_factory=dict)

    @property
    def selection(self) -> str:
        """The checkpoint selection rule of our runs, in words."""
        metric = self.config.get("select_metric", "mae")
        if self.config.get("val_protocol", "holdout") == "test":
            return (f"best test {metric} over training (val_protocol: test; optimistic, as the paper's "
                    f"protocol)")
        return f"best validation {metric} over training (holdout split; never the test split)"

    def column(self, key: str) -> Column:
        """The column whose ``name`` or ``label`` is ``key``."""
        for col in self.columns:
            if key in (col.name, col.label):
                return col
        raise ValueError(f"table {self.name!r} has no setting {key!r}; settings: "
                         f"{', '.join(c.name for c in self.columns)}")


def list_tables() -> list[str]:
    """Names of the shipped tables (``clss reproduce NAME``)."""
    return sorted(p.stem for p in TABLES_DIR.glob("*.yaml"))


def table_path(table: str | Path) -> Path:
    """The file of a shipped table name, or ``table`` itself when it is a path to a YAML file."""
    text = str(table)
    if text in list_tables():
        return TABLES_DIR / f"{text}.yaml"
    p = Path(text).expanduser()
    if p.suffix.lower() in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise FileNotFoundError(f"table file not found: {p}")
        return p
    raise ValueError(f"unknown table {text!r}; shipped tables: {', '.join(list_tables())} (or pass a "
                     f"path to a table .yaml file)")


def load_table(table: str | Path) -> Table:
    """Load and validate a shipped table by name or a table file by path.

    Raises
    ------
    ValueError
        One line naming the file and the key: unknown keys, missing keys, a row whose published cells do not
        match the columns, a number that cannot be read, a bad configuration key.
    FileNotFoundError
        No such file.
    """
    path = table_path(table)
    try:
        values = load_yaml(path)
    except ValueError as exc:
        raise ValueError(f"table {exc}") from None
    return _parse(values, path)


def _fail(path: Path, key: str, problem: str) -> ValueError:
    return ValueError(f"table {path}: {key}: {problem}")


def _keys(path: Path, where: str, values: Any, known: set[str], required: tuple[str, ...] = ()) -> dict:
    if not isinstance(values, dict):
        raise _fail(path, where, f"must be a mapping, got {type(values).__name__}")
    for key in values:
        if key not in known:
            raise _fail(path, where, unknown_key_message(str(key), str(key), sorted(known)))
    for key in required:
        if key not in values:
            raise _fail(path, where, f"missing key {key!r}")
    return values


def _text(path: Path, where: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(path, where, f"must be a non-empty text, got {value!r}")
    return value


def _check_config(path: Path, where: str, values: Any, forbidden: tuple[str, ...]) -> dict[str, Any]:
    """Configuration keys: a mapping of :class:`TrainConfig` keys, none of ``forbidden``."""
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise _fail(path, where, f"must be a mapping of configuration keys, got {type(values).__name__}")
    known = [f for f in TrainConfig.__dataclass_fields__]
    for key in values:
        if key not in known:
            raise _fail(path, f"{where}.{key}", unknown_key_message(str(key), str(key), known))
        if key in forbidden:
            raise _fail(path, f"{where}.{key}", "is set by the table's rows, columns or seeds, not here")
    return dict(values)


def parse_cell(value: Any) -> Cell:
    """A published cell: ``"0.098±0.095"``, ``"27.1%±1.5"`` (percent: mean and std divided by 100), a
    number (no std), or ``{missing: REASON}``.

    Raises
    ------
    ValueError
        Anything else (the message says what is accepted).
    """
    if isinstance(value, dict):
        if set(value) != {"missing"} or not isinstance(value["missing"], str) or not value["missing"].strip():
            raise ValueError(f"a missing cell is {{missing: REASON}} with a non-empty reason, got {value!r}")
        return Cell(missing=value["missing"])
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError(f"a published value must be finite, got {value!r}")
        return Cell(mean=float(value))
    match = _CELL_RE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"a published cell is 'MEAN±STD' (e.g. '0.098±0.095' or '27.1%±1.5'), a number or "
                         f"{{missing: REASON}}, got {value!r}")
    scale = 0.01 if match.group(2) else 1.0
    std = None if match.group(3) is None else float(match.group(3)) * scale
    return Cell(mean=float(match.group(1)) * scale, std=std)


def _published(path: Path, where: str, values: Any, metrics: list[str],
               n_columns: int) -> dict[str, list[Cell]]:
    if isinstance(values, dict) and set(values) == {"missing"}:  # the whole row: one reason
        cell = _cell(path, where, values)
        return {m: [cell] * n_columns for m in metrics}
    values = _keys(path, where, values, set(metrics), tuple(metrics))
    out = {}
    for metric in metrics:
        cells = values[metric]
        if not isinstance(cells, list) or len(cells) != n_columns:
            raise _fail(path, f"{where}.{metric}", f"must list one cell per column ({n_columns}), got "
                                                   f"{len(cells) if isinstance(cells, list) else cells!r}")
        out[metric] = [_cell(path, f"{where}.{metric}[{i}]", c) for i, c in enumerate(cells)]
    return out


def _cell(path: Path, where: str, value: Any) -> Cell:
    try:
        return parse_cell(value)
    except ValueError as exc:
        raise _fail(path, where, str(exc)) from None


def _parse(values: dict[str, Any], path: Path) -> Table:
    _keys(path, "top level", values, _TOP, _REQUIRED)
    name = _text(path, "name", values["name"])
    if not _NAME_RE.match(name):
        raise _fail(path, "name", f"must be letters, digits, '.', '_' or '-', got {name!r}")
    metrics = values["metrics"]
    if not isinstance(metrics, list) or not metrics or any(m not in METRICS for m in metrics):
        raise _fail(path, "metrics", f"must be a non-empty list of {', '.join(METRICS)}, got {metrics!r}")
    if len(set(metrics)) != len(metrics):
        raise _fail(path, "metrics", f"lists a metric twice: {metrics!r}")
    source = _keys(path, "source", values["source"], _SOURCE, ("paper", "selection"))
    for key in ("paper", "selection"):
        _text(path, f"source.{key}", source[key])
    seed_keys = values.get("seed_keys", ["seed"])
    if (not isinstance(seed_keys, list) or "seed" not in seed_keys
            or any(k not in SEED_KEYS for k in seed_keys)):
        raise _fail(path, "seed_keys", f"must be a list holding 'seed' and optionally 'split_seed', 'run', "
                                       f"got {seed_keys!r}")
    seeds = values.get("seeds", [0, 1, 2])
    if (not isinstance(seeds, list) or not seeds
            or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds)):
        raise _fail(path, "seeds", f"must be a non-empty list of integers >= 0, got {seeds!r}")
    config = _check_config(path, "config", values.get("config"), _PER_RUN)
    columns = _columns(path, values["columns"])
    rows = _rows(path, values["rows"], metrics, len(columns))
    quick = _keys(path, "quick", values.get("quick") or {}, _QUICK)
    _check_config(path, "quick.config", quick.get("config"), _PER_RUN)
    for key, known in (("settings", {c.name for c in columns}), ("methods", {r.name for r in rows})):
        chosen = quick.get(key, [])
        if not isinstance(chosen, list) or any(k not in known for k in chosen):
            raise _fail(path, f"quick.{key}", f"must list some of {sorted(known)}, got {chosen!r}")
    cost = _keys(path, "cost", values.get("cost") or {}, _COST)
    steps = cost.get("step_seconds", {})
    if not isinstance(steps, dict) or any(
            not isinstance(v, int | float) or isinstance(v, bool) or not v > 0 for v in steps.values()):
        raise _fail(path, "cost.step_seconds", f"must map method names to seconds > 0, got {steps!r}")
    overhead = cost.get("overhead_seconds", 0)
    if not isinstance(overhead, int | float) or isinstance(overhead, bool) or overhead < 0:
        raise _fail(path, "cost.overhead_seconds", f"must be a number of seconds >= 0, got {overhead!r}")
    return Table(name=name, title=_text(path, "title", values["title"]),
                 dataset=_text(path, "dataset", values["dataset"]), columns=columns, rows=rows,
                 metrics=list(metrics), source=dict(source), path=path, config=config,
                 seed_keys=list(seed_keys), seeds=list(seeds), description=str(values.get("description", "")),
                 quick=dict(quick), cost=dict(cost))


def _columns(path: Path, values: Any) -> list[Column]:
    if not isinstance(values, list) or not values:
        raise _fail(path, "columns", "must be a non-empty list of label settings")
    out = []
    for i, item in enumerate(values):
        where = f"columns[{i}]"
        item = _keys(path, where, item, _COLUMN, ("name", "label", "labeled"))
        name = _text(path, f"{where}.name", item["name"])
        if not _NAME_RE.match(name):
            raise _fail(path, f"{where}.name", f"is a folder name: letters, digits, '.', '_' or '-', got "
                                                f"{name!r}")
        labeled = item["labeled"]
        if isinstance(labeled, bool) or not isinstance(labeled, str | int | float):
            raise _fail(path, f"{where}.labeled", f"must be a label setting such as '20%', 0.2 or 250, got "
                                                  f"{labeled!r}")
        out.append(Column(name=name, label=str(item["label"]), labeled=str(labeled),
                          config=_check_config(path, f"{where}.config", item.get("config"), _PER_RUN)))
    for key in ("name", "label"):
        seen = [getattr(c, key) for c in out]
        dupes = sorted({k for k in seen if seen.count(k) > 1})
        if dupes:
            raise _fail(path, "columns", f"the column {key} {dupes[0]!r} appears twice")
    return out


def _rows(path: Path, values: Any, metrics: list[str], n_columns: int) -> list[Row]:
    if not isinstance(values, list) or not values:
        raise _fail(path, "rows", "must be a non-empty list of methods")
    out = []
    for i, item in enumerate(values):
        where = f"rows[{i}]"
        item = _keys(path, where, item, _ROW, ("method", "label", "published"))
        params = item.get("params") or {}
        if not isinstance(params, dict):
            raise _fail(path, f"{where}.params", f"must be a mapping of method parameters, got {params!r}")
        method = _text(path, f"{where}.method", item["method"])
        name = _text(path, f"{where}.name", item.get("name", method))
        if not _NAME_RE.match(name):
            raise _fail(path, f"{where}.name", f"is a folder name: letters, digits, '.', '_' or '-', got "
                                                f"{name!r}")
        out.append(Row(method=method, name=name,
                       label=_text(path, f"{where}.label", item["label"]), params=dict(params),
                       config=_check_config(path, f"{where}.config", item.get("config"), _PER_RUN),
                       published=_published(path, f"{where}.published", item["published"], metrics,
                                            n_columns)))
    names = [r.name for r in out]
    dupes = sorted({m for m in names if names.count(m) > 1})
    if dupes:
        raise _fail(path, "rows", f"the row {dupes[0]!r} appears twice (give rows of one method their own "
                                  "name)")
    return out
