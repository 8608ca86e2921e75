"""seriate() on a device against the CPU numpy route, and seriate_batch against a bare batched eigh.

Three tables, each route timed on the same inputs in one run (wall time, device synchronised):

* dense: Gaussian-kernel similarities of n noisy points on a curve, numpy route (``seriate(S_numpy)``)
  vs the torch route (``seriate(S_tensor)``: the default for CUDA tensors, ``backend="torch"`` forced
  on CPU); |tau| against the latent order and the agreement of the two orders;
* sparse: self-tuning k-NN graphs (k = 10) of the same curves, scipy CSR vs a torch sparse COO tensor;
* batched: ``seriate_batch`` of B random curve kernels vs ``torch.linalg.eigh`` of their Laplacians
  alone (the eigensolver floor).

Usage on a GPU machine (defaults: dense n in {1000, 5000, 20000}, sparse n in {1e5, 1e6}):

    python benchmarks/gpu_seriate.py --json gpu_seriate.json

and on CPU, to check the script itself with small sizes:

    python benchmarks/gpu_seriate.py --device cpu --dense 300 --sparse 3000 --batch 8x32
"""

from __future__ import annotations

import argparse
import json
import math
import time
from typing import Any

import numpy as np
import torch

from clss.seriation import compare_orders, seriate, seriate_batch
from clss.seriation.generators import knn_graph, noisy_curve


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Any, device: torch.device) -> tuple[Any, float]:
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - t0


def _curve_kernel(n: int, seed: int, device: torch.device) -> tuple[torch.Tensor, np.ndarray]:
    """A dense Gaussian kernel built on the device (bandwidth 0.1 on the unit curve)."""
    x, t = noisy_curve(n, rng=seed)
    xt = torch.as_tensor(x, device=device)
    return torch.exp(-torch.cdist(xt, xt) ** 2 / 0.01), t


def _row(route: str, n: int, seconds: float, res: Any, truth: np.ndarray,
         reference: Any | None) -> dict[str, Any]:
    return {"route": route, "n": n, "seconds": round(seconds, 4),
            "tau": round(abs(compare_orders(res.order, truth)), 6),
            "agree": None if reference is None else round(compare_orders(res.order, reference.order), 6),
            "solver": res.solver, "converged": bool(res.converged), "lambda2": res.lambda2,
            "residual": res.residual, "device": res.info.get("device", "cpu (numpy)")}


def _route_kwargs(device: torch.device) -> dict[str, str]:
    return {} if device.type == "cuda" else {"backend": "torch"}


def dense(sizes: list[int], device: torch.device, cpu_max: int) -> list[dict[str, Any]]:
    rows = []
    for n in sizes:
        s, t = _curve_kernel(n, 0, device)
        truth = np.argsort(t)
        ref = None
        if n <= cpu_max:
            s_np = s.cpu().numpy()
            ref, sec = _timed(lambda s_np=s_np: seriate(s_np), torch.device("cpu"))
            rows.append(_row("numpy", n, sec, ref, truth, None))
            del s_np
        seriate(s[:64, :64], **_route_kwargs(device))  # warm-up: kernels, cuSOLVER handles
        res, sec = _timed(lambda s=s: seriate(s, **_route_kwargs(device)), device)
        rows.append(_row(f"torch-{device.type}", n, sec, res, truth, ref))
        del s
    return rows


def sparse(sizes: list[int], device: torch.device, cpu_max: int) -> list[dict[str, Any]]:
    rows = []
    for n in sizes:
        x, t = noisy_curve(n, rng=1)
        w = knn_graph(x, 10)
        truth = np.argsort(t)
        ref = None
        if n <= cpu_max:
            ref, sec = _timed(lambda w=w: seriate(w), torch.device("cpu"))
            rows.append(_row("numpy", n, sec, ref, truth, None))
        coo = w.tocoo()
        wt = torch.sparse_coo_tensor(np.vstack([coo.row, coo.col]).astype(np.int64), coo.data, coo.shape,
                                     check_invariants=False).to(device)
        res, sec = _timed(lambda wt=wt: seriate(wt, **_route_kwargs(device)), device)
        rows.append(_row(f"torch-{device.type}", n, sec, res, truth, ref))
    return rows


def batched(shapes: list[tuple[int, int]], device: torch.device, dtype: torch.dtype) -> list[dict[str, Any]]:
    rows = []
    for bsz, n in shapes:
        s = torch.stack([_curve_kernel(n, seed, device)[0] for seed in range(bsz)]).to(dtype)
        lap = torch.diag_embed(s.sum(-1)) - s
        seriate_batch(s[:1])  # warm-up
        torch.linalg.eigh(lap[:1])
        _, sec = _timed(lambda s=s: seriate_batch(s), device)
        _, floor = _timed(lambda lap=lap: torch.linalg.eigh(lap), device)
        rows.append({"route": "seriate_batch", "B": bsz, "n": n, "dtype": str(dtype).split(".")[-1],
                     "seconds": round(sec, 5), "bare_eigh_seconds": round(floor, 5),
                     "ratio": round(sec / floor, 3) if floor > 0 else math.nan,
                     "device": str(device)})
    return rows


def _print(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n## {title}")
    if not rows:
        return
    keys = list(rows[0])
    print(" | ".join(keys))
    for r in rows:
        print(" | ".join(f"{r[k]:.4g}" if isinstance(r[k], float) else str(r[k]) for k in keys))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", help="torch device of the torch route (cuda, cpu)")
    parser.add_argument("--dense", type=int, nargs="*", default=[1000, 5000, 20000])
    parser.add_argument("--sparse", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--batch", nargs="*", default=["256x16", "256x64", "64x256"],
                        help="batched shapes BxN")
    parser.add_argument("--cpu-max-dense", type=int, default=20_000,
                        help="largest dense n also run on the numpy route")
    parser.add_argument("--cpu-max-sparse", type=int, default=1_000_000,
                        help="largest sparse n also run on the numpy route")
    parser.add_argument("--json", default=None, help="write the tables to this JSON file")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda needs a CUDA device; pass --device cpu to run the script on CPU")
    shapes = [tuple(int(v) for v in spec.lower().split("x")) for spec in args.batch]
    out = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "dense": dense(args.dense, device, args.cpu_max_dense),
        "sparse": sparse(args.sparse, device, args.cpu_max_sparse),
        "batched": batched(shapes, device, torch.float32) + batched(shapes, device, torch.float64),
    }
    print(f"device: {out['device']}, torch {out['torch']}, {out['threads']} CPU threads")
    for key in ("dense", "sparse", "batched"):
        _print(key, out[key])
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1, default=float)
    return out


if __name__ == "__main__":
    main()
