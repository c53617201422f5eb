"""Per-order progress (state, the Loop return, the note's wait, the release note owed) and the
notes posted on Loop returns."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from loopsync.store.errors import sql_errors
from loopsync.store.part import UNSET, WORD, Part, iso
from loopsync.store.schema import OrderKind, OrderState

_ORDER_KINDS = frozenset(OrderKind)


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


class Orders(Part):
    """One row per order loopsync has looked at."""

    @sql_errors
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
        if kind is not UNSET and kind is not None and kind not in _ORDER_KINDS:
            raise ValueError(f"unknown order kind {kind!r}")
        if state is not UNSET and state is not None and not WORD.match(state):
            raise ValueError(f"an order state is a lowercase word such as 'held', not {state!r}")
        now = iso(seen_at)
        fields: dict[str, Any] = {
            "name": name,
            "kind": kind,
            "state": state,
            "window": window,
            "return_id": return_id,
            "note_posted_at": note_posted_at if note_posted_at in (UNSET, None) else iso(note_posted_at),
            "tagged_at": tagged_at if tagged_at in (UNSET, None) else iso(tagged_at),
            "pending_reason": pending_reason,
        }
        if state is not UNSET and state != OrderState.PENDING and pending_reason is UNSET:
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
            elif state is not UNSET and state != OrderState.PENDING:
                assignments.append("attempts = 0")
            # Column names come from the fixed dict above, never from input.
            self.db.execute(
                f"UPDATE orders SET {', '.join(assignments)} WHERE order_id = ?", [*params, order_id]
            )
        order = self.order(order_id)
        assert order is not None
        return order

    @sql_errors
    def order(self, order_id: str) -> OrderRow | None:
        row = self._one("SELECT * FROM orders WHERE order_id = ?", [order_id])
        return None if row is None else _order(row)

    @sql_errors
    def names(self) -> dict[str, str | None]:
        """Every order's name by id: the ledger's actions carry only the id."""
        return {r["order_id"]: r["name"] for r in self._all("SELECT order_id, name FROM orders")}

    @sql_errors
    def order_by_name(self, name: str) -> OrderRow | None:
        """Look an order up by its name (``EXC-1086-1``; a leading ``#`` is ignored), case-insensitively."""
        wanted = name.strip().lstrip("#")
        row = self._one(
            "SELECT * FROM orders WHERE ltrim(name, '#') = ? COLLATE NOCASE ORDER BY last_seen DESC LIMIT 1",
            [wanted],
        )
        return None if row is None else _order(row)

    @sql_errors
    def mark_manual_release(
        self, order_id: str, *, name: str | None = None, at: datetime | str | None = None
    ) -> None:
        """`loopsync release`: the merchant released this order; scans must not hold it again."""
        now = iso(at)
        with self.transaction():
            self.db.execute(
                """INSERT INTO orders (order_id, name, first_seen, last_seen, state, manual_release, manual_release_at)
                   VALUES (?, ?, ?, ?, ?, 1, ?)
                   ON CONFLICT(order_id) DO UPDATE SET state = excluded.state, manual_release = 1,
                       manual_release_at = excluded.manual_release_at, pending_reason = NULL,
                       name = COALESCE(excluded.name, orders.name)""",
                [order_id, name, now, now, OrderState.RELEASED_MANUALLY.value, now],
            )

    @sql_errors
    def is_manually_released(self, order_id: str) -> bool:
        row = self._one("SELECT manual_release FROM orders WHERE order_id = ?", [order_id])
        return bool(row and row["manual_release"])

    @sql_errors
    def pending_orders(self) -> list[OrderRow]:
        """Orders a previous scan could not finish: the next scan retries them even if unchanged."""
        return [
            _order(r) for r in self._all("SELECT * FROM orders WHERE state = 'pending' ORDER BY first_seen")
        ]

    @sql_errors
    def orders_left_unheld(self) -> list[OrderRow]:
        """Pre-order exchanges a scan did not hold because Loop was disconnected, oldest first."""
        return [
            _order(r)
            for r in self._all("SELECT * FROM orders WHERE state = 'disconnected_skip' ORDER BY first_seen, order_id")
        ]

    @sql_errors
    def held_orders(self) -> list[OrderRow]:
        return [_order(r) for r in self._all("SELECT * FROM orders WHERE state = 'held' ORDER BY first_seen")]

    @sql_errors
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
            pending_reason=pending_reason if state == OrderState.PENDING else None,
            count_attempt=state == OrderState.PENDING,
            seen_at=at,
        )

    @sql_errors
    def return_for_order(self, order_id: str) -> str | None:
        """The Loop return id remembered for an order (found once, reused by later scans)."""
        row = self._one("SELECT return_id FROM orders WHERE order_id = ?", [order_id])
        return row["return_id"] if row else None

    @sql_errors
    def set_order_return(self, order_id: str, return_id: str | int) -> None:
        self.upsert_order(order_id, return_id=str(return_id))

    @sql_errors
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

    @sql_errors
    def forget_order(
        self, order_id: str, *, reason: str, scan_id: int | None = None, at: datetime | str | None = None
    ) -> None:
        """The order no longer exists at Shopify: stop looking at it, atomically.

        Its active holds are marked released externally (they went with the order),
        its open intents become ``unknown``, and a ``gone`` decision records why.
        """
        now = iso(at)
        with self.transaction():
            self.upsert_order(order_id, state=OrderState.GONE.value, seen_at=now)
            self.db.execute(
                """UPDATE holds SET status = 'released_externally', released_at = ?, released_by = 'external'
                   WHERE order_id = ? AND status = 'active'""",
                [now, order_id],
            )
            self.db.execute(
                "UPDATE actions SET status = 'unknown', result = ?, finished_at = ? WHERE order_id = ? AND status = 'intent'",
                [json.dumps({"reason": reason}), now, order_id],
            )
            self._store.ledger.record_decision(scan_id, order_id, None, OrderState.GONE.value, reason, at=now)

    # -- waiting for the Loop return, and the release note ----------------------------------------

    @sql_errors
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
                [order_id, iso(first_missed_at), iso(first_missed_at)],
            )
            self.db.execute(
                """UPDATE orders SET note_attempts = ?, note_first_missed_at = ?, note_next_retry_at = ?,
                       note_gave_up_at = ? WHERE order_id = ?""",
                [
                    attempts,
                    iso(first_missed_at),
                    iso(next_retry_at),
                    None if gave_up_at is None else iso(gave_up_at),
                    order_id,
                ],
            )

    @sql_errors
    def clear_note_wait(self, order_id: str) -> None:
        """The note no longer waits (the return was found, or no note is needed any more)."""
        with self.transaction():
            self.db.execute(
                """UPDATE orders SET note_attempts = 0, note_first_missed_at = NULL, note_next_retry_at = NULL,
                       note_gave_up_at = NULL WHERE order_id = ? AND note_next_retry_at IS NOT NULL""",
                [order_id],
            )

    @sql_errors
    def note_retries_due(self, at: datetime | str) -> list[str]:
        """Orders whose next Loop return lookup is due at ``at``: a scan reads them in full."""
        rows = self._all(
            """SELECT order_id FROM orders WHERE note_next_retry_at IS NOT NULL AND note_next_retry_at <= ?
                   AND COALESCE(state, '') != 'gone' ORDER BY order_id""",
            [iso(at)],
        )
        return [r["order_id"] for r in rows]

    @sql_errors
    def note_waits(self) -> list[OrderRow]:
        """Every order whose note waits for its Loop return, the longest-waiting first."""
        rows = self._all(
            """SELECT * FROM orders WHERE note_next_retry_at IS NOT NULL AND COALESCE(state, '') != 'gone'
               ORDER BY note_first_missed_at, order_id"""
        )
        return [_order(r) for r in rows]

    @sql_errors
    def release_note_due(self, order_id: str) -> bool:
        """loopsync lifted its last hold on this order and has not settled the release note yet."""
        row = self._one("SELECT release_note_due_at FROM orders WHERE order_id = ?", [order_id])
        return bool(row and row["release_note_due_at"])

    @sql_errors
    def clear_release_note_due(self, order_id: str) -> None:
        with self.transaction():
            self.db.execute(
                "UPDATE orders SET release_note_due_at = NULL WHERE order_id = ? AND release_note_due_at IS NOT NULL",
                [order_id],
            )


class Notes(Part):
    """The notes loopsync posted on Loop returns, so none is posted twice."""

    @sql_errors
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
                    iso(at),
                ],
            )
        return cursor.rowcount > 0

    @sql_errors
    def note_recorded(self, return_id: str | int, content: str) -> bool:
        return (
            self._one("SELECT 1 FROM notes WHERE return_id = ? AND content = ?", [str(return_id), content])
            is not None
        )


def _order(row: dict[str, Any]) -> OrderRow:
    return OrderRow(**{**row, "manual_release": bool(row["manual_release"])})
