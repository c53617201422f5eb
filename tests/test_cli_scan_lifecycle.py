"""A scan's lifecycle through the CLI, against the demo sandbox over real HTTP: what the ledger
records per scan, holds whose retry met their own first try, and what a scan says while Loop
is disconnected."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta

import pytest

from loopsync.sandbox import scenarios
from support.cli import scan as _scan


@pytest.fixture
def cli(secret_safe_cli):
    """Every command these tests run is also checked for leaked credentials."""
    return secret_safe_cli


def _cut_first_hold_answer(sandbox, body: bytes) -> list:
    """The first hold Shopify places is answered with ``body`` (cut short); the list gets its target."""
    app = sandbox.app
    real_dispatch = app.dispatch
    cut: list = []

    def dispatch(method, target, headers, body_in, base_url):
        reply = real_dispatch(method, target, headers, body_in, base_url)
        if b"LoopsyncFulfillmentOrderHold" in (body_in or b"") and not cut:
            cut.append(target)
            reply.body = body
        return reply

    app.dispatch = dispatch
    return cut


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
    cut = _cut_first_hold_answer(sandbox, b'{"data": {"fulfillmentOrderH')
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
    _cut_first_hold_answer(sandbox, b"{")

    result = _scan(cli, connected, "--verbose")

    assert result.code == 0, result.output
    assert "4 held, 4 tagged, 4 noted" in result.err
    [row] = [line for line in result.out.splitlines() if "EXC-1086-1" in line]
    assert "held" in row


def test_a_duplicate_answered_hold_that_cannot_be_read_back_stays_pending(cli, connected, sandbox, probe):
    """Between the retry's DUPLICATE answer and the read-back, the hold is lifted at Shopify:
    loopsync claims no hold it cannot see, and the next scan places it again."""
    app = sandbox.app
    real_dispatch = app.dispatch
    seen = []

    def dispatch(method, target, headers, body, base_url):
        reply = real_dispatch(method, target, headers, body, base_url)
        if b"LoopsyncFulfillmentOrderHold" in (body or b"") and len(seen) < 2:
            seen.append(json.loads(body)["variables"]["id"])
            if len(seen) == 1:
                reply.body = b"{"  # the first try lands, its answer is lost
            else:  # the retry met it; now someone lifts it
                with probe.world.lock:
                    fo = probe.world.fulfillment_orders[seen[0]]
                    fo.holds = [h for h in fo.holds if not h.handle.startswith("loopsync")]
        return reply

    app.dispatch = dispatch

    result = _scan(cli, connected, "--json")

    assert result.code == 1, result.output
    assert seen[0] == seen[1]
    doc = json.loads(result.out)
    assert doc["holds_placed"] == 3 and doc["pending"] == 1
    [stuck] = [o for o in doc["orders"] if o["pending"]]
    assert "could not be read back" in stuck["pending"]
    status = json.loads(cli(["status", "--db", str(connected), "--json"]).out)
    assert stuck["order"] not in {h["order"] for h in status["held"]}

    app.dispatch = real_dispatch
    again = _scan(cli, connected, "--json")
    assert again.code == 0, again.output
    assert json.loads(again.out)["holds_placed"] == 1
    assert len(probe.our_holds(stuck["order"])) == 1


# -- item 13: exchanges left unheld while Loop is disconnected ------------------------------


def _two_new_exchanges(world) -> None:
    for original, name in (("#1002", "EXC-1002-1"), ("#1005", "EXC-1005-1")):
        scenarios.add_exchange(world, {"original": original, "name": name, "created": "-5m",
                                       "lines": [{"sku": "JKT-L-PRE"}]})


def test_a_scan_while_disconnected_says_which_exchanges_it_left_unheld(cli, connected, sandbox, probe):
    assert _scan(cli, connected).code == 0
    assert cli(["disconnect", "--yes", "--db", str(connected)]).code == 0
    _two_new_exchanges(sandbox.world)

    # Off a terminal and without --verbose (cron): the one line still reaches stderr.
    result = _scan(cli, connected)

    assert result.code == 0, result.output
    assert result.out == ""
    assert result.err.splitlines() == ["2 new pre-order exchanges left unheld: Loop is disconnected."]
    assert probe.holds("EXC-1002-1") == [] and probe.holds("EXC-1005-1") == []

    as_json = json.loads(cli(["status", "--db", str(connected), "--json"]).out)
    assert sorted(u["order"] for u in as_json["unheld"]) == ["EXC-1002-1", "EXC-1005-1"]
    assert {u["window"] for u in as_json["unheld"]} == {"15 March 2027"}
    text = cli(["status", "--db", str(connected)], env={"COLUMNS": "200"})
    assert "2 pre-order exchanges left unheld while Loop is disconnected" in text.out
    assert "EXC-1002-1" in text.out and "EXC-1005-1" in text.out

    # Nothing new since: the next scan is quiet again.
    quiet = _scan(cli, connected)
    assert quiet.code == 0 and quiet.err == ""


def test_an_order_already_held_is_not_called_unheld_after_a_disconnect(cli, connected, sandbox, probe):
    assert _scan(cli, connected).code == 0
    assert cli(["disconnect", "--yes", "--db", str(connected)]).code == 0
    sandbox.world.touch_order(probe.order("EXC-1086-1").id)  # Shopify reports it as updated

    result = _scan(cli, connected, "--json")

    assert result.code == 0, result.output
    assert result.err == ""
    decisions = {o["order"]: o["decision"] for o in json.loads(result.out)["orders"]}
    assert decisions["EXC-1086-1"] == "held"
    assert json.loads(cli(["status", "--db", str(connected), "--json"]).out)["unheld"] == []


def test_a_scan_with_json_while_disconnected_counts_them_too(cli, connected, sandbox):
    assert cli(["disconnect", "--yes", "--db", str(connected)]).code == 0
    scenarios.add_exchange(sandbox.world, {"original": "#1002", "name": "EXC-1002-1", "created": "-5m",
                                           "lines": [{"sku": "JKT-L-PRE"}]})

    result = _scan(cli, connected, "--json")

    assert result.code == 0, result.output
    doc = json.loads(result.out)
    # The demo's four pre-order exchanges were never held either, and the new one.
    assert doc["left_unheld"] == 5
    assert result.err.splitlines() == ["5 new pre-order exchanges left unheld: Loop is disconnected."]


def test_after_reconnecting_the_exchanges_left_unheld_are_held(cli, connected, sandbox, probe, env_for):
    assert _scan(cli, connected).code == 0
    assert cli(["disconnect", "--yes", "--db", str(connected)]).code == 0
    _two_new_exchanges(sandbox.world)
    assert _scan(cli, connected).code == 0
    # An hour on, another order changes: the cursor moves past the exchanges and its
    # overlap no longer reaches them, so only the state file remembers them.
    sandbox.world.advance(timedelta(hours=1))
    scenarios.add_order(sandbox.world, {"name": "#1100", "lines": [{"sku": "TEE-M"}]})
    assert _scan(cli, connected).code == 0

    assert cli(["connect", "--db", str(connected)], env=env_for(sandbox)).code == 0
    result = _scan(cli, connected, "--json")

    assert result.code == 0, result.output
    assert json.loads(result.out)["holds_placed"] == 2
    assert len(probe.our_holds("EXC-1002-1")) == 1 and len(probe.our_holds("EXC-1005-1")) == 1
    status = json.loads(cli(["status", "--db", str(connected), "--json"]).out)
    assert status["unheld"] == []


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
        assert store.config.connection().loop_api_key is None
    finally:
        store.close()
        holder_store.close()
