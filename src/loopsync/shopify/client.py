"""The Shopify Admin API in loopsync's terms: scopes, orders, variants, holds, tags.

Each method shapes variables for one of ``documents``' operations, sends it
through ``Transport`` and hands the answer to ``parse``. Nested connections that
a page cut short are followed here (``_drain``), so parsing never does I/O.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import requests

from loopsync import http
from loopsync.errors import ApiError, ConfigError
from loopsync.limits import CostBucket
from loopsync.models import (
    FulfillmentOrder,
    HoldResult,
    Order,
    OrderSummary,
    UserError,
    VariantInfo,
    WebhookSubscription,
)
from loopsync.schema import API_VERSION
from loopsync.shopify import cost, parse
from loopsync.shopify import documents as docs
from loopsync.shopify.auth import Auth
from loopsync.shopify.parse import hold as _hold
from loopsync.shopify.parse import need as _need
from loopsync.shopify.parse import nodes as _nodes
from loopsync.shopify.parse import user_errors as _user_errors
from loopsync.shopify.transport import Transport

# Pre-orders hold stock that has not arrived: the delivery date is what is unknown.
# AWAITING_RETURN_ITEMS is Shopify's own exchange hold (Loop or a Flow template may
# release it), and INVENTORY_OUT_OF_STOCK says the item is sold out, which a
# pre-order is not. UNKNOWN_DELIVERY_DATE is also what pre-order apps' "UNKNOWN"
# fulfillment trigger produces, so staff see a familiar reason.
DEFAULT_HOLD_REASON = "UNKNOWN_DELIVERY_DATE"
HOLD_HANDLE_MAX = 64
# The userError code of a hold whose handle this app already placed on the fulfillment order.
DUPLICATE_HOLD_CODE = "DUPLICATE_FULFILLMENT_HOLD_HANDLE"


class ShopifyClient:
    def __init__(
        self,
        shop_domain: str,
        auth: Auth,
        *,
        base_url: str | None = None,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = http.DEFAULT_TIMEOUT,
        max_attempts: int = 6,
        max_total_wait: float = 120,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        bucket: CostBucket | None = None,
    ) -> None:
        self.shop_domain = _normalise_domain(shop_domain)
        self.auth = auth
        self.base_url = (base_url or f"https://{self.shop_domain}").rstrip("/")
        self.transport = Transport(
            self.shop_domain,
            auth,
            graphql_url=f"{self.base_url}/admin/api/{API_VERSION}/graphql.json",
            token_url=f"{self.base_url}/admin/oauth/access_token",
            session=session or http.make_session(),
            timeout=timeout,
            max_attempts=max_attempts,
            max_total_wait=max_total_wait,
            sleep=sleep,
            clock=clock,
            bucket=bucket,
        )
        # The same object the transport counts into: scan summaries and benchmarks read it here.
        self.stats = self.transport.stats

    def __repr__(self) -> str:
        return f"ShopifyClient(shop={self.shop_domain!r}, api_version={API_VERSION!r}, auth={self.auth!r})"

    def execute(self, document: str, variables: dict | None = None, operation_name: str | None = None) -> dict:
        """Send one operation of ``documents`` and return its ``data`` (see ``Transport.execute``)."""
        return self.transport.execute(document, variables, operation_name)

    # --- reads ----------------------------------------------------------------

    def granted_scopes(self) -> set[str]:
        data = self.execute(docs.GRANTED_SCOPES, {}, "LoopsyncGrantedScopes")
        installation = _need(data, "currentAppInstallation", "the app installation")
        scopes = _need(installation, "accessScopes", "the app's access scopes")
        return {_need(s, "handle", "an access scope's handle") for s in scopes if isinstance(s, dict)}

    def shop_info(self) -> dict:
        data = self.execute(docs.SHOP_INFO, {}, "LoopsyncShopInfo")
        shop = _need(data, "shop", "the shop")
        return {"name": shop.get("name"), "myshopifyDomain": shop.get("myshopifyDomain")}

    def iter_orders(self, query: str, *, sort_key: str = "UPDATED_AT", page_size: int = 50) -> Iterator[Order]:
        """Every order matching Shopify search ``query``, page by page.

        ``page_size`` is lowered to what keeps a page under the cost budget (4 today;
        see shopify.cost).
        """
        for raw in self._orders_pages(docs.ORDERS_PAGE, "LoopsyncOrdersPage", cost.orders_page_size(page_size), query, sort_key):
            yield self._order(raw)

    def iter_order_summaries(
        self,
        query: str | None = None,
        *,
        updated_since: datetime | None = None,
        sort_key: str = "UPDATED_AT",
        page_size: int = 250,
    ) -> Iterator[OrderSummary]:
        """Id, name, tags and updatedAt of every order matching ``query``: the cheap first pass.

        ``updated_since`` reads the orders Shopify updated at or after that moment,
        in Shopify's search syntax (whole seconds, UTC).
        """
        if (query is None) == (updated_since is None):
            raise ValueError("give exactly one of query, updated_since")
        if updated_since is not None:
            moment = updated_since if updated_since.tzinfo else updated_since.replace(tzinfo=UTC)
            query = f"updated_at:>='{moment.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}'"
        first = max(1, min(page_size, 250))
        for raw in self._orders_pages(docs.ORDER_SUMMARIES_PAGE, "LoopsyncOrderSummariesPage", first, query, sort_key):
            yield parse.order_summary(raw)

    def _orders_pages(self, document: str, operation: str, first: int, query: str, sort_key: str) -> Iterator[dict]:
        """Raw order nodes of ``orders(query:)``, following the cursor page by page."""
        after: str | None = None
        while True:
            variables = {"first": first, "after": after, "query": query, "sortKey": sort_key}
            connection = _need(self.execute(document, variables, operation), "orders", "the orders list")
            yield from _nodes(connection, "orders")
            page = connection.get("pageInfo") or {}
            if not page.get("hasNextPage"):
                return
            after = page.get("endCursor")
            if not after:
                raise ApiError("Shopify said more orders follow but gave no cursor to fetch them.")

    def fetch_orders(self, ids: list[str]) -> dict[str, Order | None]:
        """Orders by global id; None for ids Shopify does not know (deleted, or not an order)."""
        return {
            order_id: self._order(raw) if raw is not None else None
            for order_id, raw in self._nodes_by_id(docs.ORDERS_BY_ID, "LoopsyncOrdersById", ids,
                                                   cost.orders_page_size(250), "orders")
        }

    def find_order(self, ref: str) -> Order | None:
        """An order by name (EXC-1086-1, #1001, 1001), numeric id or global id."""
        ref = ref.strip()
        if not ref:
            return None
        if ref.startswith("gid://"):
            return self.fetch_orders([ref])[ref]
        looks_like_id = ref.isdigit() and len(ref) >= 10  # order numbers are short, ids are long
        if looks_like_id:
            found = self.fetch_orders([f"gid://shopify/Order/{ref}"])[f"gid://shopify/Order/{ref}"]
            return found or self._find_by_name(ref)
        found = self._find_by_name(ref)
        if found is None and ref.isdigit():
            return self.fetch_orders([f"gid://shopify/Order/{ref}"])[f"gid://shopify/Order/{ref}"]
        return found

    def _find_by_name(self, ref: str) -> Order | None:
        bare = ref.lstrip("#")
        if not bare:
            return None
        # Search may match loosely (1001 finds 1001-A); the exact name decides.
        value = bare if re.fullmatch(r"[A-Za-z0-9_.-]+", bare) else '"' + bare.replace('"', '\\"') + '"'
        # GUESS: Shopify's search matches names case-insensitively (exc-1 finds EXC-1, as in
        # the sandbox); the exact-name check must agree, or a name typed in lower case finds nothing.
        for order in self.iter_orders(f"name:{value}", sort_key="ID", page_size=50):
            if order.name.lstrip("#").casefold() == bare.casefold():
                return order
        return None

    def variant_info(
        self,
        variant_ids: Iterable[str],
        *,
        metafield_namespace: str = "preorder",
        metafield_key: str = "shipping_window",
    ) -> dict[str, VariantInfo]:
        found = self._nodes_by_id(docs.VARIANTS_BY_ID, "LoopsyncVariantsById", variant_ids,
                                  cost.variants_batch_size(), "variants",
                                  {"namespace": metafield_namespace, "key": metafield_key})
        return {
            variant_id: self._variant(raw) if raw is not None else VariantInfo(id=variant_id, exists=False)
            for variant_id, raw in found
        }

    def variant_group_ids(self, variant_ids: Iterable[str]) -> dict[str, tuple[str, ...] | None]:
        """The selling plan group ids of each variant, sorted; None for a variant Shopify no longer
        has, or one in more groups than the document asks for (the caller then reads it in full)."""
        result: dict[str, tuple[str, ...] | None] = {}
        for variant_id, raw in self._nodes_by_id(docs.VARIANT_GROUP_IDS, "LoopsyncVariantGroupIds", variant_ids,
                                                 cost.variant_group_ids_batch_size(), "variants"):
            groups = raw.get("sellingPlanGroups") if raw is not None else None
            if not isinstance(groups, dict) or (groups.get("pageInfo") or {}).get("hasNextPage"):
                result[variant_id] = None
                continue
            result[variant_id] = tuple(sorted({g["id"] for g in _nodes(groups, "sellingPlanGroups")
                                               if isinstance(g.get("id"), str)}))
        return result

    def _nodes_by_id(self, document: str, operation: str, ids: Iterable[str], batch: int, what: str,
                     variables: dict | None = None) -> Iterator[tuple[str, dict | None]]:
        """``nodes(ids:)`` in batches: each id once, with its node, or None where Shopify has none."""
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), batch):
            chunk = unique[start : start + batch]
            data = self.execute(document, {"ids": chunk, **(variables or {})}, operation)
            nodes = data.get("nodes")
            if not isinstance(nodes, list) or len(nodes) != len(chunk):
                raise ApiError(f"Shopify's answer to a lookup of {what} by id did not match the ids asked for.")
            for node_id, raw in zip(chunk, nodes, strict=True):
                yield node_id, raw if isinstance(raw, dict) and raw.get("id") else None

    def order_of_fulfillment_order(self, fulfillment_order_id: str) -> str | None:
        """The id of the order a fulfillment order belongs to; None when Shopify does not know it."""
        data = self.execute(docs.FULFILLMENT_ORDER_ORDER, {"id": fulfillment_order_id}, "LoopsyncFulfillmentOrderOrder")
        fo = data.get("fulfillmentOrder")
        if not isinstance(fo, dict):
            return None
        order = fo.get("order")
        return order.get("id") if isinstance(order, dict) and isinstance(order.get("id"), str) else None

    # --- writes ---------------------------------------------------------------

    def hold(
        self,
        fulfillment_order_id: str,
        *,
        handle: str,
        reason: str = DEFAULT_HOLD_REASON,
        reason_notes: str | None = None,
        line_items: list[tuple[str, int]] | None = None,
    ) -> HoldResult:
        """Place a hold. Shopify's userErrors come back in the result, not as exceptions.

        ``line_items`` holds only those fulfillment-order lines (Shopify splits the
        fulfillment order); None holds all of it.
        """
        if not handle or len(handle) > HOLD_HANDLE_MAX:
            raise ValueError(f"a hold handle must be 1 to {HOLD_HANDLE_MAX} characters")
        hold_input: dict[str, Any] = {"reason": reason, "handle": handle, "notifyMerchant": False}
        if reason_notes is not None:
            hold_input["reasonNotes"] = reason_notes
        if line_items:
            hold_input["fulfillmentOrderLineItems"] = [{"id": i, "quantity": q} for i, q in line_items]
        data = self.execute(
            docs.FULFILLMENT_ORDER_HOLD,
            {"id": fulfillment_order_id, "fulfillmentHold": hold_input},
            "LoopsyncFulfillmentOrderHold",
        )
        payload = _need(data, "fulfillmentOrderHold", "the result of placing a hold")
        raw_hold = payload.get("fulfillmentHold")
        user_errors = _user_errors(payload.get("userErrors"))
        return HoldResult(
            hold=_hold(raw_hold) if isinstance(raw_hold, dict) else None,
            fulfillment_order_id=(payload.get("fulfillmentOrder") or {}).get("id"),
            remaining_fulfillment_order_id=(payload.get("remainingFulfillmentOrder") or {}).get("id"),
            user_errors=user_errors,
            # execute() retries a hold whose answer was lost; the retry then meets the
            # first try's hold under the same handle.
            duplicate=any(e.code == DUPLICATE_HOLD_CODE for e in user_errors),
        )

    def release_hold(self, fulfillment_order_id: str, hold_ids: list[str]) -> tuple[UserError, ...]:
        # Without holdIds Shopify releases *every* hold, including other apps' and Loop's.
        if not hold_ids:
            raise ValueError("refusing to release holds without naming them: Shopify would release every hold")
        data = self.execute(
            docs.FULFILLMENT_ORDER_RELEASE_HOLD,
            {"id": fulfillment_order_id, "holdIds": list(hold_ids)},
            "LoopsyncFulfillmentOrderReleaseHold",
        )
        payload = _need(data, "fulfillmentOrderReleaseHold", "the result of releasing a hold")
        return _user_errors(payload.get("userErrors"))

    def add_tags(self, order_id: str, tags: Iterable[str]) -> tuple[UserError, ...]:
        tags = [t for t in tags if t]
        if not tags:
            return ()
        data = self.execute(docs.TAGS_ADD, {"id": order_id, "tags": tags}, "LoopsyncTagsAdd")
        payload = _need(data, "tagsAdd", "the result of adding tags")
        return _user_errors(payload.get("userErrors"))

    # --- webhook subscriptions --------------------------------------------------
    # The Admin API only ever shows and deletes the calling app's own subscriptions.

    def webhook_subscriptions(self, *, uri: str | None = None, topics: Iterable[str] | None = None
                              ) -> list[WebhookSubscription]:
        """This app's subscriptions, optionally only those at ``uri`` or for ``topics`` (enum values)."""
        found: list[WebhookSubscription] = []
        after: str | None = None
        while True:
            variables = {"first": 100, "after": after, "topics": list(topics) if topics else None, "uri": uri}
            data = self.execute(docs.WEBHOOK_SUBSCRIPTIONS_PAGE, variables, "LoopsyncWebhookSubscriptionsPage")
            connection = _need(data, "webhookSubscriptions", "the webhook subscriptions")
            found += [_subscription(raw) for raw in _nodes(connection, "webhookSubscriptions")]
            page = connection.get("pageInfo") or {}
            if not page.get("hasNextPage"):
                return found
            after = page.get("endCursor")
            if not after:
                raise ApiError("Shopify said more webhook subscriptions follow but gave no cursor to fetch them.")

    def create_webhook_subscription(self, topic: str, uri: str
                                    ) -> tuple[WebhookSubscription | None, tuple[UserError, ...]]:
        data = self.execute(docs.WEBHOOK_SUBSCRIPTION_CREATE, {"topic": topic, "uri": uri},
                            "LoopsyncWebhookSubscriptionCreate")
        payload = _need(data, "webhookSubscriptionCreate", "the result of creating a webhook subscription")
        raw = payload.get("webhookSubscription")
        return (_subscription(raw) if isinstance(raw, dict) else None), _user_errors(payload.get("userErrors"))

    def delete_webhook_subscription(self, subscription_id: str) -> tuple[UserError, ...]:
        data = self.execute(docs.WEBHOOK_SUBSCRIPTION_DELETE, {"id": subscription_id},
                            "LoopsyncWebhookSubscriptionDelete")
        payload = _need(data, "webhookSubscriptionDelete", "the result of deleting a webhook subscription")
        return _user_errors(payload.get("userErrors"))

    # --- nested pages ---------------------------------------------------------

    def _drain(self, connection: dict, document: str, operation: str, owner_id: str, path: tuple[str, ...]) -> list:
        """All nodes of a nested connection, fetching the pages the first answer left out."""
        nodes = list(_nodes(connection, path[-1]))
        page = connection.get("pageInfo") or {}
        while page.get("hasNextPage"):
            cursor = page.get("endCursor")
            if not cursor:
                raise ApiError(f"Shopify said more {path[-1]} follow for {owner_id} but gave no cursor.")
            data: Any = self.execute(document, {"id": owner_id, "after": cursor}, operation)
            for key in path:
                data = data.get(key) if isinstance(data, dict) else None
            if not isinstance(data, dict):
                raise ApiError(f"Shopify returned no {path[-1]} for {owner_id} while paging through them.")
            nodes.extend(_nodes(data, path[-1]))
            page = data.get("pageInfo") or {}
        return nodes

    def _order(self, raw: dict) -> Order:
        order_id = _need(raw, "id", "an order's id")
        line_items = self._drain(
            _need(raw, "lineItems", f"line items of {order_id}"),
            docs.ORDER_LINE_ITEMS_PAGE, "LoopsyncOrderLineItemsPage", order_id, ("order", "lineItems"),
        )
        fulfillment_orders = self._drain(
            _need(raw, "fulfillmentOrders", f"fulfillment orders of {order_id}"),
            docs.ORDER_FULFILLMENT_ORDERS_PAGE, "LoopsyncOrderFulfillmentOrdersPage", order_id,
            ("order", "fulfillmentOrders"),
        )
        returns = self._drain(
            raw.get("returns") or {"nodes": []},
            docs.ORDER_RETURNS_PAGE, "LoopsyncOrderReturnsPage", order_id, ("order", "returns"),
        )
        exchange_items: list[dict] = []
        for ret in returns:
            exchange_items += self._drain(
                ret.get("exchangeLineItems") or {"nodes": []},
                docs.RETURN_EXCHANGE_LINE_ITEMS_PAGE, "LoopsyncReturnExchangeLineItemsPage",
                _need(ret, "id", f"a return's id on {order_id}"), ("return", "exchangeLineItems"),
            )
        name = _need(raw, "name", f"the name of {order_id}")
        return parse.order(
            raw,
            line_items=line_items,
            fulfillment_orders=[self._fulfillment_order(fo, name) for fo in fulfillment_orders],
            exchange_items=exchange_items,
        )

    def _fulfillment_order(self, raw: dict, order_name: str) -> FulfillmentOrder:
        fo_id = _need(raw, "id", f"a fulfillment order's id on {order_name}")
        lines = self._drain(
            _need(raw, "lineItems", f"the lines of fulfillment order {fo_id}"),
            docs.FULFILLMENT_ORDER_LINE_ITEMS_PAGE, "LoopsyncFulfillmentOrderLineItemsPage", fo_id,
            ("fulfillmentOrder", "lineItems"),
        )
        return parse.fulfillment_order(raw, lines, order_name)

    def _variant(self, raw: dict) -> VariantInfo:
        variant_id = raw["id"]
        groups = self._drain(
            raw.get("sellingPlanGroups") or {"nodes": []},
            docs.VARIANT_SELLING_PLAN_GROUPS_PAGE, "LoopsyncVariantSellingPlanGroupsPage", variant_id,
            ("productVariant", "sellingPlanGroups"),
        )
        plans: list[dict] = []
        for group in groups:
            group_plans = group.get("sellingPlans") or {"nodes": []}
            if (group_plans.get("pageInfo") or {}).get("hasNextPage"):
                plans += self._drain(
                    group_plans, docs.SELLING_PLAN_GROUP_PLANS_PAGE, "LoopsyncSellingPlanGroupPlansPage",
                    _need(group, "id", f"a selling plan group's id on {variant_id}"),
                    ("sellingPlanGroup", "sellingPlans"),
                )
            else:
                plans += _nodes(group_plans, "sellingPlans")
        return parse.variant(raw, plans, [g["id"] for g in groups if isinstance(g.get("id"), str)])


def _subscription(raw: dict) -> WebhookSubscription:
    return WebhookSubscription(
        id=_need(raw, "id", "a webhook subscription's id"),
        topic=_need(raw, "topic", "a webhook subscription's topic"),
        uri=_need(raw, "uri", "a webhook subscription's address"),
        created_at=raw.get("createdAt"),
    )


def _normalise_domain(shop_domain: str) -> str:
    domain = shop_domain.strip().lower()
    for prefix in ("https://", "http://"):
        if domain.startswith(prefix):
            domain = domain[len(prefix) :]
    domain = domain.rstrip("/")
    if not domain or "/" in domain or " " in domain:
        raise ConfigError(f"{shop_domain!r} is not a shop domain (expected something like example.myshopify.com).")
    return domain
