"""SQLite failures turned into one sentence naming the state file (:class:`StateFileError`)."""

from __future__ import annotations

import functools
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, Protocol, TypeVar

from loopsync.errors import StateFileError

P = ParamSpec("P")
R = TypeVar("R")


class _OnFile(Protocol):
    path: Path
    busy_timeout: float


def translate(path: Path, exc: sqlite3.Error, busy_timeout: float) -> StateFileError:
    text = str(exc).lower()
    if "file is not a database" in text:
        return StateFileError(f"{path} is not a loopsync state file (file is not a database).")
    if "not a database" in text or "malformed" in text or "file is encrypted" in text:
        return StateFileError(f"{path} is not a loopsync state file (database disk image is malformed).")
    if "readonly" in text or "read-only" in text:
        return StateFileError(f"The state file {path} is read-only; loopsync needs to write to it.")
    if "locked" in text or "busy" in text:
        return StateFileError(
            f"The state file {path} is locked by another process (waited {busy_timeout:g} s); try again."
        )
    if "disk i/o" in text and path.is_file() and os.access(path, os.R_OK):
        # A readable regular file that SQLite cannot read back is damaged (seen with
        # a zeroed page 1 of a WAL-mode file); blaming permissions would mislead.
        return StateFileError(
            f"The state file {path} cannot be read: it looks damaged (SQLite reports a disk I/O error)."
        )
    if "unable to open" in text or "disk i/o" in text:
        return StateFileError(f"The state file {path} cannot be opened (check the path and its permissions).")
    if "no such table" in text or "no such column" in text:
        return StateFileError(f"{path} is not a loopsync state file (its tables are missing).")
    return StateFileError(f"The state file {path} could not be used: {exc}.")


def sql_errors(method: Callable[P, R]) -> Callable[P, R]:
    """For methods of the store and its parts (anything with ``path`` and ``busy_timeout``)."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        owner: _OnFile = args[0]  # type: ignore[assignment]
        try:
            return method(*args, **kwargs)
        except sqlite3.Error as exc:
            raise translate(owner.path, exc, owner.busy_timeout) from None

    return wrapper
