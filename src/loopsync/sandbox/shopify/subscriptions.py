"""Shopify's rules for webhook subscriptions, as plain functions over the ``World``.

A subscription belongs to the app whose token made it: another app can neither see,
change nor delete it (the Admin API only ever shows the calling app its own). Callers
hold ``world.lock``; a rule that says no returns a ``rules.Refusal`` (a user error).
"""

from __future__ import annotations

from loopsync.sandbox.shopify.rules import Refusal
from loopsync.sandbox.shopify.scopes import effective_scopes
from loopsync.sandbox.webhooks import TOPICS, uri_refusal
from loopsync.sandbox.world import App, WebhookSubscription, World

# GUESS: the field Shopify blames; public answers name the address argument itself.
URI_FIELD = ("uri",)


def _address_refusal(world: World, app: App, topic: str, uri: str, skip_id: str | None = None) -> Refusal | None:
    reason = uri_refusal(uri)
    if reason is not None:
        return Refusal(URI_FIELD, reason, None)
    taken = any(s.app_id == app.id and s.topic == topic and s.uri == uri and s.id != skip_id
                for s in world.webhook_subscriptions.values())
    if taken:
        # The message is Shopify's (facts doc); UserError has no code in 2026-10.
        return Refusal(URI_FIELD, "Address for this topic has already been taken", None)
    return None


def create(world: World, app: App, topic: str, uri: str | None, fmt: str | None) -> WebhookSubscription | Refusal:
    known = TOPICS.get(topic)
    if known is None:
        # A topic the sandbox does not deliver is refused loudly rather than accepted and never sent.
        return Refusal(("topic",), f"The sandbox does not deliver {topic} webhooks.", None)
    if not effective_scopes(app) & set(known.scopes):
        # GUESS: Shopify's wording (and that it is a user error, not a top-level ACCESS_DENIED).
        needed = " or ".join(f"`{s}`" for s in known.scopes)
        return Refusal(("topic",), f"Access denied for {known.name} webhook. Required access: {needed}.", None)
    if (fmt or "JSON") != "JSON":
        return Refusal(("webhookSubscription", "format"), "The sandbox delivers JSON only.", None)
    if not uri:
        # GUESS: the wording when no address is given (callbackUrl is deprecated in 2026-10).
        return Refusal(URI_FIELD, "Address can't be blank", None)
    refusal = _address_refusal(world, app, topic, uri)
    if refusal is not None:
        return refusal
    now = world.now()
    sub = WebhookSubscription(id=world.new_gid("WebhookSubscription"), app_id=app.id, topic=topic, uri=uri,
                              created_at=now, updated_at=now)
    world.webhook_subscriptions[sub.id] = sub
    return sub


def own(world: World, app: App, sub_id: str) -> WebhookSubscription | None:
    sub = world.webhook_subscriptions.get(sub_id)
    return sub if sub is not None and sub.app_id == app.id else None


# GUESS: the wording for an id that is not one of this app's subscriptions (another app's included).
NOT_FOUND = Refusal(("id",), "Webhook subscription does not exist", None)


def update(world: World, app: App, sub_id: str, uri: str | None) -> WebhookSubscription | Refusal:
    sub = own(world, app, sub_id)
    if sub is None:
        return NOT_FOUND
    if uri is not None and uri != sub.uri:
        refusal = _address_refusal(world, app, sub.topic, uri, skip_id=sub.id)
        if refusal is not None:
            return refusal
        sub.uri = uri
        sub.consecutive_failures = 0
    sub.updated_at = world.now()
    return sub


def delete(world: World, app: App, sub_id: str) -> str | Refusal:
    sub = own(world, app, sub_id)
    if sub is None:
        return NOT_FOUND
    del world.webhook_subscriptions[sub.id]
    return sub.id
