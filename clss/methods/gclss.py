"""GCLSS: CLSS generalised with label-anchored seriation over the joint labelled + unlabelled batch
(Wang, Dai, Bai & Li, arXiv 2512.09267; official GCLSS code).

``mode="clean"`` (default; the official code's bugs fixed): a no-gradient "memory" pass and a gradient pass
(two stochastic forwards: dropout or augmentation must make them differ), the cross-view coefficient of
variation of the unlabelled similarities, the stable-subset DP *minimising* it, the cross-view averaged
similarity ``S̄ = P̄ P̄ᵀ`` of the selected unlabelled rows and every labelled row, the harmonic
(label-anchored) solution as pseudo-values and pseudo-ranks, L_UR and L_UC on them, one optimiser step.
By default (``memory="unlabeled"``) the memory pass covers the unlabelled rows only and the labelled
anchors enter ``P̄`` with their gradient-pass embeddings: the cross-view statistics concern the rows
being ranked, and a memory pass over the labelled batch would cost a third more compute per step
(``memory="all"`` averages the labelled rows over both passes too, as the official pass 2 does).

``mode="faithful"`` reproduces the official code where it changes numbers: pass 1 anchors the ranking on
7 labelled rows (batch max, min and 5 random) and steps the optimiser; pass 2 re-forwards the same
batch, selects unlabelled rows with the DP in the official (maximising) direction, anchors on all
labelled rows and steps again — two optimiser steps per iteration.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from clss.methods.base import Batch, register_method
from clss.methods.clss import CLSS, CLSSParams
from clss.methods.common import kendall_tau
from clss.schema import param
from clss.seriation import (
    cross_view_perturbation,
    harmonic_batch,
    recovery_tolerance_blocks,
    select_stable_subset,
)


@dataclass
class GCLSSParams(CLSSParams):
    """``mode``: ``"clean"`` or ``"faithful"`` (see the module docstring). ``keep``: unlabelled rows kept
    by the stable-subset DP, a fraction in (0, 1] or a count (official: 8 of 8 on AgeDB/UTK, 5 of 8 on
    IXI). ``selection``: the DP's objective, ``"min"`` (the paper: most stable rows) or
    ``"max_faithful"`` (the official code's direction; the faithful mode's default when left at
    ``None``). ``anchor_extremes``: pass-1 random anchors besides the max and min in faithful mode (5).
    ``perturbation``: ``"cv"`` (std / (|mean| + eps): the paper's ratio, guarded at mean 0) or ``"std"``.
    ``negative``: policy for negative similarities in the anchored system (``"clip"`` or ``"shift"``).
    ``pseudo_weight``: weight of pseudo-labelled rows when ``unlabeled_loss`` is a contrastive loss
    (labelled rows weigh 1). ``rank_rows``: unlabelled rows drawn per step before the two passes and the
    selection (all when ``None``; the image scripts use batches of 8). ``diagnostics_every``: also log
    the recovery tolerance against the measured perturbation (two small symmetric eigendecompositions).
    ``memory``: rows of the clean mode's no-gradient pass, ``"unlabeled"`` or ``"all"`` (module
    docstring)."""

    mode: str = param("clean", "str", choices=("clean", "faithful"))
    keep: float = param(0.75, gt=0, check=lambda k: k <= 1 or (k >= 2 and k.is_integer()),
                        describe="a fraction in (0, 1] or a count >= 2")
    selection: str | None = param(None, "str", choices=("min", "max_faithful", None))
    anchor_extremes: int = param(5, "int", ge=0)
    perturbation: str = param("cv", "str", choices=("cv", "std"))
    negative: str = param("clip", "str", choices=("clip", "shift"))
    pseudo_weight: float = param(1.0, ge=0)
    memory: str = param("unlabeled", "str", choices=("unlabeled", "all"))


def perturbation_norm(p0: torch.Tensor, p1: torch.Tensor) -> float:
    """``‖P₁P₁ᵀ − P₀P₀ᵀ‖₂`` for embeddings ``[n, d]`` of two passes, via the rows that changed.

    With ``memory="unlabeled"`` only the k unlabelled rows differ, so the difference is
    ``[[D, B], [Bᵀ, 0]]`` (changed rows first); with ``Bᵀ = QR`` it has the nonzero spectrum of
    ``[[D, Rᵀ], [R, 0]]``, a (2k)-sized symmetric problem instead of an n-sized one.
    """
    changed = (p0 != p1).any(-1)
    c = changed.nonzero().squeeze(-1)
    if c.numel() == 0:
        return 0.0
    if 2 * c.numel() >= p0.shape[0]:  # no saving: the full matrix
        return float(torch.linalg.eigvalsh(p1 @ p1.T - p0 @ p0.T).abs().max())
    rows = p1[c] @ p1.T - p0[c] @ p0.T  # the changed rows of the difference, [k, n]
    u = (~changed).nonzero().squeeze(-1)
    r = torch.linalg.qr(rows[:, u].T, mode="r")[1]
    small = torch.zeros(c.numel() + r.shape[0], c.numel() + r.shape[0], dtype=p0.dtype, device=p0.device)
    small[: c.numel(), : c.numel()] = rows[:, c]
    small[c.numel():, : c.numel()] = r
    small[: c.numel(), c.numel():] = r.T
    # spectral norm of a symmetric matrix: its largest |eigenvalue| (no SVD needed)
    return float(torch.linalg.eigvalsh(small).abs().max())


def _ranks(values: torch.Tensor) -> torch.Tensor:
    """Pseudo-ranks 0..k-1 of pseudo-values (ties in index order), in the values' dtype."""
    return torch.argsort(torch.argsort(values, stable=True)).to(values.dtype)


@register_method
class GCLSS(CLSS):
    """GCLSS: label-anchored pseudo-values over the joint batch, stable-subset selection."""

    name = "gclss"
    description = "GCLSS: label-anchored seriation of the joint batch, stable-subset selection (DP)"
    Params = GCLSSParams
    params: GCLSSParams

    # ------------------------------------------------------------------------------------ pieces
    def _kept(self, n_unlabeled: int) -> int:
        k = round(self.params.keep * n_unlabeled) if self.params.keep <= 1 else int(self.params.keep)
        return max(2, min(k, n_unlabeled))

    def _select(self, feat0: torch.Tensor, feat1: torch.Tensor, objective: str) -> torch.Tensor:
        """Indices of the unlabelled rows whose cross-view similarities vary least (or most)."""
        n = feat0.shape[0]
        k = self._kept(n)
        if k >= n:
            return torch.arange(n, device=feat0.device)
        pert = cross_view_perturbation(feat0, feat1, mode=self.params.perturbation)
        idx = select_stable_subset(pert, k, objective=objective)
        return torch.as_tensor(idx, device=feat0.device)

    def _anchored_targets(self, emb_u: torch.Tensor, emb_l: torch.Tensor,
                          y_anchor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pseudo-values (label scale) and pseudo-ranks of the unlabelled rows with embeddings ``emb_u``
        ``[k, d]`` (rows of P̄), anchored on labelled rows ``emb_l`` ``[m, d]`` with values ``y_anchor``:
        the harmonic solution on the similarity blocks ``S_uu = E_u E_uᵀ``, ``S_ul = E_u E_lᵀ`` (the
        labelled-labelled block never enters it, so it is never formed)."""
        emb_u, emb_l = emb_u.detach(), emb_l.detach()
        values, _ = harmonic_batch(emb_u @ emb_u.T, emb_u @ emb_l.T, y_anchor.detach(),
                                   negative=self.params.negative, validate=False)
        return values, _ranks(values)

    def _reachable(self, sel: torch.Tensor, values: torch.Tensor, ranks: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Drop unlabelled rows the anchors cannot reach (NaN pseudo-values: e.g. an all-zero feature
        vector has no similarity to anything); returns (kept positions in ``sel``, sel, values, ranks)."""
        ok = torch.isfinite(values)
        if bool(ok.all()):
            return torch.arange(sel.shape[0], device=sel.device), sel, values, ranks
        pos = ok.nonzero().squeeze(-1)
        values = values[pos]
        return pos, sel[pos], values, _ranks(values)

    def _pseudo_terms(self, pred_u: torch.Tensor, feat_u: torch.Tensor, values: torch.Tensor,
                      ranks: torch.Tensor, feat_l: torch.Tensor, y_l: torch.Tensor
                      ) -> dict[str, torch.Tensor]:
        p = self.params
        if p.unlabeled_loss == "rank":
            return self.unlabeled_terms(pred_u, feat_u, ranks)
        # A contrastive loss sees labelled rows with their labels and unlabelled rows with pseudo-values,
        # both as unit embeddings: the unlabelled rows are averages of the two passes' unit embeddings, so
        # raw labelled features would put the two kinds of row on different scales.
        parts: dict[str, torch.Tensor] = {}
        if p.rank_weight > 0:
            feats = torch.cat([F.normalize(feat_l, dim=-1), feat_u])
            targets = torch.cat([y_l, values.to(y_l.dtype)])
            weights = torch.cat([torch.ones_like(y_l), torch.full_like(values, p.pseudo_weight)])
            parts["unlabeled_rank"] = p.rank_weight * self.rank_loss(feats, targets, weights=weights)
            if p.consistency_weight > 0:
                parts["unlabeled_consistency"] = p.consistency_weight * self.consistency_loss(pred_u, ranks)
        return parts

    def _step(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        loss = torch.stack(list(parts.values())).sum()
        self.optimize(loss, parts)
        return loss.detach()

    # ------------------------------------------------------------------------------------ steps
    def training_step(self, labeled: Batch, unlabeled: Batch | None, step: int) -> dict[str, float]:
        if unlabeled is None or len(unlabeled) < 2:
            raise ValueError(f"{self.name} needs an unlabelled batch of at least 2 rows")
        if labeled.y is None or len(labeled) < 2:
            raise ValueError(f"{self.name} needs at least 2 labelled rows with targets")
        unlabeled = self.draw_unlabeled(unlabeled)
        self.model.train()
        if self.params.mode == "faithful":
            return self._faithful_step(labeled, unlabeled, step)
        return self._clean_step(labeled, unlabeled, step)

    def _clean_step(self, labeled: Batch, unlabeled: Batch, step: int) -> dict[str, float]:
        n_l = len(labeled)
        x = torch.cat([labeled.view("weak"), unlabeled.view("weak")])
        with torch.no_grad():
            feat0 = self.model(x if self.params.memory == "all" else unlabeled.view("weak"))["feat"]
        out1 = self.model(x)
        pred1, feat1 = out1["pred"], out1["feat"]
        parts = self.supervised_terms(labeled, pred1[:n_l], feat1[:n_l])
        feat0_u = feat0[-len(unlabeled):]
        sel = self._select(feat0_u, feat1[n_l:], self.params.selection or "min")
        # Only the kept unlabelled rows carry gradient; the labelled rows serve as anchors.
        p0_u = F.normalize(feat0_u[sel], dim=-1)
        p1_u = F.normalize(feat1[n_l:][sel], dim=-1)
        p_mean_u = (p0_u + p1_u) / 2
        with torch.no_grad():
            p1_l = F.normalize(feat1[:n_l], dim=-1)
            p0_l = F.normalize(feat0[:n_l], dim=-1) if self.params.memory == "all" else p1_l
            p_mean_l = (p0_l + p1_l) / 2
        # S̄ = P̄ P̄ᵀ, the 4-way cross-view average, through its unlabelled rows
        values, ranks = self._anchored_targets(p_mean_u, p_mean_l, labeled.y)
        rows, sel, values, ranks = self._reachable(sel, values, ranks)
        if sel.shape[0] >= 2:
            parts.update(self._pseudo_terms(pred1[n_l:][sel], p_mean_u[rows], values, ranks, feat1[:n_l],
                                            labeled.y))
        loss = self._step(parts)
        logs = {"loss": float(loss), **{k_: float(v.detach()) for k_, v in parts.items()},
                "unlabeled_kept": float(sel.shape[0])}
        if self.diagnose(step):
            logs.update(self._diagnostics(p0_u, p1_u, p0_l, p1_l))
            if unlabeled.y is not None:
                logs["pseudo_value_tau"] = kendall_tau(values, unlabeled.y[sel])
        return logs

    def _diagnostics(self, p0_u: torch.Tensor, p1_u: torch.Tensor, p0_l: torch.Tensor,
                     p1_l: torch.Tensor) -> dict[str, float]:
        """Recovery tolerance of the anchored system against the perturbation between the passes
        (unit embeddings of the kept unlabelled and the labelled rows in both passes)."""
        if p0_u.shape[0] == 0 or p0_l.shape[0] == 0:
            return {}
        p0 = torch.cat([p0_u, p0_l]).detach().double()
        p1 = torch.cat([p1_u, p1_l]).detach().double()
        mean_u, mean_l = ((p0_u + p1_u) / 2).detach().double(), ((p0_l + p1_l) / 2).double()
        delta = recovery_tolerance_blocks(mean_u @ mean_u.T, mean_u @ mean_l.T, negative=self.params.negative)
        measured = perturbation_norm(p0, p1)
        return {"recovery_tolerance": delta, "perturbation": measured,
                "recovery_guaranteed": float(measured <= delta)}

    def _faithful_step(self, labeled: Batch, unlabeled: Batch, step: int) -> dict[str, float]:
        n_l, n_u = len(labeled), len(unlabeled)
        p = self.params
        n_anchor = 2 + p.anchor_extremes
        if n_l < n_anchor:
            raise ValueError(f"faithful GCLSS anchors pass 1 on {n_anchor} labelled rows (max, min and "
                             f"{p.anchor_extremes} random); the labelled batch has {n_l}")
        y = labeled.y
        assert y is not None  # checked by training_step
        hi, lo = int(torch.argmax(y)), int(torch.argmin(y))
        if hi == lo:
            raise ValueError("faithful GCLSS needs distinct labels in the batch (max == min)")
        others = torch.ones(n_l, dtype=torch.bool)
        others[[hi, lo]] = False
        rest = others.nonzero().squeeze(-1)
        extra = rest[torch.randperm(rest.numel(), generator=self.generator)[: p.anchor_extremes]]
        anchor_rows = torch.cat([torch.tensor([hi, lo]), extra]).to(y.device)

        # Pass 1: 7 anchors, unlabelled block of every unlabelled row, optimiser step.
        x = torch.cat([labeled.view("weak"), unlabeled.view("weak")])
        out0 = self.model(x)
        pred0, feat0 = out0["pred"], out0["feat"]
        parts1 = self.supervised_terms(labeled, pred0[:n_l], feat0[:n_l])
        emb0 = F.normalize(feat0, dim=-1)
        values1, ranks1 = self._anchored_targets(emb0[n_l:], emb0[:n_l][anchor_rows], y[anchor_rows])
        _, rows1, _, ranks1 = self._reachable(torch.arange(n_u, device=y.device), values1, ranks1)
        if rows1.shape[0] >= 2:
            parts1.update(self.unlabeled_terms(pred0[n_l:][rows1], feat0[n_l:][rows1], ranks1))
        loss1 = self._step(parts1)

        # Pass 2: re-forward with the updated weights, DP selection, all labelled anchors, second step.
        out1 = self.model(x)
        pred1, feat1 = out1["pred"], out1["feat"]
        parts2 = self.supervised_terms(labeled, pred1[:n_l], feat1[:n_l])
        sel = self._select(feat0[n_l:].detach(), feat1[n_l:], p.selection or "max_faithful")
        emb0 = emb0.detach()
        p_mean_u = (emb0[n_l:][sel] + F.normalize(feat1[n_l:][sel], dim=-1)) / 2
        p_mean_l = (emb0[:n_l] + F.normalize(feat1[:n_l].detach(), dim=-1)) / 2
        values, ranks2 = self._anchored_targets(p_mean_u, p_mean_l, y)
        rows, sel, values, ranks2 = self._reachable(sel, values, ranks2)
        if sel.shape[0] >= 2:
            parts2.update(self._pseudo_terms(pred1[n_l:][sel], p_mean_u[rows], values, ranks2, feat1[:n_l],
                                             y))
        loss2 = self._step(parts2)
        logs = {"loss": float(loss1 + loss2), "loss_pass1": float(loss1), "loss_pass2": float(loss2),
                **{f"{k_}": float(v.detach()) for k_, v in parts2.items()},
                "unlabeled_kept": float(sel.shape[0])}
        if unlabeled.y is not None and self.diagnose(step):
            logs["pseudo_value_tau"] = kendall_tau(values, unlabeled.y[sel])
        return logs
