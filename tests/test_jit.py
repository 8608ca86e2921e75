"""Tests for :mod:`clss._jit`: caching on by default, the opt-out, the "no locator" fallback, and
``NUMBA_DISABLE_JIT``. The environment-dependent cases run numba for real in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from clss._jit import cache_enabled, jit

TINY_MODULE = textwrap.dedent(
    """
    from clss._jit import jit


    @jit
    def add(x, y):
        return x + y


    @jit(nogil=True)
    def mul(x, y):
        return x * y


    def plain(x):
        return x
    """
)

# Imports the tiny module (directory in argv[1]), calls its kernels and reports what happened.
PROBE = textwrap.dedent(
    """
    import json, sys, warnings
    sys.path.insert(0, sys.argv[1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import tinymod
        out = {"add": tinymod.add(2, 3), "mul": tinymod.mul(2.0, 4.0)}
    out["warnings"] = [str(w.message) for w in caught if w.category is RuntimeWarning]
    out["compiled"] = hasattr(tinymod.add, "py_func")
    if out["compiled"]:
        out["cache_hits"] = sum(tinymod.add.stats.cache_hits.values())
        import numba
        try:
            numba.njit(cache=True)(tinymod.plain)
            out["raw_numba_error"] = None
        except RuntimeError as exc:
            out["raw_numba_error"] = str(exc)
    print(json.dumps(out))
    """
)


def _env(**overrides: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_CACHE_DIR", "CLSS_NUMBA_CACHE", "NUMBA_DISABLE_JIT")}
    for key, value in overrides.items():
        if value is not None:
            env[key] = value
    return env


def _run(code: str, *args: str, env: dict[str, str], cwd: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _cache_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.suffix in (".nbi", ".nbc")]


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "tinymod.py").write_text(TINY_MODULE)
    return src


@pytest.mark.parametrize(("value", "expected"),
                         [(None, True), ("1", True), ("yes", True), ("0", False), ("False", False),
                          (" off ", False), ("NO", False)])
def test_cache_enabled_reads_env(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("CLSS_NUMBA_CACHE", raising=False)
    else:
        monkeypatch.setenv("CLSS_NUMBA_CACHE", value)
    assert cache_enabled() is expected


def test_jit_bare_and_with_options():
    def square(x):
        return x * x

    def cube(x):
        return x * x * x

    fast_square = jit(square)
    fast_cube = jit(cache=False, nogil=True)(cube)
    assert fast_square(3.0) == 9.0 and fast_cube(2) == 8
    if os.environ.get("NUMBA_DISABLE_JIT", "0") == "0":
        assert fast_square.py_func is square and fast_cube.py_func is cube
    np.testing.assert_array_equal(fast_square(np.arange(3.0)), [0.0, 1.0, 4.0])


def test_default_caches_to_disk_and_second_process_hits(tiny: Path, tmp_path: Path):
    cache = tmp_path / "cache"
    env = _env(NUMBA_CACHE_DIR=str(cache))
    first = _run(PROBE, str(tiny), env=env, cwd=tmp_path)
    assert first["add"] == 5 and first["mul"] == 8.0 and first["warnings"] == []
    assert first["compiled"] and first["cache_hits"] == 0
    assert _cache_files(cache)
    second = _run(PROBE, str(tiny), env=env, cwd=tmp_path)
    assert second["cache_hits"] == 1


def test_opt_out_writes_no_cache(tiny: Path, tmp_path: Path):
    cache = tmp_path / "cache"
    result = _run(PROBE, str(tiny), env=_env(NUMBA_CACHE_DIR=str(cache), CLSS_NUMBA_CACHE="0"),
                  cwd=tmp_path)
    assert result["add"] == 5 and result["compiled"] and result["warnings"] == []
    assert not _cache_files(tmp_path)


def test_falls_back_when_no_cache_location_is_writable(tiny: Path, tmp_path: Path):
    # A regular file where numba wants directories makes every locator fail, even for root (for
    # whom chmod-based read-only directories are still writable): the module's __pycache__,
    # NUMBA_CACHE_DIR, $HOME/.cache and $XDG_CACHE_HOME all resolve to paths under a file.
    (tiny / "__pycache__").write_text("not a directory")
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    env = _env(NUMBA_CACHE_DIR=str(blocker / "numba"), HOME=str(blocker / "home"),
               XDG_CACHE_HOME=str(blocker / "cache"))
    result = _run(PROBE, str(tiny), env=env, cwd=tmp_path)
    # The situation is real: plain numba refuses to decorate with cache=True ...
    assert "no locator available" in (result["raw_numba_error"] or "")
    # ... while our decorator compiles without a cache, warning once for both kernels.
    assert result["add"] == 5 and result["mul"] == 8.0 and result["compiled"]
    assert len(result["warnings"]) == 1 and "no writable cache" in result["warnings"][0]
    assert not _cache_files(tmp_path)


def test_disable_jit_runs_plain_python(tiny: Path, tmp_path: Path):
    result = _run(PROBE, str(tiny), env=_env(NUMBA_DISABLE_JIT="1"), cwd=tmp_path)
    assert result["add"] == 5 and not result["compiled"] and result["warnings"] == []

    code = textwrap.dedent(
        """
        import json, sys, types
        import numpy as np
        from clss.seriation import _stable_subset_kernels as kernels
        from clss.seriation.stable_subset import select_stable_subset
        rng = np.random.default_rng(0)
        x = rng.uniform(size=(12, 12))
        p = (x + x.T) / 2
        print(json.dumps({
            "plain": isinstance(kernels.dp_select, types.FunctionType),
            "dp": select_stable_subset(p, 5).tolist(),
            "exact": select_stable_subset(p, 5, method="exact", backend="python").tolist(),
        }))
        """
    )
    out = _run(code, env=_env(NUMBA_DISABLE_JIT="1"), cwd=tmp_path)
    from clss.seriation.stable_subset import select_stable_subset

    rng = np.random.default_rng(0)
    x = rng.uniform(size=(12, 12))
    p = (x + x.T) / 2
    # Compiled kernels == their py_func is established in test_stable_subset.py; comparing with the
    # in-process Python backend here avoids a compile.
    assert out["plain"]
    assert out["dp"] == select_stable_subset(p, 5, backend="python").tolist()
    assert out["exact"] == select_stable_subset(p, 5, method="exact", backend="python").tolist()


def test_importing_clss_does_not_import_numba(tmp_path: Path):
    code = ("import json, sys, clss, clss._jit, clss.seriation.stable_subset\n"
            "print(json.dumps({'numba': 'numba' in sys.modules}))")
    assert _run(code, env=_env(), cwd=tmp_path) == {"numba": False}

