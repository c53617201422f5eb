"""`loopsync serve`'s /webhooks/loop: Loop's return deliveries, so that an exchange whose note waits
for its Loop return is noted as soon as the return exists, not at the note's next back-off step.

The sandbox sends them as Loop does (signed X-Loop-Signature with the secret of Loop's Developer
Tools page, no delivery id header), to webhooks made as a merchant makes them there.
"""

from __future__ import annotations

import json
import signal
import time

import pytest
import requests

from loopsync.sandbox import activity
from loopsync.serve.verify import sign
from support.sandbox import sandbox_env
from support.serve import Served
from support.state import one
from support.state import rows as state_rows
from support.waiting import wait_until


def loop_webhook(sandbox, trigger: str, url: str) -> dict:
    made = requests.post(f"{sandbox.url}/_sandbox/loop/webhooks", json={"trigger": trigger, "url": url}, timeout=5)
    assert made.status_code == 201, made.text
    return made.json()


@pytest.fixture
def live(sandbox, db, cli, tmp_path):
    """serve, with Shopify's subscriptions installed and Loop's return webhooks made in Loop's admin."""
    env = sandbox_env(sandbox, LOOPSYNC_LOOP_WEBHOOK_SECRET=sandbox.credentials["loop_webhook_secret"])
    assert cli(["connect", "--db", str(db)], env=env).code == 0
    served = Served(db, tmp_path / "serve.log", "--scan-every", "0").ready()
    installed = cli(["webhooks", "install", "--url", served.url, "--db", str(db)])
    assert installed.code == 0, installed.output
    for trigger in ("return.created", "return.updated"):
        loop_webhook(sandbox, trigger, f"{served.url}/webhooks/loop")
    yield served
    served.stop(signal.SIGKILL)


def scans(db) -> int:
    return one(db, "SELECT COUNT(*) FROM scans")


def note_retry_at(db, name: str) -> str | None:
    """When the order's note is next looked for (None: not waiting, or not recorded yet)."""
    found = state_rows(db, "SELECT note_next_retry_at FROM orders WHERE name = ?", (name,))
    return found[0][0] if found else None


def waiting_exchange(probe, db) -> dict:
    """An exchange Loop made before its return is visible: held, its note waiting for the return."""
    created = activity.create_exchange(probe.world, {"sku": "JKT-L-PRE", "return": None})
    name = created["order"]["name"]
    wait_until(lambda: probe.our_holds(name) and note_retry_at(db, name), what="the hold and the note's wait")
    assert not any(r.order_name == created["original"] for r in probe.world.loop_returns.values())
    return created


def post_loop(served: Served, payload: dict, *, secret: str | None, signature: str | None = None):
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if signature is not None or secret is not None:
        headers["X-Loop-Signature"] = signature if signature is not None else sign(secret, body)
    return requests.post(f"{served.url}/webhooks/loop", data=body, headers=headers, timeout=5)


def drained(db, sandbox) -> None:
    assert sandbox.webhooks.wait_idle(5)
    wait_until(lambda: one(db, "SELECT COUNT(*) FROM inbox WHERE state = 'pending'") == 0, what="an empty inbox")


def test_a_waiting_note_is_posted_within_a_second_of_loops_return_created_with_no_scan(live, probe, db, sandbox):
    created = waiting_exchange(probe, db)
    other = waiting_exchange(probe, db)
    name, original = created["order"]["name"], created["original"]
    drained(db, sandbox)
    # loopsync's own hold and tag came back as orders/updated and were looked at again: that is
    # not the back-off's next step, which stays 5 minutes after the first miss.
    assert one(db, "SELECT note_attempts FROM orders WHERE name = ?", (name,)) == 1
    scans_before = scans(db)
    next_try = note_retry_at(db, name)
    passes_over_other = live.log().count(f"order {other['order']['name']}:")
    mark = probe.mark()

    started = time.monotonic()
    activity.create_loop_return(probe.world, {"order": name})
    noted = wait_until(lambda: probe.notes(original), what="the note")

    assert noted - started < 1.0  # the back-off's next lookup was minutes away
    assert next_try is not None
    [note] = probe.notes(original)
    assert "estimated shipping" in note
    assert len(probe.loop_posts(mark)) == 1
    assert scans(db) == scans_before
    assert note_retry_at(db, name) is None
    # The delivery is marked done just after the pass that posted the note.
    wait_until(lambda: state_rows(db, "SELECT topic, state FROM inbox WHERE topic LIKE 'loop/%'")
               == [("loop/return.created", "done")], what="the Loop delivery done")
    # The return points at one of the two waiting exchanges: the other was not read again.
    assert live.log().count(f"order {other['order']['name']}:") == passes_over_other
    assert note_retry_at(db, other["order"]["name"]) is not None
    assert sandbox.webhooks.wait_idle(5)
    assert [a.status for a in sandbox.webhooks.attempts() if a.topic == "loop/return.created"] == [200]


def test_a_duplicated_loop_delivery_is_stored_once_and_notes_once(live, probe, db, sandbox):
    sandbox.webhooks.configure({"duplicate": 1.0})
    created = waiting_exchange(probe, db)
    mark = probe.mark()

    activity.create_loop_return(probe.world, {"order": created["order"]["name"]})
    wait_until(lambda: probe.notes(created["original"]), what="the note")
    assert sandbox.webhooks.wait_idle(5)

    sent = [a for a in sandbox.webhooks.attempts() if a.topic == "loop/return.created"]
    assert len(sent) == 2 and all(a.status == 200 for a in sent)
    assert one(db, "SELECT COUNT(*) FROM inbox WHERE topic = 'loop/return.created'") == 1
    live.wait_for("loop/return.created: duplicate, already in the inbox")
    assert len(probe.loop_posts(mark)) == 1 and len(probe.notes(created["original"])) == 1


def test_a_return_that_no_exchange_waits_for_is_taken_and_changes_nothing(live, probe, db, sandbox):
    created = activity.create_exchange(probe.world, {"sku": "JKT-L-PRE"})  # its return exists from the start
    wait_until(lambda: probe.notes(created["original"]), what="the note by orders/create")
    assert sandbox.webhooks.wait_idle(5)
    mark = probe.mark()
    live.wait_for("loop/return.created: nothing to do")
    assert probe.loop_posts(mark) == [] and probe.mutations(mark) == []


def test_loop_deliveries_are_verified_and_answered_as_documented(live, probe, db, sandbox):
    secret = sandbox.credentials["loop_webhook_secret"]
    payload = {"topic": "return", "trigger": "return.updated", "id": 1, "state": "open"}
    before = one(db, "SELECT COUNT(*) FROM inbox")

    assert post_loop(live, payload, secret=None).status_code == 401
    assert post_loop(live, payload, secret="not-the-secret").status_code == 401
    assert post_loop(live, payload, secret=None, signature="bm90IGEgc2lnbmF0dXJl").status_code == 401
    assert one(db, "SELECT COUNT(*) FROM inbox") == before

    first = post_loop(live, payload, secret=secret)
    again = post_loop(live, payload, secret=secret)
    assert (first.status_code, first.json()) == (200, {"accepted": True})
    assert (again.status_code, again.json()) == (200, {"duplicate": True})
    label = post_loop(live, {"topic": "label", "trigger": "label.created", "id": 9}, secret=secret)
    assert label.status_code == 200 and "ignored" in label.json()
    assert one(db, "SELECT COUNT(*) FROM inbox") == before + 2
    # No note waits for a return here, so the worker marks the update done without a request.
    wait_until(lambda: state_rows(db, "SELECT topic, state FROM inbox WHERE topic LIKE 'loop/%' ORDER BY id")[-2:]
               == [("loop/return.updated", "done"), ("loop/label.created", "ignored")], what="the inbox rows")
    metrics = requests.get(f"{live.url}/metrics", timeout=5).text
    assert 'loopsync_webhook_deliveries_rejected_total{reason="signature"} 3.0' in metrics


def test_without_a_loop_webhook_secret_the_route_answers_404_and_keeps_nothing(sandbox, db, cli, tmp_path):
    assert cli(["connect", "--db", str(db)], env=sandbox_env(sandbox)).code == 0
    served = Served(db, tmp_path / "serve.log", "--scan-every", "0").ready()
    try:
        secret = sandbox.credentials["loop_webhook_secret"]
        answer = post_loop(served, {"topic": "return", "trigger": "return.created", "id": 1}, secret=secret)
        assert answer.status_code == 404 and answer.json() == {"error": "loop_not_set_up"}
        assert one(db, "SELECT COUNT(*) FROM inbox") == 0
        assert "POST /webhooks/loop" not in served.wait_for("listening on")
    finally:
        served.stop(signal.SIGKILL)


def test_connect_stores_the_loop_webhook_secret_status_shows_its_fingerprint_and_disconnect_drops_it(
        sandbox, db, cli):
    secret = sandbox.credentials["loop_webhook_secret"]
    env = sandbox_env(sandbox, LOOPSYNC_LOOP_WEBHOOK_SECRET=secret)
    assert cli(["connect", "--db", str(db)], env=env).code == 0
    status = cli(["status", "--db", str(db), "--json"])
    fingerprint = json.loads(status.out)["connection"]["loop_webhook_secret_fingerprint"]
    assert fingerprint and secret not in status.out
    assert fingerprint in cli(["status", "--db", str(db)]).out

    # connect again without it keeps it; disconnect drops it with the Loop key.
    assert cli(["connect", "--db", str(db)], env=sandbox_env(sandbox)).code == 0
    assert one(db, "SELECT loop_webhook_secret FROM connection") == secret
    assert cli(["disconnect", "--db", str(db), "--yes"]).code == 0
    assert one(db, "SELECT loop_webhook_secret FROM connection") is None
