"""webhookSubscriptionCreate / Update / Delete and webhookSubscriptions, with Shopify's rules, per app."""

from __future__ import annotations

import pytest

from loopsync.sandbox.builders import add_app
from loopsync.sandbox.scenarios import ScenarioError, load_data
from loopsync.sandbox.world import World, default_api_secret

CREATE = """
mutation Create($topic: WebhookSubscriptionTopic!, $sub: WebhookSubscriptionInput!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $sub) {
    webhookSubscription { id topic uri format createdAt updatedAt legacyResourceId apiVersion { handle }
      endpoint { __typename ... on WebhookHttpEndpoint { callbackUrl } } includeFields filter }
    userErrors { field message }
  }
}
"""
UPDATE = """
mutation Update($id: ID!, $sub: WebhookSubscriptionInput!) {
  webhookSubscriptionUpdate(id: $id, webhookSubscription: $sub) {
    webhookSubscription { id uri } userErrors { field message }
  }
}
"""
DELETE = """
mutation Delete($id: ID!) {
  webhookSubscriptionDelete(id: $id) { deletedWebhookSubscriptionId userErrors { field message } }
}
"""
LIST = """
query List($topics: [WebhookSubscriptionTopic!], $uri: String, $after: String) {
  webhookSubscriptions(first: 2, topics: $topics, uri: $uri, after: $after) {
    nodes { id topic uri } pageInfo { hasNextPage endCursor }
  }
}
"""
ONE = "query One($id: ID!) { webhookSubscription(id: $id) { id uri } }"
URI = "https://hooks.example/webhooks/shopify"


def create(gql, topic="ORDERS_CREATE", uri=URI, **kw):
    return gql.data(CREATE, {"topic": topic, "sub": {"uri": uri, "format": "JSON"}}, **kw)["webhookSubscriptionCreate"]


def listed(gql, **variables):
    nodes, after = [], None
    while True:
        page = gql.data(LIST, {**variables, "after": after})["webhookSubscriptions"]
        nodes += page["nodes"]
        if not page["pageInfo"]["hasNextPage"]:
            return nodes
        after = page["pageInfo"]["endCursor"]


def test_create_list_update_delete(gql):
    made = create(gql)
    assert made["userErrors"] == []
    sub = made["webhookSubscription"]
    assert sub["topic"] == "ORDERS_CREATE" and sub["uri"] == URI and sub["format"] == "JSON"
    assert sub["apiVersion"] == {"handle": "2026-10"}
    assert sub["endpoint"] == {"__typename": "WebhookHttpEndpoint", "callbackUrl": URI}
    assert sub["createdAt"] == "2026-03-01T12:00:00Z" and sub["includeFields"] == [] and sub["filter"] is None
    for topic in ("ORDERS_UPDATED", "FULFILLMENT_HOLDS_RELEASED"):
        assert create(gql, topic)["userErrors"] == []
    create(gql, "ORDERS_CREATE", "https://other.example/hooks")

    # Paged two at a time, filtered by topic and by address.
    assert len(listed(gql)) == 4
    assert {n["uri"] for n in listed(gql, topics=["ORDERS_CREATE"])} == {URI, "https://other.example/hooks"}
    assert {n["topic"] for n in listed(gql, uri=URI)} == {"ORDERS_CREATE", "ORDERS_UPDATED",
                                                          "FULFILLMENT_HOLDS_RELEASED"}

    moved = gql.data(UPDATE, {"id": sub["id"], "sub": {"uri": "https://moved.example/h"}})["webhookSubscriptionUpdate"]
    assert moved == {"webhookSubscription": {"id": sub["id"], "uri": "https://moved.example/h"}, "userErrors": []}
    assert gql.data(ONE, {"id": sub["id"]})["webhookSubscription"]["uri"] == "https://moved.example/h"

    gone = gql.data(DELETE, {"id": sub["id"]})["webhookSubscriptionDelete"]
    assert gone == {"deletedWebhookSubscriptionId": sub["id"], "userErrors": []}
    assert gql.data(ONE, {"id": sub["id"]})["webhookSubscription"] is None
    assert len(listed(gql)) == 3


@pytest.mark.parametrize(("uri", "error"), [
    ("http://hooks.example/webhooks", "Address protocol http:// is not supported"),
    ("ftp://hooks.example/webhooks", "Address is invalid"),
    ("not a url", "Address is invalid"),
])
def test_address_must_be_https(gql, uri, error):
    assert create(gql, uri=uri)["userErrors"] == [{"field": ["uri"], "message": error}]


@pytest.mark.parametrize("uri", ["http://127.0.0.1:8080/webhooks/shopify", "http://localhost:8080/w",
                                 "http://[::1]:9/w"])
def test_plain_http_is_allowed_on_this_machine(gql, uri):
    assert create(gql, uri=uri)["userErrors"] == []


def test_same_topic_and_address_twice_is_refused(gql, world):
    create(gql)
    again = create(gql)
    assert again == {"webhookSubscription": None,
                     "userErrors": [{"field": ["uri"], "message": "Address for this topic has already been taken"}]}
    # Another topic at that address, and the same topic elsewhere, are fine.
    assert create(gql, "ORDERS_UPDATED")["userErrors"] == []
    assert create(gql, uri="https://two.example/h")["userErrors"] == []
    assert len(world.webhook_subscriptions) == 3


def test_moving_onto_a_taken_address_is_refused(gql):
    create(gql)
    other = create(gql, uri="https://two.example/h")["webhookSubscription"]
    moved = gql.data(UPDATE, {"id": other["id"], "sub": {"uri": URI}})["webhookSubscriptionUpdate"]
    assert moved["userErrors"] == [{"field": ["uri"], "message": "Address for this topic has already been taken"}]


def test_a_topic_needs_its_read_scope(gql, world, client_for):
    add_app(world, "Tagger", ["write_orders"], static_token="shpat_tagger")
    tagger = client_for("shpat_tagger")
    assert create(tagger, "ORDERS_CREATE")["userErrors"] == []  # write_orders implies read_orders
    refused = create(tagger, "SELLING_PLAN_GROUPS_UPDATE")
    assert refused["webhookSubscription"] is None
    assert refused["userErrors"] == [{"field": ["topic"], "message":
                                      "Access denied for selling_plan_groups/update webhook. "
                                      "Required access: `read_products`."}]
    assert create(tagger, "FULFILLMENT_HOLDS_RELEASED")["userErrors"][0]["field"] == ["topic"]


def test_a_topic_the_sandbox_does_not_deliver_is_refused(gql):
    refused = create(gql, "ORDERS_PAID")
    assert refused["userErrors"] == [{"field": ["topic"], "message": "The sandbox does not deliver ORDERS_PAID webhooks."}]


def test_one_app_never_sees_changes_or_deletes_anothers(gql, world, client_for):
    add_app(world, "Upsell Guard", ["read_orders"], static_token="shpat_upsell")
    upsell = client_for("shpat_upsell")
    theirs = create(upsell)["webhookSubscription"]
    # The same topic and address for another app is not "taken".
    assert create(gql)["userErrors"] == []

    assert [n["id"] for n in listed(upsell)] == [theirs["id"]]
    assert theirs["id"] not in [n["id"] for n in listed(gql)]
    assert gql.data(ONE, {"id": theirs["id"]})["webhookSubscription"] is None
    not_found = [{"field": ["id"], "message": "Webhook subscription does not exist"}]
    assert gql.data(DELETE, {"id": theirs["id"]})["webhookSubscriptionDelete"]["userErrors"] == not_found
    moved = gql.data(UPDATE, {"id": theirs["id"], "sub": {"uri": "https://x.example/h"}})
    assert moved["webhookSubscriptionUpdate"]["userErrors"] == not_found
    assert world.webhook_subscriptions[theirs["id"]].uri == URI


def test_query_search_is_not_silently_ignored(gql):
    status, payload = gql.raw('{ webhookSubscriptions(first: 5, query: "topic:orders/create") { nodes { id } } }')
    assert payload["errors"][0]["extensions"]["code"] == "SANDBOX_NOT_MODELED"


def test_scenario_subscriptions_and_api_secret():
    world = load_data(World(), {
        "apps": [{"title": "loopsync", "scopes": ["read_orders"], "static_token": "t1"},
                 {"title": "Upsell Guard", "scopes": ["read_orders"], "api_secret": "upsell-secret"}],
        "webhook_subscriptions": [{"app": "Upsell Guard", "topic": "orders/create", "uri": URI},
                                  {"app": "Upsell Guard", "topic": "ORDERS_UPDATED", "uri": URI}],
        "webhooks": {"duplicate": 0.5, "retry_delays": [0.1], "seed": 3},
    })
    apps = {a.title: a for a in world.apps.values()}
    assert {(s.app_id, s.topic) for s in world.webhook_subscriptions.values()} == {
        (apps["Upsell Guard"].id, "ORDERS_CREATE"), (apps["Upsell Guard"].id, "ORDERS_UPDATED")}
    assert apps["Upsell Guard"].webhook_secret == "upsell-secret"
    # No client secret and no api_secret: a default tests can compute from the title.
    assert apps["loopsync"].webhook_secret == default_api_secret("loopsync")
    assert world.webhook_switches.duplicate == 0.5 and world.webhook_switches.retry_delays == (0.1,)


@pytest.mark.parametrize(("section", "error"), [
    ({"webhook_subscriptions": [{"app": "loopsync", "topic": "orders/paid", "uri": URI}]},
     "not a topic the sandbox delivers"),
    ({"webhook_subscriptions": [{"app": "loopsync", "topic": "orders/create", "uri": "http://x.example/"}]},
     "Address protocol http:// is not supported"),
    ({"webhooks": {"duplicate": 2}}, "'duplicate' must be a number from 0 to 1"),
    ({"webhooks": {"shuffle": 2}}, "unknown webhook switch 'shuffle'"),
])
def test_scenario_mistakes_are_named(section, error):
    with pytest.raises(ScenarioError, match=error):
        load_data(World(), {"apps": [{"title": "loopsync", "scopes": ["read_orders"]}], **section})
