"""`loopsync explain ORDER` and `loopsync history` end to end, for the orders support asks about:
held, released when shipped, re-held, released by tag, in stock, and not an exchange. Neither
command sends a mutation or a Loop write, and neither changes the state file."""

from __future__ import annotations

import json

import pytest

from loopsync.sandbox import activity
from support.state import rows

PREORDER_NOTE = "[loopsync] This exchange item is on pre-order, estimated shipping: 15 March 2027."
RELEASE_NOTE = "[loopsync] The pre-order item is ready: the hold was released."


@pytest.fixture
def cli(secret_safe_cli):
    return secret_safe_cli


@pytest.fixture
def scanned(cli, connected):
    assert cli(["scan", "--db", str(connected)]).code == 0
    return connected


def read_only_json(cli, probe, db, args):
    """Run a read-only command with --json: it exits 0, sends nothing and leaves the state file as it was."""
    mark = probe.mark()
    before = [rows(db, f"SELECT * FROM {t}") for t in ("orders", "actions", "holds", "decisions", "scans")]
    result = cli([*args, "--db", str(db), "--json"])
    assert result.code == 0, result.output
    assert probe.mutations(mark) == [] and probe.loop_posts(mark) == []
    assert [rows(db, f"SELECT * FROM {t}") for t in ("orders", "actions", "holds", "decisions", "scans")] == before
    return json.loads(result.out)


def explain(cli, probe, db, name):
    return read_only_json(cli, probe, db, ["explain", name])


def history(cli, probe, db, *args):
    return read_only_json(cli, probe, db, ["history", *args])["entries"]


def kinds(entries):
    return [(e["kind"], e["status"]) for e in entries]


def test_a_held_exchange_explained(cli, scanned, probe):
    order = probe.order("EXC-1086-1")
    [fo] = probe.fulfillment_orders("EXC-1086-1")
    [hold] = probe.our_holds("EXC-1086-1")

    doc = explain(cli, probe, scanned, "EXC-1086-1")

    assert doc["order"] == {
        "id": order.id, "legacy_id": int(order.id.rsplit("/", 1)[1]), "name": "EXC-1086-1",
        "tags": ["1086", "pre-order"], "closed": False, "cancelled": False,
    }
    assert doc["exchange"] == {
        "kind": "separate", "rule": "name_prefix", "why": "its name starts with the exchange prefix 'EXC-'",
    }
    [line] = doc["line_items"]
    assert line["sku"] == "JKT-L-PRE" and line["variant_id"] == probe.variant("JKT-L-PRE")
    assert (line["exchange_item"], line["on_preorder"], line["signal"]) == (True, True, "selling_plan_group")
    assert (line["window"], line["window_source"]) == ("15 March 2027", "selling_plan_date")
    assert line["window_why"] == "the PRE_ORDER selling plan's fulfillment date"
    assert doc["window"] == "15 March 2027"
    [shown_fo] = doc["fulfillment_orders"]
    assert (shown_fo["id"], shown_fo["status"]) == (fo.id, "ON_HOLD")
    [shown_hold] = shown_fo["holds"]
    assert shown_hold == {
        "id": hold.id, "handle": "loopsync-preorder", "ours": True, "app": "loopsync",
        "reason": hold.reason, "reason_notes": hold.reason_notes,
    }
    ret = probe.loop_return_for("#1086")
    assert doc["loop_return"] == {"id": str(ret.id), "found_by": "state file", "why_not": None, "notes": [PREORDER_NOTE]}
    ledger = doc["ledger"]
    assert ledger["state"] == "held" and ledger["manual_release"] is False and ledger["pending_reason"] is None
    assert [(h["fulfillment_order_id"], h["hold_id"], h["status"]) for h in ledger["holds"]] == [
        (fo.id, hold.id, "active")
    ]
    assert kinds(ledger["history"]) == [("note", "done"), ("tag", "done"), ("hold", "done")]
    assert ledger["history"][0]["detail"] == PREORDER_NOTE
    nxt = doc["next_scan"]
    assert (nxt["decision"], nxt["pending"], nxt["changes_nothing"]) == ("held", None, True)
    assert [(a["kind"], a["sends"]) for a in nxt["actions"]] == [("keep", False), ("note", False)]


def test_a_native_exchange_names_the_native_tag_and_the_metafield_window(cli, scanned, probe):
    doc = explain(cli, probe, scanned, "#1095")

    assert (doc["exchange"]["kind"], doc["exchange"]["rule"]) == ("native", "native_tag")
    [pre] = [li for li in doc["line_items"] if li["on_preorder"]]
    assert (pre["sku"], pre["window"], pre["window_source"]) == ("BOOT-10-PRE", "Late January 2027", "metafield")
    assert pre["window_why"] == "the variant's metafield preorder.shipping_window"
    # The original item is on the same order but is not an exchange item.
    assert [li["exchange_item"] for li in doc["line_items"] if not li["on_preorder"]] == [False]


def test_a_released_exchange_explained_after_its_preorder_shipped(cli, scanned, probe):
    probe.world.take_off_preorder(probe.variant("JKT-L-PRE"))
    assert cli(["scan", "--db", str(scanned)]).code == 0

    doc = explain(cli, probe, scanned, "EXC-1086-1")

    [line] = doc["line_items"]
    assert (line["on_preorder"], line["signal"], line["window"]) == (False, None, None)
    assert line["why"] == "the variant is in no PRE_ORDER selling plan group and no local override names it"
    assert [h for fo in doc["fulfillment_orders"] for h in fo["holds"]] == []
    assert [(h["status"], h["released_by"]) for h in doc["ledger"]["holds"]] == [("released", "scan")]
    assert doc["loop_return"]["notes"] == [PREORDER_NOTE, RELEASE_NOTE]
    release = next(e for e in doc["ledger"]["history"] if e["kind"] == "release")
    assert (release["status"], release["detail"]) == ("done", "its pre-order item shipped")
    assert kinds(doc["ledger"]["history"])[:2] == [("note", "done"), ("release", "done")]
    nxt = doc["next_scan"]
    assert (nxt["decision"], nxt["actions"], nxt["changes_nothing"]) == ("no_preorder_items", [], True)


def test_a_reheld_exchange_explained(cli, scanned, probe):
    activity.release_every_hold(probe.world, "EXC-1086-1")
    assert cli(["scan", "--db", str(scanned)]).code == 0
    [again] = probe.our_holds("EXC-1086-1")

    doc = explain(cli, probe, scanned, "EXC-1086-1")

    assert [h["id"] for fo in doc["fulfillment_orders"] for h in fo["holds"]] == [again.id]
    assert kinds(doc["ledger"]["history"])[:2] == [("rehold", "done"), ("hold_lost", "rehold")]
    assert doc["ledger"]["history"][0]["detail"] == "put back: the hold was released outside loopsync"
    assert doc["next_scan"]["decision"] == "held" and doc["next_scan"]["changes_nothing"] is True

    entries = history(cli, probe, scanned, "--order", "EXC-1086-1")
    assert kinds(entries) == [
        ("rehold", "done"), ("hold_lost", "rehold"), ("note", "done"), ("tag", "done"), ("hold", "done"),
    ]


def test_an_exchange_released_by_tag_explained(cli, scanned, probe):
    activity.staff_add_tags(probe.world, "EXC-1086-1", ["loopsync-release"])
    assert cli(["scan", "--db", str(scanned)]).code == 0

    doc = explain(cli, probe, scanned, "EXC-1086-1")

    assert "loopsync-release" in doc["order"]["tags"]
    assert doc["ledger"]["manual_release"] is True
    assert [(h["status"], h["released_by"]) for h in doc["ledger"]["holds"]] == [("released_manually", "manual")]
    release = next(e for e in doc["ledger"]["history"] if e["kind"] == "release")
    assert release["detail"] == "released with the tag 'loopsync-release' added in Shopify"
    nxt = doc["next_scan"]
    assert nxt["decision"] == "manual_release_respected"
    assert nxt["reason"] == "support released this order by hand; loopsync leaves it alone"
    assert nxt["changes_nothing"] is True
    # Still on pre-order: the line says so, and yet nothing would be held.
    assert doc["line_items"][0]["on_preorder"] is True


def test_an_in_stock_exchange_explained(cli, scanned, probe):
    doc = explain(cli, probe, scanned, "EXC-1090-1")

    assert (doc["exchange"]["kind"], doc["exchange"]["rule"]) == ("separate", "name_prefix")
    [line] = doc["line_items"]
    assert (line["sku"], line["exchange_item"], line["on_preorder"]) == ("TEE-M", True, False)
    assert [fo["holds"] for fo in doc["fulfillment_orders"]] == [[]]
    assert doc["loop_return"]["id"] == str(probe.loop_return_for("#1090").id)
    assert doc["loop_return"]["found_by"] == "Loop lookup" and doc["loop_return"]["notes"] == []
    assert doc["ledger"]["state"] == "no_preorder_items" and doc["ledger"]["history"] == []
    nxt = doc["next_scan"]
    assert (nxt["decision"], nxt["reason"]) == ("no_preorder_items", "no exchange item is on pre-order")
    assert nxt["actions"] == [] and nxt["changes_nothing"] is True


def test_an_order_that_is_not_an_exchange_explained(cli, scanned, probe):
    doc = explain(cli, probe, scanned, "#1004")

    assert doc["exchange"]["kind"] is None and doc["exchange"]["rule"] is None
    assert doc["exchange"]["why"].startswith("not a Loop exchange")
    [line] = doc["line_items"]
    assert (line["sku"], line["exchange_item"], line["on_preorder"]) == ("JKT-L-PRE", False, False)
    assert line["why"] == "not an exchange item"
    assert doc["loop_return"] == {
        "id": None, "found_by": None, "why_not": "not looked for: not a Loop exchange", "notes": [],
    }
    assert doc["ledger"]["state"] is None and doc["ledger"]["history"] == []
    assert doc["next_scan"]["decision"] == "not_exchange" and doc["next_scan"]["changes_nothing"] is True


def test_explain_at_a_terminal_width_reads_as_a_trace(cli, scanned, probe):
    mark = probe.mark()
    result = cli(["explain", "EXC-1092-1", "--db", str(scanned)], env={"COLUMNS": "250"})

    assert result.code == 0, result.output
    assert probe.mutations(mark) == [] and probe.loop_posts(mark) == []
    for phrase in ("its name starts with the exchange prefix 'EXC-'", "JKT-L-PRE", "Upsell Guard", "Next scan: held",
                   "It would send nothing to Shopify or Loop."):
        assert phrase in result.out, result.out


def test_history_lists_every_action_newest_first_and_filters(cli, scanned, probe):
    probe.world.take_off_preorder(probe.variant("JKT-L-PRE"))
    assert cli(["scan", "--db", str(scanned)]).code == 0

    entries = history(cli, probe, scanned)

    assert [e["at"] for e in entries] == sorted((e["at"] for e in entries), reverse=True)
    held = {e["order"] for e in entries if e["kind"] == "hold"}
    assert held == {"EXC-1086-1", "EXC-1091-1", "EXC-1092-1", "#1095"}
    released = [(e["order"], e["detail"]) for e in entries if e["kind"] == "release"]
    assert sorted(released) == [("EXC-1086-1", "its pre-order item shipped"),
                                ("EXC-1092-1", "its pre-order item shipped")]
    first = entries[0]
    assert set(first) == {"at", "scan_id", "order_id", "order", "kind", "target", "status", "detail"}
    assert first["scan_id"] == 2

    assert len(history(cli, probe, scanned, "--limit", "3")) == 3
    order = probe.order("EXC-1086-1")
    by_id = history(cli, probe, scanned, "--order", order.id.rsplit("/", 1)[1])
    assert by_id == history(cli, probe, scanned, "--order", "EXC-1086-1")
    assert {e["order"] for e in by_id} == {"EXC-1086-1"}
    assert history(cli, probe, scanned, "--since", "2026-01-01T00:00:00Z") == entries
    second = [e for e in entries if e["scan_id"] == 2]
    assert history(cli, probe, scanned, "--since", second[-1]["at"]) == second


def test_history_off_a_terminal_is_one_tab_separated_line_per_entry(cli, scanned):
    result = cli(["history", "--db", str(scanned), "--order", "EXC-1086-1"])

    assert result.code == 0, result.output
    lines = result.out.splitlines()
    assert [line.split("\t")[1:4] for line in lines] == [
        ["EXC-1086-1", "note", "done"], ["EXC-1086-1", "tag", "done"], ["EXC-1086-1", "hold", "done"],
    ]


def test_a_refused_hold_and_its_pending_reason_are_in_the_history(cli, connected, probe):
    from loopsync.sandbox.builders import add_hold

    # Shopify allows an app ten holds on one fulfillment order: ten of loopsync's app's own,
    # under other handles, make the eleventh (loopsync's) refused.
    app = next(a.id for a in probe.world.apps.values() if a.title == "loopsync")
    [fo] = probe.fulfillment_orders("EXC-1086-1")
    for n in range(10):
        add_hold(probe.world, fo.id, app, handle=f"other-{n}")
    assert cli(["scan", "--db", str(connected)]).code == 1

    entries = history(cli, probe, connected, "--order", "EXC-1086-1")

    # The tag and the note go on (the hold is retried next scan); the refusal says why.
    assert kinds(entries) == [("pending", "pending"), ("note", "done"), ("tag", "done"), ("hold", "failed")]
    assert "FULFILLMENT_ORDER_HOLD_LIMIT_REACHED" in entries[3]["detail"]
    assert entries[0]["detail"].startswith(f"Shopify refused the hold on {fo.id}")
    # A second scan with the same reason adds a failed hold, not a second pending line.
    assert cli(["scan", "--db", str(connected)]).code in (0, 1)
    again = history(cli, probe, connected, "--order", "EXC-1086-1")
    assert [k for k, _ in kinds(again)].count("pending") == 1


def test_an_exchange_explained_before_any_scan_finds_its_loop_return(cli, connected, probe):
    # The guide's first steps: `scan --dry-run`, then `explain`; the state file knows no return yet.
    ret = probe.loop_return_for("#1086")

    doc = explain(cli, probe, connected, "EXC-1086-1")

    assert doc["loop_return"] == {"id": str(ret.id), "found_by": "Loop lookup", "why_not": None, "notes": []}
    assert doc["next_scan"]["decision"] == "held"
