"""What loopsync did, read back from the ledger: one entry per action, newest first.

`loopsync history` lists them for the whole store or one order; `explain` shows one
order's. Only the state file is read: no API call, nothing written.

An entry is ``at``, ``scan_id``, ``order_id``, ``order``, ``kind``, ``status`` and
``detail``. ``kind`` is an action the ledger recorded (``hold``, ``rehold``, ``tag``,
``note``, ``release``), ``hold_lost`` (loopsync's hold was released outside loopsync),
or ``pending`` (why an order needed another pass, each time the reason changed).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopsync.store import Store

#: Why a hold was released, from the holds table's ``released_by`` (records older than the
#: release's own "why" in its payload).
_RELEASED_BY = {
    "scan": "its pre-order item shipped",
    "manual": "released by hand",
    "external": "released outside loopsync",
}

#: Decisions worth a line of their own: why an order needed another pass, or a person.
_TOLD_DECISIONS = frozenset({"pending", "disconnected_skip"})


def entries(
    store: Store, *, order_id: str | None = None, since: datetime | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """The ledger's entries, newest first, at most ``limit`` of them."""
    names = _order_names(store)
    released_by = {h.fulfillment_order_id: h.released_by for h in _holds(store, order_id)}
    found = [_action_entry(a, names, released_by) for a in store.ledger.actions(order_id=order_id, since=since)]
    found += _losses(store, order_id, since, names)
    found += _pending(store, order_id, since)
    # Same moment: the later record (higher id within its kind) first, actions before decisions.
    found.sort(key=lambda e: (e["at"], e.pop("_rank")), reverse=True)
    return found[:limit] if limit else found


def _order_names(store: Store) -> dict[str, str | None]:
    return store.orders.names()


def _holds(store: Store, order_id: str | None):
    return store.holds.holds_for_order(order_id) if order_id is not None else store.holds.all_holds()


def _action_entry(action, names: dict[str, str | None], released_by: dict[str, str | None]) -> dict[str, Any]:
    kind, payload, result = action.kind, action.payload or {}, action.result or {}
    detail = ""
    if kind == "hold":
        if payload.get("reheld"):
            kind, detail = "rehold", "put back: the hold was released outside loopsync"
        else:
            detail = "pre-order lines only (split)" if payload.get("line_items") else "whole fulfillment order"
    elif kind == "tag":
        detail = f"added tag '{payload.get('tag', '')}'"
    elif kind == "note":
        detail = payload.get("content", "")
    elif kind == "release":
        detail = payload.get("why") or _RELEASED_BY.get(released_by.get(action.target) or "", "released")
    if action.status in ("failed", "unknown") and isinstance(result, dict):
        why = result.get("user_errors") or result.get("error")
        if why:
            detail = f"{detail}: {why}" if detail else str(why)
    return {
        "at": action.created_at,
        "scan_id": action.scan_id,
        "order_id": action.order_id,
        "order": names.get(action.order_id),
        "kind": kind,
        "target": action.target,
        "status": action.status,
        "detail": detail,
        "_rank": (1, action.id),
    }


def _losses(store: Store, order_id: str | None, since: datetime | None, names) -> list[dict[str, Any]]:
    found = []
    for loss in store.holds.hold_losses(order_id=order_id):
        if since is not None and _before(loss["lost_at"], since):
            continue
        verdict = (
            "put back on the next pass" if loss["verdict"] == "rehold"
            else "not put back: another app keeps releasing it"
        )
        found.append(
            {
                "at": loss["lost_at"],
                "scan_id": None,
                "order_id": loss["order_id"],
                "order": loss["order_name"] or names.get(loss["order_id"]),
                "kind": "hold_lost",
                "target": loss["fulfillment_order_id"],
                "status": loss["verdict"],
                "detail": f"the hold was released outside loopsync; {verdict}",
                "_rank": (0, loss["id"]),
            }
        )
    return found


def _pending(store: Store, order_id: str | None, since: datetime | None) -> list[dict[str, Any]]:
    """A pending reason each time it changed: a scan every five minutes repeats it otherwise."""
    found: list[dict[str, Any]] = []
    last: dict[str, tuple[str, str]] = {}
    for d in reversed(store.ledger.decisions(order_id=order_id)):
        said = (d.decision, d.reason)
        changed = last.get(d.order_id) != said
        last[d.order_id] = said
        if not changed or d.decision not in _TOLD_DECISIONS:
            continue
        if since is not None and _before(d.at, since):
            continue
        found.append(
            {
                "at": d.at,
                "scan_id": d.scan_id,
                "order_id": d.order_id,
                "order": d.order_name,
                "kind": "pending" if d.decision == "pending" else "left_unheld",
                "target": d.order_id,
                "status": d.decision,
                "detail": d.reason,
                "_rank": (-1, d.id),
            }
        )
    return found


def _before(at: str, since: datetime) -> bool:
    from loopsync.store.part import parse_iso

    return parse_iso(at) < since


def recorded_order(store: Store, ref: str) -> str:
    """An order the state file knows, by name, numeric id or gid; history reads no API to find it."""
    ref = ref.strip()
    if ref.startswith("gid://shopify/Order/"):
        candidates = [ref]
    elif ref.isdigit():
        candidates = [f"gid://shopify/Order/{ref}"]
    else:
        candidates = []
    row = store.orders.order_by_name(ref) if ref else None
    if row is not None:
        return row.order_id
    for gid in candidates:
        if store.orders.order(gid) is not None or store.ledger.actions(order_id=gid, limit=1):
            return gid
    from loopsync.errors import NotFoundError

    raise NotFoundError(f"loopsync has no record of an order '{ref}' in {store.path}.")
