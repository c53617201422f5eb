"""The sandbox delivers signed webhooks over real HTTP: headers, payloads, retries and the unkind switches."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
import requests

from loopsync.sandbox.builders import add_app
from support.fakehttp import FakeServer, Reply

SECRET = "csecret"  # the conftest's loopsync app: deliveries are signed with its client secret
SUBSCRIBE = """
mutation($topic: WebhookSubscriptionTopic!, $uri: String!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: {uri: $uri, format: JSON}) {
    webhookSubscription { id } userErrors { field message }
  }
}
"""
HOLD = """
mutation($id: ID!) {
  fulfillmentOrderHold(id: $id, fulfillmentHold: {reason: OTHER, handle: "loopsync-preorder"}) {
    fulfillmentHold { id } userErrors { field message }
  }
}
"""
RELEASE = """
mutation($id: ID!, $holdIds: [ID!]) {
  fulfillmentOrderReleaseHold(id: $id, holdIds: $holdIds) { userErrors { field message } }
}
"""
ALL_TOPICS = ["ORDERS_CREATE", "ORDERS_UPDATED", "FULFILLMENT_HOLDS_ADDED", "FULFILLMENT_HOLDS_RELEASED",
              "FULFILLMENT_ORDERS_ORDER_ROUTING_COMPLETE", "SELLING_PLAN_GROUPS_UPDATE"]


@pytest.fixture
def receiver():
    """Answers 200 to every delivery, unless a test scripts other answers first."""
    with FakeServer(fallback=lambda _r: Reply(200, {})) as srv:
        srv.hook_url = f"{srv.url}/webhooks/shopify"
        yield srv


def subscribe(gql, uri, *topics):
    for topic in topics:
        assert gql.data(SUBSCRIBE, {"topic": topic, "uri": uri})["webhookSubscriptionCreate"]["userErrors"] == []


def switches(sandbox, **values):
    response = requests.post(f"{sandbox.url}/_sandbox/webhooks", json=values, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()["switches"]


def activity(sandbox, **action):
    response = requests.post(f"{sandbox.url}/_sandbox/activity", json=action, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def deliveries(sandbox):
    assert sandbox.webhooks.wait_idle(10)
    return requests.get(f"{sandbox.url}/_sandbox/webhooks/deliveries", timeout=5).json()["deliveries"]


def signed(request, secret=SECRET) -> bool:
    expected = base64.b64encode(hmac.new(secret.encode(), request.body, hashlib.sha256).digest()).decode()
    return hmac.compare_digest(request.headers["x-shopify-hmac-sha256"], expected)


def test_every_topic_is_delivered_signed_with_shopifys_headers(http_sandbox, gql, world, store, receiver):
    subscribe(gql, receiver.hook_url, *ALL_TOPICS)
    created = activity(http_sandbox, do="create_exchange", sku="BOOT-42")
    fo_id = created["fulfillment_orders"][0]
    hold_id = gql.data(HOLD, {"id": fo_id})["fulfillmentOrderHold"]["fulfillmentHold"]["id"]
    gql.data(RELEASE, {"id": fo_id, "holdIds": [hold_id]})
    activity(http_sandbox, do="ship_preorder", sku="BOOT-42")
    deliveries(http_sandbox)

    by_topic: dict[str, list] = {}
    for request in receiver.requests:
        by_topic.setdefault(request.headers["x-shopify-topic"], []).append(request)
    assert set(by_topic) == {"orders/create", "orders/updated", "fulfillment_holds/added",
                             "fulfillment_holds/released", "fulfillment_orders/order_routing_complete",
                             "selling_plan_groups/update"}
    webhook_ids = set()
    for request in receiver.requests:
        assert request.method == "POST" and request.path == "/webhooks/shopify"
        assert signed(request) and not signed(request, "another secret")
        assert request.headers["x-shopify-shop-domain"] == world.shop_domain
        assert request.headers["x-shopify-api-version"] == "2026-10"
        assert request.headers["x-shopify-event-id"] and request.headers["content-type"] == "application/json"
        assert request.headers["x-shopify-triggered-at"].startswith("2026-03-01T12:00:00")
        webhook_ids.add(request.headers["x-shopify-webhook-id"])
    assert len(webhook_ids) == len(receiver.requests)  # unique per delivery

    [order] = [r.json() for r in by_topic["orders/create"] if r.json()["name"] == created["order"]["name"]]
    assert order["name"] == created["order"]["name"] and order["id"] == created["order"]["legacyId"]
    assert order["admin_graphql_api_id"] == created["order"]["id"] and isinstance(order["tags"], str)
    line = order["line_items"][0]
    assert line["sku"] == "BOOT-42" and line["quantity"] == 1 and isinstance(line["variant_id"], int)
    assert line["admin_graphql_api_id"].startswith("gid://shopify/LineItem/")

    added = by_topic["fulfillment_holds/added"][0].json()
    assert added["fulfillment_order"] == {"id": fo_id, "status": "on_hold"}
    assert added["fulfillment_hold"] == {"id": hold_id, "reason": "OTHER", "reason_notes": None,
                                         "handle": "loopsync-preorder", "held_by_requesting_app": True,
                                         "held_by_app": {"id": next(iter(world.apps))}}
    released = by_topic["fulfillment_holds/released"][0].json()
    assert released["fulfillment_order"] == {"id": fo_id, "status": "open"}
    assert released["fulfillment_hold"]["id"] == hold_id
    assert {"fulfillment_order": {"id": fo_id, "status": "open"}} in [
        r.json() for r in by_topic["fulfillment_orders/order_routing_complete"]]
    group = by_topic["selling_plan_groups/update"][0].json()
    assert group["admin_graphql_api_id"] == store["group"].id and group["product_variants"] == []
    # The hold and the release each also updated the order.
    assert len(by_topic["orders/updated"]) >= 2


def test_another_apps_subscription_gets_its_own_signature_and_perspective(http_sandbox, gql, world, store,
                                                                          client_for, receiver):
    other = add_app(world, "Upsell Guard", ["read_merchant_managed_fulfillment_orders"], static_token="shpat_up")
    other.api_secret = "upsell-secret"
    subscribe(client_for("shpat_up"), f"{receiver.url}/theirs", "FULFILLMENT_HOLDS_ADDED")
    subscribe(gql, f"{receiver.url}/mine", "FULFILLMENT_HOLDS_ADDED")
    gql.data(HOLD, {"id": store["order"].fulfillment_order_ids[0]})
    deliveries(http_sandbox)
    mine, theirs = sorted(receiver.requests, key=lambda r: r.path)
    assert signed(theirs, "upsell-secret") and signed(mine)
    assert theirs.json()["fulfillment_hold"]["held_by_requesting_app"] is False
    assert mine.json()["fulfillment_hold"]["held_by_requesting_app"] is True
    # One change, two deliveries: the event id is shared, the webhook ids are not.
    assert theirs.headers["x-shopify-event-id"] == mine.headers["x-shopify-event-id"]
    assert theirs.headers["x-shopify-webhook-id"] != mine.headers["x-shopify-webhook-id"]


def test_a_failed_delivery_is_retried_with_its_original_payload(http_sandbox, gql, store):
    tries: dict[str, int] = {}

    def fail_the_first_delivery_twice(request):
        webhook_id = request.headers["x-shopify-webhook-id"]
        tries[webhook_id] = tries.get(webhook_id, 0) + 1
        first = next(iter(tries)) == webhook_id
        return Reply({1: 500, 2: 503}.get(tries[webhook_id], 200) if first else 200, {})

    with FakeServer(fallback=fail_the_first_delivery_twice) as receiver:
        switches(http_sandbox, retry_delays=[0.05])
        subscribe(gql, f"{receiver.url}/h", "ORDERS_UPDATED")
        activity(http_sandbox, do="add_tags", order="#1001", tags=["first"])
        time.sleep(0.01)
        activity(http_sandbox, do="add_tags", order="#1001", tags=["second"])
        attempts = deliveries(http_sandbox)
        first = [a for a in attempts if a["webhook_id"] == attempts[0]["webhook_id"]]
        assert [(a["attempt"], a["status"]) for a in first] == [(1, 500), (2, 503), (3, 200)]
        bodies = [r.json()["tags"] for r in receiver.requests if r.headers["x-shopify-webhook-id"] == first[0]["webhook_id"]]
        # The third try still says what the order looked like at the first change: stale, like Shopify's.
        assert bodies == ["Loop Exchange, first"] * 3
        assert len({a["event_id"] for a in first}) == 1 and all(a["body_size"] > 0 for a in first)


def test_a_subscription_is_deleted_after_eight_failures_in_a_row(http_sandbox, gql, world, store):
    with FakeServer(fallback=lambda _r: Reply(500)) as failing:
        switches(http_sandbox, retry_delays=[0.01])
        subscribe(gql, f"{failing.url}/h", "ORDERS_UPDATED")
        activity(http_sandbox, do="add_tags", order="#1001", tags=["a"])
        attempts = deliveries(http_sandbox)
        assert [a["attempt"] for a in attempts] == [1, 2, 3, 4, 5, 6, 7, 8]
        assert world.webhook_subscriptions == {}
        activity(http_sandbox, do="add_tags", order="#1001", tags=["b"])
        assert len(deliveries(http_sandbox)) == 8  # nobody is subscribed any more


def test_unreachable_address_counts_as_a_failure(http_sandbox, gql, store):
    from support.fakehttp import closed_port_url

    switches(http_sandbox, retry_delays=[0.01], max_attempts=2)
    subscribe(gql, f"{closed_port_url()}/h", "ORDERS_UPDATED")
    activity(http_sandbox, do="add_tags", order="#1001", tags=["a"])
    attempts = deliveries(http_sandbox)
    assert [(a["attempt"], a["status"], a["error"]) for a in attempts] == [(1, None, "ConnectionError"),
                                                                        (2, None, "ConnectionError")]


def test_duplicate_sends_one_delivery_twice_under_one_webhook_id(http_sandbox, gql, store, receiver):
    switches(http_sandbox, duplicate=1.0)
    subscribe(gql, receiver.hook_url, "ORDERS_UPDATED")
    activity(http_sandbox, do="add_tags", order="#1001", tags=["a"])
    attempts = deliveries(http_sandbox)
    assert len(attempts) == 2 and sorted(a["duplicate"] for a in attempts) == [False, True]
    ids = [r.headers["x-shopify-webhook-id"] for r in receiver.requests]
    assert len(ids) == 2 and ids[0] == ids[1]
    assert receiver.requests[0].body == receiver.requests[1].body


def test_reorder_shuffles_a_window_of_deliveries(http_sandbox, gql, store, receiver):
    switches(http_sandbox, reorder=5, concurrency=1, seed=1)
    subscribe(gql, receiver.hook_url, "ORDERS_UPDATED")
    for n in range(5):
        activity(http_sandbox, do="add_tags", order="#1001", tags=[f"t{n}"])
    deliveries(http_sandbox)
    newest = [r.json()["tags"].split(", ")[-1] for r in receiver.requests]
    assert sorted(newest) == ["t0", "t1", "t2", "t3", "t4"] and newest != sorted(newest)


def test_reorder_sends_a_window_that_never_fills(http_sandbox, gql, store, receiver):
    switches(http_sandbox, reorder=10, reorder_wait_ms=50)
    subscribe(gql, receiver.hook_url, "ORDERS_UPDATED")
    activity(http_sandbox, do="add_tags", order="#1001", tags=["a"])
    assert len(deliveries(http_sandbox)) == 1


def test_delay_and_pause(http_sandbox, gql, store, receiver):
    switches(http_sandbox, delay_ms=300)
    subscribe(gql, receiver.hook_url, "ORDERS_UPDATED")
    start = time.monotonic()
    activity(http_sandbox, do="add_tags", order="#1001", tags=["a"])
    deliveries(http_sandbox)
    assert time.monotonic() - start >= 0.3

    switches(http_sandbox, delay_ms=0, pause=True)
    activity(http_sandbox, do="add_tags", order="#1001", tags=["b"])
    assert not http_sandbox.webhooks.wait_idle(0.3)
    assert len(receiver.requests) == 1
    assert requests.get(f"{http_sandbox.url}/_sandbox/webhooks", timeout=5).json()["pending"] == 1
    switches(http_sandbox, resume=True)
    deliveries(http_sandbox)
    assert len(receiver.requests) == 2


def test_bad_switches_are_refused(http_sandbox):
    response = requests.post(f"{http_sandbox.url}/_sandbox/webhooks", json={"duplicate": "often"}, timeout=5)
    assert response.status_code == 400 and "'duplicate' must be a number" in response.json()["error"]


def test_an_exchange_whose_fulfillment_orders_come_later(http_sandbox, gql, world, store, receiver):
    subscribe(gql, receiver.hook_url, "ORDERS_CREATE", "FULFILLMENT_ORDERS_ORDER_ROUTING_COMPLETE")
    created = activity(http_sandbox, do="create_exchange", sku="BOOT-42", original="#1001", routing_delay_ms=200)
    assert created["fulfillment_orders"] == [] and created["loop_return"]["state"] == "open"
    assert created["created_at_exact"].startswith("2026-03-01T12:00:00")
    order = world.orders[created["order"]["id"]]
    assert order.fulfillment_order_ids == [] and order.name == "EXC-1001-1"
    deadline = time.monotonic() + 5
    while not order.fulfillment_order_ids and time.monotonic() < deadline:
        time.sleep(0.02)
    deliveries(http_sandbox)
    topics = [r.headers["x-shopify-topic"] for r in receiver.requests]
    assert topics == ["orders/create", "fulfillment_orders/order_routing_complete"]
    assert receiver.requests[1].json()["fulfillment_order"]["id"] == order.fulfillment_order_ids[0]


def test_create_exchange_needs_an_item(http_sandbox):
    response = requests.post(f"{http_sandbox.url}/_sandbox/activity", json={"do": "create_exchange"}, timeout=5)
    assert response.status_code == 422 and "needs 'sku'" in response.json()["error"]


def test_deliveries_are_json_and_list_every_attempt(http_sandbox, gql, store, receiver):
    subscribe(gql, receiver.hook_url, "ORDERS_UPDATED")
    activity(http_sandbox, do="add_tags", order="#1001", tags=["a"])
    [attempt] = deliveries(http_sandbox)
    assert set(attempt) >= {"webhook_id", "event_id", "topic", "uri", "status", "attempt", "sent_at", "body_size"}
    assert attempt["uri"] == receiver.hook_url and attempt["status"] == 200
    assert json.loads(receiver.requests[0].body)["name"] == "#1001"


def loop_webhook(sandbox, **body):
    return requests.post(f"{sandbox.url}/_sandbox/loop/webhooks", json=body, timeout=5)


def test_loops_return_created_is_signed_with_the_developer_tools_secret_and_names_no_id(http_sandbox, world,
                                                                                      store, receiver):
    made = loop_webhook(http_sandbox, trigger="return.created", url=f"{receiver.url}/webhooks/loop")
    assert made.status_code == 201 and made.json()["secret"] == world.loop_webhook_secret
    created = activity(http_sandbox, do="create_exchange", sku="BOOT-42", original="#1001", **{"return": None})
    assert created["loop_return"] is None
    assert deliveries(http_sandbox) == []  # no return, nothing for Loop to send

    activity(http_sandbox, do="create_loop_return", order=created["order"]["name"])
    [attempt] = deliveries(http_sandbox)
    [request] = receiver.requests
    assert attempt["topic"] == "loop/return.created" and attempt["status"] == 200
    expected = base64.b64encode(hmac.new(world.loop_webhook_secret.encode(), request.body, hashlib.sha256).digest())
    assert request.headers["x-loop-signature"] == expected.decode()
    assert not [h for h in request.headers if h.lower().startswith("x-shopify")]
    payload = json.loads(request.body)
    assert (payload["topic"], payload["trigger"], payload["order_name"]) == ("return", "return.created", "#1001")
    assert payload["exchanges"][0]["exchange_order_name"] == created["order"]["name"]
    again = requests.post(f"{http_sandbox.url}/_sandbox/activity", timeout=5,
                          json={"do": "create_loop_return", "order": created["order"]["name"]})
    assert again.status_code == 422 and "already has a Loop return" in again.json()["error"]


def test_a_failed_loop_delivery_is_not_retried(http_sandbox, store):
    with FakeServer(fallback=lambda _r: Reply(500)) as failing:
        assert loop_webhook(http_sandbox, trigger="return.created", url=f"{failing.url}/h").status_code == 201
        created = activity(http_sandbox, do="create_exchange", sku="BOOT-42", original="#1001", **{"return": None})
        activity(http_sandbox, do="create_loop_return", order=created["order"]["name"])
        assert [(a["attempt"], a["status"]) for a in deliveries(http_sandbox)] == [(1, 500)]


def test_a_loop_webhook_needs_a_known_trigger_and_a_usable_address(http_sandbox):
    assert loop_webhook(http_sandbox, trigger="return.deleted", url="https://hooks.example.com/l").status_code == 400
    refused = loop_webhook(http_sandbox, trigger="return.created", url="http://hooks.example.com/l")
    assert refused.status_code == 400 and "http://" in refused.json()["error"]
    assert requests.get(f"{http_sandbox.url}/_sandbox/loop/webhooks", timeout=5).json()["webhooks"] == []
