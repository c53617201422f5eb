"""The sandbox's GraphQL endpoint: auth, Shopify-style errors, scopes, resolvers, logging, OAuth."""

from __future__ import annotations

import json
from datetime import timedelta

from loopsync.sandbox.builders import add_app, add_hold, add_native_exchange
from loopsync.sandbox.oauth import handle_access_token

INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"


def test_missing_unknown_and_expired_tokens_are_401(api, world, app):
    for token in (None, "", "nope"):
        status, _, body = api.handle(token=token, body=b'{"query":"{ shop { name } }"}')
        assert (status, body) == (401, {"errors": INVALID_TOKEN})
    status, _, grant = handle_access_token(world, {"grant_type": "client_credentials", "client_id": "cid",
                                                   "client_secret": "csecret"})
    assert status == 200
    ok = api.handle(token=grant["access_token"], body=b'{"query":"{ shop { name } }"}')
    assert ok[0] == 200 and ok[2]["data"] == {"shop": {"name": "Sandbox Store"}}
    world.advance(timedelta(seconds=grant["expires_in"]))
    assert api.handle(token=grant["access_token"], body=b'{"query":"{ shop { name } }"}')[0] == 401
    assert world.log[-1].status == 401 and world.log[-1].api == "shopify"


def test_client_credentials_grant(world, app):
    status, _, body = handle_access_token(world, {"grant_type": "client_credentials", "client_id": "cid",
                                                  "client_secret": "csecret"})
    assert status == 200
    assert body["scope"] == ",".join(app.scopes)
    assert body["expires_in"] == 86400
    issued = world.tokens[body["access_token"]]
    assert issued.app_id == app.id and issued.expires_at == world.now() + timedelta(days=1)
    assert world.log[-1].api == "oauth" and "csecret" not in repr(world.log[-1])


def test_client_credentials_errors(world, app):
    bad = handle_access_token(world, {"grant_type": "client_credentials", "client_id": "cid", "client_secret": "x"})
    assert bad[0] == 401 and bad[2]["error"] == "invalid_client"
    unknown = handle_access_token(world, {"grant_type": "client_credentials", "client_id": "zz", "client_secret": "x"})
    assert unknown[0] == 401
    grant = handle_access_token(world, {"grant_type": "authorization_code", "client_id": "cid", "client_secret": "x"})
    assert grant[0] == 400 and grant[2]["error"] == "unsupported_grant_type"
    assert handle_access_token(world, {})[0] == 400
    assert len(world.tokens) == 1  # only the static token


def test_malformed_body_is_400(api):
    for body in (b"{not json", b"[]", b'{"variables": {}}', b""):
        status, _, payload = api.handle(token="shpat_loopsync", body=body)
        assert status == 400 and "errors" in payload


def test_misspelled_field_is_rejected_shopify_style(gql, store):
    payload = gql("query Find($id: ID!) {\n  order(id: $id) {\n    nmae\n  }\n}", {"id": store["order"].id})
    assert "data" not in payload
    assert payload["errors"] == [{
        "message": "Field 'nmae' doesn't exist on type 'Order'",
        "locations": [{"line": 3, "column": 5}],
        "path": ["query Find", "order", "nmae"],
        "extensions": {"code": "undefinedField", "typeName": "Order", "fieldName": "nmae"},
    }]
    assert "cost" in payload["extensions"]



def test_a_refused_document_gets_the_same_answer_every_time(gql):
    """The endpoint checks each query text once and reuses the result: a second request must
    not see anything the first one's answer changed (the merged missing-arguments error
    appends to its message, for one)."""
    for query in ("mutation { fulfillmentOrderHold { userErrors { message } } }",
                  "{ order(id: 1) { nmae } }", "{ shop { name }"):
        first, second = gql(query), gql(query)
        assert first["errors"] == second["errors"], query
    merged = gql("mutation { fulfillmentOrderHold { userErrors { message } } }")["errors"][0]
    assert merged["message"].endswith("missing required arguments: fulfillmentHold, id"), merged

def test_other_validation_errors(gql):
    def first_error(query):
        return gql(query)["errors"][0]

    err = first_error("{ orders(frist: 2) { nodes { id } } }")
    assert err["message"] == "Field 'orders' doesn't accept argument 'frist'"
    assert err["extensions"]["code"] == "argumentNotAccepted"
    err = first_error("{ order { id } }")
    assert err["message"] == "Field 'order' is missing required arguments: id"
    assert err["extensions"]["code"] == "missingRequiredArguments"
    err = first_error('{ orders(first: "ten") { nodes { id } } }')
    assert err["message"] == "Argument 'first' on Field 'orders' has an invalid value (\"ten\"). Expected type 'Int'."
    assert err["extensions"]["code"] == "argumentLiteralsIncompatible"
    err = first_error("{ node(id: \"x\") { ... on Ordr { id } } }")
    assert err["extensions"] == {"code": "undefinedType", "typeName": "Ordr"}
    err = first_error("query($x: Strng) { shop { name } }")
    assert err["extensions"]["code"] == "variableRequiresValidType"
    err = first_error("{ shop }")
    assert err["extensions"]["code"] == "selectionMismatch"
    err = first_error("{ shop { name ")
    assert err["message"].startswith("Parse error") and err["locations"]


def test_variable_errors(gql):
    payload = gql("query($id: ID!) { order(id: $id) { id } }", {})
    assert payload["errors"][0]["message"] == "Variable $id of type ID! was provided invalid value"
    assert payload["errors"][0]["extensions"]["problems"][0]["explanation"] == "Expected value to not be null"


def test_operation_name_selection(gql):
    doc = "query A { shop { name } } query B { shop { id } }"
    assert gql(doc)["errors"][0]["message"] == "An operation name is required"
    assert gql.data(doc, operation_name="B") == {"shop": {"id": "gid://shopify/Shop/1"}}


def test_shop_and_access_scopes(gql, app):
    data = gql.data("{ shop { name myshopifyDomain id } currentAppInstallation { accessScopes { handle } } }")
    assert data["shop"]["myshopifyDomain"] == "sandbox-store.myshopify.com"
    assert [s["handle"] for s in data["currentAppInstallation"]["accessScopes"]] == app.scopes


ORDER_QUERY = """
query Order($id: ID!) {
  order(id: $id) {
    id legacyResourceId name createdAt updatedAt tags sourceName app { name } customAttributes { key value }
    closed cancelledAt test
    lineItems(first: 5) { nodes { id sku quantity sellingPlan { name sellingPlanId }
      variant { id sku product { title } metafield(namespace: "preorder", key: "ships") { value type }
        sellingPlanGroups(first: 2) { nodes { name sellingPlans(first: 2) { nodes { category
          deliveryPolicy { ... on SellingPlanFixedDeliveryPolicy { fulfillmentTrigger fulfillmentExactTime } } } } } } } } }
    fulfillmentOrders(first: 5) { nodes { id status orderId orderName
      lineItems(first: 5) { nodes { remainingQuantity totalQuantity sku lineItem { id } variant { id } } }
      fulfillmentHolds { handle reason displayReason heldByRequestingApp heldByApp { title } }
      supportedActions { action } } }
    returns(first: 2) { nodes { name status exchangeLineItems(first: 2) { nodes { quantity variantId lineItems { id } } } } }
  }
}
"""


def test_order_resolvers(gql, world, store):
    order = store["order"]
    add_native_exchange(world, order.id, store["pre"], quantity=1)
    add_hold(world, order.fulfillment_order_ids[1], None, reason="AWAITING_RETURN_ITEMS")
    data = gql.data(ORDER_QUERY, {"id": order.id})["order"]
    assert data["legacyResourceId"] == order.id.rsplit("/", 1)[1]
    assert data["tags"] == ["Loop Exchange"] and data["app"] == {"name": "Online Store"}
    lines = data["lineItems"]["nodes"]
    assert [li["quantity"] for li in lines] == [3, 2, 1]
    assert lines[0]["sellingPlan"] is None and lines[2]["sellingPlan"] is None
    assert lines[1]["sellingPlan"]["sellingPlanId"] == store["group"].plans[0].id
    assert lines[1]["variant"]["metafield"] == {"value": "2026-05-01", "type": "single_line_text_field"}
    plan = lines[1]["variant"]["sellingPlanGroups"]["nodes"][0]["sellingPlans"]["nodes"][0]
    assert plan == {"category": "PRE_ORDER",
                    "deliveryPolicy": {"fulfillmentTrigger": "UNKNOWN", "fulfillmentExactTime": None}}
    assert lines[0]["variant"]["sellingPlanGroups"]["nodes"] == []
    fos = data["fulfillmentOrders"]["nodes"]
    assert [f["status"] for f in fos] == ["OPEN", "ON_HOLD"]
    assert fos[1]["orderName"] == "#1001" and fos[1]["lineItems"]["nodes"][0]["lineItem"]["id"] == lines[2]["id"]
    assert fos[1]["fulfillmentHolds"] == [{"handle": "", "reason": "AWAITING_RETURN_ITEMS",
                                           "displayReason": "Awaiting return items",
                                           "heldByRequestingApp": False, "heldByApp": None}]
    assert {a["action"] for a in fos[1]["supportedActions"]} >= {"RELEASE_HOLD"}
    exchange = data["returns"]["nodes"][0]["exchangeLineItems"]["nodes"][0]
    assert exchange == {"quantity": 1, "variantId": store["pre"], "lineItems": [{"id": lines[2]["id"]}]}


def test_node_and_nodes(gql, store):
    plan_id = store["group"].plans[0].id
    data = gql.data("""query($ids: [ID!]!) { nodes(ids: $ids) { __typename id ... on SellingPlan { category } } }""",
                    {"ids": [plan_id, store["order"].id, "gid://shopify/Order/1", "gid://shopify/Nope/2"]})
    assert data["nodes"] == [
        {"__typename": "SellingPlan", "id": plan_id, "category": "PRE_ORDER"},
        {"__typename": "Order", "id": store["order"].id}, None, None]


def test_unmodeled_fields(gql, store):
    payload = gql("query($id: ID!) { order(id: $id) { id email displayFinancialStatus } }",
                  {"id": store["order"].id})
    # A nullable unmodeled field is null; a non-null one is a visible error.
    assert payload["data"] == {"order": {"id": store["order"].id, "email": None, "displayFinancialStatus": None}}
    payload = gql("query($id: ID!) { order(id: $id) { id currencyCode } }", {"id": store["order"].id})
    assert payload["data"] == {"order": None}
    assert "not modeled by the sandbox" in payload["errors"][0]["message"]


def test_scopes_are_enforced(world, client_for, store):
    add_app(world, "ReadOnly", ["read_products"], static_token="ro")
    ro = client_for("ro")
    payload = ro("{ orders(first: 1) { nodes { id } } }")
    err = payload["errors"][0]
    assert err["message"] == "Access denied for orders field. Required access: `read_orders` access scope."
    assert err["extensions"]["code"] == "ACCESS_DENIED" and err["path"] == ["orders"]
    assert ro("query($id: ID!) { node(id: $id) { id } }", {"id": store["order"].id})["errors"][0][
        "extensions"]["code"] == "ACCESS_DENIED"
    fo_id = store["order"].fulfillment_order_ids[0]
    hold = ro('mutation($id: ID!) { fulfillmentOrderHold(id: $id, fulfillmentHold: {reason: OTHER}) '
              '{ userErrors { code } } }', {"id": fo_id})
    assert hold["data"] == {"fulfillmentOrderHold": None}
    assert "write_merchant_managed_fulfillment_orders" in hold["errors"][0]["message"]
    assert world.fulfillment_orders[fo_id].holds == []
    tags = ro('mutation($id: ID!) { tagsAdd(id: $id, tags: ["x"]) { userErrors { message } } }',
              {"id": store["order"].id})
    assert "write_orders" in tags["errors"][0]["message"] and store["order"].tags == ["Loop Exchange"]
    assert world.log[-1].mutations == []
    # Products are readable with read_products.
    assert ro.data("{ products(first: 1) { nodes { title } } }")["products"]["nodes"] == [{"title": "Trail Boot"}]
    add_app(world, "OrdersOnly", ["read_orders"], static_token="oo")
    denied = client_for("oo")("{ products(first: 1) { nodes { title } } }")
    assert "read_products" in denied["errors"][0]["message"]
    fos = client_for("oo")("query($id: ID!) { order(id: $id) { fulfillmentOrders(first: 1) { nodes { id } } } }",
                          {"id": store["order"].id})
    assert fos["errors"][0]["extensions"]["code"] == "ACCESS_DENIED"


def test_every_request_is_logged(gql, world, store):
    gql("query Named { shop { name } }")
    gql('mutation($id: ID!) { tagsAdd(id: $id, tags: ["a"]) { userErrors { message } } }', {"id": store["order"].id})
    named, mutation = world.log[-2:]
    assert (named.api, named.operation, named.mutations, named.status) == ("shopify", "Named", [], 200)
    assert mutation.mutations == ["tagsAdd"]


def test_responses_are_json_serialisable(api, store):
    status, headers, body = api.handle(token="shpat_loopsync",
                                       body=json.dumps({"query": ORDER_QUERY, "variables": {"id": store["order"].id}}).encode())
    assert status == 200 and isinstance(headers, dict)
    json.dumps(body)
