"""Single instance: one scan per state file at a time; the second exits 3 at once or, with --wait,
queues behind the first; a lock left by a SIGKILLed scan never blocks the next one."""

from __future__ import annotations

import time
from functools import cache

from loopsync.exit_codes import ExitCode
from loopsync.sandbox.faults import FaultPlan
from support.harness import check_end_state, demo_world, has_open, reference_signature, wait_for


@cache
def expected() -> dict:
    return reference_signature(demo_world)


def slow_harness(make_harness, seconds: float = 0.15):
    harness = make_harness(demo_world(), name="lock")
    harness.connect()
    # Every API answer is late from here on, so a scan lasts several seconds.
    harness.sb.faults = harness.sb.app.faults = FaultPlan.parse(f"slow=1:{seconds},seed=1")
    return harness


def fast_again(harness) -> None:
    """Answers come at full speed again: the overlap under test is over, so let the scans finish."""
    harness.sb.faults = harness.sb.app.faults = None


def has_lock_file_open(harness, pid: int) -> bool:
    """The process has reached the lock (its file is open), so it is past start-up and waiting on it."""
    return has_open(pid, harness.db.with_name(harness.db.name + ".lock"))


def lock_held_by(harness, pid: int) -> bool:
    lock = harness.db.with_name(harness.db.name + ".lock")
    try:
        return lock.read_text().strip() == str(pid)
    except OSError:
        return False


def test_a_second_scan_exits_3_quickly_while_the_first_runs(make_harness):
    harness = slow_harness(make_harness)
    first = harness.spawn()
    assert wait_for(lambda: lock_held_by(harness, first.pid)), "the first scan never took the lock"
    started = time.monotonic()
    code, out, err = harness.run_sub()
    elapsed = time.monotonic() - started
    assert code == ExitCode.LOCKED, (code, out, err)
    assert "Another loopsync scan is running" in err and "Traceback" not in err
    assert elapsed < 5, f"the second scan took {elapsed:.1f}s to give up"
    assert first.poll() is None, "the first scan should still be running"
    fast_again(harness)
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    check_end_state(harness, expected(), label="second scan refused")


def test_with_wait_the_second_scan_queues_and_succeeds(make_harness):
    harness = slow_harness(make_harness)
    first = harness.spawn()
    assert wait_for(lambda: lock_held_by(harness, first.pid))
    second = harness.spawn("--wait")
    assert wait_for(lambda: has_lock_file_open(harness, second.pid)), "the second scan never reached the lock"
    # Several rounds of its retry loop (20 ms, doubling to 250 ms): without --wait it would be gone by now.
    time.sleep(0.5)
    assert first.poll() is None and second.poll() is None, "the second scan should be waiting, not gone"
    assert lock_held_by(harness, first.pid)
    fast_again(harness)
    out1, err1 = first.communicate(timeout=120)
    out2, err2 = second.communicate(timeout=120)
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    check_end_state(harness, expected(), label="--wait")


def test_a_lock_left_by_a_killed_scan_does_not_block_the_next(make_harness):
    harness = slow_harness(make_harness)
    victim = harness.spawn()
    assert wait_for(lambda: lock_held_by(harness, victim.pid))
    victim.kill()
    victim.communicate(timeout=30)
    assert victim.returncode == -9
    lock = harness.db.with_name(harness.db.name + ".lock")
    assert lock.exists()  # the file stays; the flock died with the process
    fast_again(harness)
    code, out, err = harness.run_sub()
    assert code == 0, (code, out, err)
    check_end_state(harness, expected(), label="after a killed lock holder")
