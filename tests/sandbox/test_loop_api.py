"""The sandbox's Loop Returns API over real HTTP, against the demo store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from loopsync.sandbox.generator import generate_store
from loopsync.sandbox.scenarios import load_scenario
from loopsync.sandbox.server import Sandbox
from loopsync.sandbox.world import World, gid_number

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
KEY = "loop_sandbox_demo_key"
UNAUTHORIZED = {"error": {"code": "401", "http_code": "GEN-UNAUTHORIZED", "message": "Unauthorized."}}


@pytest.fixture()
def sandbox():
    world = load_scenario(World(now=NOW), "demo")
    with Sandbox(world) as sb:
        yield sb


@pytest.fixture()
def loop(sandbox):
    session = requests.Session()
    session.headers["X-Authorization"] = KEY
    base = sandbox.loop_url

    def call(method: str, path: str, **kwargs) -> requests.Response:
        return session.request(method, base + path, timeout=5, **kwargs)

    yield call
    session.close()


def _return_for(world: World, order_name: str):
    return next(r for r in world.loop_returns.values() if r.order_name == order_name)


# -- auth --


@pytest.mark.parametrize("headers", [{}, {"X-Authorization": "wrong"}, {"X-Authorization": f"Bearer {KEY}"},
                                     {"X-Authorization": "loop_sandbox_no_scope_key"}])
def test_bad_missing_or_unscoped_key_is_401(sandbox, headers):
    response = requests.get(f"{sandbox.loop_url}/warehouse/return/list", headers=headers, timeout=5)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


def test_requests_are_logged(sandbox, loop):
    loop("GET", "/warehouse/return/list")
    requests.get(f"{sandbox.loop_url}/warehouse/return/list", timeout=5)
    entries = [e for e in sandbox.world.log if e.api == "loop"]
    assert [(e.method, e.path, e.status) for e in entries] == [
        ("GET", "/api/v1/warehouse/return/list", 200),
        ("GET", "/api/v1/warehouse/return/list", 401),
    ]
    assert entries[0].operation == "return.list"


# -- list --


def test_list_defaults_to_last_24h_open_closed_expired(sandbox, loop):
    response = loop("GET", "/warehouse/return/list")
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body, list)  # no paginate: a bare array
    names = sorted(r["order_name"] for r in body)
    # #1091's return is in review: Loop's default filter leaves it out.
    assert names == ["#1086", "#1090", "#1092", "#1093", "#1095"]
    assert {r["state"] for r in body} == {"open", "closed"}


def test_list_state_review_and_other_filters(sandbox, loop):
    review = loop("GET", "/warehouse/return/list", params={"state": "review"}).json()
    assert [r["order_name"] for r in review] == ["#1091"]
    closed = loop("GET", "/warehouse/return/list", params={"state": "closed"}).json()
    assert [r["order_name"] for r in closed] == ["#1093"]
    assert loop("GET", "/warehouse/return/list", params={"state": "cancelled"}).json() == []


def test_list_time_window_and_filter_field(sandbox, loop):
    world = sandbox.world
    ret = _return_for(world, "#1086")
    ret.updated_at = NOW - timedelta(days=40)
    ret.created_at = NOW - timedelta(days=50)
    window = {"from": (NOW - timedelta(days=45)).strftime("%Y-%m-%d %H:%M:%S"),
              "to": (NOW - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%S.000Z")}
    by_created = loop("GET", "/warehouse/return/list", params=window).json()
    by_updated = loop("GET", "/warehouse/return/list", params={**window, "filter": "updated_at"}).json()
    assert by_created == []
    assert [r["id"] for r in by_updated] == [ret.id]


@pytest.mark.parametrize("params", [
    {"from": "2026-01-01", "to": "2026-06-01"},  # > 120 days
    {"from": "yesterday"},
    {"state": "needs_review"},
    {"filter": "edited_at"},
    {"paginate": "true", "pageSize": "751"},
    {"paginate": "true", "cursor": "not-a-cursor"},
])
def test_list_validation_errors_are_422(sandbox, loop, params):
    response = loop("GET", "/warehouse/return/list", params=params)
    assert response.status_code == 422
    assert response.json()["errors"]


def test_list_120_days_exactly_is_allowed(sandbox, loop):
    params = {"from": "2026-07-23T12:00:00Z", "to": "2026-11-20T12:00:00Z"}
    assert loop("GET", "/warehouse/return/list", params=params).status_code == 200


def test_pagination_follows_next_page_url_over_every_return(sandbox, loop):
    generate_store(sandbox.world, orders=400, exchange_share=0.5, seed=1)
    params = {"from": "2026-11-01", "to": "2026-11-21", "state": "open"}
    everything = loop("GET", "/warehouse/return/list", params=params).json()
    assert len(everything) > 100

    first = loop("GET", "/warehouse/return/list", params={**params, "paginate": "true", "pageSize": "40"}).json()
    assert set(first) == {"returns", "nextPageUrl", "previousPageUrl"}
    assert first["previousPageUrl"] is None
    pages = [first]
    while pages[-1]["nextPageUrl"]:
        url = pages[-1]["nextPageUrl"]
        assert url.startswith(sandbox.url + "/api/v1/warehouse/return/list?")
        query = parse_qs(urlsplit(url).query)
        assert query["cursor"] and query["state"] == ["open"] and query["pageSize"] == ["40"]
        pages.append(loop("GET", url[len(sandbox.loop_url):]).json())
    assert all(len(p["returns"]) == 40 for p in pages[:-1])
    assert 1 <= len(pages[-1]["returns"]) <= 40
    ids = [r["id"] for p in pages for r in p["returns"]]
    assert ids == sorted(r["id"] for r in everything)

    back = loop("GET", pages[2]["previousPageUrl"][len(sandbox.loop_url):]).json()
    assert [r["id"] for r in back["returns"]] == [r["id"] for r in pages[1]["returns"]]


def test_paginate_default_page_size_is_100(sandbox, loop):
    generate_store(sandbox.world, orders=500, exchange_share=0.5, seed=2)
    page = loop("GET", "/warehouse/return/list",
                params={"from": "2026-11-01", "to": "2026-11-21", "paginate": "true"}).json()
    assert len(page["returns"]) == 100 and page["nextPageUrl"]


# -- details --


def test_details_by_return_id_order_id_and_name(sandbox, loop):
    world = sandbox.world
    ret = _return_for(world, "#1086")
    exchange_order = world.order_by_name("EXC-1086-1")
    original = world.order_by_name("#1086")
    by_id = loop("GET", "/warehouse/return/details", params={"return_id": ret.id}).json()
    by_order = loop("GET", "/warehouse/return/details", params={"order_id": gid_number(original.id)}).json()
    by_name = loop("GET", "/warehouse/return/details", params={"order_name": "1086"}).json()
    by_hash_name = loop("GET", "/warehouse/return/details", params={"order_name": "#1086"}).json()
    assert by_id == by_order == by_name == by_hash_name
    assert by_id["id"] == ret.id and by_id["state"] == "open"
    assert by_id["order_name"] == "#1086" and by_id["order_number"] == "1086"
    assert by_id["provider_order_id"] == str(gid_number(original.id))
    assert by_id["exchange_order_name"] == "EXC-1086-1"
    assert by_id["exchange_order_id"] == gid_number(exchange_order.id)
    [exchange] = by_id["exchanges"]
    assert exchange["exchange_order_id"] == gid_number(exchange_order.id)
    assert exchange["exchange_order_name"] == "EXC-1086-1"
    assert exchange["sku"] == "JKT-L-PRE" and exchange["type"] == "exchange"
    assert exchange["out_of_stock"] is False and exchange["out_of_stock_resolution"] is None
    for key in ("exchange_id", "product_id", "variant_id", "title", "price", "discount", "tax", "total"):
        assert key in exchange
    for key in ("provider_order_number", "exchange", "line_items", "created_at", "updated_at", "customer"):
        assert key in by_id


def test_details_of_native_exchange_points_at_the_original(sandbox, loop):
    original = sandbox.world.order_by_name("#1095")
    body = loop("GET", "/warehouse/return/details", params={"order_name": "#1095"}).json()
    assert body["provider_order_id"] == str(gid_number(original.id))
    assert body["exchanges"][0]["exchange_order_id"] == gid_number(original.id)
    assert body["exchanges"][0]["sku"] == "BOOT-10-PRE"


@pytest.mark.parametrize("params", [{"return_id": "1"}, {"order_name": "EXC-1086-1"}, {"order_id": "123"}])
def test_details_not_found_is_200_with_error(sandbox, loop, params):
    response = loop("GET", "/warehouse/return/details", params=params)
    assert response.status_code == 200
    assert response.json() == {"error": {"message": "No return found with this ID."}}


def test_details_needs_exactly_one_identifier(sandbox, loop):
    assert loop("GET", "/warehouse/return/details").status_code == 422


# -- notes --


def test_note_create_and_list(sandbox, loop):
    ret = _return_for(sandbox.world, "#1086")
    empty = loop("GET", f"/warehouse/return/{ret.id}/notes")
    assert empty.status_code == 422 and empty.content == b"false"

    created = loop("POST", f"/warehouse/return/{ret.id}/note", json={"content": "Held: ships 2027-03-15"})
    assert created.status_code == 200 and created.json() is True
    loop("POST", f"/warehouse/return/{ret.id}/note", json={"content": "x" * 255})

    notes = loop("GET", f"/warehouse/return/{ret.id}/notes")
    assert notes.status_code == 200
    body = notes.json()
    assert [n["content"] for n in body["notes"]] == ["Held: ships 2027-03-15", "x" * 255]
    assert body["notes"][0]["created_at"] == "2026-11-20T12:00:00Z"
    assert isinstance(body["notes"][0]["id"], int)
    assert [n.content for n in ret.notes] == ["Held: ships 2027-03-15", "x" * 255]


def test_notes_bare_array_shape_per_world(sandbox, loop):
    sandbox.world.loop_notes_shape = "bare_array"
    ret = _return_for(sandbox.world, "#1090")
    loop("POST", f"/warehouse/return/{ret.id}/note", json={"content": "hello"})
    body = loop("GET", f"/warehouse/return/{ret.id}/notes").json()
    assert isinstance(body, list)
    assert body[0]["content"] == "hello" and body[0]["created_at"] == "2026-11-20 12:00:00"


@pytest.mark.parametrize("payload", [{}, {"content": ""}, {"content": "x" * 256}, {"content": 5}, None])
def test_note_content_missing_or_too_long_is_422(sandbox, loop, payload):
    ret = _return_for(sandbox.world, "#1086")
    kwargs = {"json": payload} if payload is not None else {"data": b"not json"}
    response = loop("POST", f"/warehouse/return/{ret.id}/note", **kwargs)
    assert response.status_code == 422
    assert response.json() == {"errors": {"message": "Content is required and must be less than 255 characters."}}
    assert ret.notes == []


def test_note_on_unknown_return(sandbox, loop):
    assert loop("POST", "/warehouse/return/999/note", json={"content": "hi"}).status_code == 404
    assert loop("GET", "/warehouse/return/999/notes").status_code == 404


def test_unknown_route_and_wrong_method(sandbox, loop):
    assert loop("GET", "/warehouse/nothing").status_code == 404
    assert loop("POST", "/warehouse/return/list").status_code == 405


# -- rate limit --


def test_rate_limit_429_with_retry_after_then_recovers(sandbox, loop):
    sandbox.world.loop_rate_per_minute = 5
    answers = [loop("GET", "/warehouse/return/list") for _ in range(5)]
    assert [r.status_code for r in answers] == [200] * 5
    assert [r.headers["x-ratelimit-remaining"] for r in answers] == ["4", "3", "2", "1", "0"]
    assert answers[0].headers["x-ratelimit-limit"] == "5"
    limited = loop("GET", "/warehouse/return/list")
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["x-ratelimit-remaining"] == "0"
    # The limit is per key: another key is unaffected (and unknown keys still get 401).
    sandbox.world.loop_api_keys["second_key"] = {"returns"}
    other = requests.get(f"{sandbox.loop_url}/warehouse/return/list", headers={"X-Authorization": "second_key"},
                         timeout=5)
    assert other.status_code == 200
    # A minute later the window is empty again.
    requests.post(f"{sandbox.url}/_sandbox/clock/advance", json={"seconds": 61}, timeout=5)
    assert loop("GET", "/warehouse/return/list").status_code == 200


def test_default_rate_limit_is_300_per_minute(sandbox, loop):
    statuses = [loop("GET", "/warehouse/return/details", params={"return_id": "1"}).status_code for _ in range(301)]
    assert statuses[:300] == [200] * 300 and statuses[300] == 429
