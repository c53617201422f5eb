"""When loopsync lifts its hold (the pre-order shipped, or support released it by hand), the
Loop return gets a second note, once: "[loopsync] The pre-order item is ready: the hold was released."."""

from __future__ import annotations

import json

import pytest

from loopsync.sandbox.world import LoopNote
from support.cli import scan as _scan

JACKET_NOTE = "[loopsync] This exchange item is on pre-order, estimated shipping: 15 March 2027."
BOOTS_NOTE = "[loopsync] This exchange item is on pre-order, estimated shipping: Late January 2027."
RELEASE_NOTE = "[loopsync] The pre-order item is ready: the hold was released."


@pytest.fixture
def cli(secret_safe_cli):
    return secret_safe_cli


def _note_posts(probe, mark: int) -> list[str]:
    return [p for p in probe.loop_posts(mark) if p.endswith("/note")]


def test_a_shipped_preorder_gets_the_release_note_once(cli, connected, probe):
    assert _scan(cli, connected).code == 0
    probe.world.take_off_preorder(probe.variant("JKT-L-PRE"))

    result = _scan(cli, connected, "--json")

    assert result.code == 0, result.output
    doc = json.loads(result.out)
    assert doc["holds_released"] == 2 and doc["notes_posted"] == 2
    assert probe.notes("#1086") == [JACKET_NOTE, RELEASE_NOTE]
    assert probe.notes("#1092") == [JACKET_NOTE, RELEASE_NOTE]
    # The boots are still on pre-order: still held, no release note.
    assert probe.notes("#1091") == [BOOTS_NOTE] and probe.notes("#1095") == [BOOTS_NOTE]

    mark = probe.mark()
    assert _scan(cli, connected, "--since", "3d").code == 0
    assert _note_posts(probe, mark) == []
    assert probe.notes("#1086") == [JACKET_NOTE, RELEASE_NOTE]


def test_a_release_by_hand_posts_the_release_note_once(cli, connected, probe):
    assert _scan(cli, connected).code == 0

    result = cli(["release", "EXC-1086-1", "--yes", "--db", str(connected), "--json"])

    assert result.code == 0, result.output
    notes = [a["detail"] for a in json.loads(result.out)["actions"] if a["kind"] == "note"]
    assert notes == [RELEASE_NOTE]
    assert probe.notes("#1086") == [JACKET_NOTE, RELEASE_NOTE]

    mark = probe.mark()
    again = cli(["release", "EXC-1086-1", "--yes", "--db", str(connected)])
    assert again.code == 0, again.output
    assert _scan(cli, connected, "--since", "3d").code == 0
    assert _note_posts(probe, mark) == []
    assert probe.notes("#1086") == [JACKET_NOTE, RELEASE_NOTE]


def test_a_release_note_already_in_loop_is_not_posted_again(cli, connected, probe):
    """Loop's notes list counts as much as the ledger: an older state file held this order (its tag
    is still there) and posted both notes; this one posts neither."""
    ret = probe.loop_return_for("#1086")
    with probe.world.lock:
        for content in (JACKET_NOTE, RELEASE_NOTE):
            ret.notes.append(LoopNote(id=probe.world.next_note_id(), content=content, created_at=probe.world.now()))
        probe.order("EXC-1086-1").tags.append("pre-order")
        probe.world.changed()
    mark = probe.mark()
    assert _scan(cli, connected).code == 0
    assert probe.our_holds("EXC-1086-1")

    result = cli(["release", "EXC-1086-1", "--yes", "--db", str(connected)])

    assert result.code == 0, result.output
    assert [p for p in _note_posts(probe, mark) if f"/return/{ret.id}/" in p] == []
    assert probe.notes("#1086") == [JACKET_NOTE, RELEASE_NOTE]


def _notes_reads(probe, mark: int) -> list[str]:
    return [p for p in probe.loop_requests(mark) if p.endswith("/notes")]


def test_a_release_the_ledger_vouches_for_posts_its_note_without_reading_the_notes(cli, connected, probe):
    """A release wave cost two Loop requests a release: the notes list, then the note. Where this
    state file posted the pre-order note itself (the list had no release note) and placed the hold
    it now releases, nobody can have posted the release note since: one request."""
    assert _scan(cli, connected).code == 0
    probe.world.take_off_preorder(probe.variant("JKT-L-PRE"))
    mark = probe.mark()

    assert _scan(cli, connected).code == 0

    assert len(_note_posts(probe, mark)) == 2
    assert _notes_reads(probe, mark) == []
    assert probe.notes("#1086") == [JACKET_NOTE, RELEASE_NOTE]
    assert probe.notes("#1092") == [JACKET_NOTE, RELEASE_NOTE]


def test_a_hold_placed_after_the_pre_order_note_leaves_the_release_note_to_the_notes_list(cli, connected, probe):
    """A hold placed after the note (here: put back after someone lifted ours in the admin) proves
    nothing about the time between: the notes list is read, and a release note found is not repeated."""
    assert _scan(cli, connected).code == 0
    order = probe.order("EXC-1086-1")
    with probe.world.lock:
        for fo in probe.fulfillment_orders("EXC-1086-1"):
            fo.holds.clear()
            fo.status = "OPEN"
        probe.world.touch_order(order.id)
        ret = probe.loop_return_for("#1086")
        ret.notes.append(LoopNote(id=probe.world.next_note_id(), content=RELEASE_NOTE, created_at=probe.world.now()))
    assert _scan(cli, connected).code == 0
    assert probe.our_holds("EXC-1086-1")  # put back
    probe.world.take_off_preorder(probe.variant("JKT-L-PRE"))
    mark = probe.mark()

    assert _scan(cli, connected).code == 0

    assert not probe.our_holds("EXC-1086-1")
    assert _notes_reads(probe, mark) == [f"/api/v1/warehouse/return/{ret.id}/notes"]
    assert probe.notes("#1086") == [JACKET_NOTE, RELEASE_NOTE]


def test_release_note_off_posts_none(cli, connected, probe):
    assert cli(["config", "set", "release_note", "off", "--db", str(connected)]).code == 0
    assert _scan(cli, connected).code == 0
    probe.world.take_off_preorder(probe.variant("JKT-L-PRE"))
    mark = probe.mark()

    assert _scan(cli, connected).code == 0
    assert cli(["release", "EXC-1091-1", "--yes", "--db", str(connected)]).code == 0

    assert probe.our_holds("EXC-1086-1") == [] and probe.our_holds("EXC-1091-1") == []
    assert _note_posts(probe, mark) == []
    assert probe.notes("#1086") == [JACKET_NOTE] and probe.notes("#1091") == [BOOTS_NOTE]


def test_no_release_note_while_disconnected_nor_after_reconnecting(cli, connected, probe, env_for, sandbox):
    assert _scan(cli, connected).code == 0
    assert cli(["disconnect", "--yes", "--db", str(connected)]).code == 0
    probe.world.take_off_preorder(probe.variant("JKT-L-PRE"))
    mark = probe.mark()

    assert _scan(cli, connected).code == 0
    assert probe.our_holds("EXC-1086-1") == []  # releases go on while disconnected
    assert probe.loop_requests(mark) == []

    assert cli(["connect", "--db", str(connected)], env=env_for(sandbox)).code == 0
    assert _scan(cli, connected, "--since", "3d").code == 0
    assert _note_posts(probe, mark) == []
    assert probe.notes("#1086") == [JACKET_NOTE]


def test_a_release_note_loop_could_not_take_is_posted_by_the_next_scan(cli, connected, probe):
    assert _scan(cli, connected).code == 0
    ret = probe.loop_return_for("#1086")
    with probe.world.lock:  # Loop cannot find the return for a while
        del probe.world.loop_returns[ret.id]

    result = cli(["release", "EXC-1086-1", "--yes", "--db", str(connected)])

    assert result.code == 1, result.output
    assert "Not finished" in result.err and "release note" in result.err
    assert probe.our_holds("EXC-1086-1") == []  # the release itself is done

    with probe.world.lock:
        probe.world.loop_returns[ret.id] = ret
    again = _scan(cli, connected)
    assert again.code == 0, again.output
    assert probe.notes("#1086") == [JACKET_NOTE, RELEASE_NOTE]


def test_a_dry_run_shows_the_release_note_it_would_post(cli, connected, probe):
    assert _scan(cli, connected).code == 0
    probe.world.take_off_preorder(probe.variant("JKT-L-PRE"))
    mark = probe.mark()

    result = _scan(cli, connected, "--dry-run", "--json")

    assert result.code == 0, result.output
    planned = [a for o in json.loads(result.out)["orders"] for a in o["actions"]
               if a["kind"] == "note" and a["status"] == "planned"]
    assert [a["detail"] for a in planned] == [f"would post: {RELEASE_NOTE}"] * 2
    assert probe.entries(mark) and probe.loop_posts(mark) == [] and probe.mutations(mark) == []
