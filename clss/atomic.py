"""Atomic file writes: a temporary sibling, flushed and fsynced, renamed over the target; and an exclusive
lock between processes.

Used for checkpoints, run-directory files and dataset caches, so an interrupted process never leaves a
half-written file behind, and parallel jobs do not compute the same cache twice.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "exclusive_lock", "fsync_dir"]


@contextlib.contextmanager
def exclusive_lock(path: str | Path) -> Iterator[None]:
    """Hold an advisory lock on ``path`` (created if missing) for the ``with`` block: other processes that
    ask for the same lock wait until it is released (also when the holder dies: the system releases it).

    POSIX ``flock``; where it does not exist (Windows) the block runs unlocked, which stays correct for
    atomic writers and only lets two processes do the same work.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(p, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Write ``path`` through ``write(fh)`` on a temporary sibling, then rename it over ``path``.

    Raises
    ------
    OSError
        When the file system refuses (disk full, permissions...): the message names ``path`` and says
        that its previous content is unchanged; the temporary sibling is removed.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # os.open with mode 0o666 gives the file the usual umask permissions (mkstemp would force 0600).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.errno is not None:
            raise OSError(exc.errno, f"could not write {p}: {exc.strerror or exc}; the previous file (if "
                                     f"any) is unchanged") from None
        raise
    fsync_dir(p.parent)
    return p


def fsync_dir(directory: str | Path) -> None:
    """``fsync`` a directory, making renames inside it durable (a no-op where directories cannot be
    opened, e.g. on Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Replace ``path`` with ``data`` atomically.

    Parameters
    ----------
    path : str or Path
        Destination; missing parent folders are created.
    data : bytes
        The new content.

    Returns
    -------
    Path
        ``path``. On any error the previous file (if any) is untouched and no temporary file remains.
    """
    return atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | Path, text: str, *, encoding: str = "utf-8") -> Path:
    """Replace ``path`` with ``text`` atomically (see :func:`atomic_write_bytes`).

    Parameters
    ----------
    path : str or Path
        Destination; missing parent folders are created.
    text : str
        The new content, written without newline translation.
    encoding : str, default "utf-8"
        Text encoding.

    Returns
    -------
    Path
        ``path``.
    """
    return atomic_write_bytes(path, text.encode(encoding))
