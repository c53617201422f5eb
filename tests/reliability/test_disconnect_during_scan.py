"""`disconnect` while a slow scan runs in another process: once disconnect has returned, the scan
places no hold, adds no tag and posts no Loop note; it notices the disconnect before its next one,
so it also stops early rather than finishing the store with a key the merchant took back."""

from __future__ import annotations

import sqlite3

from loopsync.sandbox.faults import FaultPlan
from support.harness import big_world, run_cli, wait_for

SIDE_EFFECTS = {"fulfillmentOrderHold", "tagsAdd"}


def side_effects(entries) -> list[str]:
    """Holds, tags and Loop notes among request log entries."""
    found = [m for e in entries for m in e.mutations if m in SIDE_EFFECTS]
    found += ["note" for e in entries if e.api == "loop" and e.method == "POST" and e.path.endswith("/note")]
    return found


def slow_scan(make_harness, name: str):
    harness = make_harness(big_world(), name=name)
    harness.connect()
    # Every answer is late from here on: the whole store would take a scan well over ten seconds.
    harness.sb.faults = harness.sb.app.faults = FaultPlan.parse("slow=1:0.1,seed=1")
    proc = harness.spawn()
    held = wait_for(lambda: "fulfillmentOrderHold" in side_effects(harness.world.log), timeout=60)
    assert held, "the scan never placed a hold"
    return harness, proc


def _one(harness, sql: str):
    con = sqlite3.connect(f"file:{harness.db}?mode=ro", uri=True)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def preorder_exchanges_left(harness) -> int:
    """Exchanges the state file calls left unheld; none of them may carry a loopsync hold."""
    con = sqlite3.connect(f"file:{harness.db}?mode=ro", uri=True)
    try:
        names = [r[0] for r in con.execute("SELECT name FROM orders WHERE state = 'disconnected_skip'")]
    finally:
        con.close()
    with harness.world.lock:
        for name in names:
            order = harness.world.order_by_name(name)
            fos = [harness.world.fulfillment_orders[i] for i in order.fulfillment_order_ids]
            assert not [h for fo in fos for h in fo.holds if h.app_id == harness.app_id], f"{name} is held"
    return len(names)


def last_scan_outcome(harness) -> str:
    return _one(harness, "SELECT outcome FROM scans ORDER BY id DESC LIMIT 1")


def test_nothing_is_done_after_disconnect_returns(make_harness):
    harness, proc = slow_scan(make_harness, "disconnect")

    result = run_cli(["disconnect", "--yes", "--db", str(harness.db)])
    with harness.world.lock:
        mark = len(harness.world.log)
    outcome = last_scan_outcome(harness)

    out, err = proc.communicate(timeout=60)

    assert result.code == 0, result.output
    assert side_effects(harness.world.log[mark:]) == []
    # disconnect waited for the scan, and said so: its work was over when disconnect returned.
    assert outcome == "ok"
    assert "waiting for it to stop" in result.err and "Loop Returns disconnected" in result.err
    assert proc.returncode == 0, (out, err)
    # It stopped early: the pre-order exchanges it had not reached are left unheld, and said so.
    left = preorder_exchanges_left(harness)
    assert left > 5
    assert f"{left} new pre-order exchanges left unheld: Loop is disconnected." in err.splitlines()


def test_a_scan_notices_a_disconnect_before_its_next_hold_or_note(make_harness):
    """The scan's own check, without disconnect's wait (as when that wait timed out): after the
    key is gone, only the call already in flight may still land."""
    from loopsync.store import Store

    harness, proc = slow_scan(make_harness, "noticed")

    with Store.open(harness.db) as store:
        store.config.forget_loop_key()
    with harness.world.lock:
        mark = len(harness.world.log)
    out, err = proc.communicate(timeout=60)

    assert proc.returncode == 0, (out, err)
    assert len(side_effects(harness.world.log[mark:])) <= 1
    assert preorder_exchanges_left(harness) > 5
