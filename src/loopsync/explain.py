"""`loopsync explain ORDER`: the decision trace for one order, from live data and the records.

Read-only: the order, its variants and the Loop return are read (queries only), the
state file is opened read-only, and what "the next scan would do" is the planner's
own intents for this order (``reconcile.plan``), never a second copy of its rules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from loopsync import detect, guard, history
from loopsync.errors import ApiError, NotFoundError
from loopsync.loop import LoopClient
from loopsync.models import FulfillmentOrder, Order, VariantInfo
from loopsync.reconcile import candidates, ledger, plan, returns
from loopsync.settings import Settings
from loopsync.shopify import ShopifyClient
from loopsync.store import Store

_RULES = {
    "name_prefix": "its name starts with the exchange prefix '{prefix}'",
    "exchange_tag": "it carries the exchange tag '{tag}'",
    "native_tag": "it carries Loop's native-exchange tag '{native}'",
}
_SIGNALS = {
    "selling_plan_group": "the variant is in a selling plan group with a PRE_ORDER plan",
    "line_item_selling_plan": "the variant is in a PRE_ORDER selling plan group, the one on the line item",
    "override": "a local pre-order override names the variant (`loopsync preorders`)",
}
_WINDOW_SOURCES = {
    "override": "the local override's window",
    "metafield": "the variant's metafield {namespace}.{key}",
    "selling_plan_date": "the PRE_ORDER selling plan's fulfillment date",
    "selling_plan_description": "the PRE_ORDER selling plan's description",
    "to_be_confirmed": "no window anywhere: 'to be confirmed'",
}


def explain_order(
    store: Store,
    shopify: ShopifyClient,
    loop: LoopClient | None,
    options: Settings,
    ref: str,
    *,
    now: datetime,
) -> dict[str, Any]:
    """The explain document for ``ref`` (name, numeric id or gid); NotFoundError when Shopify has no such order."""
    order = shopify.find_order(ref)
    if order is None:
        raise NotFoundError(f"No order '{ref}' was found in Shopify.")
    recorded = store.holds.holds_for_order(order.id)
    variants = candidates.lookup_variants(shopify, options, [order], {order.id: recorded})
    overrides = ledger.overrides(store)
    kind, rule = detect.exchange_rule(
        order,
        name_prefix=options.exchange_name_prefix,
        exchange_tag=options.exchange_tag,
        native_tag=options.native_exchange_tag,
    )
    preorder = detect.preorder_lines(order, kind, variants, overrides) if kind else []
    view = ledger.read(store, order.id, losses_since=guard.window_start(now, options.rehold_window))
    steps = plan.plan_order(
        order, variants, overrides, options, view, loop_connected=loop is not None, now=now
    )
    return {
        "order": {
            "id": order.id,
            "legacy_id": order.legacy_id,
            "name": order.name,
            "tags": list(order.tags),
            "closed": order.closed,
            "cancelled": order.cancelled,
        },
        "exchange": {
            "kind": kind,
            "rule": rule,
            "why": _exchange_why(rule, options),
        },
        "line_items": _line_items(order, kind, variants, overrides, preorder, options),
        "window": steps.window,
        "fulfillment_orders": [_fulfillment_order(fo) for fo in order.fulfillment_orders],
        "loop_return": _loop_return(store, loop, order, kind, options, now),
        "ledger": _ledger(store, order.id),
        "next_scan": _next_scan(store, order, steps, view, options, loop_connected=loop is not None),
    }



def _fulfillment_order(fo: FulfillmentOrder) -> dict[str, Any]:
    """A fulfillment order with every hold on it, other apps' too: what a warehouse would see."""
    return {
        "id": fo.id,
        "status": fo.status,
        "holds": [
            {"id": h.id, "handle": h.handle, "ours": h.is_loopsync, "app": h.app_name, "reason": h.reason,
             "reason_notes": h.reason_notes}
            for h in fo.holds
        ],
    }

def _exchange_why(rule: str | None, options: Settings) -> str:
    if rule is None:
        return "not a Loop exchange: no exchange prefix, exchange tag or native-exchange tag matches"
    return _RULES[rule].format(
        prefix=options.exchange_name_prefix, tag=options.exchange_tag, native=options.native_exchange_tag
    )


def _line_items(
    order: Order,
    kind: str | None,
    variants: dict[str, VariantInfo],
    overrides: dict[str, str],
    preorder: list[detect.PreorderLine],
    options: Settings,
) -> list[dict[str, Any]]:
    by_line = {p.line_item.id: p for p in preorder}
    exchange_items = {li.id for li in detect.exchange_line_items(order, kind)}
    skus = {line.line_item_id: line.sku for fo in order.fulfillment_orders for line in fo.lines}
    rows = []
    for li in order.line_items:
        found = by_line.get(li.id)
        row: dict[str, Any] = {
            "line_item_id": li.id,
            "variant_id": li.variant_id,
            "sku": skus.get(li.id),
            "exchange_item": li.id in exchange_items,
            "on_preorder": found is not None,
            "signal": found.source if found else None,
            "window": found.window if found else None,
            "window_source": found.window_source if found else None,
        }
        if found is not None:
            row["why"] = _SIGNALS[found.source]
            row["window_why"] = _WINDOW_SOURCES[found.window_source].format(
                namespace=options.metafield_namespace, key=options.metafield_key
            )
        else:
            row["why"] = _not_preorder(li, li.id in exchange_items, variants)
            row["window_why"] = None
        rows.append(row)
    return rows


def _not_preorder(li, exchange_item: bool, variants: dict[str, VariantInfo]) -> str:
    if not exchange_item:
        return "not an exchange item"
    if not li.variant_id:
        return "a custom item with no variant"
    info = variants.get(li.variant_id)
    if info is None or not info.exists:
        return "the variant no longer exists in Shopify"
    return "the variant is in no PRE_ORDER selling plan group and no local override names it"


def _loop_return(
    store: Store, loop: LoopClient | None, order: Order, kind: str | None, options: Settings, now: datetime
) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": None, "found_by": None, "why_not": None, "notes": []}
    return_id = store.orders.return_for_order(order.id)
    if return_id is not None:
        doc["id"], doc["found_by"] = return_id, "state file"
    elif kind is None:
        doc["why_not"] = "not looked for: not a Loop exchange"
        return doc
    elif loop is None:
        doc["why_not"] = "not looked for: Loop is disconnected"
        return doc
    else:
        try:
            # A finder of its own: one order's lookups, not a scan's shared returns list.
            found = returns.ReturnFinder(loop).find(order, kind, options.exchange_name_prefix, now)
        except ApiError as exc:
            doc["why_not"] = f"Loop could not be asked: {exc.message}"
            return doc
        if found is None:
            names = ", ".join(returns.order_names(order, options.exchange_name_prefix)) or str(order.legacy_id)
            doc["why_not"] = f"no Loop return matches this order (looked up by {names}, then the list of returns)"
            return doc
        # As the state file keeps it, so both ways of finding it read the same.
        doc["id"], doc["found_by"] = str(found), "Loop lookup"
    label = f"[{options.note_label}]"
    if loop is not None:
        try:
            doc["notes"] = [n.content for n in loop.notes(doc["id"]) if n.content.startswith(label)]
        except ApiError as exc:
            doc["why_not"] = f"the return's notes could not be read: {exc.message}"
    return doc


def _ledger(store: Store, order_id: str) -> dict[str, Any]:
    row = store.orders.order(order_id)
    return {
        "state": row.state if row else None,
        "pending_reason": row.pending_reason if row else None,
        "manual_release": bool(row and row.manual_release),
        "manual_release_at": row.manual_release_at if row else None,
        "note_posted_at": row.note_posted_at if row else None,
        "note_attempts": row.note_attempts if row else 0,
        "note_next_retry_at": row.note_next_retry_at if row else None,
        "note_gave_up_at": row.note_gave_up_at if row else None,
        "hold_fight_given_up_at": store.holds.hold_fight_given_up(order_id),
        "holds": [
            {
                "fulfillment_order_id": h.fulfillment_order_id,
                "hold_id": h.hold_id,
                "status": h.status,
                "window": h.window,
                "placed_at": h.placed_at,
                "released_at": h.released_at,
                "released_by": h.released_by,
            }
            for h in store.holds.holds_for_order(order_id)
        ],
        "history": history.entries(store, order_id=order_id),
    }


def _next_scan(
    store: Store, order: Order, steps: plan.Plan, view: plan.LedgerView, options: Settings, *, loop_connected: bool
) -> dict[str, Any]:
    """The planner's intents for this order, as the executor would apply them, in words."""
    released = {i.fulfillment_order_id for i in steps.intents if isinstance(i, plan.ReleaseHold)}
    # As DryRun.ledger_after: nothing is written, so the release note is owed once this pass releases.
    after = replace(view, release_note_due=view.release_note_due or bool(released))
    intents = steps.intents + plan.plan_release_note(order, released, after, options, loop_connected=loop_connected)

    def noted(content: str) -> bool:
        return view.return_id is not None and store.notes.note_recorded(view.return_id, content)

    actions = [a for a in (_intent(i, noted) for i in intents) if a is not None]
    return {
        "decision": steps.decision,
        "reason": steps.reason,
        "pending": steps.pending,
        "actions": actions,
        "changes_nothing": not any(a["sends"] for a in actions),
    }


def _intent(intent: plan.Intent, noted: Callable[[str], bool]) -> dict[str, Any] | None:
    """One intent in words; ``sends``: whether applying it would call Shopify or Loop."""
    match intent:
        case plan.PlaceHold():
            what = "put back the hold" if intent.reheld else f"hold the {intent.detail}"
            return _act("hold", intent.fulfillment_order_id, what, True)
        case plan.KeepHold():
            return _act("keep", intent.fulfillment_order_id, "keep loopsync's hold (already in place)", False)
        case plan.ReleaseHold():
            return _act("release", intent.fulfillment_order_id, f"release loopsync's hold: {intent.why}", True)
        case plan.AddTag():
            return _act("tag", None, f"add the tag '{intent.tag}'", True)
        case plan.PostNote(kind="release"):
            return _act("note", str(intent.return_id), f"post the release note: {intent.content}", True)
        case plan.PostNote():
            # The executor posts it only when neither the ledger nor Loop's list has it yet.
            if noted(intent.content):
                return _act("note", None, "nothing: the pre-order note is already on the Loop return", False)
            return _act("note", None, f"post the pre-order note: {intent.content}", True)
        case plan.SettleRelease():
            return _act("record", intent.fulfillment_order_id, "record the hold as released outside loopsync", False)
        case plan.RecordHoldLoss():
            verdict = "and put it back" if intent.verdict == "rehold" else "and stop putting it back"
            return _act("record", intent.fulfillment_order_id, f"record the outside release {verdict}", False)
        case plan.MarkHoldClosed():
            return _act("record", intent.fulfillment_order_id, "record the hold as closed with its order", False)
        case plan.MarkManualRelease():
            return _act("record", None, "record the release by hand", False)
        case plan.ClearReleaseNote():
            return None
    return None


def _act(kind: str, target: str | None, detail: str, sends: bool) -> dict[str, Any]:
    return {"kind": kind, "target": target, "detail": detail, "sends": sends}
