"""Ctrl-C and SIGTERM during `python -m loopsync scan`: the scan finishes the call in flight,
records it, records itself as interrupted, says how far it got in one line and exits 130 / 143;
`status` says "interrupted"; the next scan finishes the rest with nothing twice.

The signal is sent by the sandbox while it is answering the Nth hold request, so it reaches the
scan at a known point: with that request in flight.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from functools import cache

from support.harness import check_end_state, demo_world, reference_signature, run_cli


@cache
def expected() -> dict:
    return reference_signature(demo_world)


def signal_during_hold(harness, nth: int, *signals: signal.Signals, gap: float = 0.0):
    """Start a scan subprocess; while the sandbox answers its ``nth`` hold, send it ``signals``."""
    app = harness.sb.app
    real_dispatch = app.dispatch
    state = {"holds": 0, "pid": None}

    def dispatch(method, target, headers, body, base_url):
        reply = real_dispatch(method, target, headers, body, base_url)
        if b"LoopsyncFulfillmentOrderHold" in (body or b""):
            state["holds"] += 1
            if state["holds"] == nth:
                # The hold is placed; its answer has not left yet.
                for i, signum in enumerate(signals):
                    if i:
                        time.sleep(gap)
                    os.kill(state["pid"], signum)
        return reply

    app.dispatch = dispatch
    proc = harness.spawn()
    state["pid"] = proc.pid
    out, err = proc.communicate(timeout=120)
    app.dispatch = real_dispatch
    return proc.returncode, out, err


def mutations(harness) -> list[str]:
    with harness.world.lock:
        return [m for e in harness.world.log for m in e.mutations]


def loop_notes_posted(harness) -> int:
    with harness.world.lock:
        return sum(1 for e in harness.world.log if e.api == "loop" and e.method == "POST" and e.path.endswith("/note"))


def open_intents(harness) -> list[tuple]:
    con = sqlite3.connect(f"file:{harness.db}?mode=ro", uri=True)
    try:
        return con.execute("SELECT kind, target FROM actions WHERE status = 'intent'").fetchall()
    finally:
        con.close()


def status(harness, *, code: int = 1) -> dict:
    """The status document; an interrupted last scan is something for a person to see (exit 1)."""
    result = run_cli(["status", "--json", "--db", str(harness.db)])
    assert result.code == code, result.output
    doc = json.loads(result.out)
    if code:
        assert any("interrupted" in line for line in doc["attention"]), doc["attention"]
    return doc


def test_ctrl_c_finishes_the_call_in_flight_records_it_and_exits_130(make_harness):
    harness = make_harness(demo_world(), name="sigint")
    harness.connect()

    code, out, err = signal_during_hold(harness, 3, signal.SIGINT)

    assert code == 130, (code, out, err)
    assert "Traceback" not in err
    assert out == ""
    assert err.splitlines() == ["Interrupted: 3 holds, 2 notes done; the next scan finishes the rest."]
    # Two orders done in full; the third got its hold, whose answer came back and was recorded,
    # and nothing after it.
    assert sorted(mutations(harness)) == ["fulfillmentOrderHold"] * 3 + ["tagsAdd"] * 2
    assert loop_notes_posted(harness) == 2
    assert open_intents(harness) == []
    doc = status(harness)
    assert doc["last_scan"]["outcome"] == "interrupted"
    assert doc["last_scan"]["counters"]["holds"] == 3
    assert len(doc["held"]) == 3
    text = run_cli(["status", "--db", str(harness.db)], env={"COLUMNS": "200"})
    assert "interrupted" in text.out and "failed" not in text.out and "running" not in text.out

    assert harness.converge(max_runs=1) == [0]
    check_end_state(harness, expected(), label="after Ctrl-C")
    assert status(harness, code=0)["attention"] == []


def test_sigterm_finishes_the_call_in_flight_and_exits_143(make_harness):
    harness = make_harness(demo_world(), name="sigterm")
    harness.connect()

    code, out, err = signal_during_hold(harness, 1, signal.SIGTERM)

    assert code == 143, (code, out, err)
    assert "Traceback" not in err
    assert err.splitlines() == ["Interrupted: 1 hold, 0 notes done; the next scan finishes the rest."]
    assert mutations(harness) == ["fulfillmentOrderHold"]
    assert open_intents(harness) == []
    # Not "running" until the next scan calls it "crashed".
    assert status(harness)["last_scan"]["outcome"] == "interrupted"

    assert harness.converge(max_runs=1) == [0]
    check_end_state(harness, expected(), label="after SIGTERM")


def test_with_json_an_interrupted_scan_still_prints_one_document(make_harness):
    harness = make_harness(demo_world(), name="sigterm-json")
    harness.connect()
    app = harness.sb.app
    real_dispatch = app.dispatch
    holder = {}

    def dispatch(method, target, headers, body, base_url):
        reply = real_dispatch(method, target, headers, body, base_url)
        if b"LoopsyncFulfillmentOrderHold" in (body or b"") and not holder.get("sent"):
            holder["sent"] = True
            holder["proc"].send_signal(signal.SIGTERM)
        return reply

    app.dispatch = dispatch
    holder["proc"] = proc = harness.spawn("--json")
    out, err = proc.communicate(timeout=120)

    assert proc.returncode == 143, (out, err)
    doc = json.loads(out)
    assert doc["interrupted"] == "SIGTERM" and doc["holds_placed"] == 1
    assert err.splitlines() == ["Interrupted: 1 hold, 0 notes done; the next scan finishes the rest."]


def test_a_second_ctrl_c_stops_at_once_and_the_next_scan_still_converges(make_harness):
    harness = make_harness(demo_world(), name="sigint-twice")
    harness.connect()

    # The second signal lands while the first hold's answer is still on its way: the
    # scan stops inside the call, as a crash would, leaving its intent open.
    code, out, err = signal_during_hold(harness, 1, signal.SIGINT, signal.SIGINT, gap=0.3)

    assert code == 130, (code, out, err)
    assert "Traceback" not in err
    assert err.splitlines() == ["Interrupted: 0 holds, 0 notes done; the next scan finishes the rest."]
    assert mutations(harness) == ["fulfillmentOrderHold"]
    assert [kind for kind, _target in open_intents(harness)] == ["hold"]
    assert status(harness)["last_scan"]["outcome"] == "interrupted"

    assert harness.converge(max_runs=1) == [0]
    check_end_state(harness, expected(), label="after two Ctrl-C")
