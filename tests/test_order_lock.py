"""The per-order lock that keeps `loopsync serve` and a cron `scan` off one order at the same time:
one byte of ``<db>.orders.lock`` per order, a POSIX record lock the kernel drops when its holder dies."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from loopsync.errors import LockHeldError
from loopsync.sandbox import activity
from loopsync.store import lock

HOLDER = """
import sys, time
from loopsync.store import lock
with lock.{what}:
    print("locked", flush=True)
    time.sleep(60)
"""


def hold_in_another_process(what: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER.format(what=what)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_an_order_locked_elsewhere_waits_and_a_sigkill_frees_it(tmp_path):
    db = tmp_path / "state.db"
    holder = hold_in_another_process(f"order_lock({str(db)!r}, 'gid://shopify/Order/42', timeout=5)")
    try:
        with pytest.raises(LockHeldError), lock.order_lock(db, "gid://shopify/Order/42", timeout=0.2):
            pass
        # Another order is another byte: not held up.
        with lock.order_lock(db, "gid://shopify/Order/43", timeout=0.2) as waited:
            assert waited is False
    finally:
        holder.kill()
        holder.wait()
    with lock.order_lock(db, "gid://shopify/Order/42", timeout=2) as waited:
        assert waited is False


def test_threads_of_one_process_wait_for_each_other_on_one_order(tmp_path):
    db = tmp_path / "state.db"
    events: list[str] = []

    def second() -> None:
        with lock.order_lock(db, "gid://shopify/Order/7", timeout=5) as waited:
            events.append(f"second waited={waited}")

    with lock.order_lock(db, "gid://shopify/Order/7"):
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.2)
        events.append("first done")
    thread.join(5)

    assert events == ["first done", "second waited=True"]


def test_every_order_lock_waits_for_an_order_in_hand(tmp_path):
    db = tmp_path / "state.db"
    holder = hold_in_another_process(f"order_lock({str(db)!r}, 'gid://shopify/Order/99', timeout=5)")
    try:
        with pytest.raises(LockHeldError), lock.every_order_lock(db, timeout=0.2):
            pass
    finally:
        holder.kill()
        holder.wait()
    with lock.every_order_lock(db, timeout=2):
        pass


def test_a_scan_that_waited_for_an_order_reads_it_again_before_deciding(cli, connected, probe):
    order = probe.order("EXC-1086-1")
    holder = hold_in_another_process(f"order_lock({str(connected)!r}, {order.id!r}, timeout=5)")
    result = {}
    scan = threading.Thread(target=lambda: result.update(r=cli(["scan", "--db", str(connected), "--json"])))
    try:
        scan.start()
        # The scan has read the order and now waits for its lock; meanwhile (as `serve` might)
        # support releases it with the tag.
        deadline = time.monotonic() + 30
        while not any(e.operation == "LoopsyncOrdersById" for e in probe.entries()) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert time.monotonic() < deadline, "the scan never read the orders"
        time.sleep(0.5)
        activity.staff_add_tags(probe.world, "EXC-1086-1", ["loopsync-release"])
    finally:
        holder.kill()
        holder.wait()
    scan.join(30)

    assert result["r"].code == 0, result["r"].output
    doc = json.loads(result["r"].out)
    entry = next(o for o in doc["orders"] if o["order"] == "EXC-1086-1")
    assert entry["decision"] == "manual_release_respected", (entry, [e.operation for e in probe.entries()])
    assert probe.our_holds("EXC-1086-1") == []
