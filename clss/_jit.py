"""Fail-safe ``numba.njit`` for every numba kernel of the package.

Kernel modules decorate their functions with :func:`jit` rather than ``numba.njit`` so that caching
behaves the same everywhere (ecosystem survey, sections 6.2 and 7.4):

* ``cache=True`` by default: a new process then pays ~0.3-0.5 s of numba start-up instead of a
  full compile (seconds) per kernel.
* ``CLSS_NUMBA_CACHE=0`` (or ``false``/``no``/``off``) turns caching off, e.g. for read-only
  installs or to rule out a stale cache. ``NUMBA_CACHE_DIR`` is left to numba and the user.
* When numba finds no writable cache location (``__pycache__`` next to the source, ``$HOME``'s
  cache and ``NUMBA_CACHE_DIR`` all unwritable) it raises ``RuntimeError: cannot cache function
  ...: no locator available`` at decoration time, i.e. on import of the kernel module. :func:`jit`
  catches exactly that error, warns once per process and compiles without a cache instead.
* numba is imported when the first decorated function is defined, not when ``clss`` is imported.
  Keep kernels in private ``_*_kernels`` modules that public code imports inside its functions.
  ``NUMBA_DISABLE_JIT=1`` is honoured by numba itself: the "decorated" function is then the plain
  Python function.

The decorated object is an ordinary numba dispatcher, so kernels can call one another.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["cache_enabled", "jit"]

F = TypeVar("F", bound=Callable[..., Any])

_NO_LOCATOR = "no locator available"
_OFF = frozenset({"0", "false", "no", "off"})
_warned_no_locator = False


def cache_enabled() -> bool:
    """Whether kernels defined from now on ask numba for an on-disk cache (``CLSS_NUMBA_CACHE``).

    Returns
    -------
    bool
        ``False`` when ``CLSS_NUMBA_CACHE`` is ``0``, ``false``, ``no`` or ``off`` (any case),
        else ``True``.
    """
    return os.environ.get("CLSS_NUMBA_CACHE", "1").strip().lower() not in _OFF


def _warn_no_locator(func: Callable[..., Any]) -> None:
    global _warned_no_locator
    if _warned_no_locator:
        return
    _warned_no_locator = True
    warnings.warn(
        f"numba found no writable cache directory for {func.__module__}.{func.__qualname__}; clss "
        "kernels are compiled without an on-disk cache in this process (set NUMBA_CACHE_DIR to a "
        "writable directory, or CLSS_NUMBA_CACHE=0 to silence this)",
        RuntimeWarning,
        stacklevel=3,
    )


def jit(func: F | None = None, /, **options: Any) -> Any:
    """``numba.njit`` with ``cache=True`` by default and a fallback to ``cache=False``.

    Usable bare (``@jit``) or with numba options (``@jit(nogil=True)``). An explicit ``cache=False``
    always wins; ``cache=True`` (the default) is overridden by ``CLSS_NUMBA_CACHE=0``.

    Parameters
    ----------
    func : callable, optional
        The function to compile; omitted when options are given.
    **options
        Passed on to ``numba.njit`` (``cache``, ``nogil``, ``fastmath``, ...). ``parallel=True`` is
        discouraged on the 2-core machines we target (survey section 7.2).

    Returns
    -------
    numba.core.registry.CPUDispatcher or callable
        The numba dispatcher (compiled on the first call per signature), the decorator itself
        when ``func`` is omitted, or ``func`` unchanged under ``NUMBA_DISABLE_JIT=1``.

    Raises
    ------
    RuntimeError
        Any numba error other than the "no locator available" caching error.
    """
    if func is None:
        return lambda f: jit(f, **options)

    import numba  # deferred: numba + llvmlite cost ~0.3 s, unneeded until a kernel is defined

    cache = bool(options.pop("cache", True)) and cache_enabled()
    try:
        return numba.njit(cache=cache, **options)(func)
    except RuntimeError as exc:
        if not cache or _NO_LOCATOR not in str(exc):
            raise
    _warn_no_locator(func)
    return numba.njit(cache=False, **options)(func)
