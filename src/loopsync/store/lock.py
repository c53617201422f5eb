"""The single-instance scan lock on a state file (``<db>.lock``, flock)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from loopsync.errors import LockHeldError, StateFileError


@contextlib.contextmanager
def scan_lock(
    db_path: str | os.PathLike[str],
    *,
    wait: bool = False,
    timeout: float = 300.0,
    on_wait: Callable[[], None] | None = None,
) -> Iterator[None]:
    """Single-instance lock for scans on one state file (``<db>.lock``, flock).

    Raises :class:`LockHeldError` at once (``wait=False``) or after ``timeout``
    seconds (``wait=True``) when another process holds it. ``on_wait`` is called
    once, when waiting begins, so a command can say why it is not returning.
    """
    db_path = Path(db_path).expanduser()
    lock_path = db_path.with_name(db_path.name + ".lock")
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StateFileError(f"Cannot create the lock file {lock_path} ({exc.strerror}).") from None
    try:
        deadline = time.monotonic() + (timeout if wait else 0.0)
        delay = 0.02
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockHeldError(f"Another loopsync scan is running on {db_path}.") from None
                if on_wait is not None:
                    on_wait()
                    on_wait = None
                time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 2, 0.25)
        try:
            # For humans looking at the file; the lock itself is the flock.
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
