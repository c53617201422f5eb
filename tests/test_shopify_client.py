"""ShopifyClient against a scripted local server: retries, throttling, auth, parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from loopsync.errors import ApiError, CredentialsError, GraphQLError, TransientApiError
from loopsync.schema import API_VERSION
from loopsync.shopify import ClientCredentials, ShopifyClient, StaticToken
from loopsync.shopify import documents as docs
from loopsync.shopify.client import DEFAULT_HOLD_REASON
from loopsync.shopify.cost import (
    ORDER_COST,
    QUERY_COST_BUDGET,
    estimate_cost,
    orders_page_size,
    variants_batch_size,
)
from loopsync.shopify.transport import THROTTLE_FALLBACK_WAIT
from support.fakehttp import FakeTime, Recorded, Reply

TOKEN = "shpat_secret_token_value_123"
CLIENT_SECRET = "shpss_client_secret_value_456"
GRAPHQL_PATH = f"/admin/api/{API_VERSION}/graphql.json"


def cost(requested=10, actual=5, available=1990.0, maximum=2000.0, rate=100.0):
    return {
        "cost": {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": {"maximumAvailable": maximum, "currentlyAvailable": available, "restoreRate": rate},
        }
    }


def ok(data, **cost_kwargs):
    return Reply(body={"data": data, "extensions": cost(**cost_kwargs)})


def throttled(extensions=None):
    body = {"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]}
    if extensions is not None:
        body["extensions"] = extensions
    return Reply(body=body)


SHOP = {"shop": {"name": "Demo", "myshopifyDomain": "demo.myshopify.com"}}


def connection(nodes, has_next=False, cursor=None):
    return {"nodes": nodes, "pageInfo": {"hasNextPage": has_next, "endCursor": cursor}}


def order_node(number=1001, name=None, **overrides):
    node = {
        "id": f"gid://shopify/Order/{number}",
        "legacyResourceId": str(number),
        "name": name or f"#{number}",
        "createdAt": "2026-11-20T10:00:00Z",
        "updatedAt": "2026-11-21T10:00:00Z",
        "tags": ["Loop Exchange"],
        "sourceName": "web",
        "closed": False,
        "cancelledAt": None,
        "app": {"name": "Loop Returns"},
        "customAttributes": [{"key": "loop_return_id", "value": "77"}],
        "lineItems": connection(
            [
                {
                    "id": f"gid://shopify/LineItem/{number}1",
                    "sku": "PRE-1",
                    "title": "Pre shoe",
                    "quantity": 1,
                    "variant": {"id": "gid://shopify/ProductVariant/9"},
                    "sellingPlan": {"name": "Pre-order", "sellingPlanId": "gid://shopify/SellingPlan/3"},
                }
            ]
        ),
        "fulfillmentOrders": connection(
            [
                {
                    "id": f"gid://shopify/FulfillmentOrder/{number}",
                    "status": "OPEN",
                    "lineItems": connection(
                        [
                            {
                                "id": f"gid://shopify/FulfillmentOrderLineItem/{number}",
                                "remainingQuantity": 1,
                                "totalQuantity": 1,
                                "sku": "PRE-1",
                                "lineItem": {"id": f"gid://shopify/LineItem/{number}1"},
                                "variant": {"id": "gid://shopify/ProductVariant/9"},
                            }
                        ]
                    ),
                    "fulfillmentHolds": [
                        {
                            "id": "gid://shopify/FulfillmentHold/5",
                            "handle": "loopsync-preorder",
                            "reason": "UNKNOWN_DELIVERY_DATE",
                            "reasonNotes": "ships in March",
                            "heldByRequestingApp": True,
                            "heldByApp": {"title": "loopsync"},
                        }
                    ],
                    "supportedActions": [{"action": "RELEASE_HOLD"}, {"action": "HOLD"}],
                }
            ]
        ),
        "returns": connection(
            [{"id": "gid://shopify/Return/1", "exchangeLineItems": connection([{"lineItems": [{"id": "gid://shopify/LineItem/X1"}]}])}]
        ),
    }
    node.update(overrides)
    return node


def client_for(server, fake_time, auth=None, **kwargs):
    return ShopifyClient(
        "demo.myshopify.com",
        auth or StaticToken(TOKEN),
        base_url=server.url,
        sleep=fake_time.sleep,
        clock=fake_time.clock,
        **kwargs,
    )


def assert_no_secret(exc: BaseException, *secrets: str) -> None:
    for secret in secrets or (TOKEN, CLIENT_SECRET):
        assert secret not in str(exc)
        assert secret not in repr(exc)


def graphql_requests(server):
    return [r for r in server.requests if r.path == GRAPHQL_PATH]


# --- transport ----------------------------------------------------------------


def test_request_shape_and_stats(server, fake_time):
    server.script(ok(SHOP, requested=1, actual=1))
    client = client_for(server, fake_time)
    assert client.shop_info() == {"name": "Demo", "myshopifyDomain": "demo.myshopify.com"}
    (request,) = server.requests
    assert request.path == GRAPHQL_PATH
    assert request.headers["x-shopify-access-token"] == TOKEN
    assert request.json()["operationName"] == "LoopsyncShopInfo"
    assert client.stats.requests == 1 and client.stats.by_operation == {"LoopsyncShopInfo": 1}
    assert client.stats.requested_cost == 1 and client.stats.actual_cost == 1
    assert TOKEN not in repr(client)


def test_throttled_200_is_waited_out_from_throttle_status(server, fake_time):
    server.script(
        throttled(cost(requested=250, actual=None, available=50, rate=100)),
        ok(SHOP),
    )
    client = client_for(server, fake_time)
    assert client.shop_info()["name"] == "Demo"
    # (requested − available) / restoreRate, and no second wait: the bucket has refilled by then.
    assert fake_time.sleeps == [pytest.approx(2.0)]
    assert client.stats.throttled == 1 and client.stats.retries == 1
    assert len(server.requests) == 2


def test_throttled_without_throttle_status_uses_fallback_wait(server, fake_time):
    server.script(throttled(), throttled({"cost": {"requestedQueryCost": 5}}), ok(SHOP))
    client = client_for(server, fake_time)
    client.shop_info()
    assert fake_time.sleeps == [THROTTLE_FALLBACK_WAIT, THROTTLE_FALLBACK_WAIT]


def test_http_429_honours_retry_after(server, fake_time):
    server.script(Reply(status=429, body={"errors": "Too many"}, headers={"Retry-After": "3"}), ok(SHOP))
    client = client_for(server, fake_time)
    client.shop_info()
    assert fake_time.sleeps == [3.0]


def test_cost_aware_pacing_sleeps_just_enough_before_an_expensive_query(server, fake_time):
    server.script(
        ok(SHOP, requested=1, available=10, maximum=1000, rate=50),
        ok({"orders": connection([])}),
    )
    client = client_for(server, fake_time)
    client.shop_info()
    list(client.iter_orders("tag:x"))
    expected_cost = estimate_cost(docs.ORDERS_PAGE, {"first": orders_page_size(50)})
    assert fake_time.sleeps == [pytest.approx((expected_cost - 10) / 50)]


def test_pacing_uses_the_requested_cost_shopify_reported_not_the_estimate(server, fake_time):
    # Shopify priced the first page at 30 points, far under our estimate: the second page
    # of the same size waits for 30 points, not for the estimate.
    page = connection([order_node(1001)], has_next=True, cursor="c1")
    server.script(
        ok({"orders": page}, requested=30, actual=20, available=10, maximum=1000, rate=50),
        ok({"orders": connection([])}, requested=30, actual=2, available=500, maximum=1000, rate=50),
    )
    client = client_for(server, fake_time)
    fake_time.sleeps.clear()
    list(client.iter_orders("tag:x"))
    estimated = estimate_cost(docs.ORDERS_PAGE, {"first": orders_page_size(50)})
    assert estimated > 30
    assert fake_time.sleeps == [pytest.approx((30 - 10) / 50)]
    assert client.stats.requested_cost == 60 and client.stats.actual_cost == 22


def test_pacing_accounts_for_time_already_passed(server, fake_time):
    server.script(ok(SHOP, requested=1, available=10, maximum=1000, rate=50), ok({"orders": connection([])}))
    client = client_for(server, fake_time)
    client.shop_info()
    fake_time.now += 60  # a minute later the bucket is full again
    list(client.iter_orders("tag:x"))
    assert fake_time.sleeps == []


def test_5xx_is_retried_then_given_up_as_transient(server, fake_time):
    server.script(*[Reply(status=503, raw="<html>down</html>") for _ in range(6)])
    client = client_for(server, fake_time)
    with pytest.raises(TransientApiError, match="HTTP 503") as info:
        client.shop_info()
    assert len(server.requests) == 6  # max_attempts
    assert len(fake_time.sleeps) == 5
    assert all(0 < s <= 21 for s in fake_time.sleeps)
    assert info.value.exit_code == 5
    assert_no_secret(info.value)


def test_total_wait_budget_stops_retries_early(server, fake_time):
    server.script(*[Reply(status=502) for _ in range(6)])
    client = client_for(server, fake_time, max_total_wait=2)
    with pytest.raises(TransientApiError):
        client.shop_info()
    assert sum(fake_time.sleeps) <= 2
    assert len(server.requests) < 6


def test_dropped_connection_is_retried(server, fake_time):
    server.script(Reply(drop=True), ok(SHOP))
    client = client_for(server, fake_time)
    assert client.shop_info()["name"] == "Demo"
    assert len(server.requests) == 2 and client.stats.retries == 1


def test_timeouts_are_retried_then_reported(server, fake_time):
    server.script(Reply(delay=0.4, body={}), Reply(delay=0.4, body={}))
    client = client_for(server, fake_time, timeout=(1, 0.1), max_attempts=2)
    with pytest.raises(TransientApiError, match="timed out") as info:
        client.shop_info()
    assert_no_secret(info.value)


def test_malformed_json_is_retried(server, fake_time):
    server.script(Reply(raw="{not json"), ok(SHOP))
    client = client_for(server, fake_time)
    assert client.shop_info()["name"] == "Demo"


# --- auth -----------------------------------------------------------------------


def token_reply(token, expires_in=86399):
    return Reply(body={"access_token": token, "scope": "read_orders", "expires_in": expires_in})


def test_401_renews_client_credentials_token_once_and_reports_it(server, fake_time):
    saved = []
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    auth = ClientCredentials(
        "client-id",
        CLIENT_SECRET,
        cached_token="old-token",
        cached_expiry=now + timedelta(hours=5),
        on_new_token=lambda token, expires: saved.append((token, expires)),
        now=lambda: now,
    )
    server.script(Reply(status=401, body={"errors": "[API] Invalid API key or access token"}), token_reply("new-token"), ok(SHOP))
    client = client_for(server, fake_time, auth=auth)
    assert client.shop_info()["name"] == "Demo"
    first, token_request, retried = server.requests
    assert first.headers["x-shopify-access-token"] == "old-token"
    assert token_request.path == "/admin/oauth/access_token"
    assert token_request.form() == {
        "grant_type": ["client_credentials"],
        "client_id": ["client-id"],
        "client_secret": [CLIENT_SECRET],
    }
    assert retried.headers["x-shopify-access-token"] == "new-token"
    assert saved == [("new-token", now + timedelta(seconds=86399))]
    assert CLIENT_SECRET not in repr(auth) and CLIENT_SECRET not in repr(client)


def test_token_close_to_expiry_is_renewed_before_use(server, fake_time):
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    saved = []
    auth = ClientCredentials(
        "client-id", CLIENT_SECRET, "old-token", now + timedelta(minutes=4), lambda t, e: saved.append(t), now=lambda: now
    )
    server.script(token_reply("fresh"), ok(SHOP))
    client_for(server, fake_time, auth=auth).shop_info()
    assert [r.path for r in server.requests] == ["/admin/oauth/access_token", GRAPHQL_PATH]
    assert server.requests[1].headers["x-shopify-access-token"] == "fresh"
    assert saved == ["fresh"]


def test_401_surviving_renewal_is_a_credentials_error(server, fake_time):
    auth = ClientCredentials("client-id", CLIENT_SECRET, cached_token="old-token")
    server.script(Reply(status=401, body={}), token_reply("new-token"), Reply(status=401, body={}))
    with pytest.raises(CredentialsError, match="Shopify rejected the access token") as info:
        client_for(server, fake_time, auth=auth).shop_info()
    assert len(server.requests) == 3  # renewed once, not in a loop
    assert_no_secret(info.value, CLIENT_SECRET, "old-token", "new-token")
    assert info.value.exit_code == 4


def test_static_token_401_is_a_credentials_error(server, fake_time):
    server.script(Reply(status=401, body={"errors": f"bad token {TOKEN}"}))
    with pytest.raises(CredentialsError, match="Shopify rejected the access token") as info:
        client_for(server, fake_time).shop_info()
    assert len(server.requests) == 1
    assert_no_secret(info.value)


def test_rejected_client_credentials(server, fake_time):
    auth = ClientCredentials("client-id", CLIENT_SECRET)
    server.script(Reply(status=400, body={"error": "invalid_client", "error_description": f"Client {CLIENT_SECRET} unknown"}))
    with pytest.raises(CredentialsError, match="client credentials") as info:
        client_for(server, fake_time, auth=auth).shop_info()
    assert_no_secret(info.value, CLIENT_SECRET)


def test_403_is_a_credentials_error(server, fake_time):
    server.script(Reply(status=403, body={"errors": "forbidden"}))
    with pytest.raises(CredentialsError):
        client_for(server, fake_time).shop_info()


# --- GraphQL errors and nulls -------------------------------------------------------


def test_graphql_errors_without_data(server, fake_time):
    errors = [{"message": "Field 'nope' doesn't exist on type 'Shop'", "extensions": {"code": "undefinedField"}}]
    server.script(Reply(body={"errors": errors}))
    with pytest.raises(GraphQLError, match="Field 'nope' doesn't exist") as info:
        client_for(server, fake_time).shop_info()
    assert info.value.errors == errors
    assert len(server.requests) == 1  # not retried


def test_graphql_errors_with_partial_data_are_still_errors(server, fake_time):
    errors = [{"message": "Access denied for returns field.", "extensions": {"code": "ACCESS_DENIED"}}, {"message": "second"}]
    server.script(Reply(body={"data": SHOP, "errors": errors}))
    with pytest.raises(GraphQLError, match=r"Access denied for returns field\. \(ACCESS_DENIED\).*some data") as info:
        client_for(server, fake_time).shop_info()
    assert "second" not in str(info.value)


@pytest.mark.parametrize(
    "body",
    [
        {"data": None},
        {"data": {"shop": None}},
        {"data": "oops"},
    ],
)
def test_missing_data_is_an_api_error_not_an_attribute_error(server, fake_time, body):
    server.script(Reply(body=body))
    with pytest.raises(ApiError) as info:
        client_for(server, fake_time).shop_info()
    assert not isinstance(info.value, GraphQLError)


def test_order_with_a_null_required_field_is_an_api_error(server, fake_time):
    server.script(ok({"orders": connection([order_node(name=None) | {"name": None}])}))
    with pytest.raises(ApiError, match="left out the name"):
        list(client_for(server, fake_time).iter_orders("tag:x"))


def test_order_with_null_lists_is_an_api_error(server, fake_time):
    server.script(ok({"orders": connection([order_node(lineItems=None)])}))
    with pytest.raises(ApiError, match="line items"):
        list(client_for(server, fake_time).iter_orders("tag:x"))


# --- orders ---------------------------------------------------------------------


def test_iter_orders_pages_with_cursors_and_parses(server, fake_time):
    server.script(
        ok({"orders": connection([order_node(1001), order_node(1002)], has_next=True, cursor="c1")}),
        ok({"orders": connection([order_node(1003, name="EXC-1086-1")])}),
    )
    orders = list(client_for(server, fake_time).iter_orders("updated_at:>'2026-11-01'", page_size=50))
    assert [o.name for o in orders] == ["#1001", "#1002", "EXC-1086-1"]
    first, second = (r.json()["variables"] for r in server.requests)
    assert first == {"first": orders_page_size(50), "after": None, "query": "updated_at:>'2026-11-01'", "sortKey": "UPDATED_AT"}
    assert second["after"] == "c1"
    order = orders[0]
    assert order.legacy_id == 1001 and order.created_at == datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert order.line_items[0].selling_plan_id == "gid://shopify/SellingPlan/3"
    assert order.line_items[0].variant_id == "gid://shopify/ProductVariant/9"
    fo = order.fulfillment_orders[0]
    assert fo.lines[0].line_item_id == "gid://shopify/LineItem/10011"
    assert fo.our_hold is not None and fo.our_hold.id == "gid://shopify/FulfillmentHold/5"
    assert fo.supported_actions == frozenset({"HOLD", "RELEASE_HOLD"})
    assert order.exchange_line_item_ids == frozenset({"gid://shopify/LineItem/X1"})
    assert not order.closed and not order.cancelled


def test_page_size_is_clamped_to_the_cost_budget():
    assert orders_page_size(50) * ORDER_COST + 2 <= QUERY_COST_BUDGET
    assert orders_page_size(1) == 1


def test_truncated_nested_connections_are_completed(server, fake_time):
    node = order_node(1001)
    node["lineItems"]["pageInfo"] = {"hasNextPage": True, "endCursor": "li1"}
    node["fulfillmentOrders"]["nodes"][0]["lineItems"]["pageInfo"] = {"hasNextPage": True, "endCursor": "fol1"}
    extra_line = dict(node["lineItems"]["nodes"][0], id="gid://shopify/LineItem/2")
    extra_fo_line = dict(node["fulfillmentOrders"]["nodes"][0]["lineItems"]["nodes"][0], id="gid://shopify/FulfillmentOrderLineItem/2")

    def route(request: Recorded) -> Reply:
        payload = request.json()
        op = payload["operationName"]
        if op == "LoopsyncOrdersPage":
            return ok({"orders": connection([node])})
        if op == "LoopsyncOrderLineItemsPage":
            assert payload["variables"] == {"id": "gid://shopify/Order/1001", "after": "li1"}
            return ok({"order": {"lineItems": connection([extra_line])}})
        if op == "LoopsyncFulfillmentOrderLineItemsPage":
            assert payload["variables"]["after"] == "fol1"
            return ok({"fulfillmentOrder": {"lineItems": connection([extra_fo_line])}})
        raise AssertionError(op)

    server.fallback = route
    (order,) = client_for(server, fake_time).iter_orders("x")
    assert [li.id for li in order.line_items] == ["gid://shopify/LineItem/10011", "gid://shopify/LineItem/2"]
    assert len(order.fulfillment_orders[0].lines) == 2


def test_fetch_orders_batches_and_reports_missing(server, fake_time):
    ids = [f"gid://shopify/Order/{n}" for n in range(1, 7)]

    def route(request: Recorded) -> Reply:
        asked = request.json()["variables"]["ids"]
        return ok({"nodes": [None if i.endswith("/3") else order_node(int(i.rsplit("/", 1)[1])) for i in asked]})

    server.fallback = route
    result = client_for(server, fake_time).fetch_orders(ids)
    assert len(server.requests) == -(-6 // orders_page_size(250))
    assert result["gid://shopify/Order/3"] is None
    assert result["gid://shopify/Order/4"].name == "#4"


def test_find_order_by_name_requires_an_exact_match(server, fake_time):
    server.script(ok({"orders": connection([order_node(2, name="#1001-A"), order_node(1, name="#1001")])}))
    found = client_for(server, fake_time).find_order("#1001")
    assert found is not None and found.name == "#1001"
    assert server.requests[0].json()["variables"]["query"] == "name:1001"


def test_find_order_by_exchange_name_and_by_gid(server, fake_time):
    server.script(
        ok({"orders": connection([order_node(5, name="EXC-1086-1")])}),
        ok({"nodes": [order_node(7)]}),
    )
    client = client_for(server, fake_time)
    assert client.find_order("EXC-1086-1").id == "gid://shopify/Order/5"
    assert client.find_order("gid://shopify/Order/7").name == "#7"
    assert server.requests[1].json()["variables"] == {"ids": ["gid://shopify/Order/7"]}


def test_find_order_by_long_numeric_id(server, fake_time):
    server.script(ok({"nodes": [order_node(4803021602967)]}))
    found = client_for(server, fake_time).find_order("4803021602967")
    assert found is not None and found.legacy_id == 4803021602967


def test_find_order_not_found(server, fake_time):
    server.script(ok({"orders": connection([])}), ok({"nodes": [None]}))
    assert client_for(server, fake_time).find_order("1001") is None


# --- variants -------------------------------------------------------------------


def plan(plan_id, category="PRE_ORDER", trigger="EXACT_TIME", when="2027-03-01T00:00:00Z"):
    return {
        "id": plan_id,
        "name": f"Plan {plan_id}",
        "category": category,
        "description": "Ships in March",
        "deliveryPolicy": {"fulfillmentTrigger": trigger, "fulfillmentExactTime": when},
    }


def test_variant_info_keeps_only_pre_order_plans(server, fake_time):
    variant = {
        "id": "gid://shopify/ProductVariant/9",
        "sku": "PRE-1",
        "title": "Black / 42",
        "metafield": {"value": "March 2027"},
        "sellingPlanGroups": connection(
            [{"id": "gid://shopify/SellingPlanGroup/1", "sellingPlans": connection([plan("p1"), plan("p2", "SUBSCRIPTION")])}]
        ),
    }
    server.script(ok({"nodes": [variant, None]}))
    info = client_for(server, fake_time).variant_info(
        ["gid://shopify/ProductVariant/9", "gid://shopify/ProductVariant/404"], metafield_namespace="ns", metafield_key="k"
    )
    assert server.requests[0].json()["variables"]["namespace"] == "ns"
    v = info["gid://shopify/ProductVariant/9"]
    assert v.exists and v.on_preorder and [p.id for p in v.preorder_plans] == ["p1"]
    assert v.preorder_plans[0].fulfillment_exact_time == datetime(2027, 3, 1, tzinfo=UTC)
    assert v.shipping_window_metafield == "March 2027"
    missing = info["gid://shopify/ProductVariant/404"]
    assert not missing.exists and not missing.on_preorder


def test_variant_batches_stay_under_budget():
    size = variants_batch_size()
    assert estimate_cost(docs.VARIANTS_BY_ID, {"ids": [0] * size}) <= QUERY_COST_BUDGET


# --- mutations ------------------------------------------------------------------


def test_hold_sends_handle_reason_and_lines_and_returns_user_errors(server, fake_time):
    server.script(
        ok(
            {
                "fulfillmentOrderHold": {
                    "fulfillmentHold": None,
                    "fulfillmentOrder": {"id": "gid://shopify/FulfillmentOrder/1"},
                    "remainingFulfillmentOrder": None,
                    "userErrors": [
                        {"field": ["fulfillmentHold", "handle"], "message": "taken", "code": "DUPLICATE_FULFILLMENT_HOLD_HANDLE"}
                    ],
                }
            }
        )
    )
    result = client_for(server, fake_time).hold(
        "gid://shopify/FulfillmentOrder/1",
        handle="loopsync-preorder",
        reason_notes="Pre-order: ships March",
        line_items=[("gid://shopify/FulfillmentOrderLineItem/1", 2)],
    )
    variables = server.requests[0].json()["variables"]
    assert variables["fulfillmentHold"] == {
        "reason": DEFAULT_HOLD_REASON,
        "handle": "loopsync-preorder",
        "notifyMerchant": False,
        "reasonNotes": "Pre-order: ships March",
        "fulfillmentOrderLineItems": [{"id": "gid://shopify/FulfillmentOrderLineItem/1", "quantity": 2}],
    }
    assert result.hold is None
    assert result.user_errors[0].code == "DUPLICATE_FULFILLMENT_HOLD_HANDLE"


def test_hold_success(server, fake_time):
    server.script(
        ok(
            {
                "fulfillmentOrderHold": {
                    "fulfillmentHold": {
                        "id": "gid://shopify/FulfillmentHold/9",
                        "handle": "loopsync-preorder",
                        "reason": "UNKNOWN_DELIVERY_DATE",
                        "reasonNotes": None,
                        "heldByRequestingApp": True,
                        "heldByApp": None,
                    },
                    "fulfillmentOrder": {"id": "gid://shopify/FulfillmentOrder/1"},
                    "remainingFulfillmentOrder": {"id": "gid://shopify/FulfillmentOrder/2"},
                    "userErrors": [],
                }
            }
        )
    )
    result = client_for(server, fake_time).hold("gid://shopify/FulfillmentOrder/1", handle="loopsync-preorder")
    assert "fulfillmentOrderLineItems" not in server.requests[0].json()["variables"]["fulfillmentHold"]
    assert result.hold.is_loopsync and result.remaining_fulfillment_order_id == "gid://shopify/FulfillmentOrder/2"
    assert result.user_errors == ()


def test_hold_payload_null_is_an_api_error(server, fake_time):
    server.script(ok({"fulfillmentOrderHold": None}))
    with pytest.raises(ApiError, match="placing a hold"):
        client_for(server, fake_time).hold("gid://shopify/FulfillmentOrder/1", handle="loopsync-preorder")


def test_release_hold_always_names_holds(server, fake_time):
    client = client_for(server, fake_time)
    with pytest.raises(ValueError):
        client.release_hold("gid://shopify/FulfillmentOrder/1", [])
    assert server.requests == []
    server.script(ok({"fulfillmentOrderReleaseHold": {"fulfillmentOrder": None, "userErrors": [{"field": None, "message": "nope", "code": "INVALID_ACCESS"}]}}))
    errors = client.release_hold("gid://shopify/FulfillmentOrder/1", ["gid://shopify/FulfillmentHold/5"])
    assert server.requests[0].json()["variables"]["holdIds"] == ["gid://shopify/FulfillmentHold/5"]
    assert errors[0].code == "INVALID_ACCESS"


def test_add_tags(server, fake_time):
    server.script(ok({"tagsAdd": {"node": {"id": "gid://shopify/Order/1"}, "userErrors": []}}))
    client = client_for(server, fake_time)
    assert client.add_tags("gid://shopify/Order/1", ["loopsync:held"]) == ()
    assert server.requests[0].json()["variables"] == {"id": "gid://shopify/Order/1", "tags": ["loopsync:held"]}
    assert client.add_tags("gid://shopify/Order/1", []) == ()
    assert len(server.requests) == 1


def test_granted_scopes(server, fake_time):
    server.script(ok({"currentAppInstallation": {"accessScopes": [{"handle": "read_orders"}, {"handle": "write_orders"}]}}))
    assert client_for(server, fake_time).granted_scopes() == {"read_orders", "write_orders"}


# --- against the real sandbox ---------------------------------------------------------


def sandbox_client(sb, **kwargs):
    creds = sb.credentials
    return ShopifyClient(creds["shop_domain"], StaticToken(creds["shopify_token"]), base_url=sb.url, **kwargs)


def test_sandbox_reads_orders_variants_and_scopes(sandbox):
    client = sandbox_client(sandbox)
    assert client.shop_info()["myshopifyDomain"] == sandbox.credentials["shop_domain"]
    assert "write_merchant_managed_fulfillment_orders" in client.granted_scopes()
    orders = list(client.iter_orders("created_at:>2000-01-01"))
    names = {o.name for o in orders}
    assert {"#1001", "EXC-1086-1"} <= names
    assert client.stats.by_operation["LoopsyncOrdersPage"] > 1  # really paged
    # Shopify's (the sandbox's) requested cost per page stays within our budget
    assert client.stats.requested_cost / client.stats.by_operation["LoopsyncOrdersPage"] <= QUERY_COST_BUDGET
    exchange = client.find_order("EXC-1086-1")
    assert exchange is not None and exchange.fulfillment_orders[0].status == "OPEN"
    assert client.find_order("#1001").name == "#1001"
    assert client.find_order("NOPE-1") is None
    variant = exchange.line_items[0].variant_id
    info = client.variant_info([variant, "gid://shopify/ProductVariant/1"])
    assert info[variant].on_preorder
    assert not info["gid://shopify/ProductVariant/1"].exists
    by_id = client.fetch_orders([exchange.id])
    assert by_id[exchange.id] == exchange


def test_sandbox_order_bigger_than_the_nested_pages_is_read_in_full(sandbox):
    """The nested pages are sized for typical exchange orders; a bigger order costs follow-up
    requests, never lost lines or fulfillment orders."""
    from loopsync.sandbox.builders import add_order, add_product

    world = sandbox.world
    lines_n = docs.FULFILLMENT_ORDER_LINE_ITEMS_FIRST + docs.FULFILLMENT_ORDERS_FIRST + 1
    fos_n = docs.FULFILLMENT_ORDERS_FIRST + 1
    product = add_product(world, "Big order", [{"sku": f"BIG-{i}"} for i in range(lines_n)])
    lines = [{"variant_id": v} for v in product.variant_ids]
    # The first fulfillment order carries more lines than its nested page holds.
    split = [{"status": "OPEN", "lines": list(range(lines_n - fos_n + 1))}]
    split += [{"status": "OPEN", "lines": [i]} for i in range(lines_n - fos_n + 1, lines_n)]
    order = add_order(world, "#BIG-1", lines, fulfillment_orders=split)
    client = sandbox_client(sandbox)
    read = client.fetch_orders([order.id])[order.id]
    assert read is not None
    assert len(read.line_items) == lines_n
    assert len(read.fulfillment_orders) == fos_n
    assert sum(len(fo.lines) for fo in read.fulfillment_orders) == lines_n
    ops = client.stats.by_operation
    assert ops["LoopsyncOrderLineItemsPage"] == 1 and ops["LoopsyncOrderFulfillmentOrdersPage"] == 1
    assert ops["LoopsyncFulfillmentOrderLineItemsPage"] == 1


def test_sandbox_hold_tag_and_release_round_trip(sandbox):
    client = sandbox_client(sandbox)
    order = client.find_order("EXC-1086-1")
    fo = order.fulfillment_orders[0]
    result = client.hold(fo.id, handle="loopsync-preorder", reason_notes="Pre-order: ships March 15")
    assert result.user_errors == () and result.hold is not None and result.hold.is_loopsync
    again = client.hold(fo.id, handle="loopsync-preorder")
    assert again.hold is None and again.user_errors
    assert client.add_tags(order.id, ["loopsync-held"]) == ()
    refreshed = client.find_order("EXC-1086-1")
    assert "loopsync-held" in refreshed.tags
    assert refreshed.fulfillment_orders[0].our_hold.id == result.hold.id
    assert client.release_hold(fo.id, [result.hold.id]) == ()
    assert client.find_order("EXC-1086-1").fulfillment_orders[0].our_hold is None


def test_sandbox_client_credentials_and_bad_token(sandbox):
    creds = sandbox.credentials
    saved = []
    auth = ClientCredentials(creds["client_id"], creds["client_secret"], on_new_token=lambda t, e: saved.append((t, e)))
    client = ShopifyClient(creds["shop_domain"], auth, base_url=sandbox.url)
    assert client.shop_info()["name"]
    assert len(saved) == 1 and saved[0][1] is not None
    bad = ShopifyClient(creds["shop_domain"], StaticToken("shpat_wrong_token"), base_url=sandbox.url)
    with pytest.raises(CredentialsError) as info:
        bad.shop_info()
    assert "shpat_wrong_token" not in str(info.value)
    wrong_secret = ClientCredentials(creds["client_id"], "shpss_wrong_secret")
    with pytest.raises(CredentialsError) as info:
        ShopifyClient(creds["shop_domain"], wrong_secret, base_url=sandbox.url).shop_info()
    assert "shpss_wrong_secret" not in str(info.value) and creds["client_secret"] not in str(info.value)


def test_sandbox_faults_are_survived():
    from loopsync.sandbox.server import Sandbox

    fake_time = FakeTime()
    with Sandbox(faults="5xx=0.15,drop=0.1,throttle=0.15,seed=3") as sb:
        client = sandbox_client(sb, sleep=fake_time.sleep, clock=fake_time.clock, max_attempts=8, max_total_wait=600)
        orders = list(client.iter_orders("created_at:>2000-01-01"))
    assert len(orders) >= 20
    assert client.stats.retries > 0


def test_a_secret_echoed_by_shopify_is_redacted(server, fake_time):
    server.script(Reply(body={"errors": [{"message": f"Invalid header value {TOKEN}"}]}))
    with pytest.raises(GraphQLError, match=r"\[redacted\]") as info:
        client_for(server, fake_time).shop_info()
    assert_no_secret(info.value)


def test_sandbox_order_summaries_page_through_a_large_store():
    """The scan's cheap first pass: 250 orders a page, every order exactly once, each page well under budget."""
    from loopsync.sandbox.generator import generate_store
    from loopsync.sandbox.server import Sandbox

    with Sandbox(scenario="demo") as sb:
        generate_store(sb.world, orders=600, exchange_share=0.1, seed=1)
        client = sandbox_client(sb)
        summaries = list(client.iter_order_summaries("created_at:>2000-01-01"))
        expected = set(sb.world.orders)
    assert len(summaries) == len(expected) and {s.id for s in summaries} == expected
    pages = client.stats.by_operation["LoopsyncOrderSummariesPage"]
    assert pages == -(-len(expected) // 250)
    assert client.stats.requested_cost / pages <= 260
    assert [s.updated_at for s in summaries] == sorted(s.updated_at for s in summaries)


def test_sandbox_pacing_on_reported_cost_is_never_throttled_and_sums_both_costs():
    """A bucket smaller than two pages: the client waits for what Shopify reports, and is
    never answered THROTTLED; its stats are the sums of Shopify's requested and actual costs."""
    from loopsync.sandbox.generator import generate_store
    from loopsync.sandbox.server import Sandbox

    with Sandbox(scenario="demo") as sb:
        generate_store(sb.world, orders=300, exchange_share=0.1, seed=1)
        sb.world.bucket_size, sb.world.restore_rate = 800.0, 2000.0
        client = sandbox_client(sb)
        summaries = list(client.iter_order_summaries("created_at:>2000-01-01"))
        orders = client.fetch_orders([s.id for s in summaries[:30]])
        charged = [e for e in sb.world.log if e.api == "shopify"]
    assert len(orders) == 30
    assert client.stats.throttled == 0 and client.stats.waited_seconds > 0
    assert client.stats.requests == len(charged) >= 5
    assert client.stats.actual_cost < client.stats.requested_cost


def test_the_session_reads_the_proxy_environment_once_per_host(sandbox, monkeypatch):
    """requests walks os.environ for proxies on every call; a scan makes hundreds. Once per host
    still honours a proxy set in the environment, which a run never changes."""
    import requests

    from loopsync import http

    reads = []
    original = requests.Session.merge_environment_settings

    def counting(self, url, *args):
        reads.append(url)
        return original(self, url, *args)

    monkeypatch.setattr(requests.Session, "merge_environment_settings", counting)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    session = http.make_session()
    for path in ("/a", "/b", "/c"):
        session.get(sandbox.url + path, timeout=5)
    assert len(reads) == 1
    assert session.merge_environment_settings("http://127.0.0.1/x", {}, False, True, None)["proxies"] == {}
