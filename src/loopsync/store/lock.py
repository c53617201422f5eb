"""The locks on a state file: the single-instance scan lock (``<db>.lock``, flock) and the
per-order locks (``<db>.orders.lock``, POSIX record locks; see :func:`order_lock`)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
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


# -- the per-order lock ------------------------------------------------------------------
#
# `loopsync serve` and a cron `scan` may run at once on one state file (so may serve's own
# worker and its periodic scan, in two threads). They must never act on one order at the same
# time, yet neither may hold the other up for longer than one order's reconcile. So each order
# has a lock of its own: one byte of ``<db>.orders.lock``, at an offset taken from the order's
# numeric id, locked with a POSIX record lock (fcntl.lockf). The kernel drops a process's
# record locks when it exits or is killed, so a SIGKILL never leaves an order locked. Two
# orders whose offsets collide only wait for each other, which is harmless.
#
# POSIX record locks belong to a process, not a thread: a second thread of the same process
# would be granted the same byte at once, and closing *any* descriptor of the file drops every
# lock the process has on it. Hence a threading lock per byte inside the process, and one
# descriptor per file per process, shared and closed only when no lock on it is held.

#: Offsets stay below 2**62: off_t is 64-bit signed, and the whole-range lock starts at 0.
_OFFSET_RANGE = 1 << 62


def order_offset(order_id: str) -> int:
    """The byte of ``<db>.orders.lock`` that stands for ``order_id`` (a gid or a number)."""
    tail = str(order_id).rsplit("/", 1)[-1]
    if tail.isdigit():
        return int(tail) % _OFFSET_RANGE
    import hashlib

    return int.from_bytes(hashlib.sha256(str(order_id).encode()).digest()[:7], "big")


class _LockFile:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.users = 0
        self.threads: dict[int, threading.Lock] = {}


_FILES: dict[Path, _LockFile] = {}
_FILES_MUTEX = threading.Lock()


def _orders_lock_path(db_path: str | os.PathLike[str]) -> Path:
    db_path = Path(db_path).expanduser()
    return db_path.with_name(db_path.name + ".orders.lock")


@contextlib.contextmanager
def _lock_file(db_path: str | os.PathLike[str]) -> Iterator[_LockFile]:
    path = _orders_lock_path(db_path)
    with _FILES_MUTEX:
        entry = _FILES.get(path)
        if entry is None:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                raise StateFileError(f"Cannot create the lock file {path} ({exc.strerror}).") from None
            entry = _FILES[path] = _LockFile(fd)
        entry.users += 1
    try:
        yield entry
    finally:
        with _FILES_MUTEX:
            entry.users -= 1
            if entry.users == 0:
                # No lock of this process is on the file any more: closing cannot drop one.
                del _FILES[path]
                os.close(entry.fd)


def _acquire_record(fd: int, start: int, length: int, deadline: float, on_wait, what: str) -> bool:
    """Take the record lock, polling until ``deadline``; True when it had to wait."""
    waited = False
    delay = 0.005
    while True:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, length, start)
            return waited
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EAGAIN):
                raise
        if time.monotonic() >= deadline:
            raise LockHeldError(what)
        if not waited and on_wait is not None:
            on_wait()
        waited = True
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 0.1)


@contextlib.contextmanager
def order_lock(
    db_path: str | os.PathLike[str], order_id: str, *, timeout: float = 300.0
) -> Iterator[bool]:
    """Hold the lock on one order for the block; yields True when another holder made it wait
    (what that holder did is then news: re-read the order before deciding anything)."""
    offset = order_offset(order_id)
    deadline = time.monotonic() + timeout
    what = f"Another loopsync process kept order {order_id} locked on {db_path} for {timeout:g} s."
    with _lock_file(db_path) as entry:
        with _FILES_MUTEX:
            thread_lock = entry.threads.setdefault(offset, threading.Lock())
        waited = not thread_lock.acquire(blocking=False)
        if waited and not thread_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise LockHeldError(what)
        try:
            waited = _acquire_record(entry.fd, offset, 1, deadline, None, what) or waited
            try:
                yield waited
            finally:
                fcntl.lockf(entry.fd, fcntl.LOCK_UN, 1, offset)
        finally:
            thread_lock.release()


@contextlib.contextmanager
def every_order_lock(
    db_path: str | os.PathLike[str], *, timeout: float = 300.0, on_wait: Callable[[], None] | None = None
) -> Iterator[None]:
    """Wait until no process has any order in hand, and keep it so for the block (`disconnect`).

    The whole file from byte 0 (length 0: to the end of any file). Only for a process that
    holds no order lock itself: unlocking the range would drop its own.
    """
    what = f"A loopsync process kept an order locked on {db_path} for {timeout:g} s."
    with _lock_file(db_path) as entry:
        _acquire_record(entry.fd, 0, 0, time.monotonic() + timeout, on_wait, what)
        try:
            yield
        finally:
            fcntl.lockf(entry.fd, fcntl.LOCK_UN, 0, 0)
