"""A scan's lifecycle through the CLI, against the demo sandbox over real HTTP: what the ledger
records per scan, holds whose retry met their own first try, and what a scan says while Loop
is disconnected."""

from __future__ import annotations

import json
import sqlite3

import pytest

from loopsync.sandbox import scenarios


@pytest.fixture
def cli(secret_safe_cli):
    """Every command these tests run is also checked for leaked credentials."""
    return secret_safe_cli


def _scan(cli, db, *args, env=None):
    return cli(["scan", "--db", str(db), *args], env=env)


def _rows(db, sql: str, params=()) -> list[tuple]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


# -- item 10: every action names its scan --------------------------------------------------


def test_a_scans_actions_carry_its_scan_id(cli, connected, sandbox, probe):
    first = json.loads(_scan(cli, connected, "--json").out)
    scenarios.add_exchange(sandbox.world, {"original": "#1002", "name": "EXC-1002-1", "created": "-5m",
                                           "lines": [{"sku": "JKT-L-PRE"}]})
    second = json.loads(_scan(cli, connected, "--json").out)

    by_scan = dict(_rows(connected, "SELECT scan_id, COUNT(*) FROM actions GROUP BY scan_id"))
    # 4 holds, 4 tags, 4 notes in the first scan; 1 of each for the new exchange in the second.
    assert by_scan == {first["scan_id"]: 12, second["scan_id"]: 3}
    assert first["scan_id"] != second["scan_id"]


# -- item 5: a hold whose retried request met its own first try -----------------------------


def test_a_hold_whose_retry_finds_its_first_try_is_reported_as_held(cli, connected, sandbox, probe):
    """The first answer to EXC-1086-1's hold is cut short after Shopify placed it: the client's
    retry meets DUPLICATE_FULFILLMENT_HOLD_HANDLE. The hold is there, so the scan says held."""
    app = sandbox.app
    real_dispatch = app.dispatch
    cut = []

    def dispatch(method, target, headers, body, base_url):
        reply = real_dispatch(method, target, headers, body, base_url)
        if b"LoopsyncFulfillmentOrderHold" in (body or b"") and not cut:
            cut.append(target)
            reply.body = b'{"data": {"fulfillmentOrderH'
        return reply

    app.dispatch = dispatch
    mark = probe.mark()

    result = _scan(cli, connected, "--json")

    assert result.code == 0, result.output
    assert cut, "no hold request was answered short"
    # The retry really went out and met the first try (5 hold requests for 4 holds).
    assert probe.mutations(mark).count("fulfillmentOrderHold") == 5
    [hold] = probe.our_holds("EXC-1086-1")
    doc = json.loads(result.out)
    assert doc["holds_placed"] == 4
    actions = {o["order"]: [(a["kind"], a["status"]) for a in o["actions"]] for o in doc["orders"]}
    assert ("hold", "done") in actions["EXC-1086-1"]
    # The ledger and the holds table say the same.
    [(status, result_json)] = _rows(
        connected,
        "SELECT status, result FROM actions WHERE kind = 'hold' AND order_id = ?",
        [probe.order("EXC-1086-1").id],
    )
    assert status == "done" and json.loads(result_json)["hold_id"] == hold.id
    status_doc = json.loads(cli(["status", "--db", str(connected), "--json"]).out)
    assert {h["order"]: h["hold_id"] for h in status_doc["held"]}["EXC-1086-1"] == hold.id
    assert status_doc["last_scan"]["counters"]["holds"] == 4


def test_the_summary_counts_a_duplicate_answered_hold(cli, connected, sandbox, probe):
    app = sandbox.app
    real_dispatch = app.dispatch
    cut = []

    def dispatch(method, target, headers, body, base_url):
        reply = real_dispatch(method, target, headers, body, base_url)
        if b"LoopsyncFulfillmentOrderHold" in (body or b"") and not cut:
            cut.append(target)
            reply.body = b"{"
        return reply

    app.dispatch = dispatch

    result = _scan(cli, connected, "--verbose")

    assert result.code == 0, result.output
    assert "4 held, 4 tagged, 4 noted" in result.err
    [row] = [line for line in result.out.splitlines() if "EXC-1086-1" in line]
    assert "held" in row


# -- item 1: disconnect waits for a running scan ----------------------------------------------


def test_disconnect_says_so_when_a_scan_does_not_stop_in_time(connected):
    """The scan in another process is simulated by a thread holding its lock."""
    import threading

    from loopsync import service
    from loopsync.errors import LockHeldError
    from loopsync.store import Store

    holder_store, store = Store.open(connected), Store.open(connected)
    locked, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        with holder_store.scan_lock():
            locked.set()
            release.wait(5)

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    waited = []
    try:
        assert locked.wait(5)
        with pytest.raises(LockHeldError) as raised:
            service.disconnect(store, on_wait=lambda: waited.append(True), timeout=0.3)
    finally:
        release.set()
        holder.join()
    try:
        assert waited == [True]
        assert "Loop Returns is disconnected" in raised.value.message
        assert "starts no new hold, tag or note" in raised.value.message
        assert store.connection().loop_api_key is None
    finally:
        store.close()
        holder_store.close()
