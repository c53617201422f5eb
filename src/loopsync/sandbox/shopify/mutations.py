"""The mutation fields: GraphQL input into ``rules`` calls, results and refusals into Shopify's payloads."""

from __future__ import annotations

from typing import Any

from loopsync.sandbox.shopify import rules, subscriptions
from loopsync.sandbox.shopify.registry import Resolvers, ctx_of
from loopsync.sandbox.shopify.scopes import WRITE_ORDERS

MUTATIONS = Resolvers()


def user_error(refusal: rules.Refusal) -> dict[str, Any]:
    return {"field": list(refusal.field), "message": refusal.message, "code": refusal.code}


@MUTATIONS.field("Mutation", "fulfillmentOrderHold")
def _hold(_src, info, id, fulfillmentHold, **_):
    ctx = ctx_of(info)
    ctx.mutations.append(info.field_name)
    spec = fulfillmentHold
    request = rules.HoldRequest(
        reason=spec["reason"],
        handle=spec.get("handle") or "",
        reason_notes=spec.get("reasonNotes"),
        lines=[(item["id"], item["quantity"]) for item in spec.get("fulfillmentOrderLineItems") or []],
    )
    placed = rules.place_hold(ctx.world, id, ctx.app.id, request)
    if isinstance(placed, rules.Refusal):
        return {"fulfillmentHold": None, "fulfillmentOrder": None, "remainingFulfillmentOrder": None,
                "userErrors": [user_error(placed)]}
    ctx.forget_index()
    return {"fulfillmentHold": placed.hold, "fulfillmentOrder": placed.fulfillment_order,
            "remainingFulfillmentOrder": placed.remaining, "userErrors": []}


@MUTATIONS.field("Mutation", "fulfillmentOrderReleaseHold")
def _release(_src, info, id, holdIds=None, **_):
    ctx = ctx_of(info)
    ctx.mutations.append(info.field_name)
    released = rules.release_holds(ctx.world, id, ctx.app.id, holdIds)
    fo = ctx.world.fulfillment_orders.get(id)
    if isinstance(released, rules.Refusal):
        return {"fulfillmentOrder": fo, "userErrors": [user_error(released)]}
    if released:
        ctx.forget_index()
    return {"fulfillmentOrder": fo, "userErrors": []}


@MUTATIONS.field("Mutation", "tagsAdd", "tagsRemove")
def _tags(_src, info, id, tags, **_):
    ctx = ctx_of(info)
    order = ctx.world.orders.get(id)
    if order is None:
        # GUESS: wording of the not-found error (and no code); other taggable resources are not modeled.
        return {"node": None, "userErrors": [{"field": ["id"], "message": "Resource not found"}]}
    ctx.require(info.field_name, WRITE_ORDERS)
    ctx.mutations.append(info.field_name)
    change = rules.add_tags if info.field_name == "tagsAdd" else rules.remove_tags
    change(ctx.world, order, tags)
    return {"node": order, "userErrors": []}


def _address(spec: dict) -> str | None:
    # GUESS: the deprecated callbackUrl still works as the address when uri is not given.
    return spec.get("uri") or spec.get("callbackUrl")


def _subscription_payload(made: Any) -> dict:
    """A subscription created or changed, or the refusal as a userError (Shopify answers 200 either way)."""
    if isinstance(made, rules.Refusal):
        return {"webhookSubscription": None, "userErrors": [user_error(made)]}
    return {"webhookSubscription": made, "userErrors": []}


@MUTATIONS.field("Mutation", "webhookSubscriptionCreate")
def _subscribe(_src, info, topic, webhookSubscription, **_):
    ctx = ctx_of(info)
    ctx.mutations.append(info.field_name)
    spec = webhookSubscription
    made = subscriptions.create(ctx.world, ctx.app, topic, _address(spec), spec.get("format"))
    return _subscription_payload(made)


@MUTATIONS.field("Mutation", "webhookSubscriptionUpdate")
def _resubscribe(_src, info, id, webhookSubscription, **_):
    ctx = ctx_of(info)
    ctx.mutations.append(info.field_name)
    changed = subscriptions.update(ctx.world, ctx.app, id, _address(webhookSubscription))
    return _subscription_payload(changed)


@MUTATIONS.field("Mutation", "webhookSubscriptionDelete")
def _unsubscribe(_src, info, id, **_):
    ctx = ctx_of(info)
    ctx.mutations.append(info.field_name)
    deleted = subscriptions.delete(ctx.world, ctx.app, id)
    if isinstance(deleted, rules.Refusal):
        return {"deletedWebhookSubscriptionId": None, "userErrors": [user_error(deleted)]}
    return {"deletedWebhookSubscriptionId": deleted, "userErrors": []}
