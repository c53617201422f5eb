"""Settle what a crash left open: intents written to the ledger whose results never were."""

from __future__ import annotations

from datetime import datetime

from loopsync.models import Order
from loopsync.store import Store


def settle_interrupted(store: Store, order: Order, now: datetime) -> None:
    """Close intents a crash left open, from what Shopify shows now.

    The action itself is re-derived by the normal pass (the hold handle, the
    tag set and the notes list tell whether it happened); this only keeps the
    ledger from claiming something unfinished forever.
    """
    for intent in store.ledger.open_intents(order_id=order.id):
        if intent.kind == "hold":
            fo = next((f for f in order.fulfillment_orders if f.id == intent.target), None)
            hold = fo.our_hold if fo else None
            if hold is None:
                # The split may have moved our hold: look on every FO.
                hold = next((f.our_hold for f in order.fulfillment_orders if f.our_hold), None)
            store.ledger.finish_action(
                intent.id, "done" if hold else "failed", {"recovered": True, "hold_id": hold.id if hold else None}
            )
        elif intent.kind == "tag":
            present = any(t.lower() == str(intent.target).lower() for t in order.tags)
            store.ledger.finish_action(intent.id, "done" if present else "failed", {"recovered": True})
        elif intent.kind == "release":
            hold_id = (intent.payload or {}).get("hold_id")
            still = any(h.id == hold_id for fo in order.fulfillment_orders for h in fo.holds)
            if not still:
                store.holds.mark_hold_released(intent.target, by="scan", at=now)
            store.ledger.finish_action(intent.id, "failed" if still else "done", {"recovered": True})
        elif intent.kind == "note":
            # Settled when the note is next due: the executor reads Loop's notes list.
            store.ledger.finish_action(intent.id, "unknown", {"recovered": True})
