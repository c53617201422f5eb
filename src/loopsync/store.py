"""The local state file: loopsync's crash-safe ledger (SQLite via sqlite-utils).

What lives here: the stored connection (secrets included, hence mode 0600), the
merchant's settings, one row per scan, every decision with its reason, every side
effect as an intent written *before* the API call and a result written after it,
the holds loopsync placed, per-order progress, the Loop notes posted, local pre-order
overrides, and the scan cursor.

Every public method turns SQLite failures into :class:`~loopsync.errors.StateFileError`
with one sentence naming the file; nothing here prints. Timestamps are ISO-8601 UTC
strings (``2026-11-26T09:56:24.123456+00:00``), which sort as text.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import json
import os
import re
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from urllib.parse import quote

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from loopsync.errors import ConfigError, LockHeldError, NotFoundError, StateFileError

#: How long a write waits for another process's transaction before giving up.
DEFAULT_BUSY_TIMEOUT = 10.0

ACTION_KINDS = frozenset({"hold", "tag", "note", "release"})
ACTION_STATUSES = frozenset({"intent", "done", "failed", "unknown"})
#: ``interrupted``: stopped by SIGINT or SIGTERM after the call in flight (the cursor stays
#: put, so the next scan finishes the rest); ``crashed``: found still ``running`` by a later scan.
SCAN_OUTCOMES = frozenset({"running", "ok", "pending", "failed", "dry-run", "crashed", "interrupted"})
HOLD_STATUSES = frozenset({"active", "released", "released_manually", "released_externally"})
RELEASED_BY = frozenset({"scan", "manual", "external"})
#: Releases loopsync made itself: the ones that owe the Loop return a release note.
LOOPSYNC_RELEASES = frozenset({"scan", "manual"})
ORDER_KINDS = frozenset({"separate", "native"})
#: States and decisions loopsync writes (documentation, and what ``explain`` will
#: render). The store only checks their shape, so a new decision in the reconciler
#: can never make a scan fail at the moment it is recorded.
ORDER_STATES = frozenset(
    {
        "held",
        "pending",
        "released",
        "manually_released",
        "released_manually",
        "ignored",
        "gone",
        "not_exchange",
        "no_preorder_items",
        "manual_release_respected",
        "disconnected_skip",
        "closed",
    }
)
DECISIONS = frozenset(
    {
        "hold",
        "held",
        "not_exchange",
        "no_preorder_items",
        "already_held",
        "released",
        "released_manually",
        "manual_release_respected",
        "disconnected_skip",
        "closed",
        "pending",
        "failed",
        "skipped",
        "gone",
    }
)
_WORD = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


#: Settings a merchant may change (``None`` means "not set").
SETTING_DEFAULTS: dict[str, str | None] = {
    "exchange_name_prefix": "EXC-",
    "exchange_tag": None,
    "native_exchange_tag": "Loop Exchange",
    "preorder_tag": "pre-order",
    "note_label": "loopsync",
    "metafield_namespace": "preorder",
    "metafield_key": "shipping_window",
    "lookback": "7d",
    "overlap": "10m",
    "release_note": "on",
    "release_tag": "loopsync-release",
}

_MIGRATION_SET = "loopsync"
_SQLITE_HEADER = b"SQLite format 3\x00"

P = ParamSpec("P")
R = TypeVar("R")


def utcnow() -> str:
    return datetime.now(UTC).isoformat()


def _iso(at: datetime | str | None) -> str:
    if at is None:
        return utcnow()
    if isinstance(at, str):
        return at
    if at.tzinfo is None:
        raise ValueError("naive datetime given to the store; pass an aware UTC datetime")
    return at.astimezone(UTC).isoformat()


# --- schema -------------------------------------------------------------------

migrations = Migrations(_MIGRATION_SET)


@migrations(name="m001_initial")
def _m001_initial(db: Database) -> None:
    statements = [
        # One row (id = 1): the shop and its credentials. Secrets are why the file is 0600.
        """CREATE TABLE connection (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            shop TEXT NOT NULL,
            shopify_token TEXT,
            shopify_api_url TEXT,
            loop_api_key TEXT,
            loop_api_url TEXT,
            scopes TEXT NOT NULL DEFAULT '[]',
            connected_at TEXT NOT NULL,
            loop_disconnected_at TEXT,
            updated_at TEXT NOT NULL
        )""",
        "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at TEXT NOT NULL)",
        # Internal bookkeeping that is not a merchant setting (the scan cursor).
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT, updated_at TEXT NOT NULL)",
        """CREATE TABLE scans (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            since TEXT,
            cursor_before TEXT,
            cursor_after TEXT,
            dry_run INTEGER NOT NULL DEFAULT 0,
            outcome TEXT NOT NULL DEFAULT 'running'
                CHECK (outcome IN ('running', 'ok', 'pending', 'failed', 'dry-run', 'crashed')),
            counters TEXT NOT NULL DEFAULT '{}',
            error TEXT
        )""",
        """CREATE TABLE decisions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            scan_id INTEGER REFERENCES scans(id),
            order_id TEXT NOT NULL,
            order_name TEXT,
            decision TEXT NOT NULL,
            reason TEXT NOT NULL,
            at TEXT NOT NULL
        )""",
        "CREATE INDEX decisions_by_order ON decisions(order_id, id)",
        """CREATE TABLE actions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            scan_id INTEGER REFERENCES scans(id),
            order_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            target TEXT NOT NULL,
            key TEXT NOT NULL,
            payload TEXT NOT NULL DEFAULT '{}',
            status TEXT NOT NULL DEFAULT 'intent'
                CHECK (status IN ('intent', 'done', 'failed', 'unknown')),
            result TEXT,
            created_at TEXT NOT NULL,
            finished_at TEXT
        )""",
        "CREATE INDEX actions_by_order ON actions(order_id, id)",
        "CREATE INDEX actions_by_key ON actions(key, id)",
        # Partial index: open intents are what crash recovery reads, and there are few.
        "CREATE INDEX actions_open ON actions(id) WHERE status = 'intent'",
        """CREATE TABLE holds (
            fulfillment_order_id TEXT PRIMARY KEY,
            order_id TEXT NOT NULL,
            order_name TEXT,
            hold_id TEXT,
            handle TEXT NOT NULL,
            window TEXT,
            variant_ids TEXT NOT NULL DEFAULT '[]',
            status TEXT NOT NULL DEFAULT 'active'
                CHECK (status IN ('active', 'released', 'released_manually', 'released_externally')),
            placed_at TEXT NOT NULL,
            released_at TEXT,
            released_by TEXT CHECK (released_by IS NULL OR released_by IN ('scan', 'manual', 'external'))
        )""",
        "CREATE INDEX holds_by_order ON holds(order_id)",
        "CREATE INDEX holds_active ON holds(status) WHERE status = 'active'",
        """CREATE TABLE orders (
            order_id TEXT PRIMARY KEY,
            name TEXT,
            kind TEXT,
            first_seen TEXT NOT NULL,
            last_seen TEXT NOT NULL,
            state TEXT,
            window TEXT,
            return_id TEXT,
            note_posted_at TEXT,
            tagged_at TEXT,
            pending_reason TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            manual_release INTEGER NOT NULL DEFAULT 0,
            manual_release_at TEXT
        )""",
        "CREATE INDEX orders_by_name ON orders(name)",
        "CREATE INDEX orders_by_state ON orders(state)",
        """CREATE TABLE notes (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            return_id TEXT NOT NULL,
            order_id TEXT,
            content TEXT NOT NULL,
            loop_note_id TEXT,
            posted_at TEXT NOT NULL,
            UNIQUE (return_id, content)
        )""",
        "CREATE TABLE overrides (variant_id TEXT PRIMARY KEY, window TEXT NOT NULL, added_at TEXT NOT NULL)",
    ]
    for sql in statements:
        db.execute(sql)


@migrations(name="m002_client_credentials")
def _m002_client_credentials(db: Database) -> None:
    # Dev Dashboard apps authenticate with a client id + secret exchanged for a
    # short-lived token (client-credentials grant); the token is cached with its
    # expiry so cron runs do not mint a new one every minute.
    for sql in [
        "ALTER TABLE connection ADD COLUMN shopify_auth TEXT NOT NULL DEFAULT 'token'",
        "ALTER TABLE connection ADD COLUMN client_id TEXT",
        "ALTER TABLE connection ADD COLUMN client_secret TEXT",
        "ALTER TABLE connection ADD COLUMN access_token TEXT",
        "ALTER TABLE connection ADD COLUMN access_token_expires_at TEXT",
    ]:
        db.execute(sql)


@migrations(name="m003_scan_outcome_interrupted")
def _m003_scan_outcome_interrupted(db: Database) -> None:
    # A scan stopped by SIGINT/SIGTERM is recorded as 'interrupted', which the CHECK on
    # scans.outcome refuses. SQLite cannot alter a CHECK, so the table is rebuilt. It
    # runs inside the migration transaction, where foreign_keys cannot be switched off:
    # deferring them lets decisions and actions point at scan ids that are briefly
    # gone, and they are checked again at COMMIT, when every id is back.
    sequence = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'scans'").fetchone()
    for sql in [
        "PRAGMA defer_foreign_keys = ON",
        "CREATE TEMP TABLE scans_m003 AS SELECT * FROM scans",
        "DROP TABLE scans",
        """CREATE TABLE scans (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            since TEXT,
            cursor_before TEXT,
            cursor_after TEXT,
            dry_run INTEGER NOT NULL DEFAULT 0,
            outcome TEXT NOT NULL DEFAULT 'running'
                CHECK (outcome IN ('running', 'ok', 'pending', 'failed', 'dry-run', 'crashed', 'interrupted')),
            counters TEXT NOT NULL DEFAULT '{}',
            error TEXT
        )""",
        """INSERT INTO scans (id, started_at, finished_at, since, cursor_before, cursor_after, dry_run, outcome,
               counters, error)
           SELECT id, started_at, finished_at, since, cursor_before, cursor_after, dry_run, outcome, counters, error
           FROM scans_m003""",
        "DROP TABLE scans_m003",
    ]:
        db.execute(sql)
    if sequence is not None:
        # AUTOINCREMENT never reuses an id, not even a deleted scan's: keep its counter.
        updated = db.execute("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = 'scans'", [sequence[0]])
        if updated.rowcount == 0:
            db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('scans', ?)", [sequence[0]])


@migrations(name="m004_note_backoff")
def _m004_note_backoff(db: Database) -> None:
    # An exchange whose Loop return does not exist yet waits for its note on a back-off
    # schedule instead of keeping every scan pending; and once loopsync lifts its last
    # hold on an order, a second note ("the hold was released") is owed until posted.
    for sql in [
        "ALTER TABLE orders ADD COLUMN note_attempts INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE orders ADD COLUMN note_first_missed_at TEXT",
        "ALTER TABLE orders ADD COLUMN note_next_retry_at TEXT",
        "ALTER TABLE orders ADD COLUMN note_gave_up_at TEXT",
        "ALTER TABLE orders ADD COLUMN release_note_due_at TEXT",
        "CREATE INDEX orders_note_retry ON orders(note_next_retry_at) WHERE note_next_retry_at IS NOT NULL",
    ]:
        db.execute(sql)


#: The schema version this loopsync writes: the number of migrations it knows.
SCHEMA_VERSION = len(migrations._migrations)
_KNOWN_MIGRATIONS = [m.name for m in migrations._migrations]


# --- rows ---------------------------------------------------------------------


@dataclass(frozen=True)
class Connection:
    shop: str
    shopify_auth: str  # "token" | "client_credentials"
    shopify_token: str | None
    client_id: str | None
    client_secret: str | None
    access_token: str | None  # cached client-credentials token
    access_token_expires_at: str | None
    shopify_api_url: str | None
    loop_api_key: str | None  # None after `disconnect`
    loop_api_url: str | None
    scopes: tuple[str, ...]
    connected_at: str
    loop_disconnected_at: str | None
    updated_at: str

    @property
    def loop_connected(self) -> bool:
        return self.loop_api_key is not None and self.loop_disconnected_at is None

    def __repr__(self) -> str:  # keep secrets out of reprs, logs and tracebacks
        return f"Connection(shop={self.shop!r}, shopify_auth={self.shopify_auth!r}, loop_connected={self.loop_connected})"


@dataclass(frozen=True)
class Scan:
    id: int
    started_at: str
    finished_at: str | None
    since: str | None
    cursor_before: str | None
    cursor_after: str | None
    dry_run: bool
    outcome: str
    counters: dict[str, Any]
    error: str | None


@dataclass(frozen=True)
class Decision:
    id: int
    scan_id: int | None
    order_id: str
    order_name: str | None
    decision: str
    reason: str
    at: str


@dataclass(frozen=True)
class Action:
    id: int
    scan_id: int | None
    order_id: str
    kind: str
    target: str
    key: str
    payload: dict[str, Any]
    status: str
    result: Any
    created_at: str
    finished_at: str | None


@dataclass(frozen=True)
class HoldRow:
    fulfillment_order_id: str
    order_id: str
    order_name: str | None
    hold_id: str | None
    handle: str
    window: str | None
    variant_ids: tuple[str, ...]
    status: str
    placed_at: str
    released_at: str | None
    released_by: str | None


@dataclass(frozen=True)
class OrderRow:
    order_id: str
    name: str | None
    kind: str | None
    first_seen: str
    last_seen: str
    state: str | None
    window: str | None
    return_id: str | None
    note_posted_at: str | None
    tagged_at: str | None
    pending_reason: str | None
    attempts: int
    manual_release: bool
    manual_release_at: str | None
    # Waiting for the Loop return (see detect.note_retry); all empty when not waiting.
    note_attempts: int = 0
    note_first_missed_at: str | None = None
    note_next_retry_at: str | None = None
    note_gave_up_at: str | None = None
    # Set when loopsync lifted its last hold on the order; cleared once the release note is settled.
    release_note_due_at: str | None = None


@dataclass(frozen=True)
class NoteRow:
    id: int
    return_id: str
    order_id: str | None
    content: str
    loop_note_id: str | None
    posted_at: str


@dataclass(frozen=True)
class Override:
    variant_id: str
    window: str
    added_at: str


# --- error translation --------------------------------------------------------


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


#: "Leave this column as it is" for partial updates (``None`` clears a column).
UNSET: Any = _Unset()


def _translate(path: Path, exc: sqlite3.Error, busy_timeout: float) -> StateFileError:
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


def _sql_errors(method: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        store = args[0]
        assert isinstance(store, Store)
        try:
            return method(*args, **kwargs)
        except sqlite3.Error as exc:
            raise _translate(store.path, exc, store.busy_timeout) from None

    return wrapper


# --- the store ----------------------------------------------------------------


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

    # -- opening ---------------------------------------------------------------

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT, read_only: bool = False
    ) -> Store:
        """Open (creating if needed, mode 0600) and migrate the state file at ``path``.

        ``read_only``: for commands that only look (status, the lists). The file must
        exist; the store reads an in-memory copy of it (see ``_snapshot_connection``),
        so nothing is created or written, not even a -wal or -shm file, and a 0400 file
        or a read-only directory works. An older schema is migrated in that copy only.
        """
        path = Path(path).expanduser()
        warnings: list[str] = []
        try:
            if read_only:
                conn = _snapshot_connection(path, _check_existing(path, warnings), busy_timeout)
            else:
                _prepare_file(path, warnings)
                conn = sqlite3.connect(str(path), timeout=busy_timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise _translate(path, exc, busy_timeout) from None
        except OSError as exc:  # the read-only copy: the file went away or became unreadable meanwhile
            raise StateFileError(f"The state file {path} cannot be read ({exc.strerror or exc}).") from None
        try:
            db = Database(conn, execute_plugins=False)
            store = cls(db, path, busy_timeout, warnings, read_only=read_only)
            store._initialise()
        except sqlite3.Error as exc:
            conn.close()
            raise _translate(path, exc, busy_timeout) from None
        except BaseException:
            conn.close()
            raise
        return store

    def _initialise(self) -> None:
        db = self.db
        if not self.read_only:
            self._check_writable()
            db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        # Reading the schema is the first real read: a corrupt file fails here.
        tables = set(db.table_names())
        ours = tables - {Migrations.migrations_table, "sqlite_sequence"}
        applied = [m.name for m in migrations.applied(db)] if Migrations.migrations_table in tables else []
        if ours and not applied:
            raise StateFileError(f"{self.path} is not a loopsync state file (it holds other tables).")
        unknown = [name for name in applied if name not in _KNOWN_MIGRATIONS]
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
        self._check_columns()
        if self.read_only:
            # A write here would only change the copy and be lost: make it fail loudly instead.
            db.execute("PRAGMA query_only = ON")

    def _check_columns(self) -> None:
        """Refuse a file whose tables differ from what the migrations made (edited by hand or by
        another program): rows are read into fixed records, and an unknown column cannot be."""
        for table, expected in _managed_columns().items():
            found = [row[1] for row in self.db.execute(f"PRAGMA table_info([{table}])").fetchall()]
            if not found:
                raise StateFileError(f"{self.path} is not a loopsync state file (its {table} table is missing).")
            extra = [c for c in found if c not in expected]
            if extra:
                raise StateFileError(
                    f"The state file {self.path} looks damaged: {table}.{extra[0]} is not a column loopsync "
                    "manages (was the file changed by hand or by another program?)."
                )
            missing = [c for c in expected if c not in found]
            if missing:
                raise StateFileError(
                    f"The state file {self.path} looks damaged: its {table} table has no {missing[0]} column."
                )

    def _check_writable(self) -> None:
        if not os.access(self.path, os.W_OK) or not os.access(self.path.parent, os.W_OK):
            raise StateFileError(f"The state file {self.path} is read-only; loopsync needs to write to it.")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def permission_warning(self) -> str | None:
        """A sentence when the file is readable by others (it holds API keys), else ``None``."""
        return next((w for w in self.warnings if "chmod 600" in w), None)

    @property
    @_sql_errors
    def schema_version(self) -> int:
        return len(migrations.applied(self.db))

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
            raise _translate(self.path, exc, self.busy_timeout) from None
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
            raise _translate(self.path, exc, self.busy_timeout) from None

    def _one(self, sql: str, params: tuple | list = ()) -> dict[str, Any] | None:
        cursor = self.db.execute(sql, params)
        row = cursor.fetchone()
        if row is None:
            return None
        return dict(zip([c[0] for c in cursor.description], row, strict=True))

    def _all(self, sql: str, params: tuple | list = ()) -> list[dict[str, Any]]:
        cursor = self.db.execute(sql, params)
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    # -- scan lock -----------------------------------------------------------------

    @contextlib.contextmanager
    def scan_lock(
        self, *, wait: bool = False, timeout: float = 300.0, on_wait: Callable[[], None] | None = None
    ) -> Iterator[None]:
        """Hold the single-instance scan lock (``<db>.lock``) for the block.

        An OS file lock (flock): the kernel drops it when the holder exits or is
        killed, so a crashed scan never leaves a stale lock behind.
        """
        with scan_lock(self.path, wait=wait, timeout=timeout, on_wait=on_wait):
            yield

    # -- connection ------------------------------------------------------------------

    @_sql_errors
    def save_connection(
        self,
        *,
        shop: str,
        shopify_auth: str,
        shopify_token: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        shopify_api_url: str | None = None,
        loop_api_key: str | None,
        loop_api_url: str | None = None,
        scopes: list[str] | tuple[str, ...] = (),
        at: datetime | str | None = None,
    ) -> Connection:
        """Store (or rotate) the connection; clears any cached access token and the disconnect mark."""
        if shopify_auth not in ("token", "client_credentials"):
            raise ValueError(f"unknown shopify_auth {shopify_auth!r}")
        if shopify_auth == "token" and not shopify_token:
            raise ValueError("shopify_auth='token' needs shopify_token")
        if shopify_auth == "client_credentials" and not (client_id and client_secret):
            raise ValueError("shopify_auth='client_credentials' needs client_id and client_secret")
        now = _iso(at)
        with self.transaction():
            existing = self._one("SELECT connected_at FROM connection WHERE id = 1")
            self.db.execute("DELETE FROM connection WHERE id = 1")
            self.db.execute(
                """INSERT INTO connection (id, shop, shopify_auth, shopify_token, client_id, client_secret,
                       access_token, access_token_expires_at, shopify_api_url, loop_api_key, loop_api_url,
                       scopes, connected_at, loop_disconnected_at, updated_at)
                   VALUES (1, ?, ?, ?, ?, ?, NULL, NULL, ?, ?, ?, ?, ?, ?, ?)""",
                [
                    shop,
                    shopify_auth,
                    shopify_token if shopify_auth == "token" else None,
                    client_id if shopify_auth == "client_credentials" else None,
                    client_secret if shopify_auth == "client_credentials" else None,
                    shopify_api_url,
                    loop_api_key,
                    loop_api_url,
                    json.dumps(sorted(set(scopes))),
                    existing["connected_at"] if existing else now,
                    None if loop_api_key else now,
                    now,
                ],
            )
        connection = self.connection()
        assert connection is not None
        return connection

    @_sql_errors
    def connection(self) -> Connection | None:
        """The stored connection, or ``None`` before the first ``connect``."""
        row = self._one("SELECT * FROM connection WHERE id = 1")
        if row is None:
            return None
        return Connection(
            shop=row["shop"],
            shopify_auth=row["shopify_auth"],
            shopify_token=row["shopify_token"],
            client_id=row["client_id"],
            client_secret=row["client_secret"],
            access_token=row["access_token"],
            access_token_expires_at=row["access_token_expires_at"],
            shopify_api_url=row["shopify_api_url"],
            loop_api_key=row["loop_api_key"],
            loop_api_url=row["loop_api_url"],
            scopes=tuple(json.loads(row["scopes"] or "[]")),
            connected_at=row["connected_at"],
            loop_disconnected_at=row["loop_disconnected_at"],
            updated_at=row["updated_at"],
        )

    @_sql_errors
    def forget_loop_key(self, *, at: datetime | str | None = None) -> bool:
        """`disconnect`: drop the Loop key and mark the time. False if there was no connection."""
        now = _iso(at)
        with self.transaction():
            cursor = self.db.execute(
                """UPDATE connection SET loop_api_key = NULL,
                       loop_disconnected_at = COALESCE(loop_disconnected_at, ?), updated_at = ?
                   WHERE id = 1""",
                [now, now],
            )
        return cursor.rowcount > 0

    @_sql_errors
    def save_shopify_access_token(self, token: str | None, expires_at: datetime | str | None) -> None:
        """Cache (or, with ``None``, drop) the client-credentials access token and its expiry."""
        if token is not None and expires_at is None:
            raise ValueError("a cached access token needs its expiry")
        with self.transaction():
            cursor = self.db.execute(
                "UPDATE connection SET access_token = ?, access_token_expires_at = ?, updated_at = ? WHERE id = 1",
                [token, None if expires_at is None else _iso(expires_at), utcnow()],
            )
            if cursor.rowcount == 0:
                raise StateFileError(f"The state file {self.path} holds no connection to cache a token for.")

    # -- settings ---------------------------------------------------------------------

    @_sql_errors
    def get_setting(self, key: str) -> str | None:
        """The stored value, else the default (``None`` for unset optional settings)."""
        _check_setting(key)
        row = self._one("SELECT value FROM settings WHERE key = ?", [key])
        return row["value"] if row else SETTING_DEFAULTS[key]

    def setting(self, key: str) -> str | None:
        """Alias of :meth:`get_setting`."""
        return self.get_setting(key)

    @_sql_errors
    def set_setting(self, key: str, value: str | None) -> None:
        """Store a setting; ``None`` removes it so the default applies again."""
        _check_setting(key)
        with self.transaction():
            if value is None:
                self.db.execute("DELETE FROM settings WHERE key = ?", [key])
            else:
                self.db.execute(
                    """INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)
                       ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at""",
                    [key, value, utcnow()],
                )

    @_sql_errors
    def settings(self) -> dict[str, str | None]:
        """Every known setting with its effective value (stored or default)."""
        stored = {r["key"]: r["value"] for r in self._all("SELECT key, value FROM settings")}
        return {key: stored.get(key, default) for key, default in SETTING_DEFAULTS.items()}

    # -- scans and the cursor ----------------------------------------------------------

    @_sql_errors
    def scan_started(
        self, *, since: datetime | str | None, dry_run: bool = False, at: datetime | str | None = None
    ) -> int:
        """Record a scan's start; returns its id. Call with the scan lock held.

        Any scan still marked ``running`` cannot be running (we hold the lock), so
        it is marked ``crashed``.
        """
        now = _iso(at)
        with self.transaction():
            self.db.execute(
                "UPDATE scans SET outcome = 'crashed', finished_at = ? WHERE outcome = 'running'", [now]
            )
            cursor = self.db.execute(
                """INSERT INTO scans (started_at, since, cursor_before, dry_run, outcome)
                   VALUES (?, ?, ?, ?, 'running')""",
                [now, None if since is None else _iso(since), self._cursor(), int(dry_run)],
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    @_sql_errors
    def scan_finished(
        self,
        scan_id: int,
        outcome: str,
        counters: dict[str, Any] | None = None,
        new_cursor: datetime | str | None = None,
        *,
        error: str | None = None,
        at: datetime | str | None = None,
    ) -> None:
        """Close a scan; when ``new_cursor`` is given, advance the cursor in the same transaction.

        The cursor only ever moves forward: an older value is ignored, so an
        overlapping or out-of-order finish cannot make a later scan skip orders.
        """
        if outcome not in SCAN_OUTCOMES - {"running"}:
            raise ValueError(f"unknown scan outcome {outcome!r}")
        now = _iso(at)
        with self.transaction():
            cursor_after = None
            if new_cursor is not None:
                cursor_after = _iso(new_cursor)
                current = self._cursor()
                if current is None or _parse_iso(cursor_after) > _parse_iso(current):
                    self.db.execute(
                        """INSERT INTO meta (key, value, updated_at) VALUES ('cursor', ?, ?)
                           ON CONFLICT(key) DO UPDATE SET value = excluded.value,
                               updated_at = excluded.updated_at""",
                        [cursor_after, now],
                    )
            updated = self.db.execute(
                """UPDATE scans SET finished_at = ?, outcome = ?, counters = ?, cursor_after = ?, error = ?
                   WHERE id = ?""",
                [now, outcome, json.dumps(counters or {}, sort_keys=True), cursor_after, error, scan_id],
            )
            if updated.rowcount == 0:
                raise NotFoundError(f"No scan {scan_id} in {self.path}.")

    def _cursor(self) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = 'cursor'")
        return row["value"] if row else None

    @_sql_errors
    def cursor(self) -> datetime | None:
        """The ``updated_at`` up to which every order has been reconciled, or ``None`` before the first scan."""
        value = self._cursor()
        return None if value is None else _parse_iso(value)

    @_sql_errors
    def last_scan(self, *, include_dry_runs: bool = True) -> Scan | None:
        sql = (
            "SELECT * FROM scans"
            + ("" if include_dry_runs else " WHERE dry_run = 0")
            + " ORDER BY id DESC LIMIT 1"
        )
        row = self._one(sql)
        return None if row is None else _scan(row)

    @_sql_errors
    def scans(self, *, limit: int = 20) -> list[Scan]:
        """Most recent first."""
        return [_scan(r) for r in self._all("SELECT * FROM scans ORDER BY id DESC LIMIT ?", [limit])]

    # -- decisions --------------------------------------------------------------------

    @_sql_errors
    def record_decision(
        self,
        scan_id: int | None,
        order_id: str,
        order_name: str | None,
        decision: str,
        reason: str,
        *,
        at: datetime | str | None = None,
    ) -> int:
        """Append why an order was (or was not) acted on; ``scan_id`` is None outside a scan."""
        if not _WORD.match(decision):
            raise ValueError(f"a decision is a lowercase word such as 'held', not {decision!r}")
        with self.transaction():
            cursor = self.db.execute(
                "INSERT INTO decisions (scan_id, order_id, order_name, decision, reason, at) VALUES (?, ?, ?, ?, ?, ?)",
                [scan_id, order_id, order_name, decision, reason, _iso(at)],
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    @_sql_errors
    def decisions_for(self, order_id: str) -> list[Decision]:
        """Oldest first."""
        rows = self._all("SELECT * FROM decisions WHERE order_id = ? ORDER BY id", [order_id])
        return [Decision(**r) for r in rows]

    @_sql_errors
    def decisions_in_scan(self, scan_id: int) -> list[Decision]:
        rows = self._all("SELECT * FROM decisions WHERE scan_id = ? ORDER BY id", [scan_id])
        return [Decision(**r) for r in rows]

    # -- actions: the intent/result ledger ------------------------------------------------

    @_sql_errors
    def begin_action(
        self,
        kind: str,
        order_id: str,
        target: str,
        key: str,
        payload: dict[str, Any] | None = None,
        *,
        scan_id: int | None = None,
        at: datetime | str | None = None,
    ) -> int:
        """Write (and commit) the intent to perform a side effect. Call BEFORE the API call.

        If the process dies between this and :meth:`finish_action`, the intent
        stays open and :meth:`open_intents` hands it to the next run to verify.
        """
        if kind not in ACTION_KINDS:
            raise ValueError(f"unknown action kind {kind!r}")
        if self.db.conn.in_transaction:
            # The intent must be durable before the side effect; inside an outer
            # transaction it would only be committed later (or rolled back).
            raise RuntimeError("begin_action must not run inside a transaction")
        with self.transaction():
            cursor = self.db.execute(
                """INSERT INTO actions (scan_id, order_id, kind, target, key, payload, status, created_at)
                   VALUES (?, ?, ?, ?, ?, ?, 'intent', ?)""",
                [scan_id, order_id, kind, target, key, json.dumps(payload or {}, sort_keys=True), _iso(at)],
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    @_sql_errors
    def finish_action(
        self, action_id: int, status: str, result: Any = None, *, at: datetime | str | None = None
    ) -> None:
        """Record an action's result: ``done``, ``failed`` or ``unknown`` (outcome could not be learned)."""
        if status not in ACTION_STATUSES - {"intent"}:
            raise ValueError(f"unknown action status {status!r}")
        with self.transaction():
            cursor = self.db.execute(
                "UPDATE actions SET status = ?, result = ?, finished_at = ? WHERE id = ?",
                [status, json.dumps(result, sort_keys=True, default=str), _iso(at), action_id],
            )
            if cursor.rowcount == 0:
                raise NotFoundError(f"No action {action_id} in {self.path}.")

    @_sql_errors
    def open_intents(self, *, order_id: str | None = None) -> list[Action]:
        """Intents with no result (a crash between the API call and its record), oldest first."""
        if order_id is None:
            rows = self._all("SELECT * FROM actions WHERE status = 'intent' ORDER BY id")
        else:
            rows = self._all(
                "SELECT * FROM actions WHERE status = 'intent' AND order_id = ? ORDER BY id", [order_id]
            )
        return [_action(r) for r in rows]

    @_sql_errors
    def action(self, action_id: int) -> Action | None:
        row = self._one("SELECT * FROM actions WHERE id = ?", [action_id])
        return None if row is None else _action(row)

    @_sql_errors
    def actions_for(self, order_id: str) -> list[Action]:
        """Every recorded side effect on an order, oldest first (the future history command)."""
        return [
            _action(r) for r in self._all("SELECT * FROM actions WHERE order_id = ? ORDER BY id", [order_id])
        ]

    @_sql_errors
    def last_action_for_key(self, key: str) -> Action | None:
        row = self._one("SELECT * FROM actions WHERE key = ? ORDER BY id DESC LIMIT 1", [key])
        return None if row is None else _action(row)

    # -- holds ---------------------------------------------------------------------------

    @_sql_errors
    def upsert_hold(
        self,
        fulfillment_order_id: str,
        *,
        order_id: str,
        order_name: str | None,
        hold_id: str | None,
        handle: str,
        window: str | None,
        variant_ids: list[str] | tuple[str, ...],
        status: str = "active",
        placed_at: datetime | str | None = None,
    ) -> HoldRow:
        """Record a hold loopsync placed (or re-learned from Shopify). Re-placing resets the release."""
        if status not in HOLD_STATUSES:
            raise ValueError(f"unknown hold status {status!r}")
        with self.transaction():
            self.db.execute(
                """INSERT INTO holds (fulfillment_order_id, order_id, order_name, hold_id, handle, window,
                       variant_ids, status, placed_at, released_at, released_by)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)
                   ON CONFLICT(fulfillment_order_id) DO UPDATE SET
                       order_id = excluded.order_id, order_name = excluded.order_name,
                       hold_id = excluded.hold_id, handle = excluded.handle, window = excluded.window,
                       variant_ids = excluded.variant_ids, status = excluded.status,
                       placed_at = CASE WHEN holds.status = 'active' AND excluded.status = 'active'
                                        THEN holds.placed_at ELSE excluded.placed_at END,
                       released_at = NULL, released_by = NULL""",
                [
                    fulfillment_order_id,
                    order_id,
                    order_name,
                    hold_id,
                    handle,
                    window,
                    json.dumps(sorted(set(variant_ids))),
                    status,
                    _iso(placed_at),
                ],
            )
        hold = self.hold(fulfillment_order_id)
        assert hold is not None
        return hold

    @_sql_errors
    def hold(self, fulfillment_order_id: str) -> HoldRow | None:
        row = self._one("SELECT * FROM holds WHERE fulfillment_order_id = ?", [fulfillment_order_id])
        return None if row is None else _hold(row)

    @_sql_errors
    def active_holds(self) -> list[HoldRow]:
        return [
            _hold(r)
            for r in self._all("SELECT * FROM holds WHERE status = 'active' ORDER BY placed_at, rowid")
        ]

    @_sql_errors
    def holds_for_order(self, order_id: str) -> list[HoldRow]:
        return [
            _hold(r) for r in self._all("SELECT * FROM holds WHERE order_id = ? ORDER BY rowid", [order_id])
        ]

    @_sql_errors
    def mark_hold_released(
        self, fulfillment_order_id: str, by: str, at: datetime | str | None = None
    ) -> HoldRow:
        """by: ``scan`` (pre-order shipped), ``manual`` (`loopsync release`) or ``external`` (gone at Shopify)."""
        if by not in RELEASED_BY:
            raise ValueError(f"unknown released_by {by!r}")
        status = {"scan": "released", "manual": "released_manually", "external": "released_externally"}[by]
        now = _iso(at)
        with self.transaction():
            before = self._one(
                "SELECT order_id, status FROM holds WHERE fulfillment_order_id = ?", [fulfillment_order_id]
            )
            cursor = self.db.execute(
                "UPDATE holds SET status = ?, released_at = ?, released_by = ? WHERE fulfillment_order_id = ?",
                [status, now, by, fulfillment_order_id],
            )
            if cursor.rowcount == 0:
                raise NotFoundError(f"loopsync has no record of a hold on {fulfillment_order_id}.")
            order_id = before["order_id"] if before else None
            if (
                before is not None
                and before["status"] == "active"
                and by in LOOPSYNC_RELEASES
                and self._one("SELECT 1 FROM holds WHERE order_id = ? AND status = 'active'", [order_id]) is None
            ):
                # Owed in the same transaction as the release it follows, so a crash between
                # the two cannot lose it: the next pass over the order posts it.
                self.db.execute(
                    """INSERT INTO orders (order_id, first_seen, last_seen, release_note_due_at) VALUES (?, ?, ?, ?)
                       ON CONFLICT(order_id) DO UPDATE SET
                           release_note_due_at = COALESCE(orders.release_note_due_at, excluded.release_note_due_at)""",
                    [order_id, now, now, now],
                )
        hold = self.hold(fulfillment_order_id)
        assert hold is not None
        return hold

    # -- orders ----------------------------------------------------------------------------

    @_sql_errors
    def upsert_order(
        self,
        order_id: str,
        *,
        name: str | None = UNSET,
        kind: str | None = UNSET,
        state: str | None = UNSET,
        window: str | None = UNSET,
        return_id: str | None = UNSET,
        note_posted_at: datetime | str | None = UNSET,
        tagged_at: datetime | str | None = UNSET,
        pending_reason: str | None = UNSET,
        count_attempt: bool = False,
        seen_at: datetime | str | None = None,
    ) -> OrderRow:
        """Create or update an order's row. Arguments left out keep their value; ``None`` clears.

        ``count_attempt`` adds one to ``attempts`` (a pending retry); a state other
        than ``pending`` resets the counter and clears ``pending_reason`` unless given.
        """
        if kind is not UNSET and kind is not None and kind not in ORDER_KINDS:
            raise ValueError(f"unknown order kind {kind!r}")
        if state is not UNSET and state is not None and not _WORD.match(state):
            raise ValueError(f"an order state is a lowercase word such as 'held', not {state!r}")
        now = _iso(seen_at)
        fields: dict[str, Any] = {
            "name": name,
            "kind": kind,
            "state": state,
            "window": window,
            "return_id": return_id,
            "note_posted_at": note_posted_at if note_posted_at in (UNSET, None) else _iso(note_posted_at),
            "tagged_at": tagged_at if tagged_at in (UNSET, None) else _iso(tagged_at),
            "pending_reason": pending_reason,
        }
        if state is not UNSET and state != "pending" and pending_reason is UNSET:
            fields["pending_reason"] = None
        given = {k: v for k, v in fields.items() if v is not UNSET}
        with self.transaction():
            self.db.execute(
                "INSERT INTO orders (order_id, first_seen, last_seen) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                [order_id, now, now],
            )
            assignments = ["last_seen = ?"] + [f"{column} = ?" for column in given]
            params: list[Any] = [now, *given.values()]
            if count_attempt:
                assignments.append("attempts = attempts + 1")
            elif state is not UNSET and state != "pending":
                assignments.append("attempts = 0")
            # Column names come from the fixed dict above, never from input.
            self.db.execute(
                f"UPDATE orders SET {', '.join(assignments)} WHERE order_id = ?", [*params, order_id]
            )
        order = self.order(order_id)
        assert order is not None
        return order

    @_sql_errors
    def order(self, order_id: str) -> OrderRow | None:
        row = self._one("SELECT * FROM orders WHERE order_id = ?", [order_id])
        return None if row is None else _order(row)

    @_sql_errors
    def order_by_name(self, name: str) -> OrderRow | None:
        """Look an order up by its name (``EXC-1086-1``; a leading ``#`` is ignored), case-insensitively."""
        wanted = name.strip().lstrip("#")
        row = self._one(
            "SELECT * FROM orders WHERE ltrim(name, '#') = ? COLLATE NOCASE ORDER BY last_seen DESC LIMIT 1",
            [wanted],
        )
        return None if row is None else _order(row)

    @_sql_errors
    def mark_manual_release(
        self, order_id: str, *, name: str | None = None, at: datetime | str | None = None
    ) -> None:
        """`loopsync release`: the merchant released this order; scans must not hold it again."""
        now = _iso(at)
        with self.transaction():
            self.db.execute(
                """INSERT INTO orders (order_id, name, first_seen, last_seen, state, manual_release, manual_release_at)
                   VALUES (?, ?, ?, ?, 'manually_released', 1, ?)
                   ON CONFLICT(order_id) DO UPDATE SET state = 'manually_released', manual_release = 1,
                       manual_release_at = excluded.manual_release_at, pending_reason = NULL,
                       name = COALESCE(excluded.name, orders.name)""",
                [order_id, name, now, now, now],
            )

    @_sql_errors
    def is_manually_released(self, order_id: str) -> bool:
        row = self._one("SELECT manual_release FROM orders WHERE order_id = ?", [order_id])
        return bool(row and row["manual_release"])

    @_sql_errors
    def pending_orders(self) -> list[OrderRow]:
        """Orders a previous scan could not finish: the next scan retries them even if unchanged."""
        return [
            _order(r) for r in self._all("SELECT * FROM orders WHERE state = 'pending' ORDER BY first_seen")
        ]

    @_sql_errors
    def orders_left_unheld(self) -> list[OrderRow]:
        """Pre-order exchanges a scan did not hold because Loop was disconnected, oldest first."""
        return [
            _order(r)
            for r in self._all("SELECT * FROM orders WHERE state = 'disconnected_skip' ORDER BY first_seen, order_id")
        ]

    @_sql_errors
    def held_orders(self) -> list[OrderRow]:
        return [_order(r) for r in self._all("SELECT * FROM orders WHERE state = 'held' ORDER BY first_seen")]

    @_sql_errors
    def record_order_outcome(
        self,
        *,
        order_id: str,
        name: str | None,
        kind: str | None,
        state: str,
        window: str | None,
        pending_reason: str | None,
        at: datetime | str | None = None,
    ) -> OrderRow:
        """What one reconcile pass concluded about an order; a ``pending`` state counts an attempt."""
        return self.upsert_order(
            order_id,
            name=name,
            kind=kind,
            state=state,
            window=window,
            pending_reason=pending_reason if state == "pending" else None,
            count_attempt=state == "pending",
            seen_at=at,
        )

    @_sql_errors
    def return_for_order(self, order_id: str) -> str | None:
        """The Loop return id remembered for an order (found once, reused by later scans)."""
        row = self._one("SELECT return_id FROM orders WHERE order_id = ?", [order_id])
        return row["return_id"] if row else None

    @_sql_errors
    def set_order_return(self, order_id: str, return_id: str | int) -> None:
        self.upsert_order(order_id, return_id=str(return_id))

    @_sql_errors
    def order_ids_needing_attention(self) -> list[str]:
        """Orders every scan must look at even if Shopify does not report them as updated:
        pending ones, ones loopsync holds (their pre-order may have shipped), and ones
        with an intent a crash left open."""
        rows = self._all(
            """SELECT order_id FROM orders WHERE state IN ('pending', 'held')
               UNION SELECT order_id FROM holds WHERE status = 'active'
               UNION SELECT order_id FROM actions WHERE status = 'intent'
               EXCEPT SELECT order_id FROM orders WHERE state = 'gone'
               ORDER BY 1"""
        )
        return [r["order_id"] for r in rows]

    @_sql_errors
    def forget_order(
        self, order_id: str, *, reason: str, scan_id: int | None = None, at: datetime | str | None = None
    ) -> None:
        """The order no longer exists at Shopify: stop looking at it, atomically.

        Its active holds are marked released externally (they went with the order),
        its open intents become ``unknown``, and a ``gone`` decision records why.
        """
        now = _iso(at)
        with self.transaction():
            self.upsert_order(order_id, state="gone", seen_at=now)
            self.db.execute(
                """UPDATE holds SET status = 'released_externally', released_at = ?, released_by = 'external'
                   WHERE order_id = ? AND status = 'active'""",
                [now, order_id],
            )
            self.db.execute(
                "UPDATE actions SET status = 'unknown', result = ?, finished_at = ? WHERE order_id = ? AND status = 'intent'",
                [json.dumps({"reason": reason}), now, order_id],
            )
            self.record_decision(scan_id, order_id, None, "gone", reason, at=now)

    # -- waiting for the Loop return, and the release note ----------------------------------------

    @_sql_errors
    def set_note_wait(
        self,
        order_id: str,
        *,
        attempts: int,
        first_missed_at: datetime | str,
        next_retry_at: datetime | str,
        gave_up_at: datetime | str | None,
    ) -> None:
        """The order's note waits for its Loop return: the next lookup is due at ``next_retry_at``."""
        with self.transaction():
            self.db.execute(
                "INSERT INTO orders (order_id, first_seen, last_seen) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                [order_id, _iso(first_missed_at), _iso(first_missed_at)],
            )
            self.db.execute(
                """UPDATE orders SET note_attempts = ?, note_first_missed_at = ?, note_next_retry_at = ?,
                       note_gave_up_at = ? WHERE order_id = ?""",
                [
                    attempts,
                    _iso(first_missed_at),
                    _iso(next_retry_at),
                    None if gave_up_at is None else _iso(gave_up_at),
                    order_id,
                ],
            )

    @_sql_errors
    def clear_note_wait(self, order_id: str) -> None:
        """The note no longer waits (the return was found, or no note is needed any more)."""
        with self.transaction():
            self.db.execute(
                """UPDATE orders SET note_attempts = 0, note_first_missed_at = NULL, note_next_retry_at = NULL,
                       note_gave_up_at = NULL WHERE order_id = ? AND note_next_retry_at IS NOT NULL""",
                [order_id],
            )

    @_sql_errors
    def note_retries_due(self, at: datetime | str) -> list[str]:
        """Orders whose next Loop return lookup is due at ``at``: a scan reads them in full."""
        rows = self._all(
            """SELECT order_id FROM orders WHERE note_next_retry_at IS NOT NULL AND note_next_retry_at <= ?
                   AND COALESCE(state, '') != 'gone' ORDER BY order_id""",
            [_iso(at)],
        )
        return [r["order_id"] for r in rows]

    @_sql_errors
    def note_waits(self) -> list[OrderRow]:
        """Every order whose note waits for its Loop return, the longest-waiting first."""
        rows = self._all(
            """SELECT * FROM orders WHERE note_next_retry_at IS NOT NULL AND COALESCE(state, '') != 'gone'
               ORDER BY note_first_missed_at, order_id"""
        )
        return [_order(r) for r in rows]

    @_sql_errors
    def release_note_due(self, order_id: str) -> bool:
        """loopsync lifted its last hold on this order and has not settled the release note yet."""
        row = self._one("SELECT release_note_due_at FROM orders WHERE order_id = ?", [order_id])
        return bool(row and row["release_note_due_at"])

    @_sql_errors
    def clear_release_note_due(self, order_id: str) -> None:
        with self.transaction():
            self.db.execute(
                "UPDATE orders SET release_note_due_at = NULL WHERE order_id = ? AND release_note_due_at IS NOT NULL",
                [order_id],
            )

    # -- notes --------------------------------------------------------------------------------

    @_sql_errors
    def record_note(
        self,
        return_id: str | int,
        content: str,
        *,
        order_id: str | None = None,
        loop_note_id: str | int | None = None,
        at: datetime | str | None = None,
    ) -> bool:
        """Remember a note is on a Loop return. False if it was already recorded."""
        with self.transaction():
            cursor = self.db.execute(
                """INSERT INTO notes (return_id, order_id, content, loop_note_id, posted_at) VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT (return_id, content) DO NOTHING""",
                [
                    str(return_id),
                    order_id,
                    content,
                    None if loop_note_id is None else str(loop_note_id),
                    _iso(at),
                ],
            )
        return cursor.rowcount > 0

    @_sql_errors
    def note_recorded(self, return_id: str | int, content: str) -> bool:
        return (
            self._one("SELECT 1 FROM notes WHERE return_id = ? AND content = ?", [str(return_id), content])
            is not None
        )

    @_sql_errors
    def notes_for_return(self, return_id: str | int) -> list[NoteRow]:
        rows = self._all("SELECT * FROM notes WHERE return_id = ? ORDER BY id", [str(return_id)])
        return [NoteRow(**r) for r in rows]

    # -- overrides ----------------------------------------------------------------------------

    @_sql_errors
    def add_override(self, variant_id: str, window: str, *, at: datetime | str | None = None) -> Override:
        """Mark a variant as on pre-order locally (replacing its window if already there)."""
        if not window.strip():
            raise ValueError("an override needs a shipping window")
        with self.transaction():
            self.db.execute(
                """INSERT INTO overrides (variant_id, window, added_at) VALUES (?, ?, ?)
                   ON CONFLICT(variant_id) DO UPDATE SET window = excluded.window""",
                [variant_id, window.strip(), _iso(at)],
            )
        row = self._one("SELECT * FROM overrides WHERE variant_id = ?", [variant_id])
        assert row is not None
        return Override(**row)

    @_sql_errors
    def remove_override(self, variant_id: str) -> None:
        with self.transaction():
            cursor = self.db.execute("DELETE FROM overrides WHERE variant_id = ?", [variant_id])
            if cursor.rowcount == 0:
                raise NotFoundError(f"There is no pre-order override for variant {variant_id}.")

    @_sql_errors
    def overrides(self) -> dict[str, str]:
        """``{variant_id: window}``, the shape ``detect`` takes."""
        return {r["variant_id"]: r["window"] for r in self._all("SELECT variant_id, window FROM overrides")}

    @_sql_errors
    def override_rows(self) -> list[Override]:
        """Every override with the time it was added, by variant id."""
        return [Override(**r) for r in self._all("SELECT * FROM overrides ORDER BY variant_id")]


# --- helpers -------------------------------------------------------------------------


def _check_setting(key: str) -> None:
    if key not in SETTING_DEFAULTS:
        raise ConfigError(f"Unknown setting {key!r} (known: {', '.join(SETTING_DEFAULTS)}).")


def _parse_iso(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _scan(row: dict[str, Any]) -> Scan:
    return Scan(**{**row, "dry_run": bool(row["dry_run"]), "counters": json.loads(row["counters"] or "{}")})


def _action(row: dict[str, Any]) -> Action:
    return Action(
        **{
            **row,
            "payload": json.loads(row["payload"] or "{}"),
            "result": None if row["result"] is None else json.loads(row["result"]),
        }
    )


def _hold(row: dict[str, Any]) -> HoldRow:
    return HoldRow(**{**row, "variant_ids": tuple(json.loads(row["variant_ids"] or "[]"))})


def _order(row: dict[str, Any]) -> OrderRow:
    return OrderRow(**{**row, "manual_release": bool(row["manual_release"])})


# Descriptors used to read state file headers, by (device, inode), never closed: closing any
# descriptor of a file drops every POSIX lock this process holds on it, SQLite's included,
# and another process closing its connection would then think it was the last one and
# delete the WAL index under our open connections (later reads fail with "disk I/O error").
_HEADER_FDS: dict[tuple[int, int], int] = {}


def _file_fd(path: Path, st: os.stat_result) -> int:
    key = (st.st_dev, st.st_ino)
    fd = _HEADER_FDS.get(key)
    if fd is None:
        fd = _HEADER_FDS[key] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    return fd


def _read_header(path: Path, st: os.stat_result) -> bytes:
    return os.pread(_file_fd(path, st), len(_SQLITE_HEADER), 0)


@functools.cache
def _managed_columns() -> dict[str, tuple[str, ...]]:
    """Every table the migrations create, with its columns: read from a scratch database they built,
    so a new migration needs no second list kept in step with it."""
    scratch = Database(memory=True, execute_plugins=False)
    try:
        migrations.apply(scratch)
        skip = {Migrations.migrations_table, "sqlite_sequence"}
        return {t: tuple(c.name for c in scratch[t].columns) for t in scratch.table_names() if t not in skip}
    finally:
        scratch.close()


def _snapshot_connection(path: Path, st: os.stat_result, busy_timeout: float) -> sqlite3.Connection:
    """An in-memory copy of the state file as it is now, for a store that only reads.

    SQLite's own read-only open (``mode=ro``) of a WAL file creates the -wal and -shm
    files when they are missing, leaving them behind (with a 0400 file's mode, which
    later breaks the writer), and fails in a read-only directory; ``immutable=1``
    avoids that but reads with no locks. So: with no -wal file, every committed change
    is in the file itself and its bytes are the state, taken only if the file and the
    -wal's absence did not change while they were read (a checkpoint would have to
    change both). With a -wal (a scan is running, or one was killed), SQLite must read
    it: through ``mode=ro``, which then creates nothing, copied out with the backup API.
    """
    wal = Path(f"{path}-wal")
    memory = sqlite3.connect(":memory:", isolation_level=None)
    try:
        if not wal.exists():
            data = _stable_bytes(path, st)
            if data is not None and not wal.exists():
                if data:
                    image = bytearray(data)
                    if image[18:20] == b"\x02\x02":
                        image[18:20] = b"\x01\x01"  # WAL flag off: an in-memory database has no WAL
                    memory.deserialize(bytes(image))
                return memory
        source = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=busy_timeout)
        try:
            source.backup(memory)
        finally:
            source.close()
        return memory
    except BaseException:
        memory.close()
        raise


def _stable_bytes(path: Path, st: os.stat_result) -> bytes | None:
    """The file's bytes, or None if it changed while they were read."""
    fd = _file_fd(path, st)
    before = os.fstat(fd)
    chunks, offset = [], 0
    while offset < before.st_size:
        chunk = os.pread(fd, min(1 << 20, before.st_size - offset), offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    after = os.fstat(fd)
    same = (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns) and offset == after.st_size
    replaced = path.stat().st_ino != after.st_ino  # renamed over, e.g. a backup restored meanwhile
    return b"".join(chunks) if same and not replaced else None


def _prepare_file(path: Path, warnings: list[str]) -> None:
    """Create the parent directory and, if absent, the file itself with mode 0600.

    sqlite would create the file with the umask's mode (often 0644); creating it
    ourselves first means the API keys it will hold are never world-readable.
    SQLite gives its -wal and -shm files the database file's mode.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise StateFileError(
            f"Cannot create the directory for the state file {path} ({exc.strerror})."
        ) from None
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        pass
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
            raise StateFileError(
                f"The state file {path} cannot be created: its directory is read-only."
            ) from None
        raise StateFileError(f"The state file {path} cannot be created ({exc.strerror}).") from None
    else:
        os.close(fd)
        return
    _check_existing(path, warnings)


def _check_existing(path: Path, warnings: list[str]) -> os.stat_result:
    """What can be told about an existing state file before SQLite opens it; warns if others can read it."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise StateFileError(f"There is no state file at {path}.") from None
    except OSError as exc:
        raise StateFileError(f"The state file {path} cannot be read ({exc.strerror}).") from None
    if not stat.S_ISREG(st.st_mode):
        raise StateFileError(f"{path} is not a loopsync state file (it is not a regular file).")
    if st.st_size and st.st_size < 100:
        raise StateFileError(f"{path} is not a loopsync state file (database disk image is malformed).")
    if st.st_size:
        try:
            header = _read_header(path, st)
        except OSError as exc:
            raise StateFileError(f"The state file {path} cannot be read ({exc.strerror}).") from None
        if header != _SQLITE_HEADER:
            raise StateFileError(f"{path} is not a loopsync state file (file is not a database).")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        warnings.append(
            f"The state file {path} is readable by other users (mode {mode:04o}) and holds API keys; "
            f"run: chmod 600 {path}"
        )
    return st


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
