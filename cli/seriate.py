"""``clss seriate``: order the items of a similarity matrix stored in a file (or a built-in example)."""

from __future__ import annotations

import math
import re
import time
import warnings
from pathlib import Path

import click

from clss_cli.console import console, fail_cleanly


@click.command("seriate")
@click.argument("file", required=False, type=click.Path(path_type=Path))
@click.option("--example", type=click.Choice(["curve", "robinson"]),
              help="Use a built-in, shuffled example instead of FILE.")
@click.option("--method", type=click.Choice(["auto", "spectral", "anchored", "rcm", "enumerate", "olo"]),
              default="auto", show_default=True,
              help="auto: anchored with --anchors, else spectral. spectral with --anchors only "
                   "orients the Fiedler order. olo: optimal leaf ordering of a clustering.")
@click.option("--linkage", type=click.Choice(["average", "complete", "single", "weighted"]),
              default="average", show_default=True, help="--method olo: the clustering's linkage.")
@click.option("--refine", metavar="CRITERION", default=None,
              help="Improve the order on this criterion by local search (never worse): 2sum, "
                   "path_length, ls, inertia, ar_events, ar_deviations, gradient_raw or "
                   "gradient_weighted.")
@click.option("--anchors", "anchors_file", type=click.Path(path_type=Path),
              help="CSV (index,value) or JSON {anchors, values}: labelled items and their values.")
@click.option("--kind", type=click.Choice(["similarity", "distance"]), default="similarity",
              show_default=True, help="A distance matrix is mapped by 1/(1+d).")
@click.option("--laplacian", type=click.Choice(["unnormalized", "symmetric", "random_walk"]),
              default="unnormalized", show_default=True)
@click.option("--negative", type=click.Choice(["raise", "clip", "shift"]), default="raise",
              show_default=True, help="Policy for negative similarities.")
@click.option("--symmetrize", type=click.Choice(["no", "average", "max", "min"]), default="no",
              show_default=True)
@click.option("--isolated", type=click.Choice(["raise", "nan", "unanchored", "ridge"]),
              default="raise", show_default=True,
              help="Anchored: components without anchors.")
@click.option("--weak", type=click.Choice(["peel", "keep"]), default="peel", show_default=True,
              help="Spectral: set weakly attached items aside, order the rest and insert them back "
                   "when they distort the order (peel), or keep the plain spectral order.")
@click.option("--solver", default="auto", show_default=True, help="Eigen/linear solver route.")
@click.option("--key", help="Array name inside a multi-array .npz file.")
@click.option("-o", "--output", "outputs", multiple=True, type=click.Path(path_type=Path),
              help="Write the result: .csv (the order) or .json (order and diagnostics). "
                   "Repeatable.")
@click.option("--plot", type=click.Path(path_type=Path),
              help="Save the matrix before and after reordering, side by side (PNG/PDF/SVG).")
@fail_cleanly
def seriate_command(file: Path | None, example: str | None, method: str, linkage: str,
                    refine: str | None, anchors_file: Path | None, kind: str, laplacian: str,
                    negative: str, symmetrize: str, isolated: str, weak: str, solver: str,
                    key: str | None,
                    outputs: tuple[Path, ...], plot: Path | None) -> None:
    """Seriate the similarity matrix in FILE (.npy, .npz, .csv, .tsv, .txt, .mtx).

    Example: clss seriate --example curve -o order.csv --plot reorder.png
    """
    from clss.seriation import SeriationWarning, seriate
    from clss.seriation.compare import compare_orders, order_from_ranks
    from clss.seriation.generators import example as make_example
    from clss.seriation.io import load_anchors, load_similarity, save_seriation

    if (file is None) == (example is None):
        raise click.UsageError("give either FILE or --example (not both)")
    for out in outputs:  # before the work, not after it
        if out.suffix.lower() not in (".csv", ".json"):
            raise click.BadParameter(f"{out.name} must end in .csv or .json", param_hint="'-o'")
    truth = None
    if example is not None:
        matrix, truth = make_example(example)
        source = f"built-in example '{example}'"
    else:
        try:
            matrix = load_similarity(file, key=key)
        except (ValueError, TypeError) as exc:
            raise type(exc)(as_cli_advice(str(exc))) from None
        source = str(file)
    anchors = values = None
    if anchors_file is not None:
        anchors, values = load_anchors(anchors_file)
    if method == "anchored" and anchors is None:
        raise click.UsageError("--method anchored needs --anchors FILE")
    with console.status(f"Seriating {matrix.shape[0]:,} items from {source}..."):
        start = time.perf_counter()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", SeriationWarning)
                result = seriate(matrix, method=method, anchors=anchors, anchor_values=values,
                                 kind=kind, laplacian=laplacian, negative=negative,
                                 symmetrize=False if symmetrize == "no" else symmetrize,
                                 isolated=isolated, weak=weak, solver=solver, linkage=linkage,
                                 refine=refine)
        except (ValueError, TypeError) as exc:
            raise type(exc)(as_cli_advice(str(exc))) from None
        elapsed = time.perf_counter() - start
    for warning in caught:  # one line each, not Python's file:line report
        console.print(f"[yellow]warning:[/yellow] {as_cli_advice(str(warning.message))}",
                      highlight=False)
    rows = [("items", f"{result.n:,}"), ("method", f"{result.method} ({result.laplacian})"),
            ("solver", result.solver), ("converged", str(result.converged)),
            ("components", str(result.n_components)), ("time", f"{elapsed:.3f} s")]
    for name in ("lambda2", "eigengap", "safe_radius", "residual", "conditioning"):
        value = getattr(result, name)
        if not math.isnan(value):
            rows.append((name, f"{value:.4g}"))
    if "peeled" in result.info:
        rows.append(("set aside and inserted", f"{len(result.info['peeled']):,} items"))
    if "refine" in result.info:
        done = result.info["refine"]
        rows.append((f"refined {done['criterion']}",
                     f"{done['before']:.6g} -> {done['after']:.6g} ({done['moves']} moves, "
                     f"{done['passes']} passes)"))
    if truth is not None:
        tau = compare_orders(result.order, order_from_ranks(truth), measure="kendall")
        rows.append(("|Kendall tau| vs truth", f"{tau:.4f}"))
    _print_summary(source, rows, result.order.tolist())
    for out in outputs:
        console.print(f"wrote [bold]{save_seriation(result, out)}[/bold]")
    if plot is not None:
        from clss.plotting import plot_seriation

        plot_seriation(matrix, result, plot, title=source, label=kind)
        console.print(f"wrote [bold]{plot}[/bold]")


# Library messages advise keywords (``negative='clip'``); these are the ones this command has as flags.
_FLAGS = ("symmetrize", "negative", "isolated", "weak", "solver", "laplacian", "method", "kind",
          "key", "linkage", "refine")
_ADVICE = re.compile(r"\b(" + "|".join(_FLAGS) + r")=('[^']*'(?:(?:, | or )'[^']*')*)")


def as_cli_advice(message: str) -> str:
    """Rewrite keyword advice as this command's flags: ``negative='clip' or 'shift'`` becomes
    ``--negative clip or shift``."""
    def flag(match: re.Match[str]) -> str:
        return f"--{match[1]} " + re.sub(r"'([^']*)'", r"\1", match[2])

    return _ADVICE.sub(flag, message).replace("anchor_values", "anchor values")


def _print_summary(source: str, rows: list[tuple[str, str]], order: list[int]) -> None:
    from rich.table import Table

    table = Table(title=f"Seriation of {source}", show_header=False)
    table.add_column(style="bold cyan")
    table.add_column()
    for name, value in rows:
        table.add_row(name, value)
    head = ", ".join(map(str, order[:12])) + (", ..." if len(order) > 12 else "")
    table.add_row("order", head)
    console.print(table)
