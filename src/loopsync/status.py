"""What `loopsync status` reports, as one JSON-ready document."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loopsync.settings import fingerprint

if TYPE_CHECKING:
    # Annotations only: `status` without a state file must not load the store (and sqlite-utils).
    from loopsync.store import Store


def status_document(store: Store) -> dict[str, Any]:
    connection = _connection(store)
    last = store.ledger.last_scan()
    unheld = [
        {"order_id": u.order_id, "order": u.name, "window": u.window, "seen_at": u.last_seen}
        for u in store.orders.orders_left_unheld()
    ]
    given_up = gave_up(store)
    return {
        "connection": connection,
        "last_scan": (
            {
                "id": last.id,
                "started_at": last.started_at,
                "finished_at": last.finished_at,
                "outcome": last.outcome,
                "error": last.error,
                "counters": last.counters,
            }
            if last
            else None
        ),
        "cursor": store.ledger.cursor(),
        "inbox": inbox(store),
        "held": [
            {
                "order_id": h.order_id,
                "order": h.order_name,
                "fulfillment_order_id": h.fulfillment_order_id,
                "hold_id": h.hold_id,
                "window": h.window,
                "placed_at": h.placed_at,
            }
            for h in store.holds.active_holds()
        ],
        "pending": pending(store),
        # Holds loopsync put back after another app or a person released them outside loopsync.
        "reheld": [
            {k: r[k] for k in ("order_id", "order", "fulfillment_order_id", "times", "last_at")}
            for r in store.holds.reheld()
        ],
        # Pre-order exchanges no hold protects: Loop was disconnected when a scan saw them.
        "unheld": unheld,
        "gave_up": given_up,
        "attention": attention(connection, last, given_up, unheld),
    }


def _connection(store: Store) -> dict[str, Any] | None:
    """The stored connection, with every secret shown only as a fingerprint."""
    conn = store.config.connection()
    if conn is None:
        return None
    shopify_secret = conn.shopify_token or conn.client_secret or ""
    return {
        "shop": conn.shop,
        "shopify_auth": conn.shopify_auth,
        "shopify_fingerprint": fingerprint(shopify_secret) if shopify_secret else None,
        "loop_connected": bool(conn.loop_api_key),
        "loop_fingerprint": fingerprint(conn.loop_api_key) if conn.loop_api_key else None,
        # Shown like the keys: whether it is set and which one, never the secret itself.
        "webhook_secret_fingerprint": fingerprint(conn.webhook_secret) if conn.webhook_secret else None,
        "webhook_previous_secret_until": conn.previous_webhook_secret_until if conn.previous_webhook_secret else None,
        "loop_webhook_secret_fingerprint": fingerprint(conn.loop_webhook_secret) if conn.loop_webhook_secret else None,
        "connected_at": conn.connected_at,
        "loop_disconnected_at": conn.loop_disconnected_at,
    }


#: Last-scan outcomes that mean the scan did not finish its work.
UNFINISHED_SCANS = frozenset({"failed", "interrupted", "crashed"})


def gave_up(store: Store) -> list[dict[str, Any]]:
    """Orders loopsync stopped acting on by itself: the hold guard's lost fights (until support settles
    them) and Loop returns not found after detect.NOTE_GIVE_UP_AFTER."""
    from loopsync import guard

    rows = [
        {"order_id": f["order_id"], "order": f["order"], "what": "hold", "reason": guard.GIVE_UP, "at": f["gave_up_at"]}
        for f in store.holds.hold_fights()
    ]
    rows += [
        {
            "order_id": w.order_id,
            "order": w.name,
            "what": "loop_return",
            "reason": "Loop return not found after 14 days; the hold stays",
            "at": w.note_gave_up_at,
        }
        for w in store.orders.note_waits()
        if w.note_gave_up_at
    ]
    return rows


def attention(
    connection: dict[str, Any] | None, last, given_up: list[dict[str, Any]], unheld: list[dict[str, Any]]
) -> list[str]:
    """What needs a person, one sentence each; `status` exits 1 when there is any (for monitoring)."""
    said = []
    if last is not None and last.outcome in UNFINISHED_SCANS:
        said.append(f"the last scan (#{last.id}) {last.outcome}" + (f" ({last.error})" if last.error else ""))
    for g in given_up:
        said.append(f"{g['order'] or g['order_id']}: {g['reason']}")
    if unheld and connection is not None and not connection["loop_connected"]:
        n = len(unheld)
        said.append(f"{n} pre-order exchange{'' if n == 1 else 's'} unheld while Loop is disconnected")
    return said


def inbox(store: Store) -> dict[str, Any]:
    """What `loopsync serve` has received: deliveries waiting for its worker, and the last one."""
    last = store.inbox.last()
    return {
        "depth": store.inbox.depth(),
        "last_delivery": (
            {"topic": last.topic, "received_at": last.received_at, "state": last.state, "webhook_id": last.webhook_id}
            if last
            else None
        ),
    }


def pending(store: Store) -> list[dict[str, Any]]:
    """Orders retried next scan, then orders whose note waits for its Loop return (retried on a
    back-off schedule: ``next_retry_at``; ``gave_up_at`` once loopsync stopped reporting it)."""
    rows = [
        {
            "order_id": p.order_id,
            "order": p.name,
            "reason": p.pending_reason,
            "attempts": p.attempts,
            "waiting_since": None,
            "next_retry_at": None,
            "gave_up_at": None,
        }
        for p in store.orders.pending_orders()
    ]
    listed = {r["order_id"] for r in rows}
    for w in store.orders.note_waits():
        if w.order_id in listed:
            continue
        reason = (
            "Loop return not found: gave up reporting it (looked for once a day)"
            if w.note_gave_up_at
            else "Loop return not found yet"
        )
        rows.append(
            {
                "order_id": w.order_id,
                "order": w.name,
                "reason": reason,
                "attempts": w.note_attempts,
                "waiting_since": w.note_first_missed_at,
                "next_retry_at": w.note_next_retry_at,
                "gave_up_at": w.note_gave_up_at,
            }
        )
    return rows


def not_connected_document() -> dict[str, Any]:
    """The status of a state file that does not exist yet."""
    return {
        "connection": None, "last_scan": None, "cursor": None, "held": [], "pending": [], "reheld": [], "unheld": [],
        "gave_up": [], "attention": [], "inbox": {"depth": 0, "last_delivery": None},
    }
