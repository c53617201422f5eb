"""Plain, immutable views of what the APIs told us.

The Shopify and Loop clients turn JSON into these; ``detect`` and ``reconcile``
decide on them without knowing any wire format. Ids are Shopify global ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

# Every hold loopsync places carries this handle. Shopify makes a handle unique
# per app per fulfillment order, so a retried or overlapping hold request can
# never create a second hold: it fails with DUPLICATE_FULFILLMENT_HOLD_HANDLE.
HOLD_HANDLE = "loopsync-preorder"


@dataclass(frozen=True)
class UserError:
    message: str
    code: str | None = None


@dataclass(frozen=True)
class Hold:
    id: str
    handle: str
    held_by_us: bool  # FulfillmentHold.heldByRequestingApp
    app_name: str | None = None
    # Shown by `explain`, for every hold on the order, others' included.
    reason: str | None = None
    reason_notes: str | None = None

    @property
    def is_loopsync(self) -> bool:
        return self.held_by_us and self.handle.startswith("loopsync")


@dataclass(frozen=True)
class FulfillmentOrderLine:
    id: str  # FulfillmentOrderLineItem id
    line_item_id: str
    variant_id: str | None
    sku: str | None
    remaining_quantity: int


@dataclass(frozen=True)
class FulfillmentOrder:
    id: str
    status: str
    lines: tuple[FulfillmentOrderLine, ...]
    holds: tuple[Hold, ...] = ()
    supported_actions: frozenset[str] = frozenset()

    @property
    def our_hold(self) -> Hold | None:
        return next((h for h in self.holds if h.is_loopsync), None)

    @property
    def held_by_others(self) -> bool:
        return any(not h.is_loopsync for h in self.holds)


@dataclass(frozen=True)
class LineItem:
    id: str
    variant_id: str | None
    selling_plan_id: str | None = None


@dataclass(frozen=True)
class Order:
    id: str
    legacy_id: int
    name: str
    created_at: datetime
    tags: tuple[str, ...]
    line_items: tuple[LineItem, ...]
    fulfillment_orders: tuple[FulfillmentOrder, ...]
    # LineItem ids that Shopify created for native-exchange items (Order.returns →
    # exchangeLineItems → lineItems). Empty for ordinary and separate-order exchanges.
    exchange_line_item_ids: frozenset[str] = frozenset()
    closed: bool = False
    cancelled: bool = False


class OrderSummary(NamedTuple):
    """The scan's first-pass view of an order: enough to tell whether it is a Loop exchange.

    A scan makes one for every order in its window: a NamedTuple is built in under half the
    time of a frozen dataclass, and is as immutable.
    """

    id: str
    name: str
    tags: tuple[str, ...]
    updated_at: datetime


@dataclass(frozen=True)
class PreorderPlan:
    id: str
    description: str | None
    fulfillment_trigger: str | None
    fulfillment_exact_time: datetime | None


@dataclass(frozen=True)
class VariantInfo:
    """What Shopify says about a variant's pre-order status right now."""

    id: str
    exists: bool
    preorder_plans: tuple[PreorderPlan, ...] = ()
    shipping_window_metafield: str | None = None
    #: The selling plan groups the variant is in, sorted: what the idle scan's cheap check compares.
    group_ids: tuple[str, ...] = ()

    @property
    def on_preorder(self) -> bool:
        return bool(self.preorder_plans)


@dataclass(frozen=True)
class HoldResult:
    hold: Hold | None
    fulfillment_order_id: str | None
    remaining_fulfillment_order_id: str | None
    user_errors: tuple[UserError, ...] = ()
    #: Our handle is already on this fulfillment order: a retried request whose first
    #: try landed, or a hold placed before a crash. The hold exists; Shopify returns
    #: no hold object with this answer, so the caller reads it back.
    duplicate: bool = False


@dataclass(frozen=True)
class ThrottleStatus:
    maximum_available: float
    currently_available: float
    restore_rate: float


@dataclass
class CallStats:
    """Counters one client keeps, readable by the scan summary and benchmarks."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    waited_seconds: float = 0.0
    requested_cost: float = 0.0  # as the server calculated it (extensions.cost)
    actual_cost: float = 0.0
    estimated_cost: float = 0.0  # as loopsync estimated it before sending (shopify.cost.estimate_cost)
    by_operation: dict[str, int] = field(default_factory=dict)

    def count(self, operation: str) -> None:
        self.requests += 1
        self.by_operation[operation] = self.by_operation.get(operation, 0) + 1


# --- Loop ---------------------------------------------------------------------


@dataclass(frozen=True)
class LoopExchange:
    exchange_order_id: int | None
    exchange_order_name: str | None
    variant_id: str | None


@dataclass(frozen=True)
class LoopReturn:
    id: int
    state: str
    order_name: str | None
    provider_order_id: str | None
    exchanges: tuple[LoopExchange, ...] = ()
    created_at: str | None = None


@dataclass(frozen=True)
class LoopNote:
    id: int | None
    content: str
    created_at: str | None = None


@dataclass(frozen=True)
class WebhookSubscription:
    """One of this app's Admin API webhook subscriptions; ``topic`` is the GraphQL enum value (ORDERS_CREATE)."""

    id: str
    topic: str
    uri: str
    created_at: str | None = None
