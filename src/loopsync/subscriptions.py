"""`loopsync webhooks install | list | uninstall | toml`: loopsync's own Shopify webhook subscriptions.

`loopsync serve` receives deliveries at ``BASE/webhooks/shopify``; these functions
point Shopify there. Only the calling app's subscriptions are ever listed or
deleted (the Admin API shows an app nothing else), and uninstall also keeps to
addresses under BASE, so a second loopsync install elsewhere survives.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from loopsync.errors import ApiError, ConfigError, CredentialsError
from loopsync.schema import API_VERSION

if TYPE_CHECKING:
    from loopsync.models import WebhookSubscription
    from loopsync.shopify import ShopifyClient

#: The path `loopsync serve` receives Shopify's deliveries on (the contract of issue 11).
RECEIVER_PATH = "/webhooks/shopify"

#: The topics loopsync needs, GraphQL enum value -> the header / TOML form. Their scopes
#: (read_orders, a read_*_fulfillment_orders scope, read_products) are implied by the
#: ones `connect` already requires.
TOPICS: dict[str, str] = {
    "ORDERS_CREATE": "orders/create",
    "ORDERS_UPDATED": "orders/updated",
    "FULFILLMENT_HOLDS_RELEASED": "fulfillment_holds/released",
    "FULFILLMENT_ORDERS_ORDER_ROUTING_COMPLETE": "fulfillment_orders/order_routing_complete",
    "SELLING_PLAN_GROUPS_UPDATE": "selling_plan_groups/update",
}


def base_url(text: str) -> str:
    """``--url`` checked: https, or plain http on this machine (the sandbox, a local `serve`); no trailing slash.

    The address is never repeated in the error: a pasted URL can carry a token.
    """
    parts = urlsplit(text.strip())
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError("--url must be an address like https://hooks.example.com, where `loopsync serve` is reached.")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigError("--url must be a plain https:// address, without a user name, password, query or fragment.")
    if parts.scheme == "http" and not loopback(host):
        raise ConfigError(
            "--url must use https:// (Shopify delivers only to HTTPS); plain http:// is only for 127.0.0.1 or localhost."
        )
    return f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")


def loopback(host: str) -> bool:
    """Plain http is allowed only to this machine (the sandbox; Shopify itself wants https)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def delivery_uri(base: str) -> str:
    return base + RECEIVER_PATH


@dataclass(frozen=True)
class Installed:
    uri: str
    created: tuple[WebhookSubscription, ...]
    kept: tuple[WebhookSubscription, ...]


def install(client: ShopifyClient, base: str) -> Installed:
    """Subscribe every topic loopsync needs at ``BASE/webhooks/shopify``; what is there already is kept."""
    uri = delivery_uri(base)
    existing = [s for s in client.webhook_subscriptions(uri=uri) if s.uri == uri]
    have = {s.topic for s in existing}
    created = []
    for topic in TOPICS:
        if topic in have:
            continue
        made, errors = client.create_webhook_subscription(topic, uri)
        if made is None:
            _refused(f"subscribe {TOPICS[topic]}", errors)
        created.append(made)
    kept = [s for s in existing if s.topic in TOPICS]
    return Installed(uri=uri, created=tuple(created), kept=tuple(kept))


def subscriptions(client: ShopifyClient) -> list[WebhookSubscription]:
    """Every subscription of this app, by topic and address."""
    return sorted(client.webhook_subscriptions(), key=lambda s: (s.uri, s.topic, s.id))


def uninstall(client: ShopifyClient, base: str) -> list[WebhookSubscription]:
    """Delete this app's subscriptions at or under BASE; returns what was deleted."""
    doomed = [s for s in client.webhook_subscriptions() if s.uri == base or s.uri.startswith(base + "/")]
    for sub in doomed:
        errors = client.delete_webhook_subscription(sub.id)
        if errors:
            _refused(f"delete the {TOPICS.get(sub.topic, sub.topic)} subscription", errors)
    return doomed


def _refused(what: str, errors) -> None:
    messages = "; ".join(e.message.rstrip(".") for e in errors) or "no reason given"
    if "access denied" in messages.lower():
        raise CredentialsError(f"Shopify refused to {what}: {messages}.")
    raise ApiError(f"Shopify refused to {what}: {messages}.")


def toml(base: str) -> str:
    """The ``[webhooks]`` block of a Dev Dashboard app's TOML, for `shopify app deploy`."""
    topics = ", ".join(json.dumps(t) for t in TOPICS.values())
    return (
        "[webhooks]\n"
        f'api_version = "{API_VERSION}"\n'
        "\n"
        "[[webhooks.subscriptions]]\n"
        f"topics = [{topics}]\n"
        f"uri = {json.dumps(delivery_uri(base))}\n"
    )


def topic_name(topic: str) -> str:
    """ORDERS_CREATE -> orders/create, for people; a topic loopsync does not use is shown as Shopify gave it."""
    return TOPICS.get(topic, topic)
