"""``clss reproduce``: regenerate a published table with our runs beside the paper's numbers.

:mod:`~clss.reproduce.tables` loads and validates table files (shipped in ``clss/reproduce/tables/``);
:mod:`~clss.reproduce.plan` turns a table into a grid of runs; :mod:`~clss.reproduce.grid` runs any grid of
ordinary training runs in parallel processes, resumably, or emits it as a SLURM job array;
:mod:`~clss.reproduce.report` writes ``table.md``, ``table.csv`` and the figure. See ``docs/reproduce.md``.
"""

from clss.reproduce.grid import GridResult, GridRun, emit_slurm, load_plan, run_cell, run_grid, run_state
from clss.reproduce.plan import plan_table
from clss.reproduce.report import paired_difference, write_report
from clss.reproduce.tables import Table, list_tables, load_table

__all__ = ["GridResult", "GridRun", "Table", "emit_slurm", "list_tables", "load_plan", "load_table",
           "paired_difference", "plan_table", "run_cell", "run_grid", "run_state", "write_report"]
