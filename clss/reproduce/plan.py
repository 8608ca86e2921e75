"""A table's grid: one resolved training configuration per (row, column, seed), and its estimated cost."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clss.config import merge_dicts, resolve_config
from clss.engine.rundir import RunDir
from clss.reproduce.grid import GridRun, run_state
from clss.reproduce.tables import Table

__all__ = ["Estimate", "estimate_cost", "grid_run", "plan_table"]

# A method without a documented or measured step time is assumed to cost this many supervised steps.
ASSUMED_RATIO = 3.0


def _choose(kind: str, asked: Sequence[str] | None, known: list[str], default: list[str] | None) -> list[str]:
    if not asked:
        return default or known
    out = []
    for key in asked:
        if key not in known:
            raise ValueError(f"{kind}: {key!r} is not in this table; choose from {', '.join(known)}")
        if key not in out:
            out.append(key)
    return out


def plan_table(table: Table, *, seeds: Sequence[int] | None = None, methods: Sequence[str] | None = None,
               settings: Sequence[str] | None = None, quick: bool = False, steps: int | None = None,
               overrides: dict[str, Any] | None = None, data_root: str | Path | None = None,
               check_data: bool = True) -> list[GridRun]:
    """The runs of ``table``: rows x columns x seeds, each with its resolved configuration.

    Precedence of a run's configuration, lowest first: the defaults and presets < the table's ``config`` <
    its ``quick.config`` (with ``quick``) < the column's and row's ``config`` < the row's method, the
    column's ``labeled`` and the seed < ``overrides`` (``--set``) < ``steps`` and ``data_root``.

    Parameters
    ----------
    seeds : the seeds (default: the table's ``seeds``); each sets the table's ``seed_keys``.
    methods, settings : subsets of the rows (their names: the method's unless the row names itself) and
        columns (names or labels), in the order given; default all (with ``quick``: the quick profile's
        choice).
    quick : apply the table's quick profile (fewer columns and steps; ``docs/reproduce.md``).
    steps : override the training budget of every run.
    overrides : configuration keys for every run (nested, as :func:`clss.config.parse_overrides` gives).
    data_root : folder of an image table's files (made absolute).
    check_data : refuse a table that reads image files (the face protocols) without a ``data_root``
        (False: plan it anyway, e.g. to print the plan).

    Raises
    ------
    ValueError
        A method or setting not in the table, a method not registered in this clss, bad seeds, or a
        configuration that does not validate (the message names the key).
    """
    from clss.methods import METHODS

    if seeds is None:
        seeds = table.seeds
    seeds = list(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of integers >= 0, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds lists a seed twice: {seeds!r}")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    from clss.data.faces import FACE_DATASETS

    has_root = data_root is not None or (overrides or {}).get("data_root") or table.config.get("data_root")
    if check_data and table.dataset in FACE_DATASETS and not has_root:
        raise ValueError(f"table {table.name!r} trains on the {table.dataset} image files: give the folder "
                         f"that holds them as data_root (--data-root DIR)")
    profile = table.quick if quick else {}
    chosen_methods = _choose("methods", methods, [r.name for r in table.rows], profile.get("methods"))
    if settings:
        settings = [table.column(s).name for s in settings]
    chosen_settings = _choose("settings", settings, [c.name for c in table.columns], profile.get("settings"))
    rows = {r.name: r for r in table.rows}
    unknown = [m for m in chosen_methods if rows[m].method not in METHODS]
    if unknown:
        raise ValueError(f"table {table.name!r}: method {rows[unknown[0]].method!r} is not registered in "
                         f"this clss (registered: {', '.join(METHODS)}); leave {unknown[0]!r} out of methods "
                         "(--methods)")
    late = dict(overrides or {})
    if steps is not None:
        late["steps"] = steps
    if data_root is not None:
        late["data_root"] = str(Path(data_root).expanduser().resolve())
    late["progress"] = False
    runs = []
    for method in chosen_methods:
        row = rows[method]
        for setting in chosen_settings:
            column = table.column(setting)
            base = merge_dicts(merge_dicts(table.config, profile.get("config", {})), column.config)
            base = merge_dicts(base, row.config)
            for seed in seeds:
                values = merge_dicts(base, {"dataset": table.dataset, "method": row.method,
                                            "labeled": column.labeled, "method_params": row.params,
                                            **{k: seed for k in table.seed_keys}})
                runs.append(grid_run(method, setting, seed, values, late,
                                     where=f"table {table.name!r}, {method} at {setting}"))
    return runs


def grid_run(name: str, setting: str, seed: int, values: dict[str, Any], late: dict[str, Any], *,
             where: str) -> GridRun:
    """The grid run ``NAME/SETTING/seedK`` of the configuration ``values`` resolved with the overrides
    ``late`` (:func:`clss.config.resolve_config`); a bad value raises ValueError starting with ``where``."""
    try:
        cfg = resolve_config(values, late)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    return GridRun(method=name, setting=setting, seed=seed, run_dir=f"{name}/{setting}/seed{seed}",
                   config=json.loads(json.dumps(cfg.to_dict(), default=str)))


@dataclass(frozen=True)
class Estimate:
    """The estimated seconds of one run (None: unknown) and where its step time comes from
    (``"measured"``: finished runs of this grid; ``"documented"``: the table's ``cost``; ``"assumed"``)."""

    seconds: float | None
    basis: str


def estimate_cost(table: Table, runs: Sequence[GridRun], out: str | Path | None) -> dict[str, Estimate]:
    """Seconds per unfinished run (``run.name`` -> :class:`Estimate`; finished runs cost 0).

    The step time of a method is measured from the grid's finished runs of that method and setting
    (``summary.json``: training seconds / steps) when there are some, else taken from the table's
    ``cost.step_seconds``, else assumed to be :data:`ASSUMED_RATIO` supervised steps. Each run adds the
    table's ``cost.overhead_seconds`` (process start, data, evaluation, figures). ``out`` None: no run is
    done yet.
    """
    states = {r.name: "new" if out is None else run_state(Path(out) / r.run_dir) for r in runs}
    measured: dict[tuple[str, str], list[float]] = {}
    for run in runs:
        if states[run.name] == "finished":
            summary = Path(out) / run.run_dir / RunDir.SUMMARY  # type: ignore[arg-type]
            values = json.loads(summary.read_text())
            if values.get("steps"):
                measured.setdefault((run.method, run.setting), []).append(values["seconds"] / values["steps"])
    documented = table.cost.get("step_seconds", {})
    overhead = float(table.cost.get("overhead_seconds", 0))
    result = {}
    for run in runs:
        if states[run.name] in ("finished", "diverged"):
            result[run.name] = Estimate(0.0, "done")
            continue
        mine = measured.get((run.method, run.setting))
        if mine:
            step, basis = sum(mine) / len(mine), "measured"
        elif run.method in documented:
            step, basis = float(documented[run.method]), "documented"
        elif "supervised" in documented:
            step, basis = ASSUMED_RATIO * float(documented["supervised"]), "assumed"
        else:
            result[run.name] = Estimate(None, "unknown")
            continue
        result[run.name] = Estimate(step * int(run.config["steps"]) + overhead, basis)
    return result
