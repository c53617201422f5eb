"""Transient faults: with the sandbox failing a large share of requests (5xx, dropped connections,
slow answers, THROTTLED / 429, bodies cut short after the work was done), scans converge within a
bounded number of runs with no duplicate and no missed hold, Loop's Retry-After is honoured and
Shopify's throttling is waited out from throttleStatus instead of hammering the API.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from functools import cache

import pytest

import loopsync.loop
import loopsync.shopify
from loopsync import http
from loopsync.loop import LoopClient
from loopsync.sandbox.faults import FaultPlan
from loopsync.sandbox.generator import generate_store
from loopsync.shopify import ShopifyClient
from loopsync.shopify.transport import THROTTLE_FALLBACK_WAIT
from support.harness import FULL, check_end_state, demo_world, reference_signature

FAULTS = "5xx=0.2,drop=0.05,throttle=0.1,slow=0.05:0.2,malformed=0.05"
# One seed in `make test` (seed 0 injects every kind: 5xx, drops, throttles, slow and malformed
# answers); twelve with LOOPSYNC_FULL=1 (make test-full).
SEEDS = range(12) if FULL else range(1)
MAX_RUNS = 8
# The scaled-down exponential backoff (see below) is what makes 45% faults affordable in CI.
BACKOFF_SCALE = 0.1


def plus_world():
    """The demo plus 60 generated orders on a Plus-sized bucket (throttle waits stay under a second)."""
    world = demo_world()
    generate_store(world, orders=60, exchange_share=0.2, preorder_share=0.6, seed=3)
    world.loop_rate_per_minute = 100_000
    world.bucket_size, world.restore_rate = 20_000.0, 1_000.0
    return world


@cache
def expected() -> dict:
    return reference_signature(plus_world)


class Recorder:
    """A client's sleep: records every wait, then sleeps it (times ``scale``) with the sleep the
    client was given."""

    def __init__(self, inner=time.sleep, scale: float = 1.0) -> None:
        self.waits: list[float] = []
        self.inner = inner
        self.scale = scale

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.inner(seconds * self.scale)


@pytest.fixture
def recorded_clients(monkeypatch):
    made: dict[str, list] = {"shopify": [], "loop": []}

    def shopify(*args, **kwargs):
        # service passes the current clock's sleep: record each wait, then sleep it with that.
        recorder = Recorder(kwargs.pop("sleep", time.sleep))
        client = ShopifyClient(*args, sleep=recorder, **kwargs)
        made["shopify"].append((client, recorder))
        return client

    def loop(*args, **kwargs):
        # The sandbox's Loop 429s here are injected faults, not a rate it keeps (the world's limit
        # is lifted), so a tenth of each Retry-After changes nothing but the test's length; the
        # wait the client asked for is what is checked. Shopify's waits stay whole: the sandbox's
        # bucket is real and refills in real time.
        recorder = Recorder(kwargs.pop("sleep", time.sleep), scale=BACKOFF_SCALE)
        client = LoopClient(*args, sleep=recorder, **kwargs)
        made["loop"].append((client, recorder))
        return client

    # service imports the clients when it builds them (not at start-up), so they are replaced where they live.
    monkeypatch.setattr(loopsync.shopify, "ShopifyClient", shopify)
    monkeypatch.setattr(loopsync.loop, "LoopClient", loop)
    real_backoff = http.backoff
    monkeypatch.setattr(http, "backoff", lambda failures: real_backoff(failures) * BACKOFF_SCALE)
    return made


def test_backoff_is_exponential_with_jitter_and_capped():
    # The fault runs below scale it down; the real schedule is 0.5, 1, 2, 4 ... (+ <= 0.5 s), at most 20.
    for failures, low in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0)):
        waits = {http.backoff(failures) for _ in range(20)}
        assert all(low <= w <= low + 0.5 for w in waits) and len(waits) > 1
    assert http.backoff(30) == 20.0


@pytest.mark.parametrize("seed", SEEDS)
def test_scans_converge_under_faults(seed, make_harness, recorded_clients):
    harness = make_harness(plus_world(), name=f"faults-{seed}")
    harness.connect()  # fault-free: what is under test is the scan
    real_throttles = Counter()
    graphql = harness.sb.app.graphql()
    real_handle = graphql.handle

    def counting_handle(**kwargs):
        status, headers, payload = real_handle(**kwargs)
        errors = payload.get("errors") if isinstance(payload, dict) else None
        if isinstance(errors, list) and any((e.get("extensions") or {}).get("code") == "THROTTLED" for e in errors):
            real_throttles["shopify"] += 1
        return status, headers, payload

    graphql.handle = counting_handle
    mark = len(harness.world.log)
    # Faults from here on only (connect is not under test).
    harness.sb.faults = harness.sb.app.faults = FaultPlan.parse(f"{FAULTS},seed={seed}")

    codes = []
    for _ in range(MAX_RUNS):
        result = harness.scan()
        assert "Traceback" not in result.output, result.output
        codes.append(result.code)
        if result.code == 0:
            break
    assert codes[-1] == 0, f"seed {seed}: not converged in {MAX_RUNS} runs: {codes}"
    check_end_state(harness, expected(), label=f"faults seed {seed}")

    log = harness.world.log[mark:]
    injected = Counter((e.api, e.fault) for e in log if e.fault)
    assert sum(injected.values()) > 10, injected  # the faults really happened

    # Shopify: every injected THROTTLED was waited out (from throttleStatus, not the blind
    # fallback), and loopsync never emptied the real bucket itself.
    shopify_stats = [c.stats for c, _ in recorded_clients["shopify"]]
    shopify_waits = [w for _, r in recorded_clients["shopify"] for w in r.waits]
    assert sum(s.throttled for s in shopify_stats) == injected[("shopify", "throttle")]
    assert THROTTLE_FALLBACK_WAIT not in shopify_waits
    assert real_throttles["shopify"] == 0
    shopify_requests = sum(1 for e in log if e.api == "shopify")
    assert injected[("shopify", "throttle")] <= 0.25 * shopify_requests

    # Loop: each 429 carried Retry-After: 1, and each was followed by exactly that wait.
    loop_waits = [w for _, r in recorded_clients["loop"] for w in r.waits]
    assert loop_waits.count(1.0) == injected[("loop", "throttle")], (loop_waits, injected)
    print(f"seed {seed}: runs {codes}, injected {dict(injected)}, shopify requests {shopify_requests}")


def test_a_note_whose_answer_is_lost_is_not_posted_twice(make_harness):
    """Every answer to the note call is cut short after Loop stored the note: one note, no retry storm."""
    harness = make_harness(plus_world(), name="lost-note")
    harness.connect()
    app = harness.sb.app
    real_dispatch = app.dispatch

    def dispatch(method, target, headers, body, base_url):
        reply = real_dispatch(method, target, headers, body, base_url)
        if method == "POST" and target.endswith("/note") and hasattr(reply, "body"):
            reply.body = b'{"trunc'
        return reply

    app.dispatch = dispatch
    harness.converge(max_runs=3)
    check_end_state(harness, expected(), label="lost note answers")
    # The ledger must not say Loop refused notes it in fact stored.
    con = sqlite3.connect(harness.db)
    statuses = Counter(r[0] for r in con.execute("SELECT status FROM actions WHERE kind = 'note'"))
    con.close()
    assert statuses["failed"] == 0, statuses
