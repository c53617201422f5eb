"""Shopify's side of the sandbox over HTTP: GraphQL with the demo token, the token endpoint, faults."""

from __future__ import annotations

import pytest
import requests

from loopsync.sandbox.server import Sandbox

QUERY = """
query Exchanges($q: String!) {
  shop { name }
  orders(first: 10, query: $q) { nodes { name tags } }
}
"""


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox() as sb:
        yield sb


def _graphql(sb: Sandbox, token: str | None, payload: dict, version: str = "2026-10") -> requests.Response:
    headers = {"X-Shopify-Access-Token": token} if token is not None else {}
    return requests.post(f"{sb.url}/admin/api/{version}/graphql.json", json=payload, headers=headers, timeout=10)


def test_graphql_query_with_the_demo_token(sandbox):
    response = _graphql(sandbox, sandbox.credentials["shopify_token"],
                        {"query": QUERY, "variables": {"q": "name:EXC-1086-1"}, "operationName": "Exchanges"})
    assert response.status_code == 200
    assert response.headers["X-Shopify-API-Version"] == "2026-10"
    body = response.json()
    assert body["data"]["shop"]["name"] == "Sandbox Store"
    assert [o["name"] for o in body["data"]["orders"]["nodes"]] == ["EXC-1086-1"]
    assert body["data"]["orders"]["nodes"][0]["tags"] == ["1086"]
    assert "throttleStatus" in body["extensions"]["cost"]
    entry = sandbox.world.log[-1]
    assert (entry.api, entry.path, entry.status) == ("shopify", "/admin/api/2026-10/graphql.json", 200)


def test_older_supported_version_is_served(sandbox):
    response = _graphql(sandbox, sandbox.credentials["shopify_token"], {"query": "{ shop { name } }"}, "2025-01")
    assert response.status_code == 200 and response.json()["data"]["shop"]["name"] == "Sandbox Store"
    assert sandbox.world.log[-1].path == "/admin/api/2025-01/graphql.json"


@pytest.mark.parametrize("token", ["shpat_wrong", None])
def test_wrong_or_missing_token_is_401(sandbox, token):
    response = _graphql(sandbox, token, {"query": "{ shop { name } }"})
    assert response.status_code == 401
    assert "Invalid API key or access token" in response.json()["errors"]


@pytest.mark.parametrize("as_json", [False, True])
def test_client_credentials_token_works_for_graphql(sandbox, as_json):
    creds = sandbox.credentials
    form = {"grant_type": "client_credentials", "client_id": creds["client_id"],
            "client_secret": creds["client_secret"]}
    kwargs = {"json": form} if as_json else {"data": form}
    response = requests.post(f"{sandbox.url}/admin/oauth/access_token", timeout=5, **kwargs)
    assert response.status_code == 200
    token = response.json()["access_token"]
    assert response.json()["expires_in"] > 0
    assert sandbox.world.log[-1].api == "oauth"
    assert _graphql(sandbox, token, {"query": "{ shop { name } }"}).status_code == 200


def test_token_endpoint_rejects_a_wrong_secret(sandbox):
    response = requests.post(f"{sandbox.url}/admin/oauth/access_token", timeout=5,
                             data={"grant_type": "client_credentials", "client_id": "sandbox-client-id",
                                   "client_secret": "nope"})
    assert response.status_code in (400, 401)
    assert "access_token" not in response.json()
    assert "nope" not in response.text


def test_malformed_graphql_answer_is_logged_once_with_its_fault():
    with Sandbox(faults="malformed=1.0") as sb:
        response = _graphql(sb, sb.credentials["shopify_token"], {"query": "{ shop { name } }"})
        assert response.status_code == 200
        with pytest.raises(ValueError):
            response.json()
        shopify = [e for e in sb.world.log if e.api == "shopify"]
        assert len(shopify) == 1 and shopify[0].fault == "malformed"
