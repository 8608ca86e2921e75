"""Training figures are valid PNG files for normal and degenerate inputs (clss.engine.plots)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from clss.engine import plot_learning_curves, plot_predictions, plot_similarity_reordering

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 1000


def _records() -> list[dict]:
    records = []
    for step in range(1, 41):
        record = {"step": step, "loss": 1.0 / step, "loss_ur": 0.5 / step, "lr": 0.1}
        if step % 10 == 0:
            record |= {"val_mae": 1.0 / step, "val_r2": 1 - 1.0 / step}
        records.append(record)
    records[5]["loss"] = float("nan")
    records[6]["loss_uc"] = "oops"  # not a number: ignored
    return records


def test_learning_curves(tmp_path: Path) -> None:
    path = plot_learning_curves(_records(), tmp_path / "plots" / "curves.png")
    assert path == tmp_path / "plots" / "curves.png"
    _assert_png(path)


@pytest.mark.parametrize("records", [
    [],
    [{"step": 1, "loss": math.nan}, {"step": 2, "loss": math.inf, "val_mae": None}],  # nothing finite
    [{"step": 1, "loss": -1.0}, {"step": 2, "loss": 0.5}, {"step": 2, "val_mae": 0.2}],  # linear scale
])
def test_learning_curves_degenerate(tmp_path: Path, records) -> None:
    _assert_png(plot_learning_curves(records, tmp_path / "c.png"))


def test_learning_curves_with_explicit_keys(tmp_path: Path) -> None:
    _assert_png(plot_learning_curves(iter(_records()), tmp_path / "c.png", loss_keys=["loss"],
                                     metric_keys=["lr", "missing"]))


@pytest.mark.parametrize(("n", "kind"), [(50, "scatter"), (6000, "hexbin")])
def test_predictions(tmp_path: Path, n: int, kind: str) -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=n)
    path = plot_predictions(torch.from_numpy(y), y + 0.1 * rng.normal(size=n), tmp_path / f"{kind}.png",
                            title="gclss, test")
    _assert_png(path)


@pytest.mark.parametrize(("y_true", "y_pred"), [
    ([1.0, 2.0, 3.0], [2.0, 2.0, 2.0]),  # constant predictions
    ([5.0, 5.0], [5.0, 5.0]),  # one point, zero range
    ([1.0, math.nan, 3.0], [1.0, 2.0, math.inf]),
    ([math.nan], [1.0]),  # nothing finite
    ([], []),
])
def test_predictions_degenerate(tmp_path: Path, y_true, y_pred) -> None:
    _assert_png(plot_predictions(y_true, y_pred, tmp_path / "p.png"))


def test_predictions_shape_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="same length"):
        plot_predictions([1.0, 2.0], [1.0], tmp_path / "p.png")
    with pytest.raises(ValueError, match="1-D"):
        plot_predictions([[1.0]], [[1.0]], tmp_path / "p.png")


def test_similarity_reordering_closes_its_figures(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.permutation(20).astype(float)
    similarity = torch.from_numpy(np.exp(-np.abs(x[:, None] - x[None, :]) / 3))
    order = torch.from_numpy(np.argsort(x))
    _assert_png(plot_similarity_reordering(similarity, order, tmp_path / "sim.png", title="step 10"))
    _assert_png(plot_similarity_reordering(np.ones((3, 3)).tolist(), [2, 0, 1], tmp_path / "const.png",
                                           method="anchored"))
    assert sys.modules["matplotlib.pyplot"].get_fignums() == []


def test_similarity_reordering_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="square"):
        plot_similarity_reordering(np.eye(3), [0, 1], tmp_path / "s.png")
    with pytest.raises(ValueError, match="permutation"):
        plot_similarity_reordering(np.eye(3), [0, 0, 1], tmp_path / "s.png")


def test_learning_curves_label_every_axis_and_give_each_term_its_scale() -> None:
    """A term weighted by 1e-3 gets its own (log) axis instead of sitting flat beside the regression loss."""
    from clss.engine.plots import _learning_curves_figure

    records = [{"step": s, "regression": 1.0 / s, "unlabeled_rank": 1e-3 / s, "contrastive": -0.2 - 0.1 / s,
                **({"val_mae": 10.0 / s} if s % 5 == 0 else {})} for s in range(1, 21)]
    fig = _learning_curves_figure(records, ["regression", "unlabeled_rank", "contrastive"], ["val_mae"],
                                  "gclss on diabetes: learning curves, 2026-01-31", "error (target units)")
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 4
    assert all(ax.get_xlabel() == "step" and ax.get_ylabel() for ax in axes)
    by_title = {ax.get_title(): ax for ax in axes}
    assert by_title["training loss: regression"].get_yscale() == "log"
    rank = by_title["training loss: unlabeled_rank"]
    assert rank.get_yscale() == "log"
    low, high = rank.get_ylim()
    assert low < 1e-4 < 1e-3 < high  # its own range, not the regression loss's
    assert by_title["training loss: contrastive"].get_yscale() == "linear"  # negative values
    assert by_title["validation"].get_ylabel() == "error (target units)"
    assert fig._suptitle.get_text() == "gclss on diabetes: learning curves, 2026-01-31"


def test_similarity_title_says_whose_features_which_step_and_how_many_rows() -> None:
    from clss.engine.plots import _similarity_title

    assert _similarity_title("gclss on diabetes", "cosine similarity of final-model features", 88,
                             "unlabelled rows", 1000) == (
        "gclss on diabetes:\ncosine similarity of final-model features, 88 unlabelled rows, step 1000, "
        "before/after seriation")
    assert _similarity_title(None, "similarity", 5, "items", None) == (
        "similarity, 5 items, before/after seriation")


def _method_records() -> list[dict]:
    """A method with names of its own: two terms adding up to the loss (one exactly 0 at some steps),
    diagnostics (one constant 0, one logged every 5 steps) and the engine's learning rate."""
    rng = np.random.default_rng(0)
    records = []
    for s in range(1, 31):
        a = float(np.float32(rng.uniform(0.5, 2.0)))
        b = 0.0 if s % 3 == 0 else float(np.float32(rng.uniform(-0.5, -0.1)))
        records.append({"step": s, "lr": 1e-3, "loss": float(np.float32(a + b)), "fit_term": a,
                        "pull_term": b, "kept_rows": 12.0, "guaranteed": 0.0,
                        **({"order_tau": float(rng.uniform())} if s % 5 == 0 else {}),
                        **({"val_mae": 10.0 / s} if s % 10 == 0 else {})})
    return records


def test_loss_terms_are_the_scalars_that_add_up_to_the_loss() -> None:
    from clss.engine.plots import loss_terms

    records = _method_records()
    assert loss_terms(records) == ["fit_term", "pull_term"]
    assert loss_terms([{k: v for k, v in r.items() if k != "loss"} for r in records]) == []
    # a total no set of scalars adds up to: no terms, everything is a diagnostic
    assert loss_terms([{**r, "loss": r["loss"] + 5.0} for r in records]) == []


def test_learning_curves_plot_every_scalar_grouped_and_labelled() -> None:
    """No list of names: every logged scalar gets a panel, loss terms first, then diagnostics."""
    from clss.engine.plots import _learning_curves_figure

    fig = _learning_curves_figure(_method_records(), None, None, "custom method", "error (target units)")
    axes = [ax for ax in fig.axes if ax.get_visible()]
    titles = [ax.get_title() for ax in axes]
    assert titles == ["training loss: loss", "training loss: fit_term", "training loss: pull_term",
                      "diagnostic: lr", "diagnostic: kept_rows", "diagnostic: guaranteed",
                      "diagnostic: order_tau", "validation"]
    assert all(ax.get_xlabel() == "step" and ax.get_ylabel() for ax in axes)
    assert axes[3].get_ylabel().startswith("learning rate")
    assert axes[-1].get_ylabel() == "error (target units)"
