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


def read(store: Store, order_id: str, *, losses_since: datetime) -> LedgerView:
    """``losses_since``: where the hold guard's window starts (guard.window_start)."""
    holds = []
    for row in store.holds.holds_for_order(order_id):
        active = row.status == "active"
        ours = store.ledger.last_action_for_key(f"release:{row.hold_id}") if active and row.hold_id else None
        losses = (
            store.holds.hold_losses_since(row.fulfillment_order_id, losses_since, lost_hold_id=row.hold_id or "")
            if active
            else 0
        )
        holds.append(
            HoldRecord(
                row.fulfillment_order_id,
                row.hold_id,
                active,
                ours is not None and ours.status != "failed",
                variant_ids=row.variant_ids,
                losses_in_window=losses,
            )
        )
    row = store.orders.order(order_id)
    return LedgerView(
        manually_released=store.orders.is_manually_released(order_id),
        holds=tuple(holds),
        release_note_due=store.orders.release_note_due(order_id),
        return_id=store.orders.return_for_order(order_id),
        note_attempts=row.note_attempts if row else 0,
        note_first_missed_at=_moment(row.note_first_missed_at) if row else None,
        note_gave_up_at=_moment(row.note_gave_up_at) if row else None,
        note_next_retry_at=_moment(row.note_next_retry_at) if row else None,
        fight_given_up=store.holds.hold_fight_given_up(order_id) is not None,
    )


def overrides(store: Store) -> dict[str, str]:
    return store.config.overrides()
