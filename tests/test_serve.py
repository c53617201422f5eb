"""`loopsync serve` through the real server: uvicorn on 127.0.0.1, signed deliveries over HTTP,
the sandbox behind it. Each test starts serve after its catch-up scan, so what happens next is
the webhooks' doing."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
import requests

from loopsync import guard
from loopsync.sandbox import activity, builders
from loopsync.sandbox.faults import FaultPlan
from loopsync.sandbox.scenarios import add_exchange
from loopsync.store.part import iso
from support.sandbox import sandbox_env
from support.serve import WEBHOOK_SECRET, Served, hold_released_payload, order_payload
from support.state import one, tamper
from support.state import rows as state_rows
from support.waiting import wait_until


@pytest.fixture
def webhook_db(sandbox, db, cli):
    result = cli(["connect", "--db", str(db)], env=sandbox_env(sandbox, LOOPSYNC_SHOPIFY_WEBHOOK_SECRET=WEBHOOK_SECRET))
    assert result.code == 0, result.output
    return db


@pytest.fixture
def serve(webhook_db, tmp_path):
    started: list[Served] = []

    def start(*extra: str, real: bool = False) -> Served:
        served = Served(webhook_db, tmp_path / "serve.log", "--scan-every", "0", *extra, real=real)
        started.append(served)
        return served.ready()

    yield start
    for served in started:
        served.stop(signal.SIGKILL)


def new_exchange(probe, original="#1001", sku="JKT-L-PRE", **spec):
    made = add_exchange(probe.world, {"original": original, "lines": [{"sku": sku}], **spec})
    return probe.world.orders[made["order"]["id"]]


def counts(probe, mark):
    mutations = probe.mutations(mark)
    return mutations.count("fulfillmentOrderHold"), mutations.count("tagsAdd"), len(probe.loop_posts(mark))


def scans(db) -> int:
    return one(db, "SELECT COUNT(*) FROM scans")


def test_a_preorder_exchange_is_held_tagged_and_noted_within_a_second_with_no_scan(serve, probe, webhook_db):
    served = serve()
    scans_before = scans(webhook_db)
    order = new_exchange(probe)
    mark = probe.mark()

    started = time.monotonic()
    answer = served.post("orders/create", order_payload(order))
    acknowledged = time.monotonic() - started
    done = wait_until(lambda: probe.our_holds(order.name) and probe.notes("#1001"))

    assert answer.status_code == 200, answer.text
    assert acknowledged < 0.5
    assert done - started < 1.0
    assert counts(probe, mark) == (1, 1, 1)
    assert scans(webhook_db) == scans_before
    served.wait_for(f"order {order.name}: held")
    served.wait_for("orders/create: accepted")  # the web process's line: it may land after the worker's


def test_wrong_missing_and_stale_signatures_get_401_and_nothing_is_done(serve, probe, sandbox, cli, webhook_db):
    # A rotation: the new secret and, for two hours, the old one verify.
    new_secret = "whsec_test_rotated_0a9b8c7d6e"
    env = sandbox_env(sandbox, LOOPSYNC_SHOPIFY_WEBHOOK_SECRET=new_secret)
    assert cli(["connect", "--db", str(webhook_db)], env=env).code == 0
    served = serve()
    order = new_exchange(probe)
    payload = order_payload(order)
    mark = probe.mark()

    assert served.post("orders/create", payload, secret="whsec_someone_else").status_code == 401
    assert served.post("orders/create", payload, secret=None).status_code == 401
    assert served.post("orders/create", payload, signature="not base64 at all").status_code == 401
    # Signed for this app, but for another shop's domain.
    assert served.post("orders/create", payload, secret=new_secret, shop="other.myshopify.com").status_code == 403
    # The rotation window is over: the old secret no longer verifies (serve reads it for every delivery).
    tamper(webhook_db, "UPDATE connection SET previous_webhook_secret_until = '2000-01-01T00:00:00+00:00'")
    assert served.post("orders/create", payload, secret=WEBHOOK_SECRET).status_code == 401

    time.sleep(0.3)
    assert probe.mutations(mark) == [] and probe.loop_posts(mark) == []
    assert one(webhook_db, "SELECT COUNT(*) FROM inbox") == 0
    metrics = requests.get(f"{served.url}/metrics", timeout=5).text
    assert 'loopsync_webhook_deliveries_rejected_total{reason="signature"} 4.0' in metrics
    assert 'loopsync_webhook_deliveries_rejected_total{reason="other_shop"} 1.0' in metrics
    assert WEBHOOK_SECRET not in served.log() and new_secret not in served.log()

    # The new secret verifies.
    assert served.post("orders/create", payload, secret=new_secret).status_code == 200
    wait_until(lambda: probe.our_holds(order.name))


def test_the_previous_secret_verifies_during_a_rotation(serve, probe, sandbox, cli, webhook_db):
    env = sandbox_env(sandbox, LOOPSYNC_SHOPIFY_WEBHOOK_SECRET="whsec_test_rotated_0a9b8c7d6e")
    assert cli(["connect", "--db", str(webhook_db)], env=env).code == 0
    served = serve()
    order = new_exchange(probe)

    assert served.post("orders/create", order_payload(order), secret=WEBHOOK_SECRET).status_code == 200
    wait_until(lambda: probe.our_holds(order.name))


def test_duplicate_and_out_of_order_deliveries_do_everything_once(serve, probe, webhook_db):
    served = serve()
    order = new_exchange(probe)
    stale = order_payload(order)
    activity.staff_add_tags(probe.world, order.name, ["gift"])
    fresh = order_payload(order)
    mark = probe.mark()

    # orders/updated (newer) arrives before orders/create (older), and each is delivered twice.
    for topic, payload, webhook_id in [("orders/updated", fresh, "w-upd"), ("orders/create", stale, "w-create"),
                                       ("orders/updated", fresh, "w-upd"), ("orders/create", stale, "w-create")]:
        assert served.post(topic, payload, webhook_id=webhook_id).status_code == 200
    wait_until(lambda: probe.notes("#1001") and one(webhook_db, "SELECT COUNT(*) FROM inbox WHERE state = 'pending'") == 0)
    time.sleep(0.3)

    assert counts(probe, mark) == (1, 1, 1)
    assert one(webhook_db, "SELECT COUNT(*) FROM inbox") == 2
    metrics = requests.get(f"{served.url}/metrics", timeout=5).text
    assert "loopsync_webhook_deliveries_duplicate_total 2.0" in metrics


def test_sigkill_right_after_the_acknowledgement_loses_nothing_and_does_nothing_twice(serve, probe, webhook_db,
                                                                                      sandbox):
    served = serve()
    order = new_exchange(probe)
    mark = probe.mark()

    # Shopify answers slowly, so the worker is surely still at it when the kill comes.
    sandbox.app.faults = FaultPlan(slow=1.0, slow_seconds=0.5)
    assert served.post("orders/create", order_payload(order)).status_code == 200
    served.stop(signal.SIGKILL)
    assert one(webhook_db, "SELECT COUNT(*) FROM inbox WHERE state = 'pending'") == 1
    sandbox.app.faults = None

    again = serve()
    again.wait_for(f"order {order.name}: held")
    wait_until(lambda: one(webhook_db, "SELECT COUNT(*) FROM inbox WHERE state = 'pending'") == 0)
    wait_until(lambda: probe.notes("#1001"))
    assert counts(probe, mark) == (1, 1, 1)
    assert len(probe.our_holds(order.name)) == 1


def test_a_hold_wiped_by_flow_is_put_back_within_seconds_of_fulfillment_holds_released(serve, probe):
    served = serve()
    order = new_exchange(probe)
    assert served.post("orders/create", order_payload(order)).status_code == 200
    wait_until(lambda: probe.our_holds(order.name))
    [fo] = probe.fulfillment_orders(order.name)
    [hold] = probe.our_holds(order.name)

    activity.release_every_hold(probe.world, order.name)
    assert probe.our_holds(order.name) == []
    started = time.monotonic()
    assert served.post("fulfillment_holds/released", hold_released_payload(fo.id, hold)).status_code == 200

    wait_until(lambda: probe.our_holds(order.name), timeout=5)
    assert time.monotonic() - started < 3
    served.wait_for(f"order {order.name}: held .*{re.escape(guard.REHELD)}")
    assert len(probe.our_holds(order.name)) == 1
    # The exchange-to-hold latency counts the first hold only.
    assert "loopsync_exchange_to_hold_seconds_count 1.0" in requests.get(f"{served.url}/metrics", timeout=5).text


def test_an_exchange_without_fulfillment_orders_waits_for_order_routing_complete(serve, probe, webhook_db):
    served = serve()
    order = new_exchange(probe, fulfillment_orders=[])
    assert served.post("orders/create", order_payload(order)).status_code == 200
    served.wait_for(f"order {order.name}: pending")
    assert probe.our_holds(order.name) == []

    with probe.world.lock:
        fo = builders._new_fulfillment_order(probe.world, order, [(order.line_items[0], 1)], "OPEN")
    payload = {"fulfillment_order": {"id": fo.id, "status": "open"}}
    assert served.post("fulfillment_orders/order_routing_complete", payload).status_code == 200

    wait_until(lambda: probe.our_holds(order.name))


def test_a_scan_while_serve_runs_exits_0_and_finds_nothing_left_to_do(serve, probe, cli, webhook_db):
    served = serve()
    order = new_exchange(probe)
    assert served.post("orders/create", order_payload(order)).status_code == 200
    wait_until(lambda: probe.notes("#1001"))
    mark = probe.mark()

    result = cli(["scan", "--db", str(webhook_db), "--json"])

    assert result.code == 0, result.output
    assert probe.mutations(mark) == [] and probe.loop_posts(mark) == []
    assert served.proc.poll() is None


def test_the_acknowledgement_is_fast_while_shopify_is_slow(serve, probe, sandbox):
    served = serve()
    order = new_exchange(probe)
    sandbox.app.faults = FaultPlan(slow=1.0, slow_seconds=0.3)

    started = time.monotonic()
    assert served.post("orders/create", order_payload(order)).status_code == 200
    acknowledged = time.monotonic() - started

    assert acknowledged < 0.2
    wait_until(lambda: probe.our_holds(order.name), timeout=15)


def test_unknown_topics_are_acknowledged_and_ignored(serve, probe, webhook_db):
    served = serve()
    mark = probe.mark()

    answer = served.post("products/update", {"id": 1})

    assert answer.status_code == 200 and answer.json() == {"ignored": "loopsync does not act on this topic"}
    assert one(webhook_db, "SELECT state FROM inbox") == "ignored"
    time.sleep(0.2)
    assert probe.mutations(mark) == []


def test_healthz_metrics_and_status_while_serving(serve, probe, cli, webhook_db):
    served = serve()
    order = new_exchange(probe)
    assert served.post("orders/create", order_payload(order)).status_code == 200
    wait_until(lambda: probe.notes("#1001"))

    health = requests.get(f"{served.url}/healthz", timeout=5)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    expected = ('loopsync_webhook_deliveries_accepted_total{topic="orders/create"} 1.0',
                "loopsync_inbox_depth 0.0", 'loopsync_exchange_to_hold_seconds_bucket{le="+Inf"} 1.0',
                'loopsync_scans_total{outcome="ok"} 1.0', "loopsync_last_scan_ok 1.0", "loopsync_worker_errors_total 0.0")
    # The catch-up scan at start runs beside the worker: on a loaded machine it can finish after the hold.
    try:
        wait_until(lambda: all(line in requests.get(f"{served.url}/metrics").text for line in expected), timeout=15)
    except AssertionError:
        metrics = requests.get(f"{served.url}/metrics", timeout=5).text
        raise AssertionError([line for line in expected if line not in metrics]) from None
    doc = json.loads(cli(["status", "--db", str(webhook_db), "--json"]).out)
    assert doc["inbox"]["depth"] == 0
    assert doc["inbox"]["last_delivery"]["topic"] == "orders/create"
    table = cli(["status", "--db", str(webhook_db)]).out
    assert "Webhooks: 0 waiting; last delivery orders/create" in table


def test_sigterm_finishes_and_exits_0(serve, probe):
    # The entry point systemd runs, not a fork of the test's warm zygote.
    served = serve(real=True)
    order = new_exchange(probe)
    assert served.post("orders/create", order_payload(order)).status_code == 200

    assert served.stop(signal.SIGTERM) == 0
    assert "SIGTERM: stopping after the order in hand" in served.log()
    assert "Traceback" not in served.log()


def test_serves_own_scan_steps_aside_while_a_cron_scan_holds_the_scan_lock(webhook_db, tmp_path, probe):
    code = f"from loopsync.store import lock\nimport time\nwith lock.scan_lock({str(webhook_db)!r}):\n" \
           "    print('locked', flush=True)\n    time.sleep(60)\n"
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    served = Served(webhook_db, tmp_path / "serve.log", "--scan-every", "0")
    try:
        served.wait_for("catch-up scan skipped: another loopsync scan is running")
        # Deliveries are still taken and acted on meanwhile.
        order = new_exchange(probe)
        assert served.post("orders/create", order_payload(order)).status_code == 200
        wait_until(lambda: probe.our_holds(order.name))
        assert 'loopsync_scans_total{outcome="skipped"} 1.0' in requests.get(f"{served.url}/metrics", timeout=5).text
    finally:
        holder.kill()
        holder.wait()
        served.stop(signal.SIGKILL)


def test_healthz_is_503_with_a_reason_once_the_connection_is_gone(serve, webhook_db):
    served = serve()
    tamper(webhook_db, "DELETE FROM connection")

    health = requests.get(f"{served.url}/healthz", timeout=5)

    assert health.status_code == 503
    assert health.json() == {"status": "unavailable", "reason": "the state file holds no connection"}


def worker_pid(served: Served) -> int:
    return int(re.findall(r"worker process (\d+) started", served.log())[-1])


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return any(line.split()[1] == "Z" for line in status if line.startswith("State:"))
    except FileNotFoundError:
        return True


def test_a_killed_worker_process_is_restarted_and_its_delivery_done_once(serve, probe, webhook_db, sandbox):
    served = serve()
    first = worker_pid(served)
    order = new_exchange(probe)
    mark = probe.mark()
    sandbox.app.faults = FaultPlan(slow=1.0, slow_seconds=0.3)
    assert served.post("orders/create", order_payload(order)).status_code == 200
    wait_until(lambda: one(webhook_db, "SELECT attempts FROM inbox") == 1)

    os.kill(first, signal.SIGKILL)
    wait_until(lambda: requests.get(f"{served.url}/healthz", timeout=5).status_code == 503, timeout=1)
    assert "worker process is not running" in requests.get(f"{served.url}/healthz", timeout=5).json()["reason"]
    sandbox.app.faults = None

    served.wait_for(r"worker process \d+ died \(SIGKILL\); starting another in 1 s")
    served.wait_for(f"order {order.name}: held")
    wait_until(lambda: probe.notes("#1001") and one(webhook_db, "SELECT state FROM inbox") == "done")
    assert counts(probe, mark) == (1, 1, 1)
    assert requests.get(f"{served.url}/healthz", timeout=5).status_code == 200
    assert "loopsync_worker_restarts_total 1.0" in requests.get(f"{served.url}/metrics", timeout=5).text

    # The worker dies with serve, however serve dies.
    second = worker_pid(served)
    served.stop(signal.SIGKILL)
    wait_until(lambda: gone(second), timeout=3)


def test_serve_exits_with_the_workers_failure_when_the_worker_cannot_go_on(serve, webhook_db):
    served = serve()
    tamper(webhook_db, "ALTER TABLE inbox RENAME TO inbox_elsewhere")

    # The worker polls the inbox at least once a second; it fails on the missing table, and serve with it.
    assert served.proc.wait(timeout=10) == 2
    assert f"Error: {webhook_db} is not a loopsync state file (its tables are missing)." in served.log()
    assert "Traceback" not in served.log()


def test_serves_scan_deletes_deliveries_done_more_than_a_week_ago(webhook_db, tmp_path):
    con = sqlite3.connect(webhook_db)
    rows = [("old-done", "done", "2000-01-01T00:00:00+00:00"), ("old-ignored", "ignored", "2000-01-01T00:00:00+00:00"),
            ("old-failed", "failed", "2000-01-01T00:00:00+00:00"), ("recent-done", "done", iso(datetime.now(UTC)))]
    con.executemany("INSERT INTO inbox (webhook_id, topic, shop, received_at, body, state, processed_at)"
                    " VALUES (?, 'orders/create', 'x', '2000-01-01T00:00:00+00:00', '{}', ?, ?)", rows)
    con.commit()
    con.close()

    served = Served(webhook_db, tmp_path / "serve.log", "--scan-every", "0").ready()
    try:
        served.wait_for("inbox: deleted 2 deliveries done more than 7 days ago")
        kept = {row for (row,) in state_rows(webhook_db, "SELECT webhook_id FROM inbox")}
        assert kept == {"old-failed", "recent-done"}
    finally:
        served.stop(signal.SIGKILL)
