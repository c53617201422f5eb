"""Crash safety: SIGKILL a real `loopsync scan` process at every step boundary of every side
effect, and (with LOOPSYNC_FULL=1) at random moments, then scan again and check the end state exactly.

The scan runs as a process of its own (forked from a warm zygote, support/forkserver.py)
against a sandbox served by this process; the kill points are
the failpoints in reconcile/effects.py (LOOPSYNC_FAILPOINT=name:n kills at the n-th time name is
reached). A trace of a clean run enumerates every (point, occurrence), so the matrix covers
each one rather than a guessed count. Every traced kill point runs in `make test`; the random
moments are the long randomized part and run in `make test-full` only.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections import Counter
from functools import cache
from pathlib import Path

import pytest

from support.harness import (
    TALLY,
    Harness,
    big_world,
    check_end_state,
    demo_world,
    other_holds,
    reference_signature,
    ship_all_preorders,
)

KINDS = ("hold", "tag", "note", "release")
STEPS = ("before", "intent", "sent", "recorded")
POINTS = [f"{kind}.{step}" for kind in KINDS for step in STEPS]

RANDOM_KILLS = 200
BIG_SEED = 11
SLOW = "slow=0.25:0.02"
REAL_KILL = ("scan", "hold.sent", 1)


def _setups(point: str) -> tuple[str, ...]:
    # A note is posted twice in an order's life: "on pre-order" by the first scan, and
    # "the hold was released" by the scan that releases it.
    if point.startswith("release."):
        return ("release",)
    if point.startswith("note."):
        return ("scan", "release")
    if point.startswith("hold."):
        # "rehold": the hold guard puts back holds another app (Flow) released.
        return ("scan", "rehold")
    return ("scan",)


CASES = [(setup, point) for point in POINTS for setup in _setups(point)]


def _prepare(harness: Harness, setup: str) -> int:
    """Connect; for release points, place the holds first and ship every pre-order.

    Returns the world log position from which no hold may be placed again."""
    harness.connect()
    if setup == "release":
        assert harness.scan().code == 0
        ship_all_preorders(harness.world)
    if setup == "rehold":
        from loopsync.sandbox import activity

        assert harness.scan().code == 0
        world = harness.world
        held = sorted(
            o.name
            for o in world.orders.values()
            if any(h.app_id == harness.app_id for f in o.fulfillment_order_ids for h in world.fulfillment_orders[f].holds)
        )
        assert held
        for name in held:
            activity.release_every_hold(world, name)
        # Flow takes every hold, other apps' included: those are not loopsync's to put back.
        harness.other_holds_before = other_holds(harness.world, harness.app_id)
    return len(harness.world.log)


@cache
def kill_points(setup: str) -> Counter:
    """How often each failpoint is reached by one clean subprocess scan of this setup."""
    with tempfile.TemporaryDirectory() as tmp:
        harness = Harness(demo_world(), Path(tmp))
        try:
            _prepare(harness, setup)
            trace = Path(tmp) / "trace"
            # A fresh `python -m loopsync`: the points come from the entry point cron runs.
            code, _out, err = harness.run_sub(trace=trace, real=True)
            assert code == 0, err
            return Counter(trace.read_text().split())
        finally:
            harness.close()


@cache
def reference(setup: str) -> dict:
    return reference_signature(demo_world, ship=setup == "release")


def test_every_failpoint_is_reached_by_the_demo_scans():
    """The matrix below is only as good as the scenario: every point must be hit, most several times."""
    reached = kill_points("scan") + kill_points("release")
    assert set(reached) == set(POINTS), sorted(set(POINTS) - set(reached))
    # Four pre-order exchanges: four holds, tags and notes; shipping both variants: four releases
    # and four release notes.
    assert all(reached[p] == (8 if p.startswith("note.") else 4) for p in POINTS), reached


def _hold_mutations_since(world, mark: int) -> list[str]:
    with world.lock:
        return [m for e in world.log[mark:] for m in e.mutations if m == "fulfillmentOrderHold"]


@pytest.mark.parametrize(("setup", "point"), CASES)
def test_sigkill_at_every_occurrence_of(setup, point, make_harness):
    occurrences = kill_points(setup)[point]
    assert occurrences >= 1
    expected = reference(setup)
    for nth in range(1, occurrences + 1):
        harness = make_harness(demo_world(), name=f"{setup}-{point}-{nth}")
        mark = _prepare(harness, setup)
        # Killed scans fork from the warm zygote; one is a fresh `python -m loopsync`, so the
        # kill is also proven on the real entry point.
        real = (setup, point, nth) == REAL_KILL
        code, out, err = harness.run_sub(failpoint=f"{point}:{nth}", real=real)
        assert code == -9, f"{point}:{nth} was not reached (exit {code}): {out}{err}"
        TALLY.kill_points.add(f"{point}:{nth}")
        harness.converge(max_runs=3)
        check_end_state(harness, expected, label=f"killed at {point}:{nth}")
        if setup == "release":
            # No released hold is ever put back: not one hold placed after the pre-orders shipped.
            assert _hold_mutations_since(harness.world, mark) == []
        harness.close()


@cache
def clean_big_scan_seconds() -> float:
    """How long an uninterrupted subprocess scan of the big store takes, to spread the kills over."""
    with tempfile.TemporaryDirectory() as tmp:
        harness = Harness(big_world(BIG_SEED), Path(tmp), faults=f"{SLOW},seed=0")
        try:
            harness.connect()
            started = time.monotonic()
            code, _out, err = harness.run_sub()
            assert code == 0, err
            return time.monotonic() - started
        finally:
            harness.close()


@cache
def big_reference() -> dict:
    return reference_signature(lambda: big_world(BIG_SEED))


@pytest.mark.slow
@pytest.mark.parametrize("batch", range(4))
def test_sigkill_at_random_moments(batch, make_harness):
    """RANDOM_KILLS seeded runs in four batches: kill the scan after a random delay (sometimes the
    recovering scan too), then converge and check everything."""
    expected = big_reference()
    duration = clean_big_scan_seconds()
    per_batch = RANDOM_KILLS // 4
    for run in range(batch * per_batch, (batch + 1) * per_batch):
        rng = random.Random(run)
        harness = make_harness(big_world(BIG_SEED), faults=f"{SLOW},seed={run}", name=f"random-{run}")
        harness.connect()
        kills = 2 if rng.random() < 0.25 else 1
        for _ in range(kills):
            proc = harness.spawn()
            time.sleep(rng.uniform(0.05, duration * 1.1))
            proc.kill()
            proc.communicate(timeout=60)
            if proc.returncode == -9:
                TALLY.kills += 1
                TALLY.random_kills += 1
            else:
                assert proc.returncode == 0, f"run {run}: exit {proc.returncode}"
        harness.converge(max_runs=3)
        check_end_state(harness, expected, label=f"random kill run {run}")
        harness.close()
