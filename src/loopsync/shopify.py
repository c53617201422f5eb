"""Shopify Admin GraphQL client: auth, cost-aware pacing, retries, and parsing into models.

Every document comes from ``shopify_documents``. ``execute`` is the one place a
request is made; the high-level methods only shape variables and parse answers.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from loopsync import http
from loopsync import shopify_documents as docs
from loopsync.errors import ApiError, ConfigError, CredentialsError, GraphQLError, TransientApiError
from loopsync.models import (
    CallStats,
    FulfillmentOrder,
    FulfillmentOrderLine,
    Hold,
    HoldResult,
    LineItem,
    Order,
    OrderSummary,
    PreorderPlan,
    ThrottleStatus,
    UserError,
    VariantInfo,
)
from loopsync.schema import API_VERSION

# Renew a client-credentials token this long before Shopify says it expires, so a
# scan that starts just before expiry does not meet a 401 halfway through.
RENEW_MARGIN = timedelta(minutes=5)
# Pre-orders hold stock that has not arrived: the delivery date is what is unknown.
# AWAITING_RETURN_ITEMS is Shopify's own exchange hold (Loop or a Flow template may
# release it), and INVENTORY_OUT_OF_STOCK says the item is sold out, which a
# pre-order is not. UNKNOWN_DELIVERY_DATE is also what pre-order apps' "UNKNOWN"
# fulfillment trigger produces, so staff see a familiar reason.
DEFAULT_HOLD_REASON = "UNKNOWN_DELIVERY_DATE"
HOLD_HANDLE_MAX = 64
# The userError code of a hold whose handle this app already placed on the fulfillment order.
DUPLICATE_HOLD_CODE = "DUPLICATE_FULFILLMENT_HOLD_HANDLE"
# GUESS: Shopify does not document how long to wait when a THROTTLED answer has no
# throttleStatus (seen on some stores); two seconds restores 200 points on Standard.
THROTTLE_FALLBACK_WAIT = 2.0


# --- auth ---------------------------------------------------------------------


class StaticToken:
    """An Admin API access token that never changes (a custom app's token)."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("an access token is required")
        self._token = token

    @property
    def token(self) -> str:
        return self._token

    def secrets(self) -> tuple[str, ...]:
        return (self._token,)

    def __repr__(self) -> str:
        return "StaticToken(<redacted>)"


class ClientCredentials:
    """A Dev Dashboard app's client id and secret, exchanged for short-lived tokens.

    ``cached_token``/``cached_expiry`` come from the caller's store; ``on_new_token``
    is called with (token, expires_at) after each exchange so it can persist them.
    """

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        cached_token: str | None = None,
        cached_expiry: datetime | None = None,
        on_new_token: Callable[[str, datetime | None], None] | None = None,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not client_id or not client_secret:
            raise ValueError("a client id and a client secret are required")
        self.client_id = client_id
        self._client_secret = client_secret
        self._token = cached_token
        self._expires_at = cached_expiry
        self._on_new_token = on_new_token
        self._now = now

    def usable_token(self) -> str | None:
        """The cached token, unless it is missing or expires within RENEW_MARGIN."""
        if not self._token:
            return None
        if self._expires_at is not None:
            expires = self._expires_at if self._expires_at.tzinfo else self._expires_at.replace(tzinfo=UTC)
            if expires - self._now() <= RENEW_MARGIN:
                return None
        return self._token

    def form(self) -> dict[str, str]:
        return {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._client_secret,
        }

    def accept(self, token: str, expires_in: float | None) -> None:
        # GUESS: an answer without expires_in is treated as not expiring; a later 401
        # still renews it.
        self._token = token
        self._expires_at = self._now() + timedelta(seconds=expires_in) if expires_in else None
        if self._on_new_token is not None:
            self._on_new_token(token, self._expires_at)

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self._client_secret, self._token) if s)

    def __repr__(self) -> str:
        return f"ClientCredentials(client_id={self.client_id!r}, client_secret=<redacted>)"


Auth = StaticToken | ClientCredentials


class _Unauthorized(Exception):
    """Shopify answered 401: the token is wrong or expired."""


# --- client -------------------------------------------------------------------


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
    ) -> None:
        self.shop_domain = _normalise_domain(shop_domain)
        self.auth = auth
        self.base_url = (base_url or f"https://{self.shop_domain}").rstrip("/")
        self.graphql_url = f"{self.base_url}/admin/api/{API_VERSION}/graphql.json"
        self.token_url = f"{self.base_url}/admin/oauth/access_token"
        self.session = session or http.make_session()
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.max_total_wait = max_total_wait
        self.sleep = sleep
        self.clock = clock
        self.stats = CallStats()
        self.throttle: ThrottleStatus | None = None
        self._throttle_seen_at = 0.0

    def __repr__(self) -> str:
        return f"ShopifyClient(shop={self.shop_domain!r}, api_version={API_VERSION!r}, auth={self.auth!r})"

    # --- transport ------------------------------------------------------------

    def execute(self, document: str, variables: dict | None = None, operation_name: str | None = None) -> dict:
        """Send one GraphQL operation and return its ``data``.

        Raises CredentialsError, GraphQLError, TransientApiError (retries spent) or ApiError.
        Mutations are retried like queries because each one loopsync sends is safe to
        repeat: a second hold with the same handle fails with DUPLICATE_FULFILLMENT_HOLD_HANDLE,
        tagsAdd adds to a set, and a release names its hold ids.
        """
        operation = operation_name or _operation_name(document)
        variables = variables or {}
        estimated = docs.estimate_cost(document, variables)
        renewed = False
        while True:
            token = self._access_token(force=False)
            try:
                return http.call_with_retries(
                    lambda: self._attempt(document, variables, operation, token, estimated),  # noqa: B023
                    stats=self.stats,
                    max_attempts=self.max_attempts,
                    max_total_wait=self.max_total_wait,
                    sleep=self.sleep,
                    clock=self.clock,
                )
            except _Unauthorized:
                if renewed or not isinstance(self.auth, ClientCredentials):
                    raise CredentialsError(
                        "Shopify rejected the access token (HTTP 401): check the app is installed on "
                        f"{self.shop_domain} and the token or client credentials are current."
                    ) from None
                self._access_token(force=True)
                renewed = True

    def _attempt(self, document: str, variables: dict, operation: str, token: str, estimated: int) -> dict:
        self._pace(estimated)
        self.stats.count(operation)
        self.stats.estimated_cost += estimated
        try:
            response = self.session.post(
                self.graphql_url,
                json={"query": document, "variables": variables, "operationName": operation},
                headers={"X-Shopify-Access-Token": token, "Content-Type": "application/json"},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise http.Retry(
                TransientApiError(f"Shopify could not be reached ({operation}): {http.describe_request_error(exc)}.")
            ) from None
        status = response.status_code
        if status == 401:
            raise _Unauthorized()
        if status == 403:
            raise CredentialsError(
                f"Shopify refused {operation} (HTTP 403): the app may be uninstalled or lack a needed scope."
            )
        if status == 404:
            raise ConfigError(f"Shopify answered 404 for {self.graphql_url}: check the shop domain.")
        if status == 429:
            wait = http.parse_retry_after(response.headers.get("Retry-After"))
            raise http.Retry(
                TransientApiError(f"Shopify kept throttling {operation} (HTTP 429)."),
                wait=wait if wait is not None else THROTTLE_FALLBACK_WAIT,
                throttled=True,
            )
        if status >= 500:
            raise http.Retry(TransientApiError(f"Shopify kept failing on {operation} (HTTP {status})."))
        ok, body = http.parse_json(response)
        if not ok or not isinstance(body, dict):
            if status == 200:
                raise http.Retry(TransientApiError(f"Shopify sent an unreadable answer to {operation}."))
            raise ApiError(f"Shopify answered {operation} with HTTP {status} and no readable body.")
        self._record_cost(body.get("extensions"))
        errors = body.get("errors")
        if errors:
            if _is_throttled(errors):
                raise http.Retry(
                    TransientApiError(f"Shopify kept throttling {operation}."),
                    wait=self._throttle_wait(body.get("extensions"), estimated),
                    throttled=True,
                )
            first = _first_error_message(errors)
            partial = " (some data came back, but the answer is incomplete)" if body.get("data") else ""
            message = http.redact(f"Shopify rejected {operation}: {first}{partial}.", self.auth.secrets())
            raise GraphQLError(message, errors if isinstance(errors, list) else [{"message": str(errors)}])
        if status != 200:
            raise ApiError(f"Shopify answered {operation} with HTTP {status}.")
        data = body.get("data")
        if not isinstance(data, dict):
            raise ApiError(f"Shopify's answer to {operation} carried no data.")
        return data

    def _access_token(self, *, force: bool) -> str:
        if isinstance(self.auth, StaticToken):
            return self.auth.token
        token = None if force else self.auth.usable_token()
        if token:
            return token
        return http.call_with_retries(
            self._fetch_token,
            stats=self.stats,
            max_attempts=self.max_attempts,
            max_total_wait=self.max_total_wait,
            sleep=self.sleep,
            clock=self.clock,
        )

    def _fetch_token(self) -> str:
        assert isinstance(self.auth, ClientCredentials)
        self.stats.count("oauth/access_token")
        try:
            response = self.session.post(self.token_url, data=self.auth.form(), timeout=self.timeout)
        except requests.RequestException as exc:
            raise http.Retry(
                TransientApiError(f"Shopify's token endpoint could not be reached: {http.describe_request_error(exc)}.")
            ) from None
        if response.status_code == 429 or response.status_code >= 500:
            raise http.Retry(
                TransientApiError(f"Shopify's token endpoint kept failing (HTTP {response.status_code})."),
                wait=http.parse_retry_after(response.headers.get("Retry-After")),
            )
        ok, body = http.parse_json(response)
        if response.status_code != 200 or not ok or not isinstance(body, dict) or not body.get("access_token"):
            detail = ""
            if isinstance(body, dict):
                description = body.get("error_description") or http.error_message_from_body(body)
                detail = f": {str(description).rstrip('.')}" if description else ""
            message = (
                f"Shopify rejected the app's client credentials (HTTP {response.status_code}){detail}. "
                "Check the client id and secret, and that the app is installed on the store."
            )
            raise CredentialsError(http.redact(message, self.auth.secrets()))
        expires_in = body.get("expires_in")
        self.auth.accept(body["access_token"], float(expires_in) if isinstance(expires_in, int | float) else None)
        return body["access_token"]

    # --- cost -----------------------------------------------------------------

    def _record_cost(self, extensions: Any) -> None:
        cost = extensions.get("cost") if isinstance(extensions, dict) else None
        if not isinstance(cost, dict):
            return
        self.stats.requested_cost += _number(cost.get("requestedQueryCost")) or 0.0
        self.stats.actual_cost += _number(cost.get("actualQueryCost")) or 0.0
        status = cost.get("throttleStatus")
        if isinstance(status, dict):
            maximum = _number(status.get("maximumAvailable"))
            available = _number(status.get("currentlyAvailable"))
            rate = _number(status.get("restoreRate"))
            if maximum is not None and available is not None and rate:
                self.throttle = ThrottleStatus(maximum, available, rate)
                self._throttle_seen_at = self.clock()

    def available_now(self) -> float | None:
        """Points Shopify should have restored by now, from the last throttleStatus seen."""
        if self.throttle is None:
            return None
        elapsed = max(self.clock() - self._throttle_seen_at, 0.0)
        return min(self.throttle.maximum_available, self.throttle.currently_available + elapsed * self.throttle.restore_rate)

    def _pace(self, estimated: int) -> None:
        """Sleep just long enough for the bucket to hold ``estimated`` points, instead of being throttled."""
        available = self.available_now()
        if available is None or self.throttle is None or estimated <= available:
            return
        needed = min(estimated, self.throttle.maximum_available)
        wait = min((needed - available) / self.throttle.restore_rate, http.MAX_SINGLE_WAIT)
        if wait > 0:
            self.stats.waited_seconds += wait
            self.sleep(wait)

    def _throttle_wait(self, extensions: Any, estimated: int) -> float:
        cost = extensions.get("cost") if isinstance(extensions, dict) else None
        cost = cost if isinstance(cost, dict) else {}
        requested = _number(cost.get("requestedQueryCost")) or float(estimated)
        status = cost.get("throttleStatus")
        if not isinstance(status, dict):
            return THROTTLE_FALLBACK_WAIT
        maximum = _number(status.get("maximumAvailable"))
        available = _number(status.get("currentlyAvailable"))
        rate = _number(status.get("restoreRate"))
        if available is None or not rate:
            return THROTTLE_FALLBACK_WAIT
        if maximum is not None and requested > maximum:
            raise ApiError(
                f"A query asks for {requested:.0f} cost points but this store's bucket holds only {maximum:.0f}."
            )
        # The bucket held less than the request when Shopify looked; wait for the difference.
        return max(requested - available, 0.0) / rate or 1.0 / rate

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
        see shopify_documents).
        """
        for raw in self._orders_pages(docs.ORDERS_PAGE, "LoopsyncOrdersPage", docs.orders_page_size(page_size), query, sort_key):
            yield self._order(raw)

    def iter_order_summaries(
        self, query: str, *, sort_key: str = "UPDATED_AT", page_size: int = 250
    ) -> Iterator[OrderSummary]:
        """Id, name, tags and updatedAt of every order matching ``query``: the cheap first pass."""
        first = max(1, min(page_size, 250))
        for raw in self._orders_pages(docs.ORDER_SUMMARIES_PAGE, "LoopsyncOrderSummariesPage", first, query, sort_key):
            yield OrderSummary(
                id=_need(raw, "id", "an order"),
                name=_need(raw, "name", "an order"),
                tags=tuple(raw.get("tags") or ()),
                updated_at=_datetime(_need(raw, "updatedAt", "an order"), "an order's updatedAt"),
            )

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
        unique = list(dict.fromkeys(ids))
        result: dict[str, Order | None] = {}
        batch = docs.orders_page_size(250)
        for start in range(0, len(unique), batch):
            chunk = unique[start : start + batch]
            data = self.execute(docs.ORDERS_BY_ID, {"ids": chunk}, "LoopsyncOrdersById")
            nodes = data.get("nodes")
            if not isinstance(nodes, list) or len(nodes) != len(chunk):
                raise ApiError("Shopify's answer to an orders-by-id lookup did not match the ids asked for.")
            for order_id, raw in zip(chunk, nodes, strict=True):
                result[order_id] = self._order(raw) if isinstance(raw, dict) and raw.get("id") else None
        return result

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
        for order in self.iter_orders(f"name:{value}", sort_key="ID", page_size=50):
            if order.name.lstrip("#") == bare:
                return order
        return None

    def variant_info(
        self,
        variant_ids: Iterable[str],
        *,
        metafield_namespace: str = "preorder",
        metafield_key: str = "shipping_window",
    ) -> dict[str, VariantInfo]:
        unique = list(dict.fromkeys(variant_ids))
        result: dict[str, VariantInfo] = {}
        batch = docs.variants_batch_size()
        for start in range(0, len(unique), batch):
            chunk = unique[start : start + batch]
            variables = {"ids": chunk, "namespace": metafield_namespace, "key": metafield_key}
            data = self.execute(docs.VARIANTS_BY_ID, variables, "LoopsyncVariantsById")
            nodes = data.get("nodes")
            if not isinstance(nodes, list) or len(nodes) != len(chunk):
                raise ApiError("Shopify's answer to a variants-by-id lookup did not match the ids asked for.")
            for variant_id, raw in zip(chunk, nodes, strict=True):
                if not isinstance(raw, dict) or not raw.get("id"):
                    result[variant_id] = VariantInfo(id=variant_id, exists=False)
                else:
                    result[variant_id] = self._variant(raw)
        return result

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

    # --- parsing --------------------------------------------------------------

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
        exchange_ids: set[str] = set()
        for ret in returns:
            exchange_items = self._drain(
                ret.get("exchangeLineItems") or {"nodes": []},
                docs.RETURN_EXCHANGE_LINE_ITEMS_PAGE, "LoopsyncReturnExchangeLineItemsPage",
                _need(ret, "id", f"a return's id on {order_id}"), ("return", "exchangeLineItems"),
            )
            for item in exchange_items:
                for line in item.get("lineItems") or ():
                    if isinstance(line, dict) and line.get("id"):
                        exchange_ids.add(line["id"])
        name = _need(raw, "name", f"the name of {order_id}")
        return Order(
            id=order_id,
            legacy_id=_int(_need(raw, "legacyResourceId", f"the legacy id of {name}"), f"the legacy id of {name}"),
            name=name,
            created_at=_datetime(_need(raw, "createdAt", f"the creation time of {name}"), name),
            updated_at=_datetime(_need(raw, "updatedAt", f"the update time of {name}"), name),
            tags=tuple(t for t in raw.get("tags") or () if isinstance(t, str)),
            line_items=tuple(_line_item(li, name) for li in line_items),
            fulfillment_orders=tuple(self._fulfillment_order(fo, name) for fo in fulfillment_orders),
            source_name=raw.get("sourceName"),
            app_name=(raw.get("app") or {}).get("name"),
            custom_attributes=tuple(
                (a["key"], a.get("value")) for a in raw.get("customAttributes") or () if isinstance(a, dict) and a.get("key")
            ),
            exchange_line_item_ids=frozenset(exchange_ids),
            closed=bool(raw.get("closed")),
            cancelled=raw.get("cancelledAt") is not None,
        )

    def _fulfillment_order(self, raw: dict, order_name: str) -> FulfillmentOrder:
        fo_id = _need(raw, "id", f"a fulfillment order's id on {order_name}")
        lines = self._drain(
            _need(raw, "lineItems", f"the lines of fulfillment order {fo_id}"),
            docs.FULFILLMENT_ORDER_LINE_ITEMS_PAGE, "LoopsyncFulfillmentOrderLineItemsPage", fo_id,
            ("fulfillmentOrder", "lineItems"),
        )
        return FulfillmentOrder(
            id=fo_id,
            status=_need(raw, "status", f"the status of fulfillment order {fo_id}"),
            lines=tuple(_fulfillment_order_line(line, fo_id) for line in lines),
            holds=tuple(_hold(h) for h in raw.get("fulfillmentHolds") or () if isinstance(h, dict)),
            supported_actions=frozenset(
                a["action"] for a in raw.get("supportedActions") or () if isinstance(a, dict) and a.get("action")
            ),
        )

    def _variant(self, raw: dict) -> VariantInfo:
        variant_id = raw["id"]
        groups = self._drain(
            raw.get("sellingPlanGroups") or {"nodes": []},
            docs.VARIANT_SELLING_PLAN_GROUPS_PAGE, "LoopsyncVariantSellingPlanGroupsPage", variant_id,
            ("productVariant", "sellingPlanGroups"),
        )
        plans: list[PreorderPlan] = []
        seen: set[str] = set()
        for group in groups:
            group_plans = group.get("sellingPlans") or {"nodes": []}
            if (group_plans.get("pageInfo") or {}).get("hasNextPage"):
                group_plans_nodes = self._drain(
                    group_plans, docs.SELLING_PLAN_GROUP_PLANS_PAGE, "LoopsyncSellingPlanGroupPlansPage",
                    _need(group, "id", f"a selling plan group's id on {variant_id}"),
                    ("sellingPlanGroup", "sellingPlans"),
                )
            else:
                group_plans_nodes = list(_nodes(group_plans, "sellingPlans"))
            for plan in group_plans_nodes:
                if plan.get("category") != "PRE_ORDER" or not plan.get("id") or plan["id"] in seen:
                    continue
                seen.add(plan["id"])
                policy = plan.get("deliveryPolicy") or {}
                exact = policy.get("fulfillmentExactTime")
                plans.append(
                    PreorderPlan(
                        id=plan["id"],
                        name=plan.get("name") or "",
                        description=plan.get("description"),
                        fulfillment_trigger=policy.get("fulfillmentTrigger"),
                        fulfillment_exact_time=_datetime(exact, variant_id) if exact else None,
                    )
                )
        return VariantInfo(
            id=variant_id,
            exists=True,
            sku=raw.get("sku"),
            title=raw.get("title"),
            preorder_plans=tuple(plans),
            shipping_window_metafield=(raw.get("metafield") or {}).get("value"),
        )


# --- parsing helpers ----------------------------------------------------------


def _need(obj: Any, key: str, what: str) -> Any:
    """obj[key], or an ApiError naming what was missing (never an AttributeError)."""
    value = obj.get(key) if isinstance(obj, dict) else None
    if value is None:
        raise ApiError(f"Shopify's answer left out {what}; loopsync cannot continue without it.")
    return value


def _nodes(connection: Any, what: str) -> Iterator[dict]:
    if not isinstance(connection, dict):
        raise ApiError(f"Shopify's answer left out the {what} list.")
    nodes = connection.get("nodes")
    if nodes is None:
        edges = connection.get("edges")
        nodes = [e.get("node") for e in edges or () if isinstance(e, dict)] if edges is not None else None
    if not isinstance(nodes, list):
        raise ApiError(f"Shopify's answer left out the {what} list.")
    return (n for n in nodes if isinstance(n, dict))


def _line_item(raw: dict, order_name: str) -> LineItem:
    plan = raw.get("sellingPlan") or {}
    return LineItem(
        id=_need(raw, "id", f"a line item's id on {order_name}"),
        variant_id=(raw.get("variant") or {}).get("id"),
        sku=raw.get("sku") or None,
        title=raw.get("title") or "",
        quantity=_int(raw.get("quantity", 0), f"a line item quantity on {order_name}"),
        selling_plan_id=plan.get("sellingPlanId"),
        selling_plan_name=plan.get("name"),
    )


def _fulfillment_order_line(raw: dict, fo_id: str) -> FulfillmentOrderLine:
    line_item = _need(raw, "lineItem", f"the order line behind a line of fulfillment order {fo_id}")
    return FulfillmentOrderLine(
        id=_need(raw, "id", f"a line's id on fulfillment order {fo_id}"),
        line_item_id=_need(line_item, "id", f"the order line behind a line of fulfillment order {fo_id}"),
        variant_id=(raw.get("variant") or {}).get("id"),
        sku=raw.get("sku") or None,
        remaining_quantity=_int(raw.get("remainingQuantity", 0), f"a remaining quantity on {fo_id}"),
        total_quantity=_int(raw.get("totalQuantity", 0), f"a total quantity on {fo_id}"),
    )


def _hold(raw: dict) -> Hold:
    return Hold(
        id=_need(raw, "id", "a fulfillment hold's id"),
        handle=raw.get("handle") or "",
        reason=raw.get("reason") or "OTHER",
        reason_notes=raw.get("reasonNotes"),
        held_by_us=bool(raw.get("heldByRequestingApp")),
        app_name=(raw.get("heldByApp") or {}).get("title"),
    )


def _user_errors(raw: Any) -> tuple[UserError, ...]:
    errors = []
    for item in raw or ():
        if not isinstance(item, dict):
            continue
        field = item.get("field")
        errors.append(
            UserError(
                message=item.get("message") or "unknown error",
                code=item.get("code"),
                field=tuple(str(f) for f in field) if isinstance(field, list) else (),
            )
        )
    return tuple(errors)


def _int(value: Any, what: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(f"Shopify sent {what} that is not a number.") from None


def _datetime(value: str, context: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ApiError(f"Shopify sent a timestamp on {context} that is not a date.") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _is_throttled(errors: Any) -> bool:
    if not isinstance(errors, list):
        return False
    return any(
        isinstance(e, dict) and isinstance(e.get("extensions"), dict) and e["extensions"].get("code") == "THROTTLED"
        for e in errors
    )


def _first_error_message(errors: Any) -> str:
    if isinstance(errors, list) and errors:
        first = errors[0]
        if isinstance(first, dict):
            message = first.get("message") or "unknown error"
            code = (first.get("extensions") or {}).get("code") if isinstance(first.get("extensions"), dict) else None
            return f"{message} ({code})" if code else message
        return str(first)
    return str(errors)


_OPERATION = re.compile(r"\b(?:query|mutation)\s+([A-Za-z_][A-Za-z0-9_]*)")


def _operation_name(document: str) -> str:
    match = _OPERATION.search(document)
    return match.group(1) if match else "anonymous"


def _normalise_domain(shop_domain: str) -> str:
    domain = shop_domain.strip().lower()
    for prefix in ("https://", "http://"):
        if domain.startswith(prefix):
            domain = domain[len(prefix) :]
    domain = domain.rstrip("/")
    if not domain or "/" in domain or " " in domain:
        raise ConfigError(f"{shop_domain!r} is not a shop domain (expected something like example.myshopify.com).")
    return domain
