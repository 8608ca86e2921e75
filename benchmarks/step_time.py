"""Training-step time of gclss and clss relative to the supervised baseline, plus a gclss step breakdown.

All variants use the operator-sde preset of :func:`clss.config.resolve_config` (MLP 241-100-100, AdamW 1e-3,
OE/UR/UC weights 1e-3, 10-row subsamples; gclss: dropout 0.05 and all kept unlabelled rows ranked), the same
labelled/unlabelled batch sizes (``--sizes``, default 200/200 = the paper's full batch at 1/5 labels, and a
64/64 mini-batch), the same rows (standardised rows of operator-sde run 0, or Gaussian inputs without the
files) and one torch thread. Variants: ``supervised``, ``clss``, ``gclss`` (clean, diagnostics off),
``gclss+diag`` (clean with its default per-step diagnostics), ``gclss-faithful``, and the baselines
``pimodel``, ``meanteacher``, ``mixmatch``, ``cps``, ``ucvme`` (5 Monte-Carlo passes per network), ``rda``,
``rankup`` and ``rankup_rda`` (each with its operator-sde preset where it declares one, else its defaults).
Every view a method asks for (``weak@2``, ``strong``, MixMatch's K draws) is the same plain input, so the
timings compare the methods' computation, not augmentation.

Method: each variant gets its own method instance; its first ``training_step`` (LAPACK/numba start-up,
allocator warm-up) is timed and reported separately, then ``--warmup`` more steps run untimed. The timed
part interleaves the variants: for each of ``--reps`` repetitions every variant runs ``--inner`` steps in
turn, and the per-step median over repetitions is reported, so machine-load drift hits all variants alike.
The ratios ``<variant> / supervised`` are taken within one run (target for gclss and clss: <= 1.5).

The gclss breakdown re-runs the clean step's parts (:mod:`clss.methods.parts`, composed as in
``GCLSS._clean_step``) with manual timers: memory pass (no-grad forward of the unlabelled rows), gradient
pass, labelled losses, cross-view perturbation + stable-subset DP, anchored seriation, unlabelled losses,
backward + optimiser step, diagnostics (run every step here; by default every 10th step).

``--precision bf16`` (or ``fp16`` on CUDA) and ``--clip`` time the same steps with mixed precision and
gradient clipping (:meth:`clss.methods.Method.optimize`).

Usage: ``python benchmarks/step_time.py [--sizes 200/200 64/64] [--reps 15] [--inner 10]``.
Writes ``benchmarks/results/step_time.json`` and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from clss.config import resolve_config
from clss.data import InputSpec
from clss.methods import Batch, OptimizerConfig, TrainingContext, build_method, parts
from clss.models import build_model

DATA_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "operator_sde"
RESULTS = Path(__file__).resolve().parent / "results" / "step_time.json"
VARIANTS = {  # name: (method, extra method parameters)
    "supervised": ("supervised", {}),
    "clss": ("clss", {}),
    "gclss": ("gclss", {"diagnostics_every": 0}),
    "gclss+diag": ("gclss", {"diagnostics_every": 1}),
    "gclss-faithful": ("gclss", {"mode": "faithful", "diagnostics_every": 0}),
    "pimodel": ("pimodel", {}),
    "meanteacher": ("meanteacher", {}),
    "mixmatch": ("mixmatch", {}),
    "cps": ("cps", {}),
    "ucvme": ("ucvme", {}),
    "rda": ("rda", {}),
    "rankup": ("rankup", {}),
    "rankup_rda": ("rankup_rda", {}),
}


class ResNetRegressor(torch.nn.Module):
    """torchvision ResNet-18 returning ``{"pred": [B], "feat": pooled feature [B, 512]}`` with dropout 0.05
    on the feature (the UCVME-style stochastic backbone of the official image scripts)."""

    def __init__(self) -> None:
        super().__init__()
        import torchvision

        net = torchvision.models.resnet18(weights=None)
        net.fc = torch.nn.Identity()
        self.backbone, self.drop, self.head = net, torch.nn.Dropout(0.05), torch.nn.Linear(512, 1)
        self.feature_dim = 512

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feat = self.drop(self.backbone(x))
        return {"pred": self.head(feat).squeeze(-1), "feat": feat}


def build(method: str, extra: dict, seed: int, model: str = "mlp", precision: str = "fp32",
          clip: float | None = None, context: TrainingContext | None = None):
    """``mlp``: a method configured exactly as ``clss train --dataset operator-sde --method <method>``;
    ``resnet18``: the official image scripts' defaults (Adam 5e-4, OE weight 1, UR 0.05, UC 0.01)."""
    if model == "mlp":
        cfg = resolve_config(None, {"dataset": "operator-sde", "method": method})
        params = {**cfg.method_params, **extra}
        kwargs = {k: v for k, v in cfg.model.items() if k != "name"}
        model_fn = lambda: build_model("mlp", InputSpec("tabular", (241,)), **kwargs)  # noqa: E731
        opt, described = cfg.optimizer, cfg.model
    else:
        params = dict(extra)
        model_fn, described = ResNetRegressor, {"name": "resnet18", "dropout": 0.05, "input": "3x32x32"}
        opt = {"name": "adam", "lr": 5e-4, "weight_decay": 1e-3}
    if method == "supervised":
        params = {k: v for k, v in params.items() if k in ("contrastive_weight", "contrastive_rows",
                                                            "oe_variant")}
    torch.manual_seed(seed)
    m = build_method(method, model_fn, OptimizerConfig(**opt, clip_grad_norm=clip), {"seed": seed, **params},
                     precision)
    m.configure_optimizers()
    if context is not None:
        m.setup(context)
    return m, {"model": described, "params": m.params.to_dict()}


def as_views(batch: Batch, names: tuple[str, ...]) -> Batch:
    """``batch`` with every view in ``names`` set to its plain input."""
    x = batch.view("weak")
    return Batch(dict.fromkeys(names, x), batch.index, batch.y)


def plain(x: torch.Tensor, index: torch.Tensor, y: torch.Tensor | None) -> Batch:
    """Rows without augmentation, as the loader gives them: both weak draws are the plain input."""
    return Batch({"weak": x, "weak@2": x}, index, y)


def images(n_l: int, n_u: int) -> tuple[Batch, Batch, str]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n_l + n_u, 3, 32, 32, generator=gen)
    y = torch.randn(n_l, generator=gen)
    return (plain(x[:n_l], torch.arange(n_l), y), plain(x[n_l:], torch.arange(n_l, n_l + n_u), None),
            "random 3x32x32 images")


def rows(n_l: int, n_u: int) -> tuple[Batch, Batch, str]:
    if (DATA_DIR / "train_sde.npz").is_file():
        with np.load(DATA_DIR / "train_sde.npz") as z:
            x = np.hstack([z["X_train0"], z["X_train1"]])[:1000]
            y = z["y_train"].reshape(-1)[:1000]
        source = "operator-sde run 0"
    else:
        rng = np.random.default_rng(0)
        x, y = rng.normal(size=(1000, 241)), rng.normal(size=1000)
        source = "gaussian"
    x = torch.as_tensor((x - x.mean(0)) / (x.std(0) + 1e-8), dtype=torch.float32)
    y = torch.as_tensor((y - y.mean()) / y.std(), dtype=torch.float32)
    perm = torch.randperm(1000, generator=torch.Generator().manual_seed(0))
    li, ui = perm[:n_l], perm[n_l:n_l + n_u]
    return plain(x[li], li, y[li]), plain(x[ui], ui, None), source


def gclss_breakdown(m, lab: Batch, ulb: Batch, steps: int) -> dict[str, float]:
    """Median ms per piece of the clean gclss step (mirrors ``GCLSS._clean_step``, memory="unlabeled")."""
    times: dict[str, list[float]] = defaultdict(list)
    t = [0.0]
    p = m.params

    def mark(name: str) -> None:
        t.append(time.perf_counter())
        times[name].append(1e3 * (t[-1] - t[-2]))

    for _ in range(steps):
        t[:] = [time.perf_counter()]
        u = parts.draw_rows(ulb, p.rank_rows, m.generator)
        m.model.train()
        n_l = len(lab)
        with torch.no_grad():
            feat0_u = m(u.view("weak@2"))["feat"]
        mark("memory pass (unlabelled rows, no grad)")
        pred1, feat1 = m(torch.cat([lab.view("weak"), u.view("weak")])).values()
        mark("gradient pass (labelled + unlabelled)")
        terms = parts.supervised_terms(pred1[:n_l], feat1[:n_l], lab.y, regression=p.regression_loss,
                                       contrastive=m.labeled_contrastive, weight=p.contrastive_weight,
                                       rows=p.contrastive_rows, generator=m.generator)
        mark("labelled losses (MSE + OE)")
        sel = parts.stable_subset(feat0_u, feat1[n_l:], p.keep, perturbation=p.perturbation,
                                  objective=p.selection or "min")
        mark("cross-view perturbation + stable-subset DP")
        p0_u = F.normalize(feat0_u[sel], dim=-1)
        p1_u = F.normalize(feat1[n_l:][sel], dim=-1)
        p_mean_u = (p0_u + p1_u) / 2
        with torch.no_grad():
            p1_l = F.normalize(feat1[:n_l], dim=-1)
        _, ranks = parts.anchored_targets(p_mean_u, p1_l, lab.y, negative=p.negative)
        mark("anchored seriation (+ similarity blocks)")
        terms.update(parts.pseudo_rank_terms(pred1[n_l:][sel], p_mean_u, ranks, rank_loss=m.rank_loss,
                                             consistency_loss=m.consistency_loss, rank_weight=p.rank_weight,
                                             consistency_weight=p.consistency_weight))
        loss = torch.stack(list(terms.values())).sum()
        mark("unlabelled losses (UR + UC)")
        m.optimize(loss, terms)
        mark("backward + optimiser step")
        parts.recovery_diagnostics(p0_u, p1_u, p1_l, p1_l, negative=p.negative)
        mark(f"diagnostics (every {p.diagnostics_every} steps by default)")
    return {name: statistics.median(v) for name, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=["mlp", "resnet18"], default="mlp",
                    help="mlp: the operator-sde preset; resnet18: 3x32x32 images, image-script settings")
    ap.add_argument("--sizes", nargs="+", help="labelled/unlabelled rows (default: 200/200 64/64 for the "
                    "MLP, 32/8 for the ResNet: the AgeDB/UTK scripts' batches)")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--inner", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    ap.add_argument("--clip", type=float, help="optimizer.clip_grad_norm (default: no clipping)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    args.sizes = args.sizes or (["200/200", "64/64"] if args.model == "mlp" else ["32/8"])
    torch.set_num_threads(args.threads)
    report: dict = {"argv": vars(args) | {"out": str(args.out)}, "torch": torch.__version__,
                    "platform": platform.platform(), "processor": platform.processor(), "sizes": {}}
    for size in args.sizes:
        n_l, n_u = (int(s) for s in size.split("/"))
        lab, ulb, source = (rows if args.model == "mlp" else images)(n_l, n_u)
        # a long run (ramp-ups past their start), the rows of the timed batch
        context = TrainingContext(total_steps=100_000, train_size=1000, labeled_y=lab.y,
                                  unlabeled_index=ulb.index)
        methods, batches, first, configs = {}, {}, {}, {}
        for name in args.variants:
            method, extra = VARIANTS[name]
            m, configs[name] = build(method, extra, args.seed, args.model, args.precision, args.clip, context)
            methods[name] = m
            batches[name] = as_views(lab, m.labeled_views), as_views(ulb, m.unlabeled_views)
            t0 = time.perf_counter()
            m.training_step(*batches[name], 0)
            first[name] = time.perf_counter() - t0
            for i in range(args.warmup):
                m.training_step(*batches[name], i + 1)
        per_step: dict[str, list[float]] = defaultdict(list)
        for _ in range(args.reps):
            for name, m in methods.items():
                t0 = time.perf_counter()
                for i in range(args.inner):
                    m.training_step(*batches[name], i)
                per_step[name].append(1e3 * (time.perf_counter() - t0) / args.inner)
        med = {name: statistics.median(v) for name, v in per_step.items()}
        base = med.get("supervised")
        breakdown = gclss_breakdown(build("gclss", {}, args.seed, args.model, args.precision, args.clip)[0],
                                    lab, ulb, args.reps * 2)
        report["sizes"][size] = {
            "rows": source, "first_step_s": first, "ms_per_step_median": med,
            "ms_per_step_all": dict(per_step),
            "ratio_to_supervised": {n: v / base for n, v in med.items()} if base else None,
            "gclss_breakdown_ms": breakdown, "configs": configs}
        print(f"\n## {size} labelled/unlabelled rows ({source}), threads={args.threads}, "
              f"median of {args.reps} interleaved reps x {args.inner} steps")
        print("| variant | ms/step | x supervised | first step (s) |\n|---|---:|---:|---:|")
        for name in methods:
            ratio = f"{med[name] / base:.2f}" if base else "-"
            print(f"| {name} | {med[name]:.2f} | {ratio} | {first[name]:.3f} |")
        total = sum(breakdown.values())
        print(f"\ngclss clean step breakdown (ms, median; sum {total:.2f})")
        print("| piece | ms | share |\n|---|---:|---:|")
        for piece, ms in breakdown.items():
            print(f"| {piece} | {ms:.2f} | {100 * ms / total:.0f}% |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
