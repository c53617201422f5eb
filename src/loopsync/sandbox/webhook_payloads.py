"""The bodies of the sandbox's webhook deliveries, REST-shaped as in Shopify's webhook reference.

Each builder reads the world as it is when called (the engine calls it at the moment
of the change, under ``world.lock``), so a delivery retried later carries the state of
then, stale by design: loopsync must re-read from the API, as on Shopify.
"""

from __future__ import annotations

from typing import Any

from loopsync.sandbox.world import (
    App,
    FulfillmentHold,
    FulfillmentOrder,
    LoopReturn,
    Order,
    SellingPlanGroup,
    World,
    gid_number,
    iso,
)


def _number(global_id: str | None) -> int | None:
    return gid_number(global_id) if global_id else None


def order_payload(world: World, order: Order) -> dict[str, Any]:
    """``orders/create`` and ``orders/updated``: the order, with ids as numbers and tags as one string."""
    return {
        "id": gid_number(order.id),
        "admin_graphql_api_id": order.id,
        "name": order.name,
        # Shopify's REST order joins its tags with ", ".
        "tags": ", ".join(order.tags),
        "created_at": iso(order.created_at),
        "updated_at": iso(order.updated_at),
        "cancelled_at": iso(order.cancelled_at) if order.cancelled_at else None,
        "source_name": order.source_name,
        "test": order.test,
        "line_items": [
            {
                "id": gid_number(li.id),
                "admin_graphql_api_id": li.id,
                "variant_id": _number(li.variant_id),
                "quantity": li.quantity,
                "sku": li.sku,
                "title": li.title,
            }
            for li in order.line_items
        ],
    }


def _fulfillment_order(fo: FulfillmentOrder) -> dict[str, Any]:
    # GUESS: the REST-style lower-case status ("on_hold"), as the sample payloads show for REST resources.
    return {"id": fo.id, "status": fo.status.lower()}


def hold_payload(world: World, hold: FulfillmentHold, fo: FulfillmentOrder, subscriber: App) -> dict[str, Any]:
    """``fulfillment_holds/added`` and ``/released``: which hold, and which app placed it."""
    return {
        "fulfillment_order": _fulfillment_order(fo),
        "fulfillment_hold": {
            "id": hold.id,
            "reason": hold.reason,
            "reason_notes": hold.reason_notes,
            "handle": hold.handle,
            # Relative to the app the delivery goes to, like the GraphQL field.
            "held_by_requesting_app": hold.app_id is not None and hold.app_id == subscriber.id,
            "held_by_app": {"id": hold.app_id} if hold.app_id else None,
        },
    }


def routing_payload(fo: FulfillmentOrder) -> dict[str, Any]:
    """``fulfillment_orders/order_routing_complete``: one fulfillment order that now exists and is assigned."""
    return {"fulfillment_order": _fulfillment_order(fo)}


def selling_plan_group_payload(world: World, group: SellingPlanGroup) -> dict[str, Any]:
    """``selling_plan_groups/update``. GUESS: the shape (contract of issue 11); receivers re-read the API anyway."""
    return {
        "admin_graphql_api_id": group.id,
        "id": gid_number(group.id),
        "name": group.name,
        "merchant_code": group.merchant_code,
        "selling_plans": [
            {"name": p.name, "description": p.description, "category": p.category} for p in group.plans
        ],
        "product_variants": [{"admin_graphql_api_id": v} for v in sorted(group.variant_ids)],
    }


def loop_return_payload(ret: LoopReturn, trigger: str) -> dict[str, Any]:
    """Loop's Return topic: the return as its API shows it, with the topic and the trigger that sent it."""
    from loopsync.sandbox.loop_api import return_json

    return {"topic": "return", "trigger": trigger, **return_json(ret)}
