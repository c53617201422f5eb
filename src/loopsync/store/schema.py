"""The state file's schema: append-only migrations, and the names of the states it stores.

Migrations are a flat list of small functions applied in order (sqlite-utils records them
in ``_sqlite_migrations``). Never edit or reorder a released one: existing state files
have run it. A change is a new function at the end.

Each StrEnum here is the one spelling of a state. Columns with a fixed set of values
carry a CHECK clause; a new migration writes it with :meth:`_States.check`, so the
enum and the clause cannot drift (the released migrations spell theirs out, and a
test checks that they agree with the enums).
"""

from __future__ import annotations

from enum import StrEnum

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

MIGRATION_SET = "loopsync"


class _States(StrEnum):
    @classmethod
    def check(cls, column: str) -> str:
        """``CHECK (column IN ('a', 'b'))`` listing every member, in definition order."""
        values = ", ".join(f"'{member.value}'" for member in cls)
        return f"CHECK ({column} IN ({values}))"


class ScanOutcome(_States):
    RUNNING = "running"
    OK = "ok"
    PENDING = "pending"
    FAILED = "failed"
    DRY_RUN = "dry-run"
    #: Found still ``running`` by a later scan.
    CRASHED = "crashed"
    #: Stopped by SIGINT or SIGTERM after the call in flight (the cursor stays put, so the next
    #: scan finishes the rest).
    INTERRUPTED = "interrupted"


class ActionKind(_States):
    HOLD = "hold"
    TAG = "tag"
    NOTE = "note"
    RELEASE = "release"


class ActionStatus(_States):
    INTENT = "intent"
    DONE = "done"
    FAILED = "failed"
    #: The outcome could not be learned.
    UNKNOWN = "unknown"


class HoldStatus(_States):
    ACTIVE = "active"
    RELEASED = "released"
    RELEASED_MANUALLY = "released_manually"
    RELEASED_EXTERNALLY = "released_externally"
    #: Its fulfillment order closed or was cancelled while held (the hold went with it); nothing was sent.
    CLOSED = "closed"


class ReleasedBy(_States):
    SCAN = "scan"
    MANUAL = "manual"
    EXTERNAL = "external"


#: Releases loopsync made itself: the ones that owe the Loop return a release note.
LOOPSYNC_RELEASES = frozenset({ReleasedBy.SCAN, ReleasedBy.MANUAL})
#: The hold status each kind of release leaves.
RELEASE_STATUS = {
    ReleasedBy.SCAN: HoldStatus.RELEASED,
    ReleasedBy.MANUAL: HoldStatus.RELEASED_MANUALLY,
    ReleasedBy.EXTERNAL: HoldStatus.RELEASED_EXTERNALLY,
}


class OrderKind(_States):
    SEPARATE = "separate"
    NATIVE = "native"


class OrderState(_States):
    """The order states the store itself writes or selects on. orders.state has no CHECK: the
    reconciler may record a state of its own (any lowercase word), and a new one must never make
    a scan fail at the moment it is recorded."""

    HELD = "held"
    PENDING = "pending"
    GONE = "gone"
    #: `loopsync release`; the same word as the decision it records and the hold status it leaves.
    RELEASED_MANUALLY = "released_manually"
    DISCONNECTED_SKIP = "disconnected_skip"
    #: The exchange's pre-order item has nothing left to ship: no hold, tag or note (loopsync.guard).
    ALREADY_SHIPPED = "already_shipped"


class InboxState(_States):
    """Where a webhook delivery is in the inbox (loopsync.store.inbox)."""

    PENDING = "pending"
    DONE = "done"
    #: Verified and kept, but names nothing loopsync acts on (a topic it does not reconcile).
    IGNORED = "ignored"
    #: The worker could not finish it (an API error); retried on the next start, and the scan covers it.
    FAILED = "failed"


class HoldLossVerdict(_States):
    """What the hold guard did about a loopsync hold released outside loopsync."""

    REHOLD = "rehold"
    #: Another app kept releasing it (over rehold_limit): left off until support settles it.
    GIVE_UP = "give_up"


migrations = Migrations(MIGRATION_SET)


#: m001 as first released. SQLite keeps each CREATE statement's text in the file, so these strings
#: (indentation included) stay exactly as they were: new files get the same schema text as old ones.
_M001_STATEMENTS = [
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


@migrations(name="m001_initial")
def _m001_initial(db: Database) -> None:
    for sql in _M001_STATEMENTS:
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
    db.execute("PRAGMA defer_foreign_keys = ON")
    _rebuild(db, "scans", """CREATE TABLE scans (
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
        )""", "id, started_at, finished_at, since, cursor_before, cursor_after, dry_run, outcome, counters, error")


def _rebuild(db: Database, table: str, create: str, columns: str) -> None:
    """Recreate ``table`` from ``create`` with its rows (SQLite cannot alter a CHECK clause).

    The listed columns are copied by name, and an AUTOINCREMENT counter is kept:
    SQLite never reuses an id, not even a deleted row's.
    """
    sequence = db.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", [table]).fetchone()
    for sql in [
        f"CREATE TEMP TABLE {table}_old AS SELECT * FROM {table}",
        f"DROP TABLE {table}",
        create,
        f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {table}_old",
        f"DROP TABLE {table}_old",
    ]:
        db.execute(sql)
    if sequence is not None:
        updated = db.execute("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = ?", [sequence[0], table])
        if updated.rowcount == 0:
            db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", [table, sequence[0]])


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



@migrations(name="m005_one_name_for_released_manually")
def _m005_one_name_for_released_manually(db: Database) -> None:
    # An order released by `loopsync release` was stored as 'manually_released' while its
    # decision and its holds said 'released_manually': one word for one state from now on.
    db.execute(
        "UPDATE orders SET state = ? WHERE state = 'manually_released'", [OrderState.RELEASED_MANUALLY.value]
    )


@migrations(name="m006_hold_guard")
def _m006_hold_guard(db: Database) -> None:
    # The hold guard (loopsync.guard): every outside release of a loopsync hold is counted,
    # so a fight with another app has a limit; a fight loopsync gave up stays given up until
    # support settles it. A held fulfillment order that closes gets its own hold status,
    # which the CHECK on holds.status refuses: SQLite cannot alter a CHECK, so the table is
    # rebuilt (nothing references it).
    _rebuild(db, "holds", f"""CREATE TABLE holds (
            fulfillment_order_id TEXT PRIMARY KEY,
            order_id TEXT NOT NULL,
            order_name TEXT,
            hold_id TEXT,
            handle TEXT NOT NULL,
            window TEXT,
            variant_ids TEXT NOT NULL DEFAULT '[]',
            status TEXT NOT NULL DEFAULT 'active'
                {HoldStatus.check("status")},
            placed_at TEXT NOT NULL,
            released_at TEXT,
            released_by TEXT CHECK (released_by IS NULL OR released_by IN ('scan', 'manual', 'external'))
        )""", "fulfillment_order_id, order_id, order_name, hold_id, handle, window, "
             "variant_ids, status, placed_at, released_at, released_by")
    for sql in [
        "CREATE INDEX holds_by_order ON holds(order_id)",
        "CREATE INDEX holds_active ON holds(status) WHERE status = 'active'",
        # One row per hold that vanished: the hold id makes a second look at the same loss
        # (a scan killed before it re-held) count once.
        f"""CREATE TABLE hold_losses (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            fulfillment_order_id TEXT NOT NULL,
            order_id TEXT NOT NULL,
            order_name TEXT,
            lost_hold_id TEXT NOT NULL,
            verdict TEXT NOT NULL {HoldLossVerdict.check("verdict")},
            lost_at TEXT NOT NULL,
            UNIQUE (fulfillment_order_id, lost_hold_id)
        )""",
        "CREATE INDEX hold_losses_by_fo ON hold_losses(fulfillment_order_id, lost_at)",
        """CREATE TABLE hold_fights (
            order_id TEXT PRIMARY KEY,
            fulfillment_order_id TEXT NOT NULL,
            gave_up_at TEXT NOT NULL
        )""",
    ]:
        db.execute(sql)


@migrations(name="m007_webhooks")
def _m007_webhooks(db: Database) -> None:
    # `loopsync serve`: the webhook secret is stored like the other secrets; during a rotation the
    # previous one keeps verifying until previous_webhook_secret_until. Every verified delivery is
    # written to the inbox before the 2xx, unique on Shopify's webhook id, so a retry of the same
    # delivery is recognised and a crash after the acknowledgement loses nothing.
    for sql in [
        "ALTER TABLE connection ADD COLUMN webhook_secret TEXT",
        "ALTER TABLE connection ADD COLUMN previous_webhook_secret TEXT",
        "ALTER TABLE connection ADD COLUMN previous_webhook_secret_until TEXT",
        f"""CREATE TABLE inbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            webhook_id TEXT NOT NULL UNIQUE,
            topic TEXT NOT NULL,
            shop TEXT NOT NULL,
            triggered_at TEXT,
            event_id TEXT,
            received_at TEXT NOT NULL,
            body TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending' {InboxState.check("state")},
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            processed_at TEXT
        )""",
        "CREATE INDEX inbox_pending ON inbox(id) WHERE state = 'pending'",
    ]:
        db.execute(sql)


@migrations(name="m008_variant_facts")
def _m008_variant_facts(db: Database) -> None:
    # What the last full read of a variant said, so that an idle scan checks only its selling
    # plan group ids (a few points) and reads it in full again only when they changed or the
    # facts are old. A cache: losing or deleting a row only costs one full read.
    db.execute(
        """CREATE TABLE variant_facts (
            variant_id TEXT PRIMARY KEY,
            group_ids TEXT NOT NULL,
            exists_ INTEGER NOT NULL,
            preorder_plan_ids TEXT NOT NULL,
            read_at TEXT NOT NULL
        )"""
    )


@migrations(name="m009_loop_webhooks")
def _m009_loop_webhooks(db: Database) -> None:
    # `serve`'s optional /webhooks/loop: Loop signs its deliveries with the one secret its
    # Developer Tools page shows. Stored like the other secrets; `disconnect` drops it with the key.
    db.execute("ALTER TABLE connection ADD COLUMN loop_webhook_secret TEXT")


#: The schema version this loopsync writes: the number of migrations it knows.
SCHEMA_VERSION = len(migrations._migrations)
KNOWN_MIGRATIONS = tuple(m.name for m in migrations._migrations)
