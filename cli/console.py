"""Shared console and error handling for the commands."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console

console = Console()
F = TypeVar("F", bound=Callable[..., Any])


def fail_cleanly(func: F) -> F:
    """Report bad input (missing files, malformed matrices, invalid options) as a one-line error
    instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (FileNotFoundError, ValueError, TypeError) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper  # type: ignore[return-value]
