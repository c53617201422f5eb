"""The local state file: loopsync's crash-safe ledger (SQLite via sqlite-utils).

:class:`Store` opens, migrates, transacts and closes the file; each kind of record is a part
of it, handed out as an attribute:

- ``store.config``: the connection (secrets included, hence mode 0600), the merchant's
  settings and the local pre-order overrides (:mod:`loopsync.store.config`);
- ``store.ledger``: scans, the scan cursor, decisions, and every side effect as an intent
  written *before* the API call and a result written after it (:mod:`loopsync.store.ledger`);
- ``store.holds``: the holds loopsync placed (:mod:`loopsync.store.holds`);
- ``store.orders`` and ``store.notes``: per-order progress and the Loop notes posted
  (:mod:`loopsync.store.orders`);
- ``store.inbox``: the webhook deliveries `loopsync serve` accepted (:mod:`loopsync.store.inbox`);
- ``store.variants``: what the last full read of each variant said, the idle scan's cache
  (:mod:`loopsync.store.variants`).

Every public method turns SQLite failures into :class:`~loopsync.errors.StateFileError`
with one sentence naming the file; nothing here prints.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from loopsync.errors import StateFileError
from loopsync.store import lock
from loopsync.store.config import Config
from loopsync.store.errors import translate
from loopsync.store.files import (
    check_columns,
    check_existing,
    check_writable,
    prepare_file,
    snapshot_connection,
)
from loopsync.store.holds import Holds
from loopsync.store.inbox import Inbox
from loopsync.store.ledger import Ledger
from loopsync.store.orders import Notes, Orders
from loopsync.store.schema import KNOWN_MIGRATIONS, SCHEMA_VERSION, migrations
from loopsync.store.variants import Variants

#: How long a write waits for another process's transaction before giving up.
DEFAULT_BUSY_TIMEOUT = 10.0


class Store:
    """An open state file. Create with :meth:`Store.open`; close with :meth:`close` or ``with``."""

    def __init__(
        self, db: Database, path: Path, busy_timeout: float, warnings: list[str], *, read_only: bool = False
    ) -> None:
        self.db = db
        self.path = path
        self.busy_timeout = busy_timeout
        self.warnings = warnings
        self.read_only = read_only
        self.config = Config(self)
        self.ledger = Ledger(self)
        self.holds = Holds(self)
        self.orders = Orders(self)
        self.notes = Notes(self)
        self.inbox = Inbox(self)
        self.variants = Variants(self)

    # -- opening ---------------------------------------------------------------

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT, read_only: bool = False
    ) -> Store:
        """Open (creating if needed, mode 0600) and migrate the state file at ``path``.

        ``read_only``: for commands that only look (status, the lists). The file must
        exist; the store reads an in-memory copy of it (see ``files.snapshot_connection``),
        so nothing is created or written, not even a -wal or -shm file, and a 0400 file
        or a read-only directory works. An older schema is migrated in that copy only.
        """
        path = Path(path).expanduser()
        warnings: list[str] = []
        try:
            if read_only:
                conn = snapshot_connection(path, check_existing(path, warnings), busy_timeout)
            else:
                prepare_file(path, warnings)
                conn = sqlite3.connect(str(path), timeout=busy_timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise translate(path, exc, busy_timeout) from None
        except OSError as exc:  # the read-only copy: the file went away or became unreadable meanwhile
            raise StateFileError(f"The state file {path} cannot be read ({exc.strerror or exc}).") from None
        try:
            db = Database(conn, execute_plugins=False)
            store = cls(db, path, busy_timeout, warnings, read_only=read_only)
            store._initialise()
        except sqlite3.Error as exc:
            conn.close()
            raise translate(path, exc, busy_timeout) from None
        except BaseException:
            conn.close()
            raise
        return store

    def _initialise(self) -> None:
        db = self.db
        if not self.read_only:
            check_writable(self.path)
            db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        # Reading the schema is the first real read: a corrupt file fails here.
        tables = set(db.table_names())
        ours = tables - {Migrations.migrations_table, "sqlite_sequence"}
        applied = [m.name for m in migrations.applied(db)] if Migrations.migrations_table in tables else []
        if ours and not applied:
            raise StateFileError(f"{self.path} is not a loopsync state file (it holds other tables).")
        unknown = [name for name in applied if name not in KNOWN_MIGRATIONS]
        if unknown:
            raise StateFileError(
                f"The state file {self.path} was written by a newer loopsync (schema version {len(applied)}, "
                f"this loopsync knows up to {SCHEMA_VERSION}); upgrade loopsync to use it."
            )
        if not self.read_only:
            # WAL lets `status` read while a scan writes; readers never block the writer.
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                # GUESS: only happens on filesystems without shared memory; rollback journal still works.
                self.warnings.append(f"The state file {self.path} cannot use WAL mode (journal mode {mode}).")
            # FULL: an intent must reach the disk before the side effect it announces,
            # even across a power cut; loopsync writes a few rows per order, so the fsyncs are cheap.
            db.execute("PRAGMA synchronous = FULL")
            db.execute("PRAGMA foreign_keys = ON")
        if migrations.pending(db):
            # BEGIN IMMEDIATE serialises concurrent first opens: one process
            # migrates, the others wait, then find nothing pending. (Read-only:
            # the in-memory copy is migrated, so an older file reads as a current one.)
            with self.transaction():
                migrations.apply(db)
        check_columns(db, self.path)
        if self.read_only:
            # A write here would only change the copy and be lost: make it fail loudly instead.
            db.execute("PRAGMA query_only = ON")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions ------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Store]:
        """Group writes atomically. Nested blocks become savepoints.

        The outer block starts with ``BEGIN IMMEDIATE``: taking the write lock up
        front means a concurrent writer waits on busy_timeout instead of failing
        with SQLITE_BUSY when a read transaction tries to upgrade.
        """
        conn = self.db.conn
        if conn.in_transaction:
            with self.db.atomic():
                yield self
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise translate(self.path, exc, self.busy_timeout) from None
        try:
            yield self
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise translate(self.path, exc, self.busy_timeout) from None

    # -- scan lock -----------------------------------------------------------------

    @contextlib.contextmanager
    def scan_lock(
        self, *, wait: bool = False, timeout: float = 300.0, on_wait: Callable[[], None] | None = None
    ) -> Iterator[None]:
        """Hold the single-instance scan lock (``<db>.lock``) for the block.

        An OS file lock (flock): the kernel drops it when the holder exits or is
        killed, so a crashed scan never leaves a stale lock behind.
        """
        with lock.scan_lock(self.path, wait=wait, timeout=timeout, on_wait=on_wait):
            yield

    def order_lock(self, order_id: str, *, timeout: float = 300.0):
        """Hold one order's lock (see :func:`loopsync.store.lock.order_lock`); yields whether it waited."""
        return lock.order_lock(self.path, order_id, timeout=timeout)

    def every_order_lock(self, *, timeout: float = 300.0, on_wait: Callable[[], None] | None = None):
        """Wait until no process has an order in hand (see :func:`loopsync.store.lock.every_order_lock`)."""
        return lock.every_order_lock(self.path, timeout=timeout, on_wait=on_wait)
