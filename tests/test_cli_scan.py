"""`loopsync scan` end to end: the CLI, over real HTTP, against the demo sandbox store."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from loopsync.sandbox import scenarios
from loopsync.sandbox.generator import generate_store
from loopsync.sandbox.world import LoopNote
from support.cli import scan as _scan


@pytest.fixture
def cli(secret_safe_cli):
    """Every command these tests run is also checked for leaked credentials."""
    return secret_safe_cli


JACKET_NOTE = "[loopsync] This exchange item is on pre-order, estimated shipping: 15 March 2027."
BOOTS_NOTE = "[loopsync] This exchange item is on pre-order, estimated shipping: Late January 2027."


def test_first_scan_holds_tags_and_notes_every_preorder_exchange(cli, connected, probe, checks):
    upsell_before = [(h.id, h.handle, h.reason, h.reason_notes, h.app_id) for h in probe.holds("EXC-1092-1")]
    mark = probe.mark()

    result = _scan(cli, connected, "--verbose")

    assert result.code == 0, result.output
    checks.no_secrets(result)
    assert "4 held, 4 tagged, 4 noted, 0 released, 0 pending" in result.err
    assert "EXC-1091-1" in result.out and "pre-order lines only (split)" in result.out

    # Separate exchange order into the dated jacket pre-order: one hold, the tag, the note.
    [hold] = probe.holds("EXC-1086-1")
    assert hold.handle.startswith("loopsync")
    assert "15 March 2027" in (hold.reason_notes or "")
    assert "pre-order" in probe.order("EXC-1086-1").tags
    assert probe.notes("#1086") == [JACKET_NOTE]

    # The split: the pre-order boots held on their own, the in-stock T-shirt free to ship.
    fos = probe.fulfillment_orders("EXC-1091-1")
    assert len(fos) == 2
    held = [fo for fo in fos if fo.holds]
    free = [fo for fo in fos if not fo.holds]
    assert len(held) == 1 and len(free) == 1
    assert [probe.sku_of_line(li.line_item_id) for li in held[0].line_items] == ["BOOT-10-PRE"]
    assert [probe.sku_of_line(li.line_item_id) for li in free[0].line_items] == ["TEE-S"]
    assert free[0].status == "OPEN"
    assert held[0].holds[0].handle.startswith("loopsync")
    # Its Loop return is in Needs Review, which Loop's default list leaves out.
    assert probe.notes("#1091") == [BOOTS_NOTE]

    # Already held by Upsell Guard: the whole FO held by us too, their hold untouched.
    [fo_1092] = probe.fulfillment_orders("EXC-1092-1")
    theirs = [(h.id, h.handle, h.reason, h.reason_notes, h.app_id) for h in fo_1092.holds
              if not h.handle.startswith("loopsync")]
    assert theirs == upsell_before
    assert len(probe.our_holds("EXC-1092-1")) == 1
    assert probe.notes("#1092") == [JACKET_NOTE]

    # Native exchange on #1095: only the exchange item's FO is held, the original's is not touched.
    fos_1095 = probe.fulfillment_orders("#1095")
    held_1095 = [fo for fo in fos_1095 if fo.holds]
    assert len(held_1095) == 1
    assert [probe.sku_of_line(li.line_item_id) for li in held_1095[0].line_items] == ["BOOT-10-PRE"]
    assert all(not fo.holds for fo in fos_1095 if fo is not held_1095[0])
    assert "pre-order" in probe.order("#1095").tags
    assert probe.notes("#1095") == [BOOTS_NOTE]

    # In stock and closed: not held, not tagged, not noted.
    for name, original in (("EXC-1090-1", "#1090"), ("EXC-1093-1", "#1093")):
        assert probe.holds(name) == []
        assert "pre-order" not in probe.order(name).tags
        assert probe.notes(original) == []

    # Ordinary orders and checkout pre-orders are left alone: exactly 4 holds, 4 tags, 4 notes.
    mutations = probe.mutations(mark)
    assert sorted(mutations) == ["fulfillmentOrderHold"] * 4 + ["tagsAdd"] * 4
    assert len([p for p in probe.loop_posts(mark) if p.endswith("/note")]) == 4


def test_second_scan_is_silent_and_changes_nothing(cli, connected, probe):
    assert _scan(cli, connected).code == 0
    holds_before = sorted(h.id for h in probe.world.holds())
    mark = probe.mark()

    result = _scan(cli, connected)

    assert result.code == 0, result.output
    # Quiet under cron: nothing to do, nothing printed.
    assert result.out == "" and result.err == ""
    assert probe.mutations(mark) == []
    assert probe.loop_posts(mark) == []
    assert sorted(h.id for h in probe.world.holds()) == holds_before
    for original, note in (("#1086", JACKET_NOTE), ("#1091", BOOTS_NOTE), ("#1092", JACKET_NOTE),
                           ("#1095", BOOTS_NOTE)):
        assert probe.notes(original) == [note]

    verbose = _scan(cli, connected, "--verbose")
    assert verbose.code == 0
    assert "0 held, 0 tagged, 0 noted, 0 released, 0 pending" in verbose.err
    assert probe.mutations(mark) == [] and probe.loop_posts(mark) == []


def test_an_identical_note_already_on_the_return_is_not_posted_again(cli, connected, probe):
    # An earlier run, with another state file, tagged the order and posted the note.
    ret = probe.loop_return_for("#1086")
    with probe.world.lock:
        ret.notes.append(LoopNote(id=probe.world.next_note_id(), content=JACKET_NOTE, created_at=probe.world.now()))
        probe.order("EXC-1086-1").tags.append("pre-order")
    mark = probe.mark()

    result = _scan(cli, connected)

    assert result.code == 0, result.output
    assert probe.notes("#1086") == [JACKET_NOTE]
    assert f"/return/{ret.id}/note" not in probe.loop_posts(mark)
    # The other three still get theirs, and the jacket order is still held and tagged.
    assert len([p for p in probe.loop_posts(mark) if p.endswith("/note")]) == 3
    assert len(probe.our_holds("EXC-1086-1")) == 1
    assert "pre-order" in probe.order("EXC-1086-1").tags


def test_dry_run_prints_the_plan_and_changes_nothing(cli, connected, probe):
    mark = probe.mark()

    result = _scan(cli, connected, "--dry-run")

    assert result.code == 0, result.output
    assert "would hold" in result.out
    assert "Dry run" in result.err and "would hold 4, tag 4, note 4 and release 0" in result.err
    assert " held" not in result.err, "a plan must not read as done"
    assert probe.mutations(mark) == []
    assert probe.loop_posts(mark) == []
    assert probe.world.holds(app_id=None) == [h for h in probe.world.holds() if not h.handle.startswith("loopsync")]
    status = json.loads(cli(["status", "--db", str(connected), "--json"]).out)
    assert status["held"] == [] and status["last_scan"] is None and status["cursor"] is None

    # The dry run did not move the cursor: the real scan still sees everything.
    assert _scan(cli, connected).code == 0
    assert sorted(probe.mutations(mark)) == ["fulfillmentOrderHold"] * 4 + ["tagsAdd"] * 4


def test_json_prints_exactly_one_document(cli, connected, probe):
    result = _scan(cli, connected, "--json")

    assert result.code == 0, result.output
    doc = json.loads(result.out)  # one document, nothing else on stdout
    assert doc["holds_placed"] == 4 and doc["tags_added"] == 4 and doc["notes_posted"] == 4
    assert doc["pending"] == 0 and doc["dry_run"] is False
    by_name = {o["order"]: o for o in doc["orders"]}
    assert by_name["EXC-1086-1"]["decision"] == "held" and by_name["EXC-1086-1"]["window"] == "15 March 2027"
    assert by_name["#1095"]["kind"] == "native" and by_name["#1095"]["window"] == "Late January 2027"
    assert by_name["EXC-1091-1"]["window"] == "Late January 2027"
    assert by_name["EXC-1093-1"]["decision"] == "closed"
    assert by_name["EXC-1090-1"]["decision"] == "no_preorder_items"
    notes = [a["detail"] for o in doc["orders"] for a in o["actions"] if a["kind"] == "note"]
    assert sorted(notes) == sorted([JACKET_NOTE, JACKET_NOTE, BOOTS_NOTE, BOOTS_NOTE])

    again = json.loads(_scan(cli, connected, "--json").out)
    assert again["holds_placed"] == again["notes_posted"] == again["tags_added"] == 0


def test_since_looks_further_back_than_the_cursor(cli, connected, probe):
    assert _scan(cli, connected).code == 0
    # An exchange last updated two days ago: older than the cursor minus its overlap.
    created = scenarios.add_exchange(probe.world, {
        "original": "#1002", "name": "EXC-1002-1", "created": "-2d", "lines": [{"sku": "JKT-L-PRE"}],
    })
    assert created["loop_return"] is not None

    assert _scan(cli, connected).code == 0
    assert probe.holds("EXC-1002-1") == []

    result = _scan(cli, connected, "--since", "3d", "--json")
    assert result.code == 0, result.output
    assert json.loads(result.out)["holds_placed"] == 1
    assert len(probe.our_holds("EXC-1002-1")) == 1
    assert probe.notes("#1002") == [JACKET_NOTE]


def test_since_accepts_an_iso_date_and_rejects_nonsense(cli, connected, probe, checks):
    iso = (probe.world.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = _scan(cli, connected, "--since", iso, "--json")
    assert result.code == 0, result.output
    assert json.loads(result.out)["since"] == iso

    mark = probe.mark()
    bad = _scan(cli, connected, "--since", "last tuesday")
    checks.clean_error(bad, 2)
    assert probe.entries(mark) == []


def test_an_exchange_whose_loop_return_is_missing_is_pending_then_noted(cli, connected, probe):
    created = scenarios.add_exchange(probe.world, {
        "original": "#1002", "name": "EXC-1002-1", "created": "-5m", "lines": [{"sku": "JKT-L-PRE"}],
        "return": None,
    })
    assert created["loop_return"] is None

    first = _scan(cli, connected)

    assert first.code == 1, first.output
    assert "EXC-1002-1" in first.err and "Traceback" not in first.output
    # The others were not stopped by it.
    assert probe.notes("#1086") == [JACKET_NOTE]
    status = json.loads(cli(["status", "--db", str(connected), "--json"]).out)
    assert [p["order"] for p in status["pending"]] == ["EXC-1002-1"]
    assert status["last_scan"]["outcome"] == "pending"

    # Loop creates the return; the next scan finds it, posts the note and exits 0.
    with probe.world.lock:
        order = probe.order("EXC-1002-1")
        original = probe.order("#1002")
        exchange = scenarios.loop_exchange(probe.world, probe.variant("JKT-L-PRE"), order)
        scenarios.add_loop_return(probe.world, original, [exchange])
    mark = probe.mark()

    second = _scan(cli, connected)

    assert second.code == 0, second.output
    assert probe.notes("#1002") == [JACKET_NOTE]
    assert len([p for p in probe.loop_posts(mark) if p.endswith("/note")]) == 1
    assert len(probe.our_holds("EXC-1002-1")) == 1
    status = json.loads(cli(["status", "--db", str(connected), "--json"]).out)
    assert status["pending"] == []
    assert status["last_scan"]["outcome"] == "ok"


def test_wait_queues_behind_a_running_scan(cli, connected, probe):
    import threading

    from loopsync.store import Store

    store = Store.open(connected)
    locked, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        with store.scan_lock():
            locked.set()
            release.wait(5)

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    try:
        assert locked.wait(5)
        threading.Timer(0.3, release.set).start()
        result = _scan(cli, connected, "--wait", "--json")
    finally:
        release.set()
        holder.join()
        store.close()

    assert result.code == 0, result.output
    assert json.loads(result.out)["holds_placed"] == 4


def test_under_cron_a_scan_that_acted_is_quiet_unless_verbose(cli, connected, probe):
    """Off a terminal (cron) success prints nothing, even when holds were placed."""
    result = _scan(cli, connected)
    assert result.code == 0, result.output
    assert result.out == "" and result.err == ""
    assert probe.holds("EXC-1086-1")


def test_at_a_terminal_a_scan_shows_what_it_did(capsys):
    from datetime import UTC, datetime

    from loopsync import render
    from loopsync.reconcile import Action, OrderOutcome, ScanReport

    report = ScanReport(scan_id=1, since=datetime(2026, 11, 1, tzinfo=UTC), dry_run=False)
    report.outcomes.append(
        OrderOutcome("gid://shopify/Order/1", "EXC-1086-1", "separate", "held", actions=[Action("hold", "fo", "whole")])
    )
    render.show_scan(report, verbose=False, interactive=True)
    shown = capsys.readouterr()
    assert "EXC-1086-1" in shown.out and "held" in shown.out
    assert "1 held" in shown.err
    render.show_scan(report, verbose=False, interactive=False)
    assert capsys.readouterr() == ("", "")


def test_a_backfill_finds_returns_by_list_and_reads_no_notes_on_untouched_orders(cli, connected, probe):
    """Loop allows 300 requests a minute: a first scan costs at most 1.5 Loop requests per
    exchange it notes (one list per state for the whole batch, then one post per note)."""
    generated = generate_store(probe.world, orders=60, exchange_share=0.5, preorder_share=1.0, seed=3)
    assert len(generated.preorder_exchanges) >= 20
    mark = probe.mark()

    result = _scan(cli, connected, "--json")

    assert result.code == 0, result.output
    requests = probe.loop_requests(mark)
    posted = [p for p in requests if p.endswith("/note")]
    assert len(posted) == json.loads(result.out)["notes_posted"] >= 20
    # None of these orders was ever touched by loopsync: no note of ours can be there yet.
    assert [p for p in requests if p.endswith("/notes")] == []
    assert len(requests) <= 1.5 * len(posted), requests
