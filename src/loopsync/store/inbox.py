"""The webhook inbox: every verified Shopify delivery, written before it is acknowledged.

One row per ``X-Shopify-Webhook-Id`` (a retry of a delivery reuses its id, so the
UNIQUE constraint is the de-duplication). Fields: ``topic``, ``shop``,
``triggered_at`` and ``event_id`` as the headers said; ``received_at`` by this
machine's clock; ``body`` the raw JSON text (never logged or printed); ``state`` an
:class:`~loopsync.store.schema.InboxState`; ``attempts`` how many times the worker
took it; ``last_error`` the last failure's one sentence; ``processed_at`` when it left
``pending``.

A row is ``pending`` until the worker has reconciled the order it names. A crash
between the reconcile and marking it done leaves it pending, and the next start
reconciles the order again: harmless, because reconcile is idempotent.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from loopsync.store.errors import sql_errors
from loopsync.store.part import Part, utcnow
from loopsync.store.schema import InboxState

#: How often :meth:`Inbox.add_many` asks for the write lock while another connection has it.
LOCK_POLL = 0.001


@dataclass(frozen=True)
class NewDelivery:
    """A verified delivery as `serve` received it, before it has a row."""

    webhook_id: str
    topic: str
    shop: str
    body: str
    triggered_at: str | None = None
    event_id: str | None = None
    state: InboxState = InboxState.PENDING


@dataclass(frozen=True)
class Delivery:
    id: int
    webhook_id: str
    topic: str
    shop: str
    triggered_at: str | None
    event_id: str | None
    received_at: str
    body: str
    state: str
    attempts: int
    last_error: str | None
    processed_at: str | None

    def __repr__(self) -> str:  # the body stays out of logs and tracebacks
        return f"Delivery(id={self.id}, topic={self.topic!r}, webhook_id={self.webhook_id!r}, state={self.state!r})"


class Inbox(Part):
    """The deliveries ``loopsync serve`` accepted, and how far the worker got with each."""

    @sql_errors
    def add_many(self, deliveries: list[NewDelivery]) -> list[bool]:
        """Store deliveries in one transaction, committed before this returns; for each, False when its
        webhook id was already here (or earlier in the list).

        The write lock is asked for every LOCK_POLL instead of through SQLite's busy wait, whose
        sleeps grow to 100 ms: the worker's transactions are short but many, and a writer that sleeps
        that long between tries misses every gap between them (measured: a p99 wait of 235 ms on
        ``BEGIN IMMEDIATE`` in a 500-delivery burst). It still gives up after ``busy_timeout``.
        """
        conn = self.db.conn
        deadline = time.monotonic() + self.busy_timeout
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc).lower() or time.monotonic() > deadline:
                        raise
                    time.sleep(LOCK_POLL)
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        try:
            now = utcnow()
            added = [
                conn.execute(
                    """INSERT INTO inbox (webhook_id, topic, shop, triggered_at, event_id, received_at, body, state,
                           processed_at)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(webhook_id) DO NOTHING""",
                    [d.webhook_id, d.topic, d.shop, d.triggered_at, d.event_id, now, d.body, d.state.value,
                     None if d.state == InboxState.PENDING else now],
                ).rowcount > 0
                for d in deliveries
            ]
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return added

    @sql_errors
    def pending_after(self, after_id: int, limit: int = 100) -> list[Delivery]:
        """Pending deliveries newer than ``after_id``, oldest first: what the worker has not taken yet
        (ids only grow: AUTOINCREMENT never hands out a deleted row's id again)."""
        rows = self._all(
            "SELECT * FROM inbox WHERE state = ? AND id > ? ORDER BY id LIMIT ?",
            [InboxState.PENDING.value, after_id, limit],
        )
        return [Delivery(**r) for r in rows]

    @sql_errors
    def started(self, ids: list[int]) -> None:
        """Count an attempt before the work: a delivery that crashes the worker every time shows it."""
        with self.transaction():
            self.db.conn.executemany("UPDATE inbox SET attempts = attempts + 1 WHERE id = ?", [[i] for i in ids])

    @sql_errors
    def finish(self, ids: list[int], state: InboxState, error: str | None = None) -> None:
        with self.transaction():
            self.db.conn.executemany(
                "UPDATE inbox SET state = ?, last_error = ?, processed_at = ? WHERE id = ?",
                [[state.value, error, utcnow(), i] for i in ids],
            )

    @sql_errors
    def retry_later(self, id_: int, error: str) -> None:
        """The worker failed on it this time: it stays pending, with the reason."""
        with self.transaction():
            self.db.execute("UPDATE inbox SET last_error = ? WHERE id = ?", [error, id_])

    @sql_errors
    def depth(self) -> int:
        """How many deliveries wait for the worker."""
        row = self._one("SELECT COUNT(*) AS n FROM inbox WHERE state = ?", [InboxState.PENDING.value])
        return int(row["n"]) if row else 0

    @sql_errors
    def prune(self, before: str) -> int:
        """Delete the deliveries done or ignored before ``before`` (an ISO time); how many went.

        Failed ones stay: each is a delivery the worker gave up on, for a person to look at.
        """
        with self.transaction():
            cursor = self.db.execute(
                "DELETE FROM inbox WHERE state IN (?, ?) AND processed_at < ?",
                [InboxState.DONE.value, InboxState.IGNORED.value, before],
            )
        return cursor.rowcount

    @sql_errors
    def last(self) -> Delivery | None:
        row = self._one("SELECT * FROM inbox ORDER BY id DESC LIMIT 1")
        return Delivery(**row) if row else None
