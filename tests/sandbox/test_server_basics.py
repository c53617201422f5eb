"""The sandbox server itself: lifecycle, keep-alive, routing, /_sandbox control routes and serve()."""

from __future__ import annotations

import io
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

import pytest
import requests

from loopsync.sandbox.routes import supported_version
from loopsync.sandbox.scenarios import load_scenario
from loopsync.sandbox.server import Sandbox, serve
from loopsync.sandbox.world import World

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture()
def sandbox():
    with Sandbox(load_scenario(World(now=NOW), "demo")) as sb:
        yield sb


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_context_manager_starts_and_stops_cleanly():
    sb = Sandbox()
    assert not sb.running
    with sb:
        port = sb.port
        assert sb.url == f"http://127.0.0.1:{port}"
        session = requests.Session()
        assert session.get(f"{sb.url}/_sandbox/state", timeout=5).status_code == 200
        # A kept-alive connection must not keep the server from stopping.
    assert not sb.running
    assert not _port_open(port)
    with pytest.raises(requests.ConnectionError):
        session.get(f"http://127.0.0.1:{port}/_sandbox/state", timeout=2)
    session.close()


def test_stop_is_quick_and_idempotent():
    sb = Sandbox(scenario=None).start()
    started = time.monotonic()
    sb.stop()
    sb.stop()
    assert time.monotonic() - started < 2


def test_session_reuses_one_connection(sandbox):
    with requests.Session() as session:
        for _ in range(20):
            response = session.get(f"{sandbox.url}/_sandbox/state", timeout=5)
            assert int(response.headers["Content-Length"]) == len(response.content)
        for status_path in ("/nowhere", "/_sandbox/nowhere"):
            assert session.get(sandbox.url + status_path, timeout=5).status_code == 404
    assert sandbox.connections_accepted == 1


def test_concurrent_clients(sandbox):
    key = sandbox.credentials["loop_api_key"]
    results: list[int] = []

    def worker() -> None:
        with requests.Session() as session:
            for _ in range(10):
                results.append(session.get(f"{sandbox.loop_url}/warehouse/return/list",
                                           headers={"X-Authorization": key}, timeout=5).status_code)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 80


def test_credentials_and_env_of_demo(sandbox):
    assert sandbox.credentials == {
        "shop_domain": "sandbox-store.myshopify.com",
        "shopify_token": "shpat_sandbox_demo_token",
        "client_id": "sandbox-client-id",
        "client_secret": "shpss_sandbox_demo_secret",
        # Deliveries to an app with a client secret are signed with it.
        "webhook_secret": "shpss_sandbox_demo_secret",
        "loop_api_key": "loop_sandbox_demo_key",
        "loop_webhook_secret": "loop_sandbox_webhook_secret",
    }
    assert sandbox.env() == {
        "LOOPSYNC_SHOPIFY_API_URL": sandbox.url,
        "LOOPSYNC_LOOP_API_URL": sandbox.url,
        "LOOPSYNC_SHOP": "sandbox-store.myshopify.com",
        "LOOPSYNC_SHOPIFY_TOKEN": "shpat_sandbox_demo_token",
        "LOOPSYNC_LOOP_API_KEY": "loop_sandbox_demo_key",
        "LOOPSYNC_SHOPIFY_WEBHOOK_SECRET": "shpss_sandbox_demo_secret",
        "LOOPSYNC_LOOP_WEBHOOK_SECRET": "loop_sandbox_webhook_secret",
    }


@pytest.mark.parametrize(("version", "ok"), [("2026-10", True), ("2025-01", True), ("2025-07", True),
                                             ("unstable", True), ("2024-10", False), ("2027-01", False),
                                             ("2025-02", False), ("latest", False)])
def test_supported_versions(version, ok):
    assert supported_version(version) is ok


def test_unsupported_graphql_version_is_404(sandbox):
    response = requests.post(f"{sandbox.url}/admin/api/2024-10/graphql.json", json={"query": "{shop{name}}"},
                             headers={"X-Shopify-Access-Token": "shpat_sandbox_demo_token"}, timeout=5)
    assert response.status_code == 404


# -- /_sandbox --


def test_state_route(sandbox):
    state = requests.get(f"{sandbox.url}/_sandbox/state", timeout=5).json()
    assert state["now"] == "2026-11-20T12:00:00Z"
    assert "EXC-1086-1" in {o["name"] for o in state["orders"]}
    assert len(state["preorderVariants"]) == 2


def test_preorder_release_route(sandbox):
    world = sandbox.world
    boots = next(v for v in world.variants.values() if v.sku == "BOOT-10-PRE")
    number = boots.id.rsplit("/", 1)[1]
    response = requests.post(f"{sandbox.url}/_sandbox/preorder/release", json={"variant_id": number}, timeout=5)
    assert response.status_code == 200 and response.json()["variant_id"] == boots.id
    assert boots.id not in world.snapshot()["preorderVariants"]
    assert world.preorder_plans_for_variant(boots.id) == []
    assert world.log[-1].api == "sandbox" and world.log[-1].path == "/_sandbox/preorder/release"
    bad = requests.post(f"{sandbox.url}/_sandbox/preorder/release", json={"variant_id": "gid://shopify/ProductVariant/1"},
                        timeout=5)
    assert bad.status_code == 404
    assert requests.post(f"{sandbox.url}/_sandbox/preorder/release", json={}, timeout=5).status_code == 400


def test_clock_advance_route(sandbox):
    response = requests.post(f"{sandbox.url}/_sandbox/clock/advance", json={"seconds": 3600}, timeout=5)
    assert response.json() == {"now": "2026-11-20T13:00:00Z"}
    assert sandbox.world.now() == datetime(2026, 11, 20, 13, 0, tzinfo=UTC)
    for bad in ({"seconds": -1}, {"seconds": "soon"}, {}, []):
        assert requests.post(f"{sandbox.url}/_sandbox/clock/advance", json=bad, timeout=5).status_code == 400
    assert requests.get(f"{sandbox.url}/_sandbox/clock/advance", timeout=5).status_code == 405


def test_orders_route_adds_an_exchange_with_its_return(sandbox):
    world = sandbox.world
    spec = {"mode": "separate", "original": "#1001", "lines": [{"sku": "JKT-L-PRE"}], "created": "-5m"}
    response = requests.post(f"{sandbox.url}/_sandbox/orders", json=spec, timeout=5)
    assert response.status_code == 201
    body = response.json()
    assert body["order"]["name"] == "EXC-1001-1"
    order = world.orders[body["order"]["id"]]
    assert order.tags == ["1001"]
    loop_return = world.loop_returns[body["loop_return"]["id"]]
    assert loop_return.exchanges[0].exchange_order_name == "EXC-1001-1"
    # A second one on the same original gets the next number.
    again = requests.post(f"{sandbox.url}/_sandbox/orders", json=spec, timeout=5).json()
    assert again["order"]["name"] == "EXC-1001-2"

    native = requests.post(f"{sandbox.url}/_sandbox/orders", timeout=5,
                           json={"mode": "native", "original": "#1002", "lines": [{"sku": "BOOT-10-PRE"}]})
    assert native.status_code == 201 and native.json()["order"]["name"] == "#1002"
    assert "Loop Exchange" in world.order_by_name("#1002").tags

    for bad in ({"original": "#9999", "lines": [{"sku": "TEE-S"}]}, {"original": "#1001", "lines": [{"sku": "NOPE"}]},
                {"original": "#1001"}, {"original": "#1001", "lines": [{"sku": "TEE-S"}], "colour": "red"}):
        answer = requests.post(f"{sandbox.url}/_sandbox/orders", json=bad, timeout=5)
        assert answer.status_code == 422 and answer.json()["error"]


# -- serve() for the CLI --


def test_serve_prints_url_credentials_and_env_then_stops():
    out = io.StringIO()
    stop = threading.Event()
    thread = threading.Thread(target=serve, kwargs={"port": 0, "out": out, "stop_event": stop,
                                                    "faults": "5xx=0.1,seed=3"})
    thread.start()
    deadline = time.monotonic() + 10
    while "Press Ctrl-C" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.02)
    text = out.getvalue()
    url = text.split("listening on ", 1)[1].split()[0]
    assert requests.get(f"{url}/_sandbox/state", timeout=5).status_code == 200
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    for expected in ("shpat_sandbox_demo_token", "loop_sandbox_demo_key", f"export LOOPSYNC_SHOPIFY_API_URL={url}",
                     f"export LOOPSYNC_LOOP_API_URL={url}", "export LOOPSYNC_SHOP=sandbox-store.myshopify.com",
                     "export LOOPSYNC_SHOPIFY_TOKEN=", "export LOOPSYNC_LOOP_API_KEY=", "5xx=0.1"):
        assert expected in text
    assert "sandbox stopped" in out.getvalue()


def test_serve_subscribes_webhooks_to_and_prints_each_delivery():
    from support.fakehttp import FakeServer, Reply

    out = io.StringIO()
    stop = threading.Event()
    with FakeServer(fallback=lambda _r: Reply(200, {})) as receiver:
        thread = threading.Thread(target=serve, kwargs={"port": 0, "out": out, "stop_event": stop,
                                                        "webhooks_to": f"{receiver.url}/webhooks/shopify"})
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while "Press Ctrl-C" not in out.getvalue() and time.monotonic() < deadline:
                time.sleep(0.02)
            url = out.getvalue().split("listening on ", 1)[1].split()[0]
            assert "orders/create, orders/updated" in out.getvalue()
            created = requests.post(f"{url}/_sandbox/activity", json={"do": "create_exchange", "sku": "JKT-L-PRE"},
                                    timeout=5).json()
            line = f"webhook orders/create -> {receiver.url}/webhooks/shopify: 200 (attempt 1,"

            # Both, each in its own time: the printed line may be another order's delivery, and
            # this order's delivery is received before the sandbox prints its answer.
            def delivered() -> bool:
                received = any(r.json().get("name") == created["order"]["name"] for r in list(receiver.requests))
                return received and line in out.getvalue()

            while not delivered() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert delivered(), out.getvalue()
        finally:
            stop.set()
            thread.join(timeout=10)
    assert "export LOOPSYNC_SHOPIFY_WEBHOOK_SECRET=shpss_sandbox_demo_secret" in out.getvalue()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_cleanly_on_signal(signum):
    proc = subprocess.Popen(
        [sys.executable, "-c", "from loopsync.sandbox.server import serve; raise SystemExit(serve(port=0))"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "Press Ctrl-C" in line:
                break
        url = "".join(lines).split("listening on ", 1)[1].split()[0]
        assert requests.get(f"{url}/_sandbox/state", timeout=5).status_code == 200
        proc.send_signal(signum)
        assert proc.wait(timeout=10) == 0
        assert "sandbox stopped" in proc.stdout.read()
        assert proc.stderr.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
