"""The reliability tests' harness (tests/reliability/conftest.py wires its fixture into pytest): a sandbox per case, scans in a process of their own or in-process,
and one function that checks the whole end state (world and state file) after convergence.

``LOOPSYNC_FULL=1`` selects the long randomized variants. It is read at import time
because the shared ``isolated_env`` fixture removes every LOOPSYNC_* variable before
each test runs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from loopsync.models import HOLD_HANDLE
from loopsync.sandbox.generator import generate_store
from loopsync.sandbox.scenarios import load_scenario
from loopsync.sandbox.server import Sandbox
from loopsync.sandbox.world import World
from support.cli import run_cli
from support.forkserver import Forked, ForkServer
from support.sandbox import sandbox_env
from support.state import rows
from support.tally import TALLY

FULL = os.environ.get("LOOPSYNC_FULL", "") not in ("", "0")

NOTE_RE = re.compile(
    r"^\[loopsync\] (This exchange item is on pre-order, estimated shipping: .+|"
    r"The pre-order item is ready: the hold was released)\.$"
)
SUBPROCESS_TIMEOUT = 120


# -- worlds ---------------------------------------------------------------------------------


def demo_world() -> World:
    world = World()
    load_scenario(world, "demo")
    return world


def big_world(seed: int = 11) -> World:
    """The demo plus 160 generated orders, ~24 of them Loop exchanges, most into pre-orders."""
    world = demo_world()
    generate_store(world, orders=160, exchange_share=0.15, preorder_share=0.6, seed=seed)
    # Not what is tested here, and Loop's per-minute limit would make runs wait minutes.
    world.loop_rate_per_minute = 100_000
    return world


def loopsync_app_id(world: World) -> str:
    return next(a.id for a in world.apps.values() if a.title == "loopsync")


def preorder_variants(world: World) -> list[str]:
    with world.lock:
        return sorted({v for g in world.selling_plan_groups.values()
                       if any(p.category == "PRE_ORDER" for p in g.plans) for v in g.variant_ids})


def ship_all_preorders(world: World) -> None:
    for variant in preorder_variants(world):
        world.take_off_preorder(variant)


# -- the harness ----------------------------------------------------------------------------


class Harness:
    """One sandbox world, one state file; scans in-process (fast) or as a subprocess (killable)."""

    def __init__(self, world: World, tmp: Path, *, faults: str | None = None) -> None:
        self.world = world
        self.sb = Sandbox(world, faults=faults).start()
        self.tmp = tmp
        self.db = tmp / "state.db"
        self.app_id = loopsync_app_id(world)
        self.other_holds_before = other_holds(world, self.app_id)
        self._spawned = 0

    def close(self) -> None:
        if not self.sb.running:
            return
        if self.sb.faults is not None:
            for kind, n in self.sb.faults.summary().items():
                TALLY.faults[kind] += n
        self.sb.stop()

    def connect(self) -> None:
        result = run_cli(["connect", "--db", str(self.db)], env=sandbox_env(self.sb))
        assert result.code == 0, result.output

    def scan(self, *args: str):
        TALLY.runs += 1
        return run_cli(["scan", "--db", str(self.db), *args])

    def env(self, failpoint: str | None = None, trace: Path | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPSYNC_")}
        if failpoint:
            env["LOOPSYNC_FAILPOINT"] = failpoint
        if trace:
            env["LOOPSYNC_FAILPOINT_TRACE"] = str(trace)
        return env

    def spawn(self, *args: str, failpoint: str | None = None, trace: Path | None = None,
              real: bool = False) -> subprocess.Popen | Forked:
        """A scan in a process of its own: forked from the warm zygote (support/forkserver.py),
        or with ``real`` a fresh `python -m loopsync`, the entry point as cron runs it."""
        TALLY.runs += 1
        argv = ["scan", "--db", str(self.db), *args]
        env = self.env(failpoint, trace)
        if real:
            return subprocess.Popen([sys.executable, "-m", "loopsync", *argv], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._spawned += 1
        streams = self.tmp / f"scan-{self._spawned}"
        return ForkServer.get().spawn(argv, env=env, out=streams.with_suffix(".out"), err=streams.with_suffix(".err"))

    def run_sub(self, *args: str, failpoint: str | None = None, trace: Path | None = None, real: bool = False):
        proc = self.spawn(*args, failpoint=failpoint, trace=trace, real=real)
        out, err = proc.communicate(timeout=SUBPROCESS_TIMEOUT)
        if proc.returncode == -9:
            TALLY.kills += 1
        return proc.returncode, out, err

    def converge(self, max_runs: int = 3) -> list[int]:
        """Scan until a scan exits 0; the codes of every run (fails after ``max_runs``)."""
        codes = []
        for _ in range(max_runs):
            result = self.scan()
            codes.append(result.code)
            assert "Traceback" not in result.output, result.output
            if result.code == 0:
                return codes
        raise AssertionError(f"no clean scan within {max_runs} runs: exit codes {codes}; last: {result.output}")


@pytest.fixture
def make_harness(tmp_path):
    made: list[Harness] = []

    def make(world: World, *, faults: str | None = None, name: str = "case") -> Harness:
        where = tmp_path / f"{name}-{len(made)}"
        where.mkdir()
        harness = Harness(world, where, faults=faults)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        harness.close()


# -- what the end state must be -------------------------------------------------------------


def other_holds(world: World, app_id: str) -> Counter:
    """Holds by anyone but loopsync, by order name (FO ids may change when a hold splits one)."""
    with world.lock:
        found: Counter = Counter()
        for order in world.orders.values():
            for fo_id in order.fulfillment_order_ids:
                for hold in world.fulfillment_orders[fo_id].holds:
                    if hold.app_id != app_id:
                        found[(order.name, hold.app_id, hold.handle, hold.reason)] += 1
        return found


def signature(world: World, app_id: str) -> dict:
    """The end state by names and SKUs, comparable between two worlds built the same way."""
    with world.lock:
        orders = {}
        for order in world.orders.values():
            sku = {li.id: li.sku for li in order.line_items}
            fos = []
            for fo_id in order.fulfillment_order_ids:
                fo = world.fulfillment_orders[fo_id]
                lines = tuple(sorted((sku.get(li.line_item_id), li.remaining_quantity) for li in fo.line_items))
                ours = sum(1 for h in fo.holds if h.app_id == app_id)
                fos.append((lines, fo.status, ours))
            orders[order.name] = (tuple(sorted(fos)), tuple(sorted(t.lower() for t in order.tags)))
        notes: dict[str, list] = {}
        for ret in world.loop_returns.values():
            notes.setdefault(ret.order_name, []).append(tuple(sorted(n.content for n in ret.notes)))
        return {"orders": orders, "notes": {k: sorted(v) for k, v in notes.items()}}


def held_fos(sig: dict) -> Counter:
    """(order name, FO lines) -> number of loopsync holds, from a signature."""
    held: Counter = Counter()
    for name, (fos, _tags) in sig["orders"].items():
        for lines, _status, ours in fos:
            if ours:
                held[(name, lines)] += ours
    return held


def check_end_state(harness: Harness, reference: dict, *, label: str = "") -> None:
    """Everything the issue asks of a converged store, world and state file together."""
    world, app_id = harness.world, harness.app_id
    sig = signature(world, app_id)
    problems: list[str] = []

    # Duplicates: never two loopsync holds on one FO, a tag twice, a note twice.
    duplicates = 0
    with world.lock:
        for fo in world.fulfillment_orders.values():
            ours = [h for h in fo.holds if h.app_id == app_id]
            if len(ours) > 1:
                duplicates += len(ours) - 1
                problems.append(f"{len(ours)} loopsync holds on {fo.id}")
            for hold in ours:
                if hold.handle != HOLD_HANDLE:
                    problems.append(f"loopsync hold {hold.id} has handle {hold.handle!r}")
        for order in world.orders.values():
            n = sum(1 for t in order.tags if t.lower() == "pre-order")
            if n > 1:
                duplicates += n - 1
                problems.append(f"{order.name} tagged pre-order {n} times")
        for ret in world.loop_returns.values():
            counts = Counter(n.content for n in ret.notes)
            for content, n in counts.items():
                if n > 1:
                    duplicates += n - 1
                    problems.append(f"return {ret.id} has note {content!r} {n} times")
                if content.startswith("[loopsync]") and not NOTE_RE.match(content):
                    problems.append(f"return {ret.id} has a malformed note {content!r}")
    TALLY.duplicates += duplicates

    # Missed (or extra) holds, tags, notes: compare with a clean run on an identical world.
    want, have = held_fos(reference), held_fos(sig)
    missed = sum((want - have).values())
    TALLY.missed_holds += missed
    if missed:
        problems.append(f"missed holds: {sorted((want - have).elements())}")
    if have - want:
        problems.append(f"holds that should not exist: {sorted((have - want).elements())}")
    if sig != reference:
        for name in sorted(set(sig["orders"]) | set(reference["orders"])):
            if sig["orders"].get(name) != reference["orders"].get(name):
                problems.append(f"order {name}: {sig['orders'].get(name)} != expected {reference['orders'].get(name)}")
        for name in sorted(set(sig["notes"]) | set(reference["notes"])):
            if sig["notes"].get(name) != reference["notes"].get(name):
                problems.append(f"notes of {name}: {sig['notes'].get(name)} != expected {reference['notes'].get(name)}")

    if other_holds(world, app_id) != harness.other_holds_before:
        problems.append("another app's or the merchant's holds changed")

    problems += db_vs_world(harness)
    assert not problems, f"{label}: " + "\n".join(problems[:20])
    TALLY.converged_cases += 1


def db_vs_world(harness: Harness) -> list[str]:
    """No row in the state file claims something Shopify or Loop does not show, and vice versa."""
    world, app_id = harness.world, harness.app_id
    problems = []
    db = harness.db
    active = dict(rows(db, "SELECT fulfillment_order_id, hold_id FROM holds WHERE status = 'active'"))
    note_rows = Counter((str(r[0]), r[1]) for r in rows(db, "SELECT return_id, content FROM notes"))
    open_intents = rows(db, "SELECT kind, target FROM actions WHERE status = 'intent'")
    running = rows(db, "SELECT id FROM scans WHERE outcome = 'running'")
    with world.lock:
        at_shopify = {fo.id: h.id for fo in world.fulfillment_orders.values() for h in fo.holds if h.app_id == app_id}
        loop_notes = Counter((str(r.id), n.content) for r in world.loop_returns.values() for n in r.notes
                             if n.content.startswith("[loopsync]"))
    for fo_id, hold_id in active.items():
        if at_shopify.get(fo_id) != hold_id:
            problems.append(f"state file says hold {hold_id} on {fo_id} is active; Shopify has {at_shopify.get(fo_id)}")
    for fo_id, hold_id in at_shopify.items():
        if fo_id not in active:
            problems.append(f"Shopify has loopsync hold {hold_id} on {fo_id}; the state file has no active row")
    if note_rows != loop_notes:
        problems.append(f"notes rows {sorted(note_rows)} != Loop's loopsync notes {sorted(loop_notes)}")
    if running:
        problems.append(f"scans still marked running after a clean scan: {running}")
    if open_intents:
        problems.append(f"intents left open after a clean scan: {open_intents}")
    return problems


def reference_signature(build, *, ship: bool = False) -> dict:
    """The end state of uninterrupted, fault-free scans on a world built by ``build``."""
    import tempfile

    world = build()
    with tempfile.TemporaryDirectory() as tmp:
        harness = Harness(world, Path(tmp))
        try:
            harness.connect()
            assert harness.scan().code == 0
            if ship:
                ship_all_preorders(world)
                assert harness.scan().code == 0
            assert harness.scan().code == 0
            return signature(world, harness.app_id)
        finally:
            harness.sb.stop()


def has_open(pid: int, path: Path) -> bool:
    """Whether process ``pid`` has ``path`` open now (Linux /proc): how a test knows it got that far."""
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(fd) == str(path):
                return True
        except OSError:  # closed since the listing
            continue
    return False


def wait_for(predicate, timeout: float = 10.0, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
