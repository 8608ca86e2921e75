"""The operator-learning benchmark of the CLSS/GCLSS papers ("synthetic"; see docs/data.md).

Each row is ``[KL features of a GP covariance (240), query point x (1)] -> E_w[u(x)]``, the mean solution of
the stochastic elliptic PDE ``-(a u')' = 10`` on (0, 1), ``u(0) = u(1) = 0``, ``a = exp(0.1 b)``,
``b ~ GP(0, RBF(l))``, ``l ~ U[0.2, 2]`` (DeepONet's ``src/sde.py``). The published files are loaded when
available; otherwise a built-in generator regenerates statistically equivalent data, cached on disk.

Official protocol: run ``t`` trains on rows ``[1000 t, 1000 t + 1000)`` of the train file (100 input
functions); the paper's labeled/unlabeled rows come from a permutation of those rows; the test split is
the whole test file (1000 other functions). The paper selects checkpoints on the test set; by default we
validate on the next run's slice instead (see :func:`load_operator_sde`).
"""

from __future__ import annotations

import io
import json
import os
import time
import zipfile
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
from rich.console import Console
from threadpoolctl import threadpool_limits

from clss.atomic import atomic_write_bytes, exclusive_lock
from clss.data.base import RegressionData

__all__ = [
    "GENERATOR_VERSION",
    "N_EIGEN",
    "N_GRID",
    "N_SENSORS",
    "generate_operator_sde",
    "generate_split",
    "kl_features",
    "load_operator_sde",
    "mean_solution",
    "paper_run_indices",
]

N_GRID = 100  # output grid x_j = j / 99
N_SENSORS = 30  # KL sensors linspace(0, 1, 30)
N_EIGEN = 8  # KL eigenfunctions kept
FORCING = 10.0
GP_AMPLITUDE = 0.1  # a = exp(0.1 b)
LENGTH_SCALE_RANGE = (0.2, 2.0)
# Bumped whenever generated numbers change, so stale caches are never reused.
GENERATOR_VERSION = 1
SPLITS = ("train", "test")
_SPLIT_STREAM = {"train": 0, "test": 1}

_GRID = np.linspace(0.0, 1.0, N_GRID)
_H = 1.0 / (N_GRID - 1)


def _rbf_kernel(length_scale: float) -> np.ndarray:
    diff = _GRID[:, None] - _GRID[None, :]
    return np.exp(-(diff**2) / (2.0 * length_scale**2))


def _sqrt_covariance(kernel: np.ndarray) -> np.ndarray:
    """Lower factor ``L`` with ``L L^T = K`` (Cholesky with 1e-13 jitter; eigh square root as fallback)."""
    try:
        return np.linalg.cholesky(kernel + 1e-13 * np.eye(kernel.shape[0]))
    except np.linalg.LinAlgError:
        vals, vecs = np.linalg.eigh(kernel)
        return vecs * np.sqrt(np.clip(vals, 0.0, None))


def _cumtrapz(values: np.ndarray) -> np.ndarray:
    """Cumulative trapezoid along the last axis of samples on the uniform grid, starting at 0."""
    out = np.zeros_like(values)
    np.cumsum(0.5 * _H * (values[..., 1:] + values[..., :-1]), axis=-1, out=out[..., 1:])
    return out


def mean_solution(
    sqrt_cov: np.ndarray, rng: np.random.Generator, *, mc_samples: int = 20000, chunk_size: int = 5000
) -> np.ndarray:
    """Monte Carlo mean solution ``s(x_j) = E[u(x_j)]`` on the 100-point grid, averaged over GP paths.

    Per path ``b = L xi``: ``w = exp(-0.1 b)``, ``v1 = int_0^x w``, ``v2 = int_0^x 10 s w(s) ds`` (cumulative
    trapezoids), ``u = C v1 - v2`` with ``C = v2(1) / v1(1)``; ``s`` averages ``u`` over the paths. The
    cumulative trapezoid is linear, so it is applied once to ``mean(C w) - 10 x mean(w)`` instead of to
    every path (same numbers up to rounding, several times faster).

    Parameters
    ----------
    sqrt_cov : np.ndarray
        ``[100, 100]`` factor ``L`` of the GP covariance on the grid (zeros give ``a = 1`` and
        ``u = 5 x (1 - x)``).
    rng : np.random.Generator
        Source of the Gaussian draws; paths are drawn path-major, so the result does not depend on
        ``chunk_size``.
    mc_samples : int, default 20000
        Number of GP paths.
    chunk_size : int, default 5000
        Paths processed at once (memory about ``chunk_size * 100 * 8 * 3`` bytes).

    Returns
    -------
    np.ndarray
        float64 ``[100]``.
    """
    if mc_samples < 1 or chunk_size < 1:
        raise ValueError(f"mc_samples and chunk_size must be >= 1, got {mc_samples}, {chunk_size}")
    acc = _MeanAccumulator(sqrt_cov)
    done = 0
    while done < mc_samples:
        m = min(chunk_size, mc_samples - done)
        acc.add(rng.standard_normal((m, N_GRID)))
        done += m
    return acc.result()


class _MeanAccumulator:
    """Running sums of ``C w`` and ``w`` over Gaussian path draws ``xi`` ``[m, 100]`` (see mean_solution)."""

    def __init__(self, sqrt_cov: np.ndarray) -> None:
        self.cov_t = np.ascontiguousarray(sqrt_cov.T)
        self.weights = np.full(N_GRID, _H)
        self.weights[[0, -1]] *= 0.5
        self.forcing_weights = FORCING * _GRID * self.weights
        self.sum_cw = np.zeros(N_GRID)
        self.sum_w = np.zeros(N_GRID)
        self.n = 0

    def add(self, xi: np.ndarray) -> None:
        # In place: exp(-0.1 (xi L^T)) without a temporary per operation (same numbers as the plain
        # expression; allocation and page faults dominated the cost of the original).
        w = np.matmul(xi, self.cov_t)
        w *= -GP_AMPLITUDE
        np.exp(w, out=w)
        c = (w @ self.forcing_weights) / (w @ self.weights)
        self.sum_cw += c @ w
        self.sum_w += w.sum(axis=0)
        self.n += xi.shape[0]

    def result(self) -> np.ndarray:
        return _cumtrapz((self.sum_cw - FORCING * _GRID * self.sum_w) / self.n)


def kl_features(length_scale: float, signs: np.ndarray | None = None) -> np.ndarray:
    """KL input features of the RBF covariance with length scale ``length_scale``.

    Nystrom discretisation ``A = K h`` with trapezoid column weights; the 8 leading eigenfunctions,
    L2[0, 1]-normalised and scaled by ``sqrt(eigenvalue)``, are sampled at 30 sensors and flattened
    eigenfunction-major. Eigenvector signs are made canonical (first clearly non-zero grid value positive)
    and then multiplied by ``signs``.

    Parameters
    ----------
    length_scale : float
    signs : np.ndarray, optional
        ``[8]`` values in {-1, +1} (seeded Rademacher signs; LAPACK's signs are arbitrary); default all +1.

    Returns
    -------
    np.ndarray
        float64 ``[240]``.
    """
    # A = K h W (W: trapezoid weights) is similar to the symmetric W^1/2 K h W^1/2, so eigh gives A's
    # eigenvalues and, through phi = W^-1/2 psi, its eigenvectors: real by construction and faster than eig.
    root_w = np.sqrt(np.where(np.arange(N_GRID) % (N_GRID - 1) == 0, 0.5, 1.0))
    vals, vecs = np.linalg.eigh(root_w[:, None] * _rbf_kernel(length_scale) * _H * root_w[None, :])
    vals = np.clip(vals[::-1][:N_EIGEN], 0.0, None)
    vecs = vecs[:, ::-1][:, :N_EIGEN] / root_w[:, None]
    vecs = vecs / np.sqrt(np.trapezoid(vecs**2, _GRID, axis=0))
    # Canonical sign: LAPACK's sign is platform-dependent; the first value above 1e-3 of the peak is > 0.
    first = np.argmax(np.abs(vecs) > 1e-3 * np.abs(vecs).max(axis=0), axis=0)
    vecs = vecs * np.sign(vecs[first, np.arange(N_EIGEN)])
    if signs is not None:
        vecs = vecs * np.asarray(signs, dtype=np.float64)
    vecs = vecs * np.sqrt(vals)
    sensors = np.linspace(0.0, 1.0, N_SENSORS)
    sampled = np.stack([np.interp(sensors, _GRID, vecs[:, k]) for k in range(N_EIGEN)])
    return sampled.ravel()


def generate_split(
    n_functions: int = 1000,
    *,
    seed: int = 0,
    split: Literal["train", "test"] = "train",
    n_points: int = 10,
    mc_samples: int = 20000,
    chunk_size: int = 5000,
    progress: bool = True,
    workers: int | None = None,
) -> dict[str, np.ndarray]:
    """Generate one split with the built-in regeneration recipe (docs/data.md).

    Per function, from ``numpy.random.default_rng([seed, 0 | 1])`` (train | test): ``l ~ U[0.2, 2]``, the
    Monte Carlo mean solution, 8 Rademacher signs, then ``n_points`` distinct query grid points.

    Parameters
    ----------
    n_functions : int, default 1000
        Input functions; the split has ``n_functions * n_points`` rows.
    seed : int, default 0
    split : {"train", "test"}
        Selects the random stream and the array names.
    n_points : int, default 10
        Query points per function (distinct, out of the 100-point grid).
    mc_samples, chunk_size : int
        See :func:`mean_solution` (each function's ``mc_samples x 100`` draws are held at once, 16 MB at the
        default; at most ``workers + 2`` functions are in flight).
    progress : bool, default True
        A live bar on a terminal; otherwise a plain line on stderr every tenth of the functions.
    workers : int, optional
        Threads computing the functions (default: the CPUs this process may use). The numbers do not
        depend on it.

    Returns
    -------
    dict
        ``X_{split}0`` float64 ``[n, 240]``, ``X_{split}1`` ``[n, 1]``, ``y_{split}`` ``[n, 1]``
        (the layout of the published files), and ``length_scale`` ``[n_functions]``.
    """
    if split not in _SPLIT_STREAM:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if n_functions < 1 or not 1 <= n_points <= N_GRID:
        raise ValueError(
            f"need n_functions >= 1 and 1 <= n_points <= {N_GRID}, got {n_functions}, {n_points}"
        )
    if mc_samples < 1 or chunk_size < 1:
        raise ValueError(f"mc_samples and chunk_size must be >= 1, got {mc_samples}, {chunk_size}")
    workers = _default_workers() if workers is None else workers
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    from clss.engine.progress import TrainingProgress  # here: clss.engine imports clss.data

    rng = np.random.default_rng([seed, _SPLIT_STREAM[split]])
    x0 = np.empty((n_functions, N_EIGEN * N_SENSORS))
    x1 = np.empty((n_functions, n_points))
    y = np.empty((n_functions, n_points))
    scales = np.empty(n_functions)

    def solve(i: int, xi: np.ndarray, signs: np.ndarray, idx: np.ndarray) -> None:
        acc = _MeanAccumulator(_sqrt_covariance(_rbf_kernel(scales[i])))
        for lo in range(0, mc_samples, chunk_size):
            acc.add(xi[lo : lo + chunk_size])
        x0[i] = kl_features(scales[i], signs=signs)
        x1[i], y[i] = _GRID[idx], acc.result()[idx]

    # The draws stay sequential, in the original order (uniform, the paths, the signs, the query points),
    # so the numbers do not depend on `workers`; the arithmetic on each function's paths runs in worker
    # threads (numpy and BLAS release the GIL), each on a single BLAS thread: a few threads on small
    # matrices per worker oversubscribe a busy machine and made the original loop ~20x slower.
    started = time.perf_counter()
    pending: deque[Future[None]] = deque()
    done = 0
    bar = TrainingProgress(n_functions, enabled=progress, description=f"operator-sde {split}: functions",
                           log_every=max(1, n_functions // 10), console=Console(stderr=True))
    with threadpool_limits(1), ThreadPoolExecutor(workers) as pool, bar:
        for i in range(n_functions):
            scales[i] = rng.uniform(*LENGTH_SCALE_RANGE)
            xi = rng.standard_normal((mc_samples, N_GRID))
            signs = rng.choice([-1.0, 1.0], size=N_EIGEN)
            idx = rng.choice(N_GRID, size=n_points, replace=False)
            pending.append(pool.submit(solve, i, xi, signs, idx))
            while pending and (len(pending) > workers + 1 or i == n_functions - 1):  # bounds the memory
                pending.popleft().result()
                done += 1
                bar.update(done, seconds=round(time.perf_counter() - started, 1))
    return {
        f"X_{split}0": np.repeat(x0, n_points, axis=0),
        f"X_{split}1": x1.reshape(-1, 1),
        f"y_{split}": y.reshape(-1, 1),
        "length_scale": scales,
    }


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _cache_root() -> Path:
    root = os.environ.get("CLSS_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "clss") / "operator_sde"


def generate_operator_sde(
    *,
    seed: int = 0,
    n_functions: int = 1000,
    n_points: int = 10,
    mc_samples: int = 20000,
    chunk_size: int = 5000,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> Path:
    """Generate (or reuse from the cache) ``train_sde.npz`` and ``test_sde.npz`` in the published layout.

    Files go to ``cache_dir`` or ``$CLSS_CACHE_DIR/operator_sde/<key>/`` (default
    ``~/.cache/clss/operator_sde/<key>/``), ``<key>`` encoding every parameter that changes the numbers, with
    a ``params.json`` beside them. Writes are atomic; an existing split is never regenerated.

    Parameters
    ----------
    seed, n_functions, n_points, mc_samples, chunk_size, progress
        See :func:`generate_split` (``chunk_size`` does not change the numbers and is not in the key).
    cache_dir : str or PathLike, optional
        Exact folder for the files (overrides the keyed cache location).

    Returns
    -------
    Path
        The folder holding both files.
    """
    key = f"v{GENERATOR_VERSION}-seed{seed}-f{n_functions}-q{n_points}-mc{mc_samples}"
    folder = Path(cache_dir) if cache_dir is not None else _cache_root() / key
    # Parallel runs (clss compare --jobs N) on a fresh cache: one generates, the others wait and reuse.
    with exclusive_lock(folder / ".generating.lock"):
        _generate_missing(folder, seed, n_functions, n_points, mc_samples, chunk_size, progress)
    return folder


def _generate_missing(folder: Path, seed: int, n_functions: int, n_points: int, mc_samples: int,
                      chunk_size: int, progress: bool) -> None:
    params_path = folder / "params.json"
    params = json.loads(params_path.read_text()) if params_path.is_file() else {}
    params |= {
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "n_functions": n_functions,
        "n_points": n_points,
        "mc_samples": mc_samples,
        "recipe": "clss.data.operator_sde.generate_split (docs/data.md)",
    }
    for split in SPLITS:
        path = folder / f"{split}_sde.npz"
        if path.is_file():
            continue
        start = time.perf_counter()
        arrays = generate_split(
            n_functions,
            seed=seed,
            split=split,
            n_points=n_points,
            mc_samples=mc_samples,
            chunk_size=chunk_size,
            progress=progress,
        )
        params[f"{split}_seconds"] = round(time.perf_counter() - start, 3)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(path, buf.getvalue())
        atomic_write_bytes(params_path, (json.dumps(params, indent=1) + "\n").encode())


def _read_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    path = folder / f"{split}_sde.npz"
    keys = (f"X_{split}0", f"X_{split}1", f"y_{split}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in keys if k not in npz.files]
            x0, x1, y = (None if k in missing else np.asarray(npz[k], dtype=np.float64) for k in keys)
            files = npz.files
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:  # not a zip, truncated, objects
        raise ValueError(f"cannot read {path} as an npz file of arrays: {exc}") from None
    if missing:
        raise ValueError(f"{path} lacks arrays {missing} (has {files}); expected the published layout")
    n = x0.shape[0]
    if x0.shape != (n, N_EIGEN * N_SENSORS) or x1.shape != (n, 1) or y.reshape(-1).shape != (n,):
        raise ValueError(
            f"{path}: expected X_{split}0 [n, 240], X_{split}1 [n, 1], y_{split} [n, 1]; got {x0.shape}, "
            f"{x1.shape}, {y.shape}"
        )
    return np.hstack([x0, x1]), y.reshape(-1)


def paper_run_indices(run: int, fraction: float, run_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Labeled and unlabeled rows of run ``run`` exactly as the official synthetic code.

    The official script seeds the legacy global stream once (``np.random.seed(0)``) and shuffles
    ``arange(1000)`` at the start of every run, so run ``t`` uses the ``(t + 1)``-th permutation of that
    stream. This draws the same permutations from a private ``RandomState(0)`` (global state untouched).
    ``k = int(run_size * fraction)`` (the script's truncation); labeled = first ``k`` permuted rows,
    unlabeled = the next ``k`` (fewer when ``fraction > 0.5``).

    Parameters
    ----------
    run : int
        Run index ``t >= 0``.
    fraction : float
        Labeled fraction in (0, 1] (the paper uses 0.2, 0.25, 0.33, 0.5).
    run_size : int, default 1000
        Rows per run.

    Returns
    -------
    labeled, unlabeled : np.ndarray
        int64 indices *local to the run's slice* (add ``run * run_size`` for rows of the full file), in
        permutation order.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if run < 0:
        raise ValueError(f"run must be >= 0, got {run}")
    k = int(run_size * fraction)
    if k < 1:
        raise ValueError(f"fraction {fraction} of a {run_size}-row run gives 0 labeled rows")
    stream = np.random.RandomState(0)
    for _ in range(run + 1):
        perm = stream.permutation(run_size)
    return perm[:k].astype(np.int64), perm[k : 2 * k].astype(np.int64)


def _resolve_files(data_dir: str | os.PathLike[str] | None) -> Path | None:
    explicit = data_dir if data_dir is not None else os.environ.get("CLSS_OPERATOR_SDE_DIR")
    if explicit is None:
        return None
    folder = Path(explicit).expanduser()
    missing = [f"{s}_sde.npz" for s in SPLITS if not (folder / f"{s}_sde.npz").is_file()]
    if missing:
        origin = "data_dir" if data_dir is not None else "$CLSS_OPERATOR_SDE_DIR"
        raise FileNotFoundError(
            f"operator-sde: {origin} {folder} lacks {missing}; point it at the published train_sde.npz and "
            "test_sde.npz, or leave it unset to use the built-in generator"
        )
    return folder


def load_operator_sde(
    *,
    seed: int = 0,
    data_dir: str | os.PathLike[str] | None = None,
    run: int = 0,
    fraction: float | None = None,
    val_protocol: str = "holdout",
    run_size: int = 1000,
    generator_seed: int = 0,
    n_functions: int = 1000,
    mc_samples: int = 20000,
    chunk_size: int = 5000,
    progress: bool = True,
) -> RegressionData:
    """Load one run of the operator-learning benchmark.

    Data source: ``data_dir``, else ``$CLSS_OPERATOR_SDE_DIR`` (either must hold ``train_sde.npz`` and
    ``test_sde.npz``); with neither set, the built-in generator's cached output (generated on first use: about
    0.07 CPU-seconds per function, 77 s for both splits on two idle cores).

    Splits:

    - train: rows ``[run * run_size, (run + 1) * run_size)`` of the train file (run ``t`` of the paper);
    - labeled / unlabeled (only when ``fraction`` is given): :func:`paper_run_indices`, local to the train
      split;
    - val, ``val_protocol="holdout"`` (default): the next run's slice, ``(run + 1) mod n_runs`` (other input
      functions from the same distribution, like the test set, and never trained on in this run);
      ``val_protocol="test"``: the test split, reproducing the official (optimistic) checkpoint
      selection on test;
    - test: the whole test file, as in the paper.

    ``seed`` does not change the data: the paper's protocol fixes it through ``run``.

    Parameters
    ----------
    seed : int, default 0
        Recorded in ``meta`` only.
    data_dir : str or PathLike, optional
    run : int, default 0
    fraction : float, optional
        The paper's labeled fraction (0.2, 0.25, 0.33, 0.5).
    val_protocol : {"holdout", "test"}
    run_size : int, default 1000
        Rows per run; smaller values serve tiny generated sets.
    generator_seed, n_functions, mc_samples, chunk_size, progress
        Generator settings (ignored when files are loaded), see :func:`generate_operator_sde`.

    Returns
    -------
    RegressionData
        ``x_*`` float32 ``[n, 241]`` (240 KL features, then the query point), ``y_*`` float64 ``[n]``.
    """
    if val_protocol not in ("holdout", "test"):
        raise ValueError(f"val_protocol must be 'holdout' or 'test', got {val_protocol!r}")
    folder = _resolve_files(data_dir)
    if folder is not None:
        source: dict[str, Any] = {"source": "files", "data_dir": str(folder)}
    else:
        folder = generate_operator_sde(
            seed=generator_seed,
            n_functions=n_functions,
            mc_samples=mc_samples,
            chunk_size=chunk_size,
            progress=progress,
        )
        source = {
            "source": "generator",
            "data_dir": str(folder),
            "generator": {"seed": generator_seed, "n_functions": n_functions, "mc_samples": mc_samples},
        }
    x_train_all, y_train_all = _read_split(folder, "train")
    x_test, y_test = _read_split(folder, "test")
    n_runs = x_train_all.shape[0] // run_size
    if not 0 <= run < n_runs:
        raise ValueError(
            f"operator-sde: run {run} out of range; {x_train_all.shape[0]} train rows give {n_runs} runs of "
            f"{run_size} rows"
        )
    rows = slice(run * run_size, (run + 1) * run_size)
    if val_protocol == "test":
        x_val, y_val, val_rows = x_test, y_test, "test split (official protocol; optimistic)"
    else:
        if n_runs < 2:
            raise ValueError(
                f"operator-sde: val_protocol='holdout' needs a second run slice, but {x_train_all.shape[0]} "
                f"train rows give {n_runs} run(s) of {run_size}; use more functions or val_protocol='test'"
            )
        v = (run + 1) % n_runs
        x_val, y_val = (
            x_train_all[v * run_size : (v + 1) * run_size],
            y_train_all[v * run_size : (v + 1) * run_size],
        )
        val_rows = [v * run_size, (v + 1) * run_size]
    labeled = unlabeled = None
    if fraction is not None:
        labeled, unlabeled = paper_run_indices(run, fraction, run_size)
    meta = {
        **source,
        "run": run,
        "run_size": run_size,
        "n_runs": n_runs,
        "train_rows": [rows.start, rows.stop],
        "val_protocol": val_protocol,
        "val_rows": val_rows,
        "test_rows": "whole test file",
        "fraction": fraction,
        "seed": seed,
        "protocol": "as the official code: labeled and unlabeled indices are local to the run's train rows",
    }
    return RegressionData(
        name="operator-sde",
        x_train=x_train_all[rows],
        y_train=y_train_all[rows],
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
        feature_names=[f"kl{k}_s{j}" for k in range(N_EIGEN) for j in range(N_SENSORS)] + ["x"],
        target_name="mean_solution",
        meta=meta,
        labeled=labeled,
        unlabeled=unlabeled,
    )
