"""Shared fixtures for the sandbox's Shopify tests: one schema per session, a frozen-clock world,
and a client that talks to it over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from loopsync.sandbox.builders import add_app, add_order, add_product, add_selling_plan_group
from loopsync.sandbox.server import Sandbox
from loopsync.sandbox.shopify.endpoint import ShopifyGraphQL
from loopsync.sandbox.world import World
from loopsync.schema import admin_schema

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
TOKEN = "shpat_loopsync"
ALL_SCOPES = [
    "read_orders",
    "write_orders",
    "read_products",
    "write_merchant_managed_fulfillment_orders",
]


@pytest.fixture(scope="session")
def schema():
    return admin_schema()


@pytest.fixture
def world() -> World:
    return World(now=NOW)


@pytest.fixture
def app(world):
    return add_app(world, "loopsync", ALL_SCOPES, static_token=TOKEN, client_id="cid", client_secret="csecret")


@pytest.fixture
def api(world, schema, app) -> ShopifyGraphQL:
    return ShopifyGraphQL(world, schema)


class Client:
    """Sends GraphQL to the sandbox over real HTTP on 127.0.0.1, as loopsync does."""

    def __init__(self, sandbox: Sandbox, token: str | None = TOKEN) -> None:
        self.url = f"{sandbox.url}/admin/api/2026-10/graphql.json"
        self.session = requests.Session()
        self.token = token

    def raw(self, query: str, variables: dict[str, Any] | None = None, token: str | None = None,
            operation_name: str | None = None) -> tuple[int, Any]:
        body = {"query": query, "variables": variables or {}}
        if operation_name:
            body["operationName"] = operation_name
        response = self.session.post(
            self.url, data=json.dumps(body), timeout=10,
            headers={"X-Shopify-Access-Token": token or self.token or "", "Content-Type": "application/json"},
        )
        return response.status_code, response.json()

    def __call__(self, query: str, variables: dict[str, Any] | None = None, **kw: Any) -> Any:
        status, payload = self.raw(query, variables, **kw)
        assert status == 200, payload
        return payload

    def data(self, query: str, variables: dict[str, Any] | None = None, **kw: Any) -> Any:
        payload = self(query, variables, **kw)
        assert "errors" not in payload, payload["errors"]
        return payload["data"]


@pytest.fixture
def http_sandbox(world, app):
    """The sandbox's HTTP server over this test's world (every request is real HTTP)."""
    with Sandbox(world) as sb:
        yield sb


@pytest.fixture
def gql(http_sandbox) -> Client:
    return Client(http_sandbox)


@pytest.fixture
def store(world):
    """A pre-order variant in a PRE_ORDER group, a regular variant, and one order with both."""
    product = add_product(world, "Trail Boot", [
        {"title": "Black / 42", "sku": "BOOT-42", "price": "120.00",
         "metafields": {("preorder", "ships"): "2026-05-01"}},
        {"title": "Black / 43", "sku": "BOOT-43", "price": "120.00"},
    ])
    pre, regular = product.variant_ids
    group = add_selling_plan_group(world, "Pre-order", [
        {"name": "Ships in May", "description": "Pre-order", "fulfillment_trigger": "UNKNOWN"},
    ], [pre])
    order = add_order(world, "#1001", [
        {"variant_id": regular, "quantity": 3},
        {"variant_id": pre, "quantity": 2, "selling_plan_id": group.plans[0].id},
    ], tags=["Loop Exchange"])
    return {"product": product, "pre": pre, "regular": regular, "group": group, "order": order}


@pytest.fixture
def client_for(http_sandbox):
    """A client calling the same endpoint with another token."""
    return lambda token: Client(http_sandbox, token)
