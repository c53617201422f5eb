"""The ledger: one row per scan, the scan cursor, every decision with its reason, and every
side effect as an intent written *before* the API call and a result written after it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from loopsync.errors import NotFoundError
from loopsync.store.errors import sql_errors
from loopsync.store.part import WORD, Part, iso, parse_iso
from loopsync.store.schema import ActionKind, ActionStatus, ScanOutcome

_FINISHED_OUTCOMES = frozenset(ScanOutcome) - {ScanOutcome.RUNNING}
_ACTION_KINDS = frozenset(ActionKind)
_RESULT_STATUSES = frozenset(ActionStatus) - {ActionStatus.INTENT}


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


class Ledger(Part):
    """Scans, the cursor, decisions and actions."""

    # -- scans and the cursor ----------------------------------------------------------

    @sql_errors
    def scan_started(
        self, *, since: datetime | str | None, dry_run: bool = False, at: datetime | str | None = None
    ) -> int:
        """Record a scan's start; returns its id. Call with the scan lock held.

        Any scan still marked ``running`` cannot be running (we hold the lock), so
        it is marked ``crashed``.
        """
        now = iso(at)
        with self.transaction():
            self.db.execute(
                "UPDATE scans SET outcome = 'crashed', finished_at = ? WHERE outcome = 'running'", [now]
            )
            cursor = self.db.execute(
                """INSERT INTO scans (started_at, since, cursor_before, dry_run, outcome)
                   VALUES (?, ?, ?, ?, 'running')""",
                [now, None if since is None else iso(since), self._cursor(), int(dry_run)],
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    @sql_errors
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
        if outcome not in _FINISHED_OUTCOMES:
            raise ValueError(f"unknown scan outcome {outcome!r}")
        now = iso(at)
        with self.transaction():
            cursor_after = None
            if new_cursor is not None:
                cursor_after = iso(new_cursor)
                current = self._cursor()
                if current is None or parse_iso(cursor_after) > parse_iso(current):
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

    @sql_errors
    def cursor(self) -> datetime | None:
        """The ``updated_at`` up to which every order has been reconciled, or ``None`` before the first scan."""
        value = self._cursor()
        return None if value is None else parse_iso(value)

    @sql_errors
    def last_scan(self, *, include_dry_runs: bool = True) -> Scan | None:
        sql = (
            "SELECT * FROM scans"
            + ("" if include_dry_runs else " WHERE dry_run = 0")
            + " ORDER BY id DESC LIMIT 1"
        )
        row = self._one(sql)
        return None if row is None else _scan(row)

    # -- decisions --------------------------------------------------------------------

    @sql_errors
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
        if not WORD.match(decision):
            raise ValueError(f"a decision is a lowercase word such as 'held', not {decision!r}")
        with self.transaction():
            cursor = self.db.execute(
                "INSERT INTO decisions (scan_id, order_id, order_name, decision, reason, at) VALUES (?, ?, ?, ?, ?, ?)",
                [scan_id, order_id, order_name, decision, reason, iso(at)],
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    # -- actions: the intent/result ledger ------------------------------------------------

    @sql_errors
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
        if kind not in _ACTION_KINDS:
            raise ValueError(f"unknown action kind {kind!r}")
        if self.db.conn.in_transaction:
            # The intent must be durable before the side effect; inside an outer
            # transaction it would only be committed later (or rolled back).
            raise RuntimeError("begin_action must not run inside a transaction")
        with self.transaction():
            cursor = self.db.execute(
                """INSERT INTO actions (scan_id, order_id, kind, target, key, payload, status, created_at)
                   VALUES (?, ?, ?, ?, ?, ?, 'intent', ?)""",
                [scan_id, order_id, kind, target, key, json.dumps(payload or {}, sort_keys=True), iso(at)],
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    @sql_errors
    def finish_action(
        self, action_id: int, status: str, result: Any = None, *, at: datetime | str | None = None
    ) -> None:
        """Record an action's result: ``done``, ``failed`` or ``unknown`` (outcome could not be learned)."""
        if status not in _RESULT_STATUSES:
            raise ValueError(f"unknown action status {status!r}")
        with self.transaction():
            cursor = self.db.execute(
                "UPDATE actions SET status = ?, result = ?, finished_at = ? WHERE id = ?",
                [status, json.dumps(result, sort_keys=True, default=str), iso(at), action_id],
            )
            if cursor.rowcount == 0:
                raise NotFoundError(f"No action {action_id} in {self.path}.")

    @sql_errors
    def open_intents(self, *, order_id: str | None = None) -> list[Action]:
        """Intents with no result (a crash between the API call and its record), oldest first."""
        if order_id is None:
            rows = self._all("SELECT * FROM actions WHERE status = 'intent' ORDER BY id")
        else:
            rows = self._all(
                "SELECT * FROM actions WHERE status = 'intent' AND order_id = ? ORDER BY id", [order_id]
            )
        return [_action(r) for r in rows]

    # -- reading back (`history`, `explain`) --------------------------------------------

    @sql_errors
    def actions(
        self, *, order_id: str | None = None, since: datetime | str | None = None, limit: int | None = None
    ) -> list[Action]:
        """Every side effect recorded, newest first; ``since`` compares with when it was begun."""
        return [_action(r) for r in self._newest("actions", "created_at", order_id, since, limit)]

    @sql_errors
    def decisions(
        self, *, order_id: str | None = None, since: datetime | str | None = None, limit: int | None = None
    ) -> list[Decision]:
        """Every decision recorded, newest first."""
        return [Decision(**r) for r in self._newest("decisions", "at", order_id, since, limit)]

    def _newest(self, table: str, at: str, order_id: str | None, since: datetime | str | None,
                limit: int | None) -> list[dict]:
        where, params = _filters(order_id, since, at)
        sql = f"SELECT * FROM {table}{where} ORDER BY id DESC" + (" LIMIT ?" if limit else "")
        return self._all(sql, params + ([limit] if limit else []))

    @sql_errors
    def scans(self, *, limit: int = 10) -> list[Scan]:
        return [_scan(r) for r in self._all("SELECT * FROM scans ORDER BY id DESC LIMIT ?", [limit])]

    @sql_errors
    def last_action_for_key(self, key: str) -> Action | None:
        row = self._one("SELECT * FROM actions WHERE key = ? ORDER BY id DESC LIMIT 1", [key])
        return None if row is None else _action(row)


def _filters(order_id: str | None, since: datetime | str | None, column: str) -> tuple[str, list[Any]]:
    clauses, params = [], []
    if order_id is not None:
        clauses.append("order_id = ?")
        params.append(order_id)
    if since is not None:
        clauses.append(f"{column} >= ?")
        params.append(iso(since))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


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
