"""operator-sde: published files (layout, statistics), the built-in generator, its cache, run slicing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clss.data import load_dataset, operator_sde
from clss.data.operator_sde import (
    N_GRID,
    generate_operator_sde,
    generate_split,
    kl_features,
    mean_solution,
    paper_run_indices,
)

PUBLISHED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "operator_sde"
TINY = {"n_functions": 20, "mc_samples": 1000, "progress": False}


def _stats(x0: np.ndarray, x1: np.ndarray, y: np.ndarray) -> dict[str, float]:
    q = np.quantile(y, [0.25, 0.5, 0.75])
    return {
        "x0_mean": x0.mean(),
        "x0_sd": x0.std(),
        "x0_abs": np.abs(x0).mean(),
        "x0_min": x0.min(),
        "x0_max": x0.max(),
        "x1_mean": x1.mean(),
        "x1_sd": x1.std(),
        "y_mean": y.mean(),
        "y_sd": y.std(),
        "y_min": y.min(),
        "y_q25": q[0],
        "y_median": q[1],
        "y_q75": q[2],
        "y_max": y.max(),
    }


# Summary statistics of the published train_sde.npz, rows 0-49 and all 10 000 rows.
D4_FIRST50 = dict(
    x0_mean=-0.0234, x0_sd=0.3528, x0_abs=0.1677, x0_min=-0.998, x0_max=1.000, x1_mean=0.5545, x1_sd=0.2662,
    y_mean=0.8844, y_sd=0.3416, y_min=0.0502, y_q25=0.6801, y_median=0.9966, y_q75=1.1708, y_max=1.2534,
)  # fmt: skip
D4_ALL = dict(
    x0_mean=0.0525, x0_sd=0.3496, x0_abs=0.1628, x0_min=-0.999, x0_max=1.000, x1_mean=0.5006, x1_sd=0.2936,
    y_mean=0.8222, y_sd=0.3837, y_min=0.0, y_q25=0.5342, y_median=0.9227, y_q75=1.1748, y_max=1.2578,
)  # fmt: skip
# Loose bounds for a small regenerated sample (few functions, reduced Monte Carlo).
ROUGH = dict(
    x0_mean=0.12, x0_sd=0.06, x0_abs=0.05, x1_mean=0.1, x1_sd=0.06, y_mean=0.15, y_sd=0.08, y_max=0.03
)


@pytest.fixture(scope="module")
def sde_source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, bool]:
    """(folder, run_size, published): the published files when present, else a tiny generated set.

    Both give 10 runs: 1000-row runs of the published files, 20-row runs of the 200-row tiny set.
    """
    if (PUBLISHED / "train_sde.npz").is_file() and (PUBLISHED / "test_sde.npz").is_file():
        return PUBLISHED, 1000, True
    folder = tmp_path_factory.mktemp("sde")
    generate_operator_sde(cache_dir=folder, n_functions=20, n_points=10, mc_samples=1000, progress=False)
    return folder, 20, False


@pytest.fixture
def cache_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CLSS_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("CLSS_OPERATOR_SDE_DIR", raising=False)
    return tmp_path


def test_files_shapes_and_summary_statistics(sde_source: tuple[Path, int, bool]) -> None:
    folder, run_size, published = sde_source
    train = np.load(folder / "train_sde.npz")
    x0, x1, y = train["X_train0"], train["X_train1"], train["y_train"][:, 0]
    n = 10 * run_size
    assert x0.shape == (n, 240) and x1.shape == (n, 1) and train["y_train"].shape == (n, 1)
    if published:
        for rows, expected in ((slice(0, 50), D4_FIRST50), (slice(None), D4_ALL)):
            got = _stats(x0[rows], x1[rows], y[rows])
            for key, value in expected.items():
                assert got[key] == pytest.approx(value, abs=1.5e-3), key
    else:
        got = _stats(x0, x1, y)
        for key, tol in ROUGH.items():
            assert got[key] == pytest.approx(D4_ALL[key], abs=tol), key


def test_load_dataset_published_layout(sde_source: tuple[Path, int, bool]) -> None:
    folder, run_size, _ = sde_source
    data = load_dataset("operator-sde", data_dir=folder, run=2, run_size=run_size)
    full = np.load(folder / "train_sde.npz")
    test = np.load(folder / "test_sde.npz")
    assert data.x_train.shape == (run_size, 241) and data.x_train.dtype == np.float32
    assert data.y_train.shape == (run_size,) and data.y_train.dtype == np.float64
    rows = slice(2 * run_size, 3 * run_size)
    np.testing.assert_array_equal(data.x_train[:, :240], full["X_train0"][rows].astype(np.float32))
    np.testing.assert_array_equal(data.x_train[:, 240], full["X_train1"][rows, 0].astype(np.float32))
    np.testing.assert_array_equal(data.y_train, full["y_train"][rows, 0])
    # Test split: the whole test file (as in the paper); val: the next run's slice.
    assert data.x_test.shape == (10 * run_size, 241)
    np.testing.assert_array_equal(data.y_test, test["y_test"][:, 0])
    np.testing.assert_array_equal(data.y_val, full["y_train"][3 * run_size : 4 * run_size, 0])
    assert data.meta["val_rows"] == [3 * run_size, 4 * run_size] and data.meta["source"] == "files"
    assert data.labeled is None and data.unlabeled is None
    assert len(data.feature_names) == 241 and data.feature_names[-1] == "x"


def test_holdout_val_shares_no_input_function_with_train(sde_source: tuple[Path, int, bool]) -> None:
    folder, run_size, _ = sde_source
    data = load_dataset("operator-sde", data_dir=folder, run=9, fraction=0.2, run_size=run_size)
    assert data.meta["val_rows"] == [0, run_size]  # wraps around to run 0
    train_functions = {row.tobytes() for row in data.x_train[:, :240]}
    assert not train_functions & {row.tobytes() for row in data.x_val[:, :240]}


def test_val_protocol_test_is_the_official_selection(sde_source: tuple[Path, int, bool]) -> None:
    folder, run_size, _ = sde_source
    data = load_dataset("operator-sde", data_dir=folder, run_size=run_size, val_protocol="test")
    np.testing.assert_array_equal(data.x_val, data.x_test)
    assert "optimistic" in data.meta["val_rows"]


def _reference_permutations(n_runs: int, run_size: int = 1000) -> list[np.ndarray]:
    """The official script: global np.random.seed(0), then one shuffle per run (legacy API on purpose)."""
    saved = np.random.get_state()  # noqa: NPY002
    try:
        np.random.seed(0)  # noqa: NPY002
        return [np.random.permutation(run_size) for _ in range(n_runs)]  # noqa: NPY002
    finally:
        np.random.set_state(saved)  # noqa: NPY002


@pytest.mark.parametrize("fraction", [0.2, 0.25, 0.33, 0.5])
def test_paper_run_indices_match_the_legacy_global_stream(fraction: float) -> None:
    refs = _reference_permutations(10)
    k = int(1000 * fraction)
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    previous = None
    for t in range(10):
        lab, unl = paper_run_indices(t, fraction)
        np.testing.assert_array_equal(lab, refs[t][:k])
        np.testing.assert_array_equal(unl, refs[t][k : 2 * k])
        assert lab.size == unl.size == k == int(np.floor(1000 * fraction))
        assert not np.intersect1d(lab, unl).size
        assert lab.min() >= 0 and max(lab.max(), unl.max()) < 1000
        if previous is not None:
            assert not np.array_equal(lab, previous)
        previous = lab
    np.testing.assert_array_equal(np.random.get_state()[1], before)  # noqa: NPY002 (global state untouched)


def test_load_dataset_paper_protocol_rows(sde_source: tuple[Path, int, bool]) -> None:
    folder, run_size, _ = sde_source
    full_y = np.load(folder / "train_sde.npz")["y_train"][:, 0]
    refs = _reference_permutations(4, run_size)
    k = int(run_size * 0.25)
    for t in (0, 3):
        data = load_dataset("operator-sde", data_dir=folder, run=t, fraction=0.25, run_size=run_size)
        lab_rows, unl_rows = data.labeled + t * run_size, data.unlabeled + t * run_size
        assert lab_rows.min() >= t * run_size and max(lab_rows.max(), unl_rows.max()) < (t + 1) * run_size
        np.testing.assert_array_equal(lab_rows, refs[t][:k] + t * run_size)
        np.testing.assert_array_equal(unl_rows, refs[t][k : 2 * k] + t * run_size)
        np.testing.assert_array_equal(data.y_train[data.labeled], full_y[lab_rows])


def test_closed_form_boundary_values_and_deterministic_case() -> None:
    rng = np.random.default_rng(0)
    s = mean_solution(operator_sde._sqrt_covariance(operator_sde._rbf_kernel(0.5)), rng, mc_samples=2000)
    assert abs(s[0]) < 1e-15 and abs(s[-1]) < 1e-12
    assert 1.2 < s.max() < 1.3 and abs(np.argmax(s) / 99 - 0.5) < 0.05
    # GP variance -> 0: a = 1 and -u'' = 10 gives u = 5 x (1 - x); the trapezoid rule is exact here.
    x = np.linspace(0, 1, N_GRID)
    zero = mean_solution(np.zeros((N_GRID, N_GRID)), rng, mc_samples=10)
    np.testing.assert_allclose(zero, 5 * x * (1 - x), atol=1e-12)


def test_chunking_does_not_change_the_numbers() -> None:
    root = operator_sde._sqrt_covariance(operator_sde._rbf_kernel(1.0))
    a = mean_solution(root, np.random.default_rng(3), mc_samples=1000, chunk_size=1000)
    b = mean_solution(root, np.random.default_rng(3), mc_samples=1000, chunk_size=137)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-13)


def test_recovers_the_original_first_function() -> None:
    """The published file's first function has l ~ 0.815; its 10 targets are matched to <= 0.0024."""
    xs = np.array([0.909, 0.949, 0.202, 0.717, 0.222, 0.758, 0.162, 0.990, 0.152, 0.121])
    ys = np.array([0.415, 0.241, 0.809, 1.018, 0.867, 0.922, 0.680, 0.050, 0.645, 0.534])
    root = operator_sde._sqrt_covariance(operator_sde._rbf_kernel(0.815))
    s = mean_solution(root, np.random.default_rng(0), mc_samples=20000)
    # 0.0024 (the recipe's validated bound) plus 0.0005 for the 3-decimal rounding of the published values.
    assert np.abs(s[np.rint(xs * 99).astype(int)] - ys).max() <= 0.0024 + 5e-4
    # Its KL features: per-eigenfunction norms of the first row (published file: 5.16, 1.79, 0.418, 0.078).
    norms = np.linalg.norm(kl_features(0.815).reshape(8, 30), axis=1)
    np.testing.assert_allclose(norms[:4], [5.16, 1.79, 0.418, 0.078], rtol=5e-3)


def test_kl_signs_canonical_then_rademacher() -> None:
    base = kl_features(0.6).reshape(8, 30)
    signs = np.array([1, -1, 1, -1, -1, 1, 1, -1], dtype=float)
    np.testing.assert_allclose(kl_features(0.6, signs=signs).reshape(8, 30), base * signs[:, None])
    assert (base[:, 0] > 0).all()  # canonical: the value at x = 0 is positive
    assert np.abs(base).max() <= 1.0


def test_generator_layout_statistics_and_determinism() -> None:
    a = generate_split(30, seed=0, mc_samples=2000, progress=False)
    x0, x1, y = a["X_train0"], a["X_train1"], a["y_train"][:, 0]
    assert x0.shape == (300, 240) and x1.shape == (300, 1) and a["y_train"].shape == (300, 1)
    assert x0.dtype == x1.dtype == y.dtype == np.float64
    blocks = x0.reshape(30, 10, 240)
    assert (blocks == blocks[:, :1]).all()  # 10 rows per function share the input
    grid_idx = np.rint(x1[:, 0] * 99)
    np.testing.assert_allclose(x1[:, 0], grid_idx / 99, atol=1e-15)
    assert all(np.unique(g).size == 10 for g in grid_idx.reshape(30, 10))
    assert ((a["length_scale"] >= 0.2) & (a["length_scale"] <= 2.0)).all()
    got = _stats(x0, x1, y)
    for key, tol in ROUGH.items():
        assert got[key] == pytest.approx(D4_ALL[key], abs=tol), key
    assert y.min() >= -1e-12 and np.abs(x0).max() <= 1.0
    # Signs are mixed across functions (the Rademacher rule), for eigenfunction 1 included.
    first_sign = np.sign(blocks[:, 0, 0])
    assert 0 < (first_sign > 0).mean() < 1
    again = generate_split(30, seed=0, mc_samples=2000, progress=False)
    for key in a:
        np.testing.assert_array_equal(a[key], again[key])
    other = generate_split(3, seed=1, mc_samples=2000, progress=False)
    assert not np.array_equal(other["X_train0"][:30], x0[:30])
    test = generate_split(3, seed=0, split="test", mc_samples=2000, progress=False)
    assert set(test) == {"X_test0", "X_test1", "y_test", "length_scale"}
    assert not np.array_equal(test["X_test0"], x0[:30])


def test_generator_cache_is_keyed_atomic_and_reused(cache_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kw = {**TINY, "n_functions": 4, "run_size": 20}
    first = load_dataset("operator-sde", **kw)
    folder = Path(first.meta["data_dir"])
    assert folder.parent == cache_env / "operator_sde"
    assert sorted(p.name for p in folder.iterdir()) == [".generating.lock", "params.json", "test_sde.npz",
                                                        "train_sde.npz"]
    params = json.loads((folder / "params.json").read_text())
    assert params["n_functions"] == 4 and params["mc_samples"] == 1000 and params["seed"] == 0
    assert first.meta["source"] == "generator" and first.x_train.shape == (20, 241)

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(operator_sde, "generate_split", boom)
    second = load_dataset("operator-sde", **kw)
    np.testing.assert_array_equal(first.x_train, second.x_train)
    np.testing.assert_array_equal(first.y_test, second.y_test)
    with pytest.raises(AssertionError, match="cache was not used"):  # other parameters, other key
        load_dataset("operator-sde", **{**kw, "mc_samples": 999})


def test_env_data_dir_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache_env: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"lacks \['train_sde.npz', 'test_sde.npz'\]"):
        load_dataset("operator-sde", data_dir=tmp_path / "nowhere")
    monkeypatch.setenv("CLSS_OPERATOR_SDE_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="CLSS_OPERATOR_SDE_DIR"):
        load_dataset("operator-sde")
    np.savez(tmp_path / "train_sde.npz", X_train0=np.zeros((40, 240)), y_train=np.zeros((40, 1)))
    np.savez(
        tmp_path / "test_sde.npz", X_test0=np.zeros((40, 240)), X_test1=np.zeros((40, 1)), y_test=np.zeros(40)
    )
    with pytest.raises(ValueError, match=r"lacks arrays \['X_train1'\]"):
        load_dataset("operator-sde")
    np.savez(
        tmp_path / "train_sde.npz",
        X_train0=np.zeros((40, 24)),
        X_train1=np.zeros((40, 1)),
        y_train=np.zeros(40),
    )
    with pytest.raises(ValueError, match=r"expected X_train0 \[n, 240\]"):
        load_dataset("operator-sde")
    (tmp_path / "train_sde.npz").write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="cannot read"):
        load_dataset("operator-sde")


def test_run_and_protocol_errors(sde_source: tuple[Path, int, bool]) -> None:
    folder, run_size, _ = sde_source
    with pytest.raises(ValueError, match="run 10 out of range"):
        load_dataset("operator-sde", data_dir=folder, run=10, run_size=run_size)
    with pytest.raises(ValueError, match="holdout' needs a second run slice"):
        load_dataset("operator-sde", data_dir=folder, run_size=10 * run_size)
    with pytest.raises(ValueError, match="val_protocol"):
        load_dataset("operator-sde", data_dir=folder, run_size=run_size, val_protocol="best")
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]"):
        load_dataset("operator-sde", data_dir=folder, run_size=run_size, fraction=1.5)
    with pytest.raises(ValueError, match="unknown options"):
        load_dataset("operator-sde", data_dir=folder, n_funcs=3)
    with pytest.raises(ValueError, match="fixed target"):
        load_dataset("operator-sde", data_dir=folder, target="y")


def test_generator_numbers_are_pinned_and_independent_of_workers() -> None:
    """The draws keep their original order: these values came from the sequential generator. A changed
    draw moves them by about 1e-2; floating-point summation order (numpy/BLAS builds) by up to about 1e-7."""
    a = generate_split(12, seed=0, mc_samples=20000, progress=False, workers=1)
    pinned = [0.923185560286, 0.24104528203, 0.896519260514, 1.235040864988, 0.779572842329, 0.747777968863,
              1.148871060218, 1.081166411175, 1.255556799882, 1.253504976081, 0.80905147063, 1.017873531086]
    np.testing.assert_allclose(a["y_train"][:12, 0], pinned, rtol=1e-6)
    np.testing.assert_allclose(a["length_scale"][:3], [1.346531037179, 0.493098884503, 0.885419423603],
                               rtol=1e-6)
    b = generate_split(12, seed=0, mc_samples=20000, progress=False, workers=3)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    c = generate_split(5, seed=3, split="test", mc_samples=3000, chunk_size=700, progress=False)
    np.testing.assert_allclose(c["y_test"][:3, 0], [1.039595326786, 1.018969020773, 1.255048714465],
                               rtol=1e-6)


def test_generator_progress_lines_without_a_terminal(capfd: pytest.CaptureFixture[str]) -> None:
    generate_split(20, mc_samples=200, progress=True)
    lines = [ln for ln in capfd.readouterr().err.splitlines() if "operator-sde train" in ln]
    assert len(lines) == 10 and lines[-1].startswith("operator-sde train: functions step 20/20")
    generate_split(4, mc_samples=200, progress=False)
    assert "operator-sde" not in capfd.readouterr().err


@pytest.mark.parametrize("kw, match", [
    ({"workers": 0}, "workers must be a positive integer"),
    ({"mc_samples": 0}, "mc_samples and chunk_size must be >= 1"),
    ({"chunk_size": -1}, "mc_samples and chunk_size must be >= 1"),
])
def test_generator_argument_errors(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        generate_split(2, progress=False, **kw)
