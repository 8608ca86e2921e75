"""Shared console and error handling for the commands.

Exit codes: 0 success; 2 bad input or a problem the user can fix (a one-line ``Error: ...``, as click
prints its own usage errors); 1 an internal error (a bug: one line and how to get the traceback).
``clss --debug ...`` or ``CLSS_DEBUG=1`` lets every exception through with its full traceback.
KeyboardInterrupt is never caught here: click turns it into ``Aborted!``. Warnings print as one
``warning: ...`` line each on stderr (Python's own report with ``--debug``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import click
import yaml
from rich.console import Console

console = Console()
F = TypeVar("F", bound=Callable[..., Any])

#: Exit code of user errors (bad input, files that are missing, unreadable or in the way).
USER_ERROR = 2
#: Exit code of internal errors (bugs).
INTERNAL_ERROR = 1
DEBUG_HINT = "rerun with --debug (or CLSS_DEBUG=1) for the traceback"


class UserError(click.ClickException):
    """A problem with the input, reported as ``Error: message`` with exit code 2."""

    exit_code = USER_ERROR


class InternalError(click.ClickException):
    """An unexpected exception, reported in one line with exit code 1 and the way to see its traceback."""

    exit_code = INTERNAL_ERROR


def debug_enabled() -> bool:
    """Whether ``--debug`` was given to ``clss`` or ``CLSS_DEBUG`` is set to anything but ``0``."""
    if os.environ.get("CLSS_DEBUG", "").strip() not in ("", "0"):
        return True
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.find_root().params.get("debug"))


def _user_error_types() -> tuple[type[BaseException], ...]:
    types: tuple[type[BaseException], ...] = (OSError, ValueError, TypeError, KeyError, yaml.YAMLError)
    trainer = sys.modules.get("clss.engine.trainer")  # loaded whenever a run can have diverged
    if trainer is not None:
        types += (trainer.TrainingDiverged,)
    return types


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line; OS errors name their path, key errors their key."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        text = f"{exc.strerror}: {exc.filename}"
        if exc.filename2 is not None:
            text += f" -> {exc.filename2}"
    elif isinstance(exc, KeyError) and len(exc.args) == 1 and not (
            isinstance(exc.args[0], str) and " " in exc.args[0]):
        text = f"missing key {exc.args[0]!r}"
    elif isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def _format_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                    line: str | None = None) -> str:
    return f"warning: {' '.join(str(message).split())}\n"


@contextlib.contextmanager
def _one_line_warnings(enabled: bool) -> Iterator[None]:
    """Warnings print as one ``warning: ...`` line (on stderr, by Python's printer), not as Python's
    ``file:line`` report. Only the text is changed, so code that records warnings still sees them."""
    previous = warnings.formatwarning
    if enabled:
        warnings.formatwarning = _format_warning
    try:
        yield
    finally:
        warnings.formatwarning = previous


def fail_cleanly(func: F) -> F:
    """Report every user-facing error as one line with exit code 2, and anything else (a bug) as one
    line with exit code 1 and :data:`DEBUG_HINT`; with debugging on, exceptions pass through."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with _one_line_warnings(not debug_enabled()):
                return func(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            if debug_enabled():
                raise
            if isinstance(exc, _user_error_types()):
                raise UserError(one_line(exc)) from None
            raise InternalError(f"internal error ({type(exc).__name__}): {one_line(exc)}; "
                                f"{DEBUG_HINT}") from None

    return wrapper  # type: ignore[return-value]
