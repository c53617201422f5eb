"""The sandbox's state: one Shopify store and the Loop Returns account beside it.

Everything the sandbox serves is read from and written to a ``World``. The
GraphQL engine (``shopify``), the Loop REST handlers (``loop_api``),
scenarios and tests all go through it, under ``world.lock``, so the HTTP server
can answer requests from several threads.

The model keeps only what loopsync and its tests need, in Shopify's and Loop's
own vocabulary: ids are global ids (``gid://shopify/Order/5001``), timestamps
are UTC datetimes rendered with second precision as Shopify does.

Why one module of about 530 lines: it is the data model (a dozen small dataclasses) and the
one revision counter every cached search depends on; split, a new field could be added
where a change to it no longer bumps the revision.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any


def gid(kind: str, number: int) -> str:
    return f"gid://shopify/{kind}/{number}"


def gid_number(global_id: str) -> int:
    return int(global_id.rsplit("/", 1)[-1])


# Every write to an order's or a return's fields, and every World.changed(), draws a fresh number
# from here: an orders search cached at one number (sandbox/shopify/search.py) is stale at any other.
# A number never repeats, so two threads writing at once still leave a number no cache was built at.
_WRITES = itertools.count(1)
_last_write = 0


def _note_write() -> None:
    global _last_write
    _last_write = next(_WRITES)


class _Tracked:
    """Assigning any field of an instance counts as a change an orders search must see."""

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        _note_write()


def iso(ts: datetime) -> str:
    """Shopify's DateTime format: UTC, second precision, trailing Z."""
    return ts.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- Shopify -----------------------------------------------------------------


@dataclass
class App:
    """An app installed on the store. Tokens and client credentials belong to it."""

    id: str
    title: str
    scopes: list[str]
    static_tokens: set[str] = field(default_factory=set)
    client_id: str | None = None
    client_secret: str | None = None
    # A custom app made in the admin has an "API secret key" besides its token: Shopify
    # signs that app's webhooks with it. None: the deterministic default_api_secret(title).
    api_secret: str | None = None

    @property
    def webhook_secret(self) -> str:
        """What Shopify signs this app's deliveries with: its client secret, else its API secret key."""
        return self.client_secret or self.api_secret or default_api_secret(self.title)


def default_api_secret(title: str) -> str:
    """An app's API secret key when a scenario names none: derived from the title, so tests can know it."""
    return "shpss_sandbox_" + hashlib.sha256(title.encode()).hexdigest()[:24]


@dataclass
class WebhookSubscription:
    """One app's Admin API subscription: ``topic`` is the GraphQL enum value (ORDERS_CREATE)."""

    id: str
    app_id: str
    topic: str
    uri: str
    created_at: datetime
    updated_at: datetime
    format: str = "JSON"
    # Failed attempts in a row; Shopify deletes the subscription when too many fail (sandbox/webhooks.py).
    consecutive_failures: int = 0


@dataclass
class IssuedToken:
    token: str
    app_id: str
    expires_at: datetime | None  # None: a static (legacy custom app) token


@dataclass
class SellingPlan:
    id: str
    name: str
    category: str = "PRE_ORDER"  # SellingPlanCategory
    description: str | None = None
    # SellingPlanFixedDeliveryPolicy
    fulfillment_trigger: str = "UNKNOWN"  # ANCHOR | ASAP | EXACT_TIME | UNKNOWN
    fulfillment_exact_time: datetime | None = None


@dataclass
class SellingPlanGroup:
    id: str
    name: str
    merchant_code: str
    plans: list[SellingPlan]
    variant_ids: set[str] = field(default_factory=set)
    app_id: str | None = None


@dataclass
class Metafield:
    namespace: str
    key: str
    value: str
    type: str = "single_line_text_field"
    id: str = ""


@dataclass
class Variant:
    id: str
    product_id: str
    title: str
    sku: str | None
    price: str = "0.00"
    metafields: dict[tuple[str, str], Metafield] = field(default_factory=dict)


@dataclass
class Product:
    id: str
    title: str
    handle: str
    variant_ids: list[str] = field(default_factory=list)


@dataclass
class LineItem:
    id: str
    variant_id: str | None
    title: str
    sku: str | None
    quantity: int
    selling_plan_id: str | None = None  # the plan the buyer chose at checkout


@dataclass
class FulfillmentOrderLineItem:
    id: str
    line_item_id: str
    total_quantity: int
    remaining_quantity: int


@dataclass
class FulfillmentHold:
    id: str
    fulfillment_order_id: str
    app_id: str | None  # None: placed by a merchant in the admin
    handle: str
    reason: str
    reason_notes: str | None
    created_at: datetime
    # The world's clock to the microsecond when the hold was placed (createdAt is rounded to the
    # second, as at Shopify): what latency measurements compare with create_exchange's created_at_exact.
    placed_at: datetime | None = None


@dataclass
class FulfillmentOrder:
    id: str
    order_id: str
    status: str  # FulfillmentOrderStatus: OPEN IN_PROGRESS ON_HOLD SCHEDULED INCOMPLETE CLOSED CANCELLED
    line_items: list[FulfillmentOrderLineItem]
    created_at: datetime
    updated_at: datetime
    holds: list[FulfillmentHold] = field(default_factory=list)
    request_status: str = "UNSUBMITTED"
    # The status to go back to when the last hold is released.
    status_before_hold: str = "OPEN"


@dataclass
class ExchangeLineItem:
    """A native Shopify exchange item on a Return (Loop's "native exchanges" mode)."""

    id: str
    line_item_id: str | None  # the LineItem the exchange created on the order, once processed
    variant_id: str
    quantity: int
    title: str = ""
    sku: str | None = None


@dataclass
class ShopifyReturn(_Tracked):
    id: str
    name: str
    status: str  # ReturnStatus: REQUESTED OPEN CLOSED DECLINED CANCELED
    exchange_line_items: list[ExchangeLineItem] = field(default_factory=list)
    created_at: datetime | None = None


@dataclass
class Order(_Tracked):
    id: str
    name: str
    created_at: datetime
    updated_at: datetime
    line_items: list[LineItem]
    tags: list[str] = field(default_factory=list)
    source_name: str | None = "web"
    app_name: str | None = "Online Store"
    custom_attributes: list[tuple[str, str]] = field(default_factory=list)
    fulfillment_order_ids: list[str] = field(default_factory=list)
    returns: list[ShopifyReturn] = field(default_factory=list)
    closed: bool = False
    cancelled_at: datetime | None = None
    test: bool = False


# --- Loop Returns ------------------------------------------------------------


@dataclass
class LoopNote:
    id: int
    content: str
    created_at: datetime


@dataclass
class LoopExchange:
    exchange_id: str
    exchange_order_id: int | None  # Shopify numeric order id of the exchange order
    exchange_order_name: str | None
    product_id: str
    variant_id: str
    sku: str
    title: str
    price: str = "0.00"
    out_of_stock: bool = False


@dataclass
class LoopWebhook:
    """A webhook made on Loop's Developer Tools page: a topic, one trigger, an address."""

    id: int
    trigger: str  # return.created | return.updated | ...
    url: str
    topic: str = "return"
    status: str = "active"


@dataclass
class LoopReturn:
    id: int
    state: str  # open | closed | cancelled | expired | review
    created_at: datetime
    updated_at: datetime
    order_id: int  # Loop's own order id
    order_name: str  # "#1086"
    provider_order_id: str  # Shopify numeric id of the original order, as a string
    customer: str
    exchanges: list[LoopExchange] = field(default_factory=list)
    notes: list[LoopNote] = field(default_factory=list)
    outcome: str = "exchange"


# --- the world ---------------------------------------------------------------


@dataclass
class LogEntry:
    at: datetime
    api: str  # "shopify" | "loop" | "oauth" | "sandbox"
    method: str
    path: str
    status: int
    operation: str | None = None  # GraphQL operation name or mutation field(s)
    mutations: list[str] = field(default_factory=list)
    fault: str | None = None
    # A GraphQL answer's extensions.cost figures, and whether it was THROTTLED: what a benchmark
    # of a process it cannot look into (`loopsync serve`) reads its Shopify costs from.
    requested_cost: float | None = None
    actual_cost: float | None = None
    throttled: bool = False


class World:
    """The whole mutable state. Take ``lock`` around every read-modify-write."""

    def __init__(self, *, now: datetime | None = None) -> None:
        self.lock = threading.RLock()
        self._ids = itertools.count(5_000_000_001)
        self._note_ids = itertools.count(9001)
        # A fixed "now" makes scenarios and cassettes reproducible; advance() moves it.
        self._frozen_now: datetime | None = now
        self._offset = timedelta(0)

        self.shop_name = "Sandbox Store"
        self.shop_domain = "sandbox-store.myshopify.com"
        self.plan = "Basic"
        # Shopify's Standard-plan GraphQL bucket: 2000 points, 100 restored per second.
        self.bucket_size = 2000.0
        self.restore_rate = 100.0
        # app id -> (points available, when last computed); kept by sandbox/shopify/cost.py
        self.cost_buckets: dict[str, tuple[float, datetime]] = {}

        self.apps: dict[str, App] = {}
        self.tokens: dict[str, IssuedToken] = {}
        self.token_ttl = timedelta(hours=24)

        self.products: dict[str, Product] = {}
        self.variants: dict[str, Variant] = {}
        self.selling_plan_groups: dict[str, SellingPlanGroup] = {}
        self.orders: dict[str, Order] = {}
        self.fulfillment_orders: dict[str, FulfillmentOrder] = {}

        self.loop_api_keys: dict[str, set[str]] = {}  # key -> granted scopes ("returns", ...)
        self.loop_returns: dict[int, LoopReturn] = {}
        self.loop_rate_per_minute = 300
        # How GET .../notes answers: Loop's documented {"notes": [...]}, or the bare
        # array with "Y-m-d H:i:s" times that public fixtures show ("bare_array").
        self.loop_notes_shape = "documented"

        self.webhook_subscriptions: dict[str, WebhookSubscription] = {}
        self.loop_webhooks: dict[int, LoopWebhook] = {}
        # Loop shows one webhook secret per shop on its Developer Tools page and signs every delivery with it.
        self.loop_webhook_secret = "loop_sandbox_webhook_secret"
        # Called as listener(topic, build) on every change a webhook topic reports (see emit);
        # the delivery engine (sandbox/webhooks.py) is the one listener a running sandbox has.
        self.listeners: list[Callable[[str, Callable[[App], dict[str, Any]]], None]] = []
        # The scenario's `webhooks:` switches (a webhooks.Switches), read when the engine starts.
        self.webhook_switches: Any = None

        self.log: list[LogEntry] = []
        # Orders searches by (query, sort, reverse[, now]): the revision they were built at, and the
        # matching orders sorted with their keys. Kept by sandbox/shopify/search.py.
        self.search_cache: dict[tuple, tuple] = {}

    # -- time and ids --

    def now(self) -> datetime:
        base = self._frozen_now if self._frozen_now is not None else datetime.now(UTC)
        # Shopify's timestamps have second precision; equal timestamps are real.
        return (base + self._offset).replace(microsecond=0)

    def clock(self) -> datetime:
        """``now()`` without the second rounding: rate-limit buckets refill continuously."""
        base = self._frozen_now if self._frozen_now is not None else datetime.now(UTC)
        return base + self._offset

    def advance(self, delta: timedelta) -> None:
        with self.lock:
            self._offset += delta

    @property
    def offset(self) -> timedelta:
        """How far ``advance`` has moved this world's clock in total."""
        return self._offset

    def freeze(self, at: datetime) -> None:
        """Stop the clock at ``at``: from now on only ``advance`` moves it."""
        with self.lock:
            self._frozen_now = at
            self._offset = timedelta(0)

    def changed(self) -> None:
        """Say that an order or return changed in place (``order.tags.append``), where no field
        was assigned: assignments are seen on their own (``_Tracked``)."""
        _note_write()

    @property
    def revision(self) -> tuple[int, int]:
        """Differs whenever anything an orders search reads may have changed."""
        return _last_write, len(self.orders)

    def next_id(self) -> int:
        return next(self._ids)

    def new_gid(self, kind: str) -> str:
        return gid(kind, self.next_id())

    def next_note_id(self) -> int:
        return next(self._note_ids)

    # -- lookups used across the sandbox --

    def app_for_token(self, token: str) -> App | None:
        issued = self.tokens.get(token)
        if issued is None:
            return None
        if issued.expires_at is not None and issued.expires_at <= self.now():
            return None
        return self.apps.get(issued.app_id)

    def order_by_name(self, name: str) -> Order | None:
        wanted = name if name.startswith("#") or not name[:1].isdigit() else f"#{name}"
        for order in self.orders.values():
            if order.name == wanted or order.name == name:
                return order
        return None

    def preorder_plans_for_variant(self, variant_id: str) -> list[SellingPlan]:
        return [
            plan
            for group in self.selling_plan_groups.values()
            if variant_id in group.variant_ids
            for plan in group.plans
            if plan.category == "PRE_ORDER"
        ]

    def touch_order(self, order_id: str) -> None:
        """Mutations bump the order's updatedAt, as Shopify does, and ``orders/updated`` fires."""
        self.orders[order_id].updated_at = self.now()
        from loopsync.sandbox.webhook_payloads import order_payload

        order = self.orders[order_id]
        self.emit("orders/updated", lambda _app: order_payload(self, order))

    def emit(self, topic: str, build: Callable[[App], dict[str, Any]]) -> None:
        """Tell the listeners that something ``topic`` reports just happened; call it under ``lock``.

        ``build(app)`` makes the payload for a subscriber (some payloads depend on who asks,
        like ``held_by_requesting_app``); listeners call it at once, so the payload is the
        world as it is at the moment of the change, as Shopify's are.
        """
        for listener in list(self.listeners):
            listener(topic, build)

    # -- world changes a real store goes through, for tests and the demo --

    def take_off_preorder(self, variant_id: str) -> None:
        """The pre-order ships: the variant leaves every PRE_ORDER selling plan group.

        Like Shopify, this does not touch orders' updatedAt: a poller that only
        looks at recently updated orders will not see it.
        """
        from loopsync.sandbox.webhook_payloads import selling_plan_group_payload

        with self.lock:
            for group in self.selling_plan_groups.values():
                if any(p.category == "PRE_ORDER" for p in group.plans) and variant_id in group.variant_ids:
                    group.variant_ids.discard(variant_id)
                    # GUESS: a variant leaving a group fires selling_plan_groups/update (UNCONFIRMED in the facts).
                    self.emit("selling_plan_groups/update",
                              lambda _app, g=group: selling_plan_group_payload(self, g))

    def record(self, entry: LogEntry) -> None:
        with self.lock:
            self.log.append(entry)

    # -- inspection --

    def holds(self, *, app_id: str | None = None) -> list[FulfillmentHold]:
        with self.lock:
            return [
                hold
                for fo in self.fulfillment_orders.values()
                for hold in fo.holds
                if app_id is None or hold.app_id == app_id
            ]

    def mutation_count(self) -> int:
        with self.lock:
            return sum(len(e.mutations) for e in self.log)

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready view of what tests assert on (served at GET /_sandbox/state)."""
        with self.lock:
            return {
                "now": iso(self.now()),
                "orders": [
                    {
                        "id": o.id,
                        "name": o.name,
                        "tags": list(o.tags),
                        "updatedAt": iso(o.updated_at),
                        "fulfillmentOrders": [
                            _fulfillment_order_json(self.fulfillment_orders[i]) for i in o.fulfillment_order_ids
                        ],
                    }
                    for o in self.orders.values()
                ],
                "preorderVariants": sorted(
                    v for g in self.selling_plan_groups.values()
                    if any(p.category == "PRE_ORDER" for p in g.plans)
                    for v in g.variant_ids
                ),
                "loopReturns": [
                    {
                        "id": r.id,
                        "state": r.state,
                        "orderName": r.order_name,
                        "notes": [{"id": n.id, "content": n.content} for n in r.notes],
                    }
                    for r in self.loop_returns.values()
                ],
                "log": [
                    {
                        "api": e.api,
                        "method": e.method,
                        "path": e.path,
                        "status": e.status,
                        "operation": e.operation,
                        "mutations": e.mutations,
                        "fault": e.fault,
                    }
                    for e in self.log
                ],
            }


def _fulfillment_order_json(fo: FulfillmentOrder) -> dict[str, Any]:
    return {
        "id": fo.id,
        "status": fo.status,
        "lineItems": [
            {"lineItemId": li.line_item_id, "remainingQuantity": li.remaining_quantity} for li in fo.line_items
        ],
        "holds": [
            {"id": h.id, "handle": h.handle, "appId": h.app_id, "reason": h.reason, "reasonNotes": h.reason_notes}
            for h in fo.holds
        ],
    }
