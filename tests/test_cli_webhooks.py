"""`loopsync webhooks install | list | uninstall | toml` against the sandbox over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import tomllib

import pytest

from loopsync.sandbox.scenarios import read_scenario
from loopsync.sandbox.server import Sandbox
from support.fakehttp import Reply
from support.sandbox import sandbox_env

BASE = "http://127.0.0.1:8080"
URI = f"{BASE}/webhooks/shopify"
TOPICS = {"ORDERS_CREATE", "ORDERS_UPDATED", "FULFILLMENT_HOLDS_RELEASED",
          "FULFILLMENT_ORDERS_ORDER_ROUTING_COMPLETE", "SELLING_PLAN_GROUPS_UPDATE"}
THEIRS = "https://upsell.example/hooks"


@pytest.fixture
def sandbox(tmp_path):
    """The demo store, where another app (Upsell Guard) already has subscriptions of its own."""
    data, _ = read_scenario("demo")
    data["webhook_subscriptions"] = [
        {"app": "Upsell Guard", "topic": "orders/create", "uri": THEIRS},
        # Even at loopsync's own address, another app's subscription is not loopsync's.
        {"app": "Upsell Guard", "topic": "orders/updated", "uri": URI},
    ]
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(data, default=str))
    with Sandbox(scenario=str(path)) as sb:
        yield sb


def subs_of(sandbox, title):
    app_id = next(a.id for a in sandbox.world.apps.values() if a.title == title)
    return {(s.topic, s.uri) for s in sandbox.world.webhook_subscriptions.values() if s.app_id == app_id}


def test_install_subscribes_every_topic_once(cli, sandbox, connected, probe):
    first = cli(["webhooks", "install", "--url", BASE + "/", "--db", str(connected)], env=sandbox_env(sandbox))
    assert first.code == 0, first.output
    assert subs_of(sandbox, "loopsync") == {(t, URI) for t in TOPICS}
    lines = [line.split("\t") for line in first.out.splitlines()]
    assert sorted(line[:3] for line in lines) == sorted(
        ["created", t, URI] for t in ["orders/create", "orders/updated", "fulfillment_holds/released",
                                      "fulfillment_orders/order_routing_complete", "selling_plan_groups/update"])
    assert "5 subscription(s) created, 0 already there." in first.err

    mark = probe.mark()
    again = cli(["webhooks", "install", "--url", BASE, "--db", str(connected), "--json"], env=sandbox_env(sandbox))
    assert again.code == 0, again.output
    doc = json.loads(again.out)
    assert doc["uri"] == URI and {s["state"] for s in doc["subscriptions"]} == {"kept"}
    assert len(doc["subscriptions"]) == 5 and probe.mutations(mark) == []  # a second run creates nothing
    assert subs_of(sandbox, "Upsell Guard") == {("ORDERS_CREATE", THEIRS), ("ORDERS_UPDATED", URI)}


def test_install_adds_only_the_missing_topics(cli, sandbox, connected, probe):
    env = sandbox_env(sandbox)
    assert cli(["webhooks", "install", "--url", BASE, "--db", str(connected)], env=env).code == 0
    world = sandbox.world
    victim = next(s for s in world.webhook_subscriptions.values() if s.topic == "SELLING_PLAN_GROUPS_UPDATE")
    del world.webhook_subscriptions[victim.id]
    mark = probe.mark()
    result = cli(["webhooks", "install", "--url", BASE, "--db", str(connected)], env=env)
    assert result.code == 0, result.output
    assert probe.mutations(mark) == ["webhookSubscriptionCreate"]
    assert "1 subscription(s) created, 4 already there." in result.err


def test_list_shows_only_this_apps_subscriptions(cli, sandbox, connected):
    env = sandbox_env(sandbox)
    assert cli(["webhooks", "install", "--url", BASE, "--db", str(connected)], env=env).code == 0
    listed = cli(["webhooks", "list", "--db", str(connected), "--json"], env=env)
    assert listed.code == 0, listed.output
    doc = json.loads(listed.out)
    assert {(s["topic"], s["uri"]) for s in doc} == {
        (t, URI) for t in ["orders/create", "orders/updated", "fulfillment_holds/released",
                           "fulfillment_orders/order_routing_complete", "selling_plan_groups/update"]}
    assert all(s["id"].startswith("gid://shopify/WebhookSubscription/") and s["created_at"] for s in doc)
    plain = cli(["webhooks", "list", "--db", str(connected)], env=env)
    assert len(plain.out.splitlines()) == 5 and THEIRS not in plain.out
    assert plain.out.splitlines()[0].split("\t")[1] == URI


def test_list_with_nothing_subscribed(cli, sandbox, connected):
    result = cli(["webhooks", "list", "--db", str(connected)], env=sandbox_env(sandbox))
    assert result.code == 0 and result.out == "" and "No webhook subscriptions." in result.err


def test_uninstall_deletes_only_loopsyncs_own_under_base(cli, sandbox, connected):
    env = sandbox_env(sandbox)
    assert cli(["webhooks", "install", "--url", BASE, "--db", str(connected)], env=env).code == 0
    assert cli(["webhooks", "install", "--url", "https://elsewhere.example", "--db", str(connected)], env=env).code == 0
    result = cli(["webhooks", "uninstall", "--url", BASE, "--db", str(connected)], env=env)
    assert result.code == 0, result.output
    assert "5 subscription(s) deleted." in result.err
    assert {line.split("\t")[0] for line in result.out.splitlines()} == {"deleted"}
    assert subs_of(sandbox, "loopsync") == {(t, "https://elsewhere.example/webhooks/shopify") for t in TOPICS}
    assert subs_of(sandbox, "Upsell Guard") == {("ORDERS_CREATE", THEIRS), ("ORDERS_UPDATED", URI)}
    nothing = cli(["webhooks", "uninstall", "--url", BASE, "--db", str(connected), "--json"], env=env)
    assert nothing.code == 0 and json.loads(nothing.out) == []


def test_toml_needs_no_connection():
    from support.cli import run_cli

    result = run_cli(["webhooks", "toml", "--url", "https://hooks.example.com/"])
    assert result.code == 0, result.output
    doc = tomllib.loads(result.out)
    assert doc == {"webhooks": {"api_version": "2026-10", "subscriptions": [{
        "topics": ["orders/create", "orders/updated", "fulfillment_holds/released",
                   "fulfillment_orders/order_routing_complete", "selling_plan_groups/update"],
        "uri": "https://hooks.example.com/webhooks/shopify"}]}}


def test_webhooks_need_a_connection(cli, tmp_path):
    result = cli(["webhooks", "list", "--db", str(tmp_path / "none.db")])
    assert result.code == 2 and "not connected" in result.err


def test_installed_subscriptions_get_deliveries_of_loopsyncs_own_changes(cli, sandbox, connected, server):
    """A scan's holds and tags are changes like any other: Shopify (and the sandbox) deliver them too."""
    server.fallback = lambda _r: Reply(200, {})
    env = sandbox_env(sandbox)
    assert cli(["webhooks", "install", "--url", server.url, "--db", str(connected)], env=env).code == 0
    assert cli(["scan", "--db", str(connected)], env=env).code in (0, 1)
    assert sandbox.webhooks.wait_idle(10)
    updated = [r.json() for r in server.requests if r.headers["x-shopify-topic"] == "orders/updated"]
    held = {o["name"] for o in updated if "EXC-" in o["name"]}
    assert held and all(r.path == "/webhooks/shopify" for r in server.requests)
    secret = sandbox.credentials["webhook_secret"]
    for r in server.requests:
        digest = base64.b64encode(hmac.new(secret.encode(), r.body, hashlib.sha256).digest()).decode()
        assert r.headers["x-shopify-hmac-sha256"] == digest
