"""The planner's read-only view of what the state file recorded about one order."""

from __future__ import annotations

from datetime import UTC, datetime

from loopsync.reconcile.plan import HoldRecord, LedgerView
from loopsync.store import Store


def _moment(iso: str | None) -> datetime | None:
    if iso is None:
        return None
    ts = datetime.fromisoformat(iso)
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def read(store: Store, order_id: str) -> LedgerView:
    holds = []
    for row in store.holds.holds_for_order(order_id):
        active = row.status == "active"
        ours = store.ledger.last_action_for_key(f"release:{row.hold_id}") if active and row.hold_id else None
        holds.append(HoldRecord(row.fulfillment_order_id, row.hold_id, active, ours is not None and ours.status != "failed"))
    row = store.orders.order(order_id)
    return LedgerView(
        manually_released=store.orders.is_manually_released(order_id),
        holds=tuple(holds),
        release_note_due=store.orders.release_note_due(order_id),
        return_id=store.orders.return_for_order(order_id),
        note_attempts=row.note_attempts if row else 0,
        note_first_missed_at=_moment(row.note_first_missed_at) if row else None,
        note_gave_up_at=_moment(row.note_gave_up_at) if row else None,
    )


def overrides(store: Store) -> dict[str, str]:
    return store.config.overrides()
