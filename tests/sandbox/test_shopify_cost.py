"""Calculated query cost, the single-query limit and the per-app leaky bucket."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from graphql import parse

from loopsync.sandbox.builders import add_app, add_order
from loopsync.sandbox.shopify.cost import query_cost
from loopsync.sandbox.shopify.endpoint import ShopifyGraphQL
from loopsync.sandbox.world import World

TAG = 'mutation($id: ID!) { tagsAdd(id: $id, tags: ["t"]) { userErrors { message } } }'


@pytest.mark.parametrize(("query", "expected"), [
    ("{ shop { name } }", 1),
    ("{ shop { name } currentAppInstallation { accessScopes { handle } } }", 3),
    ("{ orders(first: 10) { nodes { id name } } }", 12),
    ("{ orders(first: 10) { edges { cursor node { id } } pageInfo { hasNextPage } } }", 12),
    ("{ orders(first: 10) { nodes { id lineItems(first: 5) { nodes { sku variant { id } } } } } }",
     2 + 10 * (1 + 2 + 5 * 2)),
    ('mutation { tagsAdd(id: "x", tags: ["a"]) { node { id } userErrors { message } } }', 10),
    ("query($n: Int) { orders(first: $n) { nodes { id } } }", 2 + 7),
    # nodes(ids:): one node per id, priced as the type its fragment names
    ('{ nodes(ids: ["a", "b"]) { ... on Order { id app { name } } } }', 2 * (1 + 1)),
    # an interface costs its dearest possible selection, not the sum of its fragments
    ('{ nodes(ids: ["a"]) { ... on Order { app { name } } '
     '... on ProductVariant { product { id } sellingPlanGroups(first: 2) { nodes { id } } } } }', 1 + (1 + 2 + 2)),
])
def test_requested_cost(schema, query, expected):
    assert query_cost(schema, parse(query), None, {"n": 7}) == expected


def test_actual_cost_uses_returned_sizes(gql, world, store):
    payload = gql("{ orders(first: 50) { nodes { id lineItems(first: 10) { nodes { sku } } } } }")
    cost = payload["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 2 + 50 * (1 + 2 + 10)
    assert cost["actualQueryCost"] == 2 + 1 * (1 + 2 + 2)  # one order with two line items
    status = cost["throttleStatus"]
    assert status == {"maximumAvailable": 2000.0, "currentlyAvailable": 2000 - 7, "restoreRate": 100.0}
    # The sandbox's log keeps the figures: a benchmark of `loopsync serve` reads its costs there.
    entry = world.log[-1]
    assert (entry.requested_cost, entry.actual_cost, entry.throttled) == (2 + 50 * 13, 7, False)


def test_single_query_limit(gql, store):
    payload = gql("{ orders(first: 250) { nodes { lineItems(first: 10) { nodes { id } } } } }")
    assert "data" not in payload
    err = payload["errors"][0]
    assert err["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert err["message"].startswith("Query cost is 3252, which exceeds the single query max cost limit (1000).")
    assert payload["extensions"]["cost"]["requestedQueryCost"] == 3252
    assert payload["extensions"]["cost"]["actualQueryCost"] is None


def test_burst_is_throttled_until_the_bucket_refills(gql, world, store):
    world.bucket_size, world.restore_rate = 50.0, 10.0
    order = store["order"]
    for _ in range(5):
        assert "errors" not in gql(TAG, {"id": order.id})
    before = world.mutation_count()
    payload = gql(TAG, {"id": order.id})
    assert payload == {
        "errors": [{"message": "Throttled", "extensions": {
            "code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
        "extensions": {"cost": {"requestedQueryCost": 10, "actualQueryCost": None, "throttleStatus": {
            "maximumAvailable": 50.0, "currentlyAvailable": 0, "restoreRate": 10.0}}},
    }
    assert world.mutation_count() == before  # a throttled mutation does nothing
    assert (world.log[-1].requested_cost, world.log[-1].actual_cost, world.log[-1].throttled) == (10, None, True)
    world.advance(timedelta(milliseconds=900))
    assert gql(TAG, {"id": order.id})["errors"][0]["message"] == "Throttled"
    world.advance(timedelta(milliseconds=100))
    ok = gql(TAG, {"id": order.id})
    assert "errors" not in ok and ok["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 0


def test_buckets_are_per_app(gql, world, client_for, store):
    world.bucket_size, world.restore_rate = 10.0, 1.0
    add_app(world, "Other", ["write_orders"], static_token="other")
    assert "errors" not in gql(TAG, {"id": store["order"].id})
    assert gql(TAG, {"id": store["order"].id})["errors"][0]["message"] == "Throttled"
    assert "errors" not in client_for("other")(TAG, {"id": store["order"].id})


def test_bucket_refills_with_real_time(schema):
    world = World()  # live clock
    world.bucket_size, world.restore_rate = 10.0, 50.0
    add_app(world, "live", ["write_orders"], static_token="t")
    order = add_order(world, "#1", [])
    api = ShopifyGraphQL(world, schema)
    body = json.dumps({"query": TAG, "variables": {"id": order.id}}).encode()
    assert "errors" not in api.handle(token="t", body=body)[2]
    assert api.handle(token="t", body=body)[2]["errors"][0]["message"] == "Throttled"
    time.sleep(0.25)  # 50 points/s: 12.5 points back
    assert "errors" not in api.handle(token="t", body=body)[2]
