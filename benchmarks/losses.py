"""Forward+backward time and autograd memory of every loss in clss.losses, relative to SupConLoss.

Usage: ``python benchmarks/losses.py [--sizes 64 256 1024] [--dim 128] [--device cpu] [--out F]``.
Prints one JSON document (and writes it to ``--out`` if given). Memory is the total size of the
tensors autograd saves for the backward (device-independent); on CUDA the peak allocated memory is
reported too. RnC is also compared with a naive O(N³)-memory formulation at N = 256.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time

import torch
import torch.nn.functional as F

from clss.losses import (
    ConOrdLoss,
    MultiMarginNPairLoss,
    OrdinalEntropyLoss,
    PseudoRankPredictionLoss,
    PseudoRankSimilarityLoss,
    RankSimLoss,
    RnCLoss,
    SupConLoss,
    SupReMixLoss,
)


def naive_rnc(features: torch.Tensor, targets: torch.Tensor, temperature: float = 2.0):
    """RnC with an explicit [i, j, k] negative mask: O(N³) memory, the baseline for the sort."""
    n = features.shape[0]
    s = -torch.cdist(features, features, compute_mode="donot_use_mm_for_euclid_dist") / temperature
    d = (targets[:, None] - targets[None, :]).abs()
    eye = torch.eye(n, dtype=torch.bool, device=features.device)
    negatives = (d[:, None, :] >= d[:, :, None]) & ~eye[:, None, :]
    expanded = s[:, None, :].expand(n, n, n).masked_fill(~negatives, -math.inf)
    return (torch.logsumexp(expanded, -1) - s)[~eye].mean()


def cases():
    return {
        "SupConLoss": (SupConLoss(temperature=0.1), "normalised", "classes"),
        "RnCLoss": (RnCLoss(), "raw", "continuous"),
        "RnCLoss_naive_O(N^3)": (naive_rnc, "raw", "continuous"),
        "ConOrdLoss": (ConOrdLoss(), "normalised", "continuous"),
        "OrdinalEntropyLoss": (OrdinalEntropyLoss(), "raw", "classes"),
        "RankSimLoss": (RankSimLoss(), "raw", "continuous"),
        "PseudoRankSimilarityLoss": (PseudoRankSimilarityLoss(), "raw", "ranks"),
        "PseudoRankPredictionLoss": (PseudoRankPredictionLoss(), "prediction", "ranks"),
        "SupReMixLoss": (SupReMixLoss(temperature=0.5), "normalised", "continuous"),
        "MultiMarginNPairLoss": (MultiMarginNPairLoss(10), "raw", "classes"),
    }


def measure(loss, features, targets, repeats):
    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    times = []
    for _ in range(repeats + 1):
        leaf = features.detach().clone().requires_grad_()
        saved.clear()
        if features.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            value = loss(leaf, targets)
        value.backward()
        if features.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    result = {"seconds": min(times[1:]), "saved_bytes": sum(saved)}
    if features.device.type == "cuda":
        result["peak_cuda_bytes"] = torch.cuda.max_memory_allocated()
    return result


def inputs(kind, target_kind, n, dim, device, generator):
    z = torch.randn(n, dim, generator=generator).to(device)
    if kind == "normalised":
        z = F.normalize(z, dim=1)
    elif kind == "prediction":
        z = z[:, :1]
    if target_kind == "classes":
        y = torch.randint(0, 10, (n,), generator=generator).float()
    elif target_kind == "ranks":
        y = torch.randperm(n, generator=generator).float()
    else:
        y = torch.rand(n, generator=generator) * 100
    return z, y.to(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--naive-max", type=int, default=256, help="largest N for the O(N³) RnC")
    parser.add_argument("--out")
    args = parser.parse_args()

    report = {"device": args.device, "dim": args.dim, "torch": torch.__version__, "results": {}}
    for n in args.sizes:
        g = torch.Generator().manual_seed(n)
        rows = {}
        for name, (loss, kind, target_kind) in cases().items():
            if name.endswith("naive_O(N^3)") and n > args.naive_max:
                continue
            z, y = inputs(kind, target_kind, n, args.dim, args.device, g)
            rows[name] = measure(loss, z, y, args.repeats)
        base = rows["SupConLoss"]
        for row in rows.values():
            row["time_vs_supcon"] = row["seconds"] / base["seconds"]
            row["memory_vs_supcon"] = row["saved_bytes"] / base["saved_bytes"]
        report["results"][str(n)] = rows
    sizes = [str(n) for n in args.sizes]
    report["rnc_memory_growth"] = {
        f"{a}->{b}": report["results"][b]["RnCLoss"]["saved_bytes"]
        / report["results"][a]["RnCLoss"]["saved_bytes"]
        for a, b in itertools.pairwise(sizes)
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
