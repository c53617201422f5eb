"""One request's view of the world: the app asking, the mutations it ran, and objects by global id."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from loopsync.sandbox.shopify.scopes import access_denied, effective_scopes
from loopsync.sandbox.world import (
    App,
    ExchangeLineItem,
    FulfillmentHold,
    FulfillmentOrder,
    FulfillmentOrderLineItem,
    LineItem,
    Metafield,
    Order,
    Product,
    SellingPlan,
    SellingPlanGroup,
    ShopifyReturn,
    Variant,
    WebhookSubscription,
    World,
)

TYPE_NAMES: dict[type, str] = {
    Order: "Order",
    LineItem: "LineItem",
    FulfillmentOrder: "FulfillmentOrder",
    FulfillmentOrderLineItem: "FulfillmentOrderLineItem",
    FulfillmentHold: "FulfillmentHold",
    Product: "Product",
    Variant: "ProductVariant",
    SellingPlanGroup: "SellingPlanGroup",
    SellingPlan: "SellingPlan",
    ShopifyReturn: "Return",
    ExchangeLineItem: "ExchangeLineItem",
    App: "App",
    Metafield: "Metafield",
    WebhookSubscription: "WebhookSubscription",
}


def type_name_of(value: Any) -> str | None:
    """The schema type of a world object, or of a dict that names its own ``__typename``."""
    if isinstance(value, dict):
        return value.get("__typename")
    return TYPE_NAMES.get(type(value))


@dataclass
class RequestContext:
    world: World
    app: App
    mutations: list[str] = field(default_factory=list)
    _parents: dict[str, Any] | None = None

    def require(self, field_name: str, needed: Sequence[str]) -> None:
        if not effective_scopes(self.app) & set(needed):
            raise access_denied(field_name, needed)

    @property
    def index(self) -> dict[str, Any]:
        """Every object with a global id that has no dict of its own in the world, by id, with its parent."""
        if self._parents is None:
            self._parents = _index(self.world)
        return self._parents

    def forget_index(self) -> None:
        """A mutation added or removed objects: the next lookup rebuilds the index."""
        self._parents = None

    def lookup(self, global_id: str) -> Any:
        w = self.world
        for table in (w.orders, w.fulfillment_orders, w.products, w.variants, w.selling_plan_groups, w.apps):
            if global_id in table:
                return table[global_id]
        hit = self.index.get(global_id)
        return hit[0] if hit else None

    def parent(self, global_id: str) -> Any:
        hit = self.index.get(global_id)
        return hit[1] if hit else None


def _index(w: World) -> dict[str, tuple[Any, Any]]:
    index: dict[str, tuple[Any, Any]] = {}
    for order in w.orders.values():
        for li in order.line_items:
            index[li.id] = (li, order)
        for ret in order.returns:
            index[ret.id] = (ret, order)
            for ex in ret.exchange_line_items:
                index[ex.id] = (ex, ret)
    for fo in w.fulfillment_orders.values():
        for foli in fo.line_items:
            index[foli.id] = (foli, fo)
        for hold in fo.holds:
            index[hold.id] = (hold, fo)
    for group in w.selling_plan_groups.values():
        for plan in group.plans:
            index[plan.id] = (plan, group)
    for variant in w.variants.values():
        for mf in variant.metafields.values():
            if mf.id:
                index[mf.id] = (mf, variant)
    return index
