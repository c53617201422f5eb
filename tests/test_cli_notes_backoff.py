"""An exchange whose Loop return never appears: its hold stays, its note is looked for on a
back-off schedule (5m, 15m, 1h, 4h, then daily), and only the first miss and the give-up
after 14 days make a scan exit 1. Through the CLI, over HTTP, on the sandbox's clock."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from loopsync import clock
from loopsync.sandbox import scenarios
from support.cli import scan as _scan

JACKET_NOTE = "[loopsync] This exchange item is on pre-order, estimated shipping: 15 March 2027."


@pytest.fixture
def cli(secret_safe_cli, sandbox):
    """Every command runs on the sandbox world's clock, stopped: time moves only when the test
    advances the world or loopsync sleeps (a throttle wait), and both see the same time."""
    world = sandbox.world
    world.freeze(world.now())

    def sleep(seconds: float) -> None:
        world.advance(timedelta(seconds=seconds))

    def monotonic() -> float:
        return world.offset.total_seconds()

    def run(args, **kwargs):
        with clock.use(clock.Clock(now=world.clock, monotonic=monotonic, sleep=sleep)):
            return secret_safe_cli(args, **kwargs)

    return run


@pytest.fixture
def waiting(cli, connected, probe):
    """EXC-1002-1 into the jacket pre-order, with no Loop return; the first scan holds it and exits 1."""
    scenarios.add_exchange(probe.world, {
        "original": "#1002", "name": "EXC-1002-1", "created": "-5m", "lines": [{"sku": "JKT-L-PRE"}],
        "return": None,
    })
    first = _scan(cli, connected)
    assert first.code == 1, first.output
    assert "EXC-1002-1" in first.err and "Loop return not found yet" in first.err
    assert len(probe.our_holds("EXC-1002-1")) == 1
    return connected


def _status(cli, db) -> dict:
    result = cli(["status", "--db", str(db), "--json"])
    doc = json.loads(result.out)
    # status exits 1 exactly when something needs a person (a return given up on, here).
    assert result.code == (1 if doc["attention"] else 0), result.output
    return doc


def _entry(cli, db, name: str = "EXC-1002-1") -> dict:
    [entry] = [p for p in _status(cli, db)["pending"] if p["order"] == name]
    return entry


def _later(probe, delta: timedelta) -> None:
    """Time passes and the store is busy elsewhere, so the scan cursor moves past our own changes."""
    probe.world.advance(delta)
    with probe.world.lock:
        probe.world.touch_order(probe.order("#1001").id)


def _at(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


def _loop_lookups(probe, mark: int) -> int:
    return len(probe.loop_requests(mark))


def test_a_missing_return_exits_1_when_it_first_goes_pending_and_when_it_gives_up(cli, waiting, probe):
    entry = _entry(cli, waiting)
    assert entry["attempts"] == 1 and entry["gave_up_at"] is None
    first_try = _at(entry["waiting_since"])
    assert _at(entry["next_retry_at"]) - first_try == timedelta(minutes=5)

    # Still missing five minutes later: looked for again, but cron hears nothing.
    _later(probe, timedelta(minutes=5))
    mark = probe.mark()
    second = _scan(cli, waiting)
    assert second.code == 0, second.output
    assert second.out == "" and second.err == ""
    assert _loop_lookups(probe, mark) > 0
    entry = _entry(cli, waiting)
    assert entry["attempts"] == 2
    assert _at(entry["next_retry_at"]) - _at(entry["waiting_since"]) == timedelta(minutes=20)

    # Thirteen days on, still looked for and still quiet.
    _later(probe, timedelta(days=13))
    assert _scan(cli, waiting).code == 0
    assert _entry(cli, waiting)["attempts"] == 3

    # Fourteen days after the first miss loopsync gives up reporting it: exit 1, once.
    _later(probe, timedelta(days=1))
    gives_up = _scan(cli, waiting)
    assert gives_up.code == 1, gives_up.output
    assert "EXC-1002-1" in gives_up.err and "gave up" in gives_up.err
    entry = _entry(cli, waiting)
    assert entry["gave_up_at"] is not None and "gave up" in entry["reason"]
    text = cli(["status", "--db", str(waiting)])
    assert "EXC-1002-1" in text.out and "gave up" in text.out
    assert text.code == 1 and "needs attention: EXC-1002-1: Loop return not found after 14 days" in text.err

    # After that it is still looked for once a day, silently; the hold stays throughout.
    _later(probe, timedelta(days=1))
    mark = probe.mark()
    after = _scan(cli, waiting)
    assert after.code == 0, after.output
    assert after.err == ""
    assert _loop_lookups(probe, mark) > 0
    entry = _entry(cli, waiting)
    assert entry["attempts"] == 5 and "gave up" in entry["reason"]
    assert _at(entry["next_retry_at"]) - _at(entry["gave_up_at"]) == timedelta(days=2)
    assert len(probe.our_holds("EXC-1002-1")) == 1


def test_a_waiting_order_is_not_read_until_its_retry_is_due_then_its_late_return_is_noted(cli, waiting, probe):
    # The scan after the first still sees the order as updated (our hold and tag changed it)
    # and reconciles it as usual; the store's other activity then moves the cursor past it.
    _later(probe, timedelta(minutes=11))
    assert _scan(cli, waiting).code == 0
    entry = _entry(cli, waiting)
    assert entry["attempts"] == 2
    due = _at(entry["next_retry_at"])

    probe.world.advance(timedelta(minutes=1))
    mark = probe.mark()
    quiet = _scan(cli, waiting)
    assert quiet.code == 0, quiet.output
    # Not due: neither read in full from Shopify nor looked for in Loop.
    shopify_ops = [e.operation for e in probe.entries(mark) if e.api == "shopify"]
    assert "LoopsyncOrdersById" not in shopify_ops, shopify_ops
    assert _loop_lookups(probe, mark) == 0
    text = cli(["status", "--db", str(waiting)])
    assert "EXC-1002-1" in text.out and due.strftime("%Y-%m-%d %H:%M") in text.out

    # Loop creates the return; at the due time the scan finds it and posts the note.
    with probe.world.lock:
        order = probe.order("EXC-1002-1")
        exchange = scenarios.loop_exchange(probe.world, probe.variant("JKT-L-PRE"), order)
        scenarios.add_loop_return(probe.world, probe.order("#1002"), [exchange])
    probe.world.advance(due - probe.world.clock() + timedelta(seconds=1))
    mark = probe.mark()
    found = _scan(cli, waiting, "--json")
    assert found.code == 0, found.output
    assert json.loads(found.out)["notes_posted"] == 1
    assert probe.notes("#1002") == [JACKET_NOTE]
    assert _status(cli, waiting)["pending"] == []

    # Found: it is not looked for again.
    _later(probe, timedelta(days=1))
    mark = probe.mark()
    assert _scan(cli, waiting).code == 0
    assert _loop_lookups(probe, mark) == 0


def test_holds_never_wait_for_the_note_back_off(cli, waiting, probe):
    """A waiting order whose pre-order ships is released at the next scan, not at its next lookup."""
    _later(probe, timedelta(minutes=11))
    assert _scan(cli, waiting).code == 0
    probe.world.advance(timedelta(minutes=1))
    assert _entry(cli, waiting)["attempts"] == 2  # next lookup not due for a quarter of an hour

    probe.world.take_off_preorder(probe.variant("JKT-L-PRE"))
    result = _scan(cli, waiting, "--json")

    assert result.code == 0, result.output
    assert probe.our_holds("EXC-1002-1") == []
    [outcome] = [o for o in json.loads(result.out)["orders"] if o["order"] == "EXC-1002-1"]
    # Released; with no return there is no note of either kind, and nothing waits for one any more.
    assert [a["kind"] for a in outcome["actions"]] == ["release"]
    assert outcome["note_wait"] is None
    assert all(p["order"] != "EXC-1002-1" for p in _status(cli, waiting)["pending"])


def test_a_waiting_order_released_by_hand_waits_no_more(cli, waiting, probe):
    result = cli(["release", "EXC-1002-1", "--yes", "--db", str(waiting)])

    assert result.code == 0, result.output
    assert probe.our_holds("EXC-1002-1") == []
    assert _status(cli, waiting)["pending"] == []
