"""The holds loopsync placed on fulfillment orders, their release, and the hold guard's count of
holds released outside loopsync (see :mod:`loopsync.guard`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from loopsync.errors import NotFoundError
from loopsync.store.errors import sql_errors
from loopsync.store.part import Part, iso
from loopsync.store.schema import LOOPSYNC_RELEASES, RELEASE_STATUS, HoldLossVerdict, HoldStatus, ReleasedBy

_HOLD_STATUSES = frozenset(HoldStatus)
_RELEASED_BY = frozenset(ReleasedBy)


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


class Holds(Part):
    """One row per fulfillment order loopsync held."""

    @sql_errors
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
        if status not in _HOLD_STATUSES:
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
                    iso(placed_at),
                ],
            )
        hold = self.hold(fulfillment_order_id)
        assert hold is not None
        return hold

    @sql_errors
    def hold(self, fulfillment_order_id: str) -> HoldRow | None:
        row = self._one("SELECT * FROM holds WHERE fulfillment_order_id = ?", [fulfillment_order_id])
        return None if row is None else _hold(row)

    @sql_errors
    def active_holds(self) -> list[HoldRow]:
        return [
            _hold(r)
            for r in self._all("SELECT * FROM holds WHERE status = 'active' ORDER BY placed_at, rowid")
        ]

    @sql_errors
    def all_holds(self) -> list[HoldRow]:
        """Every hold row, released ones included (what `history` needs to say why one was released)."""
        return [_hold(r) for r in self._all("SELECT * FROM holds ORDER BY rowid")]

    @sql_errors
    def holds_for_order(self, order_id: str) -> list[HoldRow]:
        return [
            _hold(r) for r in self._all("SELECT * FROM holds WHERE order_id = ? ORDER BY rowid", [order_id])
        ]

    @sql_errors
    def mark_hold_released(
        self, fulfillment_order_id: str, by: str, at: datetime | str | None = None
    ) -> HoldRow:
        """by: ``scan`` (pre-order shipped), ``manual`` (`loopsync release`) or ``external`` (gone at Shopify)."""
        if by not in _RELEASED_BY:
            raise ValueError(f"unknown released_by {by!r}")
        status = RELEASE_STATUS[ReleasedBy(by)]
        now = iso(at)
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

    # -- hold guard --------------------------------------------------------------------------

    @sql_errors
    def record_hold_loss(self, row: HoldRow, *, verdict: str, at: datetime | str | None = None) -> None:
        """An outside release of loopsync's hold ``row``. ``give_up``: the fight is over its limit,
        the hold stays off until support settles it. Recording the same lost hold again changes nothing."""
        verdict = HoldLossVerdict(verdict)
        now = iso(at)
        with self.transaction():
            self.db.execute(
                """INSERT INTO hold_losses (fulfillment_order_id, order_id, order_name, lost_hold_id, verdict, lost_at)
                   VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (fulfillment_order_id, lost_hold_id) DO NOTHING""",
                [row.fulfillment_order_id, row.order_id, row.order_name, row.hold_id or "", verdict.value, now],
            )
            if verdict is HoldLossVerdict.GIVE_UP:
                self.db.execute(
                    """INSERT INTO hold_fights (order_id, fulfillment_order_id, gave_up_at) VALUES (?, ?, ?)
                       ON CONFLICT (order_id) DO NOTHING""",
                    [row.order_id, row.fulfillment_order_id, now],
                )
                self.db.execute(
                    "UPDATE holds SET status = ?, released_at = ?, released_by = ? WHERE fulfillment_order_id = ?",
                    [HoldStatus.RELEASED_EXTERNALLY.value, now, ReleasedBy.EXTERNAL.value, row.fulfillment_order_id],
                )

    @sql_errors
    def hold_losses_since(self, fulfillment_order_id: str, since: datetime | str, *, lost_hold_id: str) -> int:
        """Outside releases of loopsync's hold on this fulfillment order at or after ``since``,
        counting ``lost_hold_id`` (the one just found gone) once whether it is recorded yet or not."""
        rows = self._all(
            "SELECT lost_hold_id FROM hold_losses WHERE fulfillment_order_id = ? AND lost_at >= ?",
            [fulfillment_order_id, iso(since)],
        )
        return len({r["lost_hold_id"] for r in rows} | {lost_hold_id})

    @sql_errors
    def hold_fight_given_up(self, order_id: str) -> str | None:
        """When loopsync stopped re-holding this order (another app kept releasing it), or None."""
        row = self._one("SELECT gave_up_at FROM hold_fights WHERE order_id = ?", [order_id])
        return row["gave_up_at"] if row else None

    @sql_errors
    def hold_losses(self, *, order_id: str | None = None) -> list[dict[str, Any]]:
        """Every outside release of a loopsync hold, newest first: what `history` and `explain` show."""
        sql = "SELECT * FROM hold_losses" + (" WHERE order_id = ?" if order_id else "") + " ORDER BY id DESC"
        return self._all(sql, [order_id] if order_id else [])

    @sql_errors
    def hold_fights(self) -> list[dict[str, Any]]:
        """Orders whose hold the guard stopped putting back and support has not settled yet (a release
        by hand or by tag settles it), oldest first."""
        return self._all(
            """SELECT f.order_id, f.fulfillment_order_id, f.gave_up_at, o.name AS "order"
               FROM hold_fights f LEFT JOIN orders o ON o.order_id = f.order_id
               WHERE COALESCE(o.manual_release, 0) = 0 ORDER BY f.gave_up_at"""
        )

    @sql_errors
    def mark_hold_closed(self, fulfillment_order_id: str, at: datetime | str | None = None) -> None:
        """The held fulfillment order closed or was cancelled: the hold went with it, nothing to send."""
        with self.transaction():
            self.db.execute(
                "UPDATE holds SET status = ?, released_at = ?, released_by = NULL WHERE fulfillment_order_id = ?",
                [HoldStatus.CLOSED.value, iso(at), fulfillment_order_id],
            )

    @sql_errors
    def reheld(self) -> list[dict[str, Any]]:
        """Holds loopsync put back after an outside release: order, fulfillment order, times, last."""
        return self._all(
            """SELECT order_id, order_name AS "order", fulfillment_order_id, COUNT(*) AS times,
                      MAX(lost_at) AS last_at
               FROM hold_losses WHERE verdict = ?
               GROUP BY fulfillment_order_id ORDER BY MAX(lost_at), fulfillment_order_id""",
            [HoldLossVerdict.REHOLD.value],
        )


def _hold(row: dict[str, Any]) -> HoldRow:
    return HoldRow(**{**row, "variant_ids": tuple(json.loads(row["variant_ids"] or "[]"))})
