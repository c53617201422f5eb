from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlite_utils import Database

from loopsync import store as store_mod
from loopsync.errors import ConfigError, LockHeldError, NotFoundError, StateFileError
from loopsync.settings import SETTING_DEFAULTS
from loopsync.store import SCHEMA_VERSION, Store, scan_lock

FO1, FO2 = "gid://shopify/FulfillmentOrder/1", "gid://shopify/FulfillmentOrder/2"
O1, O2 = "gid://shopify/Order/1", "gid://shopify/Order/2"
V1, V2 = "gid://shopify/ProductVariant/1", "gid://shopify/ProductVariant/2"


@pytest.fixture
def path(tmp_path) -> Path:
    return tmp_path / "data" / "nested" / "state.db"


def _column(store: Store, sql: str, *params: object) -> list:
    """The first column of a query on the state file: what the store wrote, read back as it is stored."""
    return [row[0] for row in store.db.execute(sql, params).fetchall()]


def _schema_version(store: Store) -> int:
    return len(store_mod.migrations.applied(store.db))


@pytest.fixture
def store(path):
    s = Store.open(path)
    yield s
    s.close()


# --- opening, permissions, schema ------------------------------------------------------


def test_new_file_is_0600_with_parent_dirs_and_current_schema(path):
    old = os.umask(0)  # even a permissive umask must not widen the file
    try:
        with Store.open(path) as s:
            assert _schema_version(s) == SCHEMA_VERSION >= 2
            assert s.warnings == []
            s.config.set_setting("note_label", "x")  # forces the WAL file into existence
            for p in path.parent.iterdir():
                if p.name.startswith("state.db"):
                    assert (p.stat().st_mode & 0o777) == 0o600, p
            assert s.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert s.db.execute("PRAGMA busy_timeout").fetchone()[0] == 10000
    finally:
        os.umask(old)


@pytest.mark.parametrize(
    ("mode", "warned"), [(0o600, False), (0o400 | 0o200, False), (0o644, True), (0o640, True)]
)
def test_permission_warning(path, mode, warned):
    Store.open(path).close()
    os.chmod(path, mode)
    with Store.open(path) as s:
        if warned:
            [warning] = s.warnings
            assert f"mode {mode:04o}" in warning and f"chmod 600 {path}" in warning
        else:
            assert s.warnings == []


def test_reopen_keeps_data(path):
    with Store.open(path) as s:
        s.config.add_override(V1, "Spring")
    with Store.open(path) as s:
        assert s.config.overrides() == {V1: "Spring"}


def test_older_schema_is_migrated_with_data_kept(path):
    path.parent.mkdir(parents=True)
    db = Database(path)
    store_mod.migrations.apply(db, stop_before="m002_client_credentials")
    assert [m.name for m in store_mod.migrations.applied(db)] == ["m001_initial"]
    db.execute(
        """INSERT INTO connection (id, shop, shopify_token, loop_api_key, scopes, connected_at, updated_at)
           VALUES (1, 'old.myshopify.com', 'shpat_old', 'loop_old', '["read_orders"]', '2026-01-01T00:00:00+00:00',
                   '2026-01-01T00:00:00+00:00')"""
    )
    db.execute(
        "INSERT INTO holds (fulfillment_order_id, order_id, handle, variant_ids, placed_at) VALUES (?, ?, ?, ?, ?)",
        [FO1, O1, "loopsync-preorder", f'["{V1}"]', "2026-01-02T00:00:00+00:00"],
    )
    db.execute(
        "INSERT INTO meta (key, value, updated_at) VALUES ('cursor', '2026-01-03T00:00:00+00:00', 'x')"
    )
    db.close()
    with Store.open(path) as s:
        assert _schema_version(s) == SCHEMA_VERSION
        conn = s.config.connection()
        assert conn is not None
        assert (conn.shop, conn.shopify_auth, conn.shopify_token, conn.loop_api_key) == (
            "old.myshopify.com",
            "token",
            "shpat_old",
            "loop_old",
        )
        assert conn.scopes == ("read_orders",) and conn.client_id is None
        assert [h.fulfillment_order_id for h in s.holds.active_holds()] == [FO1]
        assert s.ledger.cursor().isoformat() == "2026-01-03T00:00:00+00:00"
        s.config.save_shopify_access_token(None, None)  # the new columns work


def test_newer_schema_is_refused(path):
    Store.open(path).close()
    db = Database(path)
    db["_sqlite_migrations"].insert(
        {"migration_set": "loopsync", "name": "m999_from_the_future", "applied_at": "2030-01-01"}
    )
    db.close()
    with pytest.raises(StateFileError) as info:
        Store.open(path)
    assert "newer loopsync" in info.value.message and str(path) in info.value.message
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        (b"hello, this is a text file and not a database at all" * 10, "is not a loopsync state file"),
        (b"\x00" * 50, "is not a loopsync state file"),
        (b"SQLite format 3\x00" + os.urandom(4080), "is not a loopsync state file"),
    ],
)
def test_garbage_file(path, content, phrase):
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(StateFileError) as info:
        Store.open(path)
    assert phrase in info.value.message and str(path) in info.value.message
    assert path.read_bytes() == content  # nothing written


def test_corrupt_database_is_reported_as_malformed(path):
    with Store.open(path) as s:
        for n in range(50):
            s.ledger.record_decision(None, f"o{n}", None, "hold", "x" * 200)
    data = bytearray(path.read_bytes())
    data[100:4096] = os.urandom(3996)  # the schema page, after the 100-byte header
    path.write_bytes(bytes(data))
    with pytest.raises(
        StateFileError, match="is not a loopsync state file .database disk image is malformed"
    ):
        Store.open(path)


def test_foreign_sqlite_database_is_refused(path):
    path.parent.mkdir(parents=True)
    Database(path)["customers"].insert({"name": "x"})
    with pytest.raises(StateFileError, match="is not a loopsync state file .it holds other tables"):
        Store.open(path)


def test_a_directory_is_not_a_state_file(tmp_path):
    with pytest.raises(StateFileError, match="not a regular file"):
        Store.open(tmp_path)


@contextmanager
def read_only(target: Path):
    """Make ``target`` unwritable, also for root (where chmod is not enough)."""
    if os.geteuid() != 0:
        old = target.stat().st_mode
        os.chmod(target, 0o500 if target.is_dir() else 0o400)
        try:
            yield
        finally:
            os.chmod(target, old)
        return
    if (
        not shutil.which("chattr")
        or subprocess.run(["chattr", "+i", str(target)], capture_output=True).returncode
    ):
        pytest.skip("running as root without chattr +i: cannot make a file read-only")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(target)], check=True)


def test_read_only_file(path):
    with Store.open(path) as s:
        s.config.add_override(V1, "Spring")
    with read_only(path):
        with pytest.raises(StateFileError) as info:
            Store.open(path)
    assert "read-only" in info.value.message or "cannot be opened" in info.value.message
    assert str(path) in info.value.message


def test_read_only_directory_for_a_new_file(tmp_path):
    directory = tmp_path / "ro"
    directory.mkdir()
    with read_only(directory):
        with pytest.raises(StateFileError) as info:
            Store.open(directory / "state.db")
    assert "read-only" in info.value.message
    assert not (directory / "state.db").exists()


def test_locked_beyond_the_timeout(path):
    Store.open(path).close()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with Store.open(path, busy_timeout=0.3) as s:
            started = time.monotonic()
            with pytest.raises(StateFileError) as info:
                s.config.set_setting("note_label", "x")
            assert time.monotonic() - started >= 0.25
            assert "is locked by another process" in info.value.message
            assert s.config.get_setting("note_label") == "loopsync"  # readers are not blocked (WAL)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


def test_a_concurrent_writer_waits_instead_of_failing(path):
    Store.open(path).close()
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    blocker.execute("INSERT INTO settings (key, value, updated_at) VALUES ('preorder_tag', 'theirs', 'x')")
    timer = threading.Timer(0.3, lambda: blocker.execute("COMMIT"))
    timer.start()
    try:
        with Store.open(path, busy_timeout=5) as s:
            s.config.set_setting("note_label", "mine")
            assert s.config.settings()["preorder_tag"] == "theirs" and s.config.get_setting("note_label") == "mine"
    finally:
        timer.join()
        blocker.close()


# --- transactions -------------------------------------------------------------------------------


def test_transaction_rolls_back_everything(store):
    with pytest.raises(RuntimeError), store.transaction():
        store.config.add_override(V1, "Spring")
        store.holds.upsert_hold(
            FO1, order_id=O1, order_name=None, hold_id=None, handle="h", window=None, variant_ids=[V1]
        )
        raise RuntimeError("boom")
    assert store.config.overrides() == {} and store.holds.active_holds() == []
    assert not store.db.conn.in_transaction


def test_nested_transaction_is_a_savepoint(store):
    with store.transaction():
        store.config.add_override(V1, "Spring")
        with pytest.raises(ValueError), store.transaction():
            store.config.add_override(V2, "Summer")
            raise ValueError
    assert store.config.overrides() == {V1: "Spring"}


def test_parameters_are_never_interpolated(store):
    name = "#EXC-1'; DROP TABLE orders; --"
    store.orders.upsert_order(O1, name=name)
    assert store.orders.order(O1).name == name
    assert store.orders.order_by_name(name).order_id == O1


# --- connection ---------------------------------------------------------------------------------


def test_connection_round_trip_rotation_and_disconnect(store):
    assert store.config.connection() is None
    first = store.config.save_connection(
        shop="a.myshopify.com",
        shopify_auth="token",
        shopify_token="shpat_secret_1",
        loop_api_key="loop_secret_1",
        scopes=["write_orders", "read_orders", "read_orders"],
        at="2026-01-01T00:00:00+00:00",
    )
    assert first.scopes == ("read_orders", "write_orders") and first.loop_connected
    assert "secret" not in repr(first)
    store.config.forget_loop_key(at="2026-01-02T00:00:00+00:00")
    gone = store.config.connection()
    assert gone.loop_api_key is None and gone.loop_disconnected_at == "2026-01-02T00:00:00+00:00"
    assert not gone.loop_connected and gone.shopify_token == "shpat_secret_1"
    rotated = store.config.save_connection(
        shop="a.myshopify.com",
        shopify_auth="client_credentials",
        client_id="cid",
        client_secret="csecret",
        shopify_token="ignored",
        loop_api_key="loop_secret_2",
        at="2026-01-03T00:00:00+00:00",
    )
    assert rotated.connected_at == "2026-01-01T00:00:00+00:00"  # first connect is kept
    assert rotated.loop_connected and rotated.loop_disconnected_at is None
    assert rotated.shopify_token is None and rotated.client_secret == "csecret"
    store.config.save_shopify_access_token("tok", "2026-01-03T01:00:00+00:00")
    cached = store.config.connection()
    assert (cached.access_token, cached.access_token_expires_at) == ("tok", "2026-01-03T01:00:00+00:00")
    # Rotating the credentials drops the cached token (it belongs to the old client).
    store.config.save_connection(
        shop="a.myshopify.com",
        shopify_auth="client_credentials",
        client_id="c2",
        client_secret="s2",
        loop_api_key=None,
    )
    after = store.config.connection()
    assert after.access_token is None and not after.loop_connected


@pytest.mark.parametrize(
    "kwargs",
    [
        {"shopify_auth": "password"},
        {"shopify_auth": "token"},
        {"shopify_auth": "client_credentials", "client_id": "x"},
    ],
)
def test_save_connection_rejects_incomplete_credentials(store, kwargs):
    with pytest.raises(ValueError):
        store.config.save_connection(shop="a.myshopify.com", loop_api_key="k", **kwargs)
    assert store.config.connection() is None


def test_token_cache_needs_a_connection(store):
    with pytest.raises(StateFileError, match="holds no connection"):
        store.config.save_shopify_access_token("t", "2026-01-01T00:00:00+00:00")
    assert store.config.forget_loop_key() is False


# --- settings -----------------------------------------------------------------------------------


def test_settings_defaults_set_and_reset(store):
    assert store.config.settings() == SETTING_DEFAULTS
    assert (
        store.config.get_setting("native_exchange_tag") == "Loop Exchange"
        and store.config.get_setting("exchange_tag") is None
    )
    store.config.set_setting("exchange_tag", "exchange")
    store.config.set_setting("exchange_tag", "exchange-2")
    assert store.config.get_setting("exchange_tag") == "exchange-2"
    store.config.set_setting("exchange_tag", None)
    assert store.config.get_setting("exchange_tag") is None
    with pytest.raises(ConfigError, match="Unknown setting"):
        store.config.get_setting("bogus")
    assert store.config.get_setting("preorder_tag") == "pre-order"


# --- scans and the cursor -----------------------------------------------------------------------


def test_scan_lifecycle_and_cursor(store):
    assert store.ledger.cursor() is None and store.ledger.last_scan() is None
    s1 = store.ledger.scan_started(since="2026-01-01T00:00:00+00:00")
    store.ledger.scan_finished(s1, "pending", {"held": 1}, None)
    assert store.ledger.cursor() is None  # not given: not advanced
    s2 = store.ledger.scan_started(since=None)
    store.ledger.scan_finished(s2, "ok", {"held": 2}, "2026-01-05T00:00:00+00:00")
    assert store.ledger.cursor().isoformat() == "2026-01-05T00:00:00+00:00"
    s3 = store.ledger.scan_started(since=None, dry_run=True)
    assert store.ledger.scan_started(since=None) > s3  # s3 was left running: now it is marked crashed
    assert _column(store, "SELECT outcome FROM scans ORDER BY id DESC")[1:] == ["crashed", "ok", "pending"]
    last = store.ledger.last_scan(include_dry_runs=False)
    assert last.outcome == "running" and last.cursor_before == "2026-01-05T00:00:00+00:00"
    store.ledger.scan_finished(last.id, "ok", {}, "2026-01-04T00:00:00+00:00")
    assert store.ledger.cursor().isoformat() == "2026-01-05T00:00:00+00:00"  # never moves backwards
    assert _column(store, "SELECT dry_run AND finished_at IS NOT NULL FROM scans WHERE id = ?", s3) == [1]
    assert _column(store, "SELECT counters FROM scans WHERE id = ?", s1) == ['{"held": 1}']


def test_scan_finished_is_atomic(store):
    with pytest.raises(NotFoundError):
        store.ledger.scan_finished(999, "ok", {}, "2026-01-05T00:00:00+00:00")
    assert store.ledger.cursor() is None  # the cursor update was rolled back with it
    with pytest.raises(ValueError):
        store.ledger.scan_finished(1, "running")


# --- decisions and actions ----------------------------------------------------------------------


def test_decisions(store):
    scan = store.ledger.scan_started(since=None)
    store.ledger.record_decision(scan, O1, "#EXC-1", "hold", "variant on pre-order")
    store.ledger.record_decision(None, O1, "#EXC-1", "manual_release_respected", "released by hand")
    store.ledger.record_decision(scan, O2, "#1002", "not_exchange", "no EXC- prefix")
    rows = store.db.execute("SELECT decision, scan_id FROM decisions WHERE order_id = ? ORDER BY id", [O1])
    assert rows.fetchall() == [("hold", scan), ("manual_release_respected", None)]
    assert _column(store, "SELECT count(*) FROM decisions WHERE scan_id = ?", scan) == [2]
    with pytest.raises(ValueError):
        store.ledger.record_decision(scan, O1, None, "Held!", "x")


def test_intent_and_result_round_trip(store):
    scan = store.ledger.scan_started(since=None)
    hold = store.ledger.begin_action("hold", O1, FO1, f"hold:{FO1}", {"lines": [["x", 2]]}, scan_id=scan)
    note = store.ledger.begin_action("note", O1, "123", "note:123", {"content": "[loopsync] ..."})
    assert [a.id for a in store.ledger.open_intents()] == [hold, note]
    store.ledger.finish_action(hold, "done", {"hold_id": "gid://shopify/FulfillmentHold/9"})
    store.ledger.finish_action(note, "unknown", None)
    assert store.ledger.open_intents() == []
    done = store.ledger.last_action_for_key(f"hold:{FO1}")
    assert done.id == hold
    assert done.status == "done" and done.result == {"hold_id": "gid://shopify/FulfillmentHold/9"}
    assert done.payload == {"lines": [["x", 2]]} and done.scan_id == scan and done.finished_at
    assert _column(store, "SELECT kind FROM actions WHERE order_id = ? ORDER BY id", O1) == ["hold", "note"]
    assert store.ledger.last_action_for_key("note:123").status == "unknown"
    with pytest.raises(NotFoundError):
        store.ledger.finish_action(999, "done")
    for bad in [
        lambda: store.ledger.begin_action("delete", O1, "t", "k"),
        lambda: store.ledger.finish_action(hold, "intent"),
    ]:
        with pytest.raises(ValueError):
            bad()


def test_intent_may_not_hide_inside_a_transaction(store):
    with pytest.raises(RuntimeError), store.transaction():
        store.ledger.begin_action("tag", O1, "pre-order", "tag:o1")


def test_intent_survives_a_sigkill_before_the_result(path):
    Store.open(path).close()
    code = f"""
        import os, signal
        from loopsync.store import Store
        s = Store.open({str(path)!r})
        s.ledger.begin_action("hold", {O1!r}, {FO1!r}, "hold:{FO1}", {{"n": 1}})
        os.kill(os.getpid(), signal.SIGKILL)  # the API call would happen here
    """
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, timeout=30)
    assert proc.returncode == -signal.SIGKILL
    with Store.open(path) as s:
        [intent] = s.ledger.open_intents()
        assert (intent.kind, intent.key, intent.status, intent.payload) == (
            "hold",
            f"hold:{FO1}",
            "intent",
            {"n": 1},
        )


# --- holds, orders, notes, overrides ------------------------------------------------------------


def _hold(store, fo=FO1, order=O1, **kw):
    args = dict(
        order_id=order,
        order_name="#EXC-1",
        hold_id="gid://shopify/FulfillmentHold/1",
        handle="loopsync-preorder",
        window="Spring",
        variant_ids=[V2, V1, V1],
    )
    args.update(kw)
    return store.holds.upsert_hold(fo, **args)


def test_holds(store):
    first = _hold(store, placed_at="2026-01-01T00:00:00+00:00")
    assert first.variant_ids == (V1, V2) and first.status == "active"
    again = _hold(store, window="Summer", placed_at="2026-02-01T00:00:00+00:00")
    assert again.window == "Summer" and again.placed_at == "2026-01-01T00:00:00+00:00"
    _hold(store, fo=FO2, order=O2)
    assert [h.fulfillment_order_id for h in store.holds.active_holds()] == [FO1, FO2]
    released = store.holds.mark_hold_released(FO1, "scan", "2026-03-01T00:00:00+00:00")
    assert (released.status, released.released_by, released.released_at) == (
        "released",
        "scan",
        "2026-03-01T00:00:00+00:00",
    )
    assert store.holds.mark_hold_released(FO2, "manual").status == "released_manually"
    assert store.holds.active_holds() == []
    assert [h.status for h in store.holds.holds_for_order(O1)] == ["released"]
    replaced = _hold(store, placed_at="2026-04-01T00:00:00+00:00")  # held again later: a fresh hold
    assert replaced.status == "active" and replaced.released_at is None
    assert replaced.placed_at == "2026-04-01T00:00:00+00:00"
    with pytest.raises(NotFoundError):
        store.holds.mark_hold_released("gid://shopify/FulfillmentOrder/404", "scan")
    with pytest.raises(ValueError):
        store.holds.mark_hold_released(FO1, "robot")
    assert store.holds.mark_hold_released(FO1, "external").status == "released_externally"


def test_orders(store):
    row = store.orders.upsert_order(
        O1,
        name="#EXC-1",
        kind="separate",
        state="pending",
        pending_reason="no return yet",
        count_attempt=True,
        seen_at="2026-01-01T00:00:00+00:00",
    )
    assert (row.state, row.attempts, row.first_seen) == ("pending", 1, "2026-01-01T00:00:00+00:00")
    row = store.orders.upsert_order(O1, state="pending", count_attempt=True)
    assert row.attempts == 2 and row.pending_reason == "no return yet" and row.name == "#EXC-1"
    assert [o.order_id for o in store.orders.pending_orders()] == [O1]
    row = store.orders.upsert_order(
        O1,
        state="held",
        window="Spring",
        return_id="77",
        note_posted_at="2026-01-02T00:00:00+00:00",
        tagged_at="2026-01-02T00:00:00+00:00",
    )
    assert (row.state, row.attempts, row.pending_reason, row.first_seen) == (
        "held",
        0,
        None,
        "2026-01-01T00:00:00+00:00",
    )
    assert row.return_id == "77" and row.note_posted_at and row.tagged_at and row.kind == "separate"
    assert store.orders.pending_orders() == [] and [o.order_id for o in store.orders.held_orders()] == [O1]
    assert store.orders.order_by_name("exc-1").order_id == O1
    assert store.orders.order_by_name("#EXC-1").order_id == O1 and store.orders.order_by_name("EXC-2") is None
    assert not store.orders.is_manually_released(O1)
    store.orders.mark_manual_release(O1)
    assert store.orders.is_manually_released(O1) and store.orders.order(O1).state == "released_manually"
    store.orders.mark_manual_release(O2, name="#1002")  # never seen by a scan
    assert store.orders.is_manually_released(O2) and store.orders.order(O2).name == "#1002"
    assert not store.orders.is_manually_released("gid://shopify/Order/404")
    store.orders.upsert_order(O1, window=None)
    assert store.orders.order(O1).window is None and store.orders.order(O1).manual_release
    for bad in [{"kind": "merged"}, {"state": "Held Now"}, {"state": ""}]:
        with pytest.raises(ValueError):
            store.orders.upsert_order(O1, **bad)


def test_notes_are_unique_per_return_and_content(store):
    text = "[loopsync] This exchange item is on pre-order, estimated shipping: Spring."
    assert not store.notes.note_recorded(77, text)
    assert store.notes.record_note(77, text, order_id=O1, loop_note_id=5) is True
    assert store.notes.record_note("77", text) is False
    assert store.notes.note_recorded("77", text) and not store.notes.note_recorded(78, text)
    assert store.notes.record_note(77, text.replace("Spring", "Summer")) is True
    assert _column(store, "SELECT loop_note_id FROM notes WHERE return_id = '77' ORDER BY id") == ["5", None]


def test_overrides(store):
    store.config.add_override(V2, " Late June ")
    first = store.config.add_override(V1, "Spring", at="2026-01-01T00:00:00+00:00")
    assert first.added_at == "2026-01-01T00:00:00+00:00"
    store.config.add_override(V1, "Summer")
    assert store.config.overrides() == {V1: "Summer", V2: "Late June"}
    assert _column(store, "SELECT added_at FROM overrides WHERE variant_id = ?", V1) == [first.added_at]
    store.config.remove_override(V1)
    with pytest.raises(NotFoundError, match="no pre-order override for variant"):
        store.config.remove_override(V1)
    with pytest.raises(ValueError):
        store.config.add_override(V1, "  ")


def test_naive_datetimes_are_refused(store):
    from datetime import datetime

    with pytest.raises(ValueError):
        store.ledger.record_decision(None, O1, None, "hold", "x", at=datetime(2026, 1, 1))


# --- the scan lock ------------------------------------------------------------------------------

HOLDER = """
import sys, time
from loopsync.store import scan_lock
with scan_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _holder(path: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_lock_is_exclusive_across_processes(path):
    proc = _holder(path, 30)
    try:
        started = time.monotonic()
        with pytest.raises(LockHeldError) as info, scan_lock(path):
            pass
        assert time.monotonic() - started < 1
        assert info.value.message == f"Another loopsync scan is running on {path}."
        assert info.value.exit_code == 3
        started = time.monotonic()
        with pytest.raises(LockHeldError), scan_lock(path, wait=True, timeout=0.4):
            pass
        assert 0.35 <= time.monotonic() - started < 3
    finally:
        proc.kill()
        proc.wait()


def test_wait_queues_behind_a_running_scan(path):
    proc = _holder(path, 0.5)
    try:
        started = time.monotonic()
        with Store.open(path) as s, s.scan_lock(wait=True, timeout=20):
            assert time.monotonic() - started >= 0.2
    finally:
        proc.wait()
    assert proc.returncode == 0


def test_lock_of_a_sigkilled_process_does_not_block(path):
    proc = _holder(path, 60)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (path.parent / "state.db.lock").exists()  # the file stays; the lock does not
    started = time.monotonic()
    with scan_lock(path):
        pass
    assert time.monotonic() - started < 1


def test_lock_is_exclusive_within_a_process_and_reusable(path):
    with scan_lock(path), pytest.raises(LockHeldError), scan_lock(path):
        pass
    with scan_lock(path):
        pass
    assert ((path.parent / "state.db.lock").stat().st_mode & 0o777) == 0o600


def test_order_outcomes_and_returns(store):
    store.orders.record_order_outcome(
        order_id=O1,
        name="#EXC-1",
        kind="separate",
        state="pending",
        window="Spring",
        pending_reason="Loop return not found yet",
    )
    row = store.orders.record_order_outcome(
        order_id=O1,
        name="#EXC-1",
        kind="separate",
        state="pending",
        window="Spring",
        pending_reason="Loop return not found yet",
    )
    assert (row.state, row.attempts, row.pending_reason) == ("pending", 2, "Loop return not found yet")
    assert store.orders.return_for_order(O1) is None and store.orders.return_for_order(O2) is None
    store.orders.set_order_return(O1, 77)
    row = store.orders.record_order_outcome(
        order_id=O1, name="#EXC-1", kind="separate", state="held", window="Spring", pending_reason=None
    )
    assert (row.state, row.attempts, row.pending_reason, row.return_id) == ("held", 0, None, "77")
    assert store.orders.return_for_order(O1) == "77"


def test_orders_needing_attention_and_forgetting_one(store):
    o3, o4, o5 = "gid://shopify/Order/3", "gid://shopify/Order/4", "gid://shopify/Order/5"
    store.orders.upsert_order(O1, state="pending")
    store.orders.upsert_order(O2, state="held")
    _hold(store, fo=FO2, order=o3)
    store.ledger.begin_action("tag", o4, "pre-order", "tag:o4")
    store.orders.upsert_order(o5, state="not_exchange")
    assert store.orders.order_ids_needing_attention() == sorted([O1, O2, o3, o4])
    store.orders.forget_order(o3, reason="order no longer exists in Shopify")
    store.orders.forget_order(o4, reason="order no longer exists in Shopify")
    assert store.orders.order_ids_needing_attention() == [O1, O2]
    assert store.holds.hold(FO2).status == "released_externally"
    assert store.ledger.open_intents() == [] and store.ledger.last_action_for_key("tag:o4").status == "unknown"
    assert _column(store, "SELECT decision FROM decisions WHERE order_id = ?", o3) == ["gone"]


def test_open_intents_for_one_order(store):
    a = store.ledger.begin_action("tag", O1, "pre-order", "tag:o1")
    store.ledger.begin_action("tag", O2, "pre-order", "tag:o2")
    assert [i.id for i in store.ledger.open_intents(order_id=O1)] == [a]
    assert len(store.ledger.open_intents()) == 2
