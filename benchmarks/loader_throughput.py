"""Image loader throughput (decode + augment) against ResNet-18's training throughput on the CPU.

Writes ``--n`` generated 200x200 RGB JPEGs (quality 90) to a temporary folder and reads them through an
:class:`clss.data.ImageDataset` (native size, ImageNet normalisation) and the augmentation views of
:func:`clss.data.augment.build_pipelines` (translation + horizontal flip; strong = that + 2 photometric ops +
cutout), in a ``torch.utils.data.DataLoader`` (batch ``--batch``, persistent workers) with 0, 1 and 2
workers. Two loads: ``weak`` (one decode, one weak view per image) and ``weak+strong`` (one decode, a weak
and a strong view per image, what FixMatch-style methods ask for). Per setting: one untimed pass (worker
start-up), then the best of ``--reps`` timed passes over all images; images/s and images/s per worker
(0 workers: the main process counts as one, with one torch thread like a worker).

The model side: torchvision ``resnet18(weights=None)`` with a 1-output head, one forward + backward + SGD
step on a ``[batch, 3, 200, 200]`` batch, torch's default thread count (its own cores); images/s = batch /
median step time over ``--reps`` steps after 2 warm-up steps.

The loader is the bottleneck when its images/s at the default workers is below the model's images/s.
Usage: ``python benchmarks/loader_throughput.py [--n 256] [--batch 32] [--reps 3] [--workers 0 1 2]``.
Writes ``benchmarks/results/loader_throughput.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image

from clss.data import ImageDataset, ImagePreprocessing
from clss.data.augment import build_pipelines

RESULTS = Path(__file__).resolve().parent / "results" / "loader_throughput.json"


class Views(torch.utils.data.Dataset):
    """Each item: the named views of one decoded image (as the training loader serves them)."""

    def __init__(self, ds: ImageDataset, pipelines: dict, views: tuple[str, ...]) -> None:
        self.ds, self.pipelines, self.views = ds, pipelines, views

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        x = self.ds[i]
        return tuple(self.pipelines[v](x) for v in self.views)


def make_jpegs(folder: Path, n: int) -> list[str]:
    rng = np.random.default_rng(0)
    names = []
    for i in range(n):
        # Smooth random images (upsampled noise) compress like photographs; white noise would not.
        small = Image.fromarray(rng.integers(0, 256, size=(25, 25, 3), dtype=np.uint8))
        small.resize((200, 200), Image.Resampling.BICUBIC).save(folder / f"{i}.jpg", quality=90)
        names.append(f"{i}.jpg")
    return names


def loader_rate(ds: torch.utils.data.Dataset, workers: int, batch: int, reps: int) -> float:
    # One torch thread in the main process too, as in DataLoader workers (and as the trainer runs small
    # per-image ops): on a busy machine many threads per tiny op make 0 workers ~10x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers,
                                         persistent_workers=workers > 0)
    for _ in loader:  # worker start-up and file cache
        pass
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        for _ in loader:
            pass
        best = min(best, time.perf_counter() - t)
    torch.set_num_threads(threads)
    return len(ds) / best


def model_rate(batch: int, reps: int) -> float:
    model = torchvision.models.resnet18(weights=None, num_classes=1)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x, y = torch.randn(batch, 3, 200, 200), torch.randn(batch)
    times = []
    for i in range(reps + 2):
        t = time.perf_counter()
        loss = torch.nn.functional.mse_loss(model(x)[:, 0], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t)
    return batch / statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256, help="images (default 256)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    torch.manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        names = make_jpegs(Path(tmp), args.n)
        ds = ImageDataset(tmp, names, np.zeros(len(names)), ImagePreprocessing(normalize="imagenet"))
        pipelines = build_pipelines(("translate", "hflip"), ds.preprocessing, ds.input.shape)
        for views in (("weak",), ("weak", "strong")):
            for w in args.workers:
                rate = loader_rate(Views(ds, pipelines, views), w, args.batch, args.reps)
                rows.append({"views": "+".join(views), "workers": w, "images_per_s": rate,
                             "images_per_s_per_worker": rate / max(w, 1)})
                print(f"loader {'+'.join(views):12s} workers={w}: {rate:7.1f} images/s "
                      f"({rate / max(w, 1):6.1f} per worker)", flush=True)
    model = model_rate(args.batch, args.reps)
    print(f"resnet18 forward+backward, batch {args.batch}, {torch.get_num_threads()} threads: "
          f"{model:7.1f} images/s")
    for r in rows:
        r["loader_is_bottleneck"] = r["images_per_s"] < model
    out = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                       "torch_threads": torch.get_num_threads(), "torch": torch.__version__},
           "args": vars(args), "loader": rows, "resnet18_images_per_s": model}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2))
    print(f"\n| views | workers | loader images/s | per worker | bottleneck vs ResNet-18 ({model:.0f}/s) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['views']} | {r['workers']} | {r['images_per_s']:.0f} | "
              f"{r['images_per_s_per_worker']:.0f} | {'yes' if r['loader_is_bottleneck'] else 'no'} |")
    print(f"written: {RESULTS}")


if __name__ == "__main__":
    main()
