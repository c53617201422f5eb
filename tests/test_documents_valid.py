"""Every GraphQL document loopsync sends is valid against Shopify's official 2026-10 schema,
and stays under Shopify's 1000-point single-query cost limit at the sizes the client uses."""

from __future__ import annotations

import re

import pytest
from graphql import OperationDefinitionNode, parse, validate

from loopsync.schema import admin_schema
from loopsync.shopify import cost
from loopsync.shopify import documents as docs

SHOPIFY_QUERY_COST_LIMIT = 1000


@pytest.mark.parametrize("name", sorted(docs.ALL_DOCUMENTS))
def test_document_validates_against_the_admin_schema(name):
    document = docs.ALL_DOCUMENTS[name]
    ast = parse(document)
    assert validate(admin_schema(), ast) == []
    operations = [d for d in ast.definitions if isinstance(d, OperationDefinitionNode)]
    assert [op.name.value for op in operations] == [name]  # one named operation, registered under its name


def test_every_document_constant_is_registered():
    constants = {
        value
        for key, value in vars(docs).items()
        if key.isupper() and isinstance(value, str) and re.search(r"^\s*(query|mutation) ", value, re.M)
    }
    assert constants == set(docs.ALL_DOCUMENTS.values())


def test_release_hold_requires_hold_ids():
    # Without holdIds Shopify releases every hold on the fulfillment order, so the
    # variable is declared non-null: a missing list fails validation, not a merchant.
    assert "$holdIds: [ID!]!" in docs.FULFILLMENT_ORDER_RELEASE_HOLD


# Sizes the client actually sends (see ShopifyClient): pages and batches are derived
# from the estimate, follow-up pages use fixed sizes in the documents themselves.
SENT_SIZES = {
    "LoopsyncOrdersPage": {"first": cost.orders_page_size(250)},
    "LoopsyncOrdersById": {"ids": [0] * cost.orders_page_size(250)},
    "LoopsyncVariantsById": {"ids": [0] * cost.variants_batch_size()},
    "LoopsyncVariantGroupIds": {"ids": [0] * cost.variant_group_ids_batch_size()},
}


@pytest.mark.parametrize("name", sorted(docs.ALL_DOCUMENTS))
def test_requested_cost_stays_under_the_limit(name):
    requested = cost.estimate_cost(docs.ALL_DOCUMENTS[name], SENT_SIZES.get(name, {}))
    assert requested <= cost.QUERY_COST_BUDGET < SHOPIFY_QUERY_COST_LIMIT


def test_cost_estimate_follows_shopifys_rules():
    # connection: 2 + first × (1 per node + nested); scalars free; objects 1
    assert cost.estimate_cost("query A { orders(first: 10) { nodes { id } } }") == 12
    assert cost.estimate_cost("query A { orders(first: 10) { nodes { id app { name } } } }") == 22
    assert cost.estimate_cost("query A { shop { name } }") == 1
    assert cost.estimate_cost(
        "query A($n: Int!) { orders(first: $n) { nodes { lineItems(first: 5) { nodes { id } } } } }", {"n": 3}
    ) == 2 + 3 * (1 + 2 + 5)
    # a mutation field costs 10 whatever it selects; nodes(ids:) one node per id
    assert cost.estimate_cost("mutation A { tagsAdd(id: 1, tags: []) { userErrors { message } } }") == 10
    assert cost.estimate_cost("query A($ids: [ID!]!) { nodes(ids: $ids) { ... on Order { app { name } } } }",
                              {"ids": [1, 2, 3]}) == 3 * (1 + 1)
    assert cost.ORDER_COST == 75  # documented in shopify.cost's module docstring
    assert cost.orders_page_size(50) == 10


@pytest.mark.parametrize("name", sorted(docs.ALL_DOCUMENTS))
def test_estimate_and_sandbox_calculator_agree_on_every_document(name):
    """One cost model: what loopsync sizes pages by is what the sandbox (playing Shopify) charges."""
    from loopsync.sandbox.shopify.cost import query_cost

    variables = {"id": "gid://shopify/Order/1", "namespace": "n", "key": "k", "first": 1,
                 "fulfillmentHold": {"reason": "OTHER"}, "holdIds": ["h"], "tags": ["t"],
                 **SENT_SIZES.get(name, {})}
    document = docs.ALL_DOCUMENTS[name]
    assert query_cost(admin_schema(), parse(document), name, variables) == cost.estimate_cost(document, variables)


def test_cost_estimate_matches_the_sandbox_for_an_orders_page():
    """The sandbox computes requested cost independently; the two should agree on our biggest query."""
    from loopsync.sandbox.server import Sandbox
    from loopsync.shopify import ShopifyClient, StaticToken

    with Sandbox() as sb:
        creds = sb.credentials
        client = ShopifyClient(creds["shop_domain"], StaticToken(creds["shopify_token"]), base_url=sb.url)
        client.execute(docs.ORDERS_PAGE, {"first": 4, "query": "name:1001"}, "LoopsyncOrdersPage")
    assert client.stats.requested_cost == cost.estimate_cost(docs.ORDERS_PAGE, {"first": 4})
