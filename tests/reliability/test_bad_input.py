"""Bad input and bad answers, through the CLI: each gives one clear message, the exit code the
README documents, no traceback, and writes nothing that is not true."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from loopsync import http, service
from loopsync.exit_codes import ExitCode
from loopsync.sandbox.server import Sandbox
from loopsync.store import Store, migrations
from support.checks import assert_clean_error, assert_no_secrets
from support.harness import demo_world, run_cli, sandbox_env
from support.sandbox import WorldProbe
from support.state import rows


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    """Retries still happen, just without the real multi-second backoff (not what is tested here)."""
    monkeypatch.setattr(http, "backoff", lambda failures: 0.01)


@pytest.fixture
def sb():
    with Sandbox(demo_world()) as sandbox:
        yield sandbox


def failed_cleanly(result, code: int, *phrases: str) -> None:
    out = result.output
    assert result.code == code, f"exit {result.code}, wanted {code}: {out}"
    assert "Traceback" not in out and 'File "' not in out, out
    assert out.count("Error:") == 1, f"wanted exactly one error message: {out}"
    for phrase in phrases:
        assert phrase.lower() in out.lower(), f"{phrase!r} not in {out!r}"


def nothing_stored(db: Path) -> None:
    """No connection row; a refused connect may also leave no state file at all."""
    assert not db.exists() or rows(db, "SELECT * FROM connection") == []


def connect(sb, db: Path, **env: str):
    return run_cli(["connect", "--db", str(db)], env=sandbox_env(sb, **env))


def nothing_acted(sb, db: Path) -> None:
    """No hold, tag or note at Shopify/Loop, and no row claiming one."""
    world = sb.world
    app = next(a.id for a in world.apps.values() if a.title == "loopsync")
    assert [h for h in world.holds() if h.app_id == app] == []
    assert all("pre-order" not in o.tags for o in world.orders.values() if o.name.startswith("EXC-"))
    assert all(not r.notes for r in world.loop_returns.values())
    assert rows(db, "SELECT * FROM holds") == []
    assert rows(db, "SELECT * FROM notes") == []
    assert rows(db, "SELECT * FROM actions WHERE status = 'done'") == []


# -- connect: shop domains, credentials, scopes ---------------------------------------------


def test_missing_scopes(sb, db):
    app = next(a for a in sb.world.apps.values() if a.title == "loopsync")
    app.scopes = [s for s in app.scopes if "fulfillment" not in s]
    result = connect(sb, db)
    failed_cleanly(result, ExitCode.CREDENTIALS, "missing access", "hold fulfillment orders",
                   "write_merchant_managed_fulfillment_orders")
    nothing_stored(db)


def test_wrong_shopify_token(sb, db):
    result = connect(sb, db, LOOPSYNC_SHOPIFY_TOKEN="shpat_not_a_real_token")
    failed_cleanly(result, ExitCode.CREDENTIALS, "Shopify rejected the access token")
    nothing_stored(db)


def test_loop_key_without_returns_scope(sb, db):
    result = connect(sb, db, LOOPSYNC_LOOP_API_KEY="loop_sandbox_no_scope_key")
    failed_cleanly(result, ExitCode.CREDENTIALS, "Loop rejected this API key")
    nothing_stored(db)


def loop_answers(sb, status: int, payload, headers: dict | None = None) -> None:
    """Every Loop request gets this answer (payload bytes are sent as they are)."""
    sb.app.loop.handle = lambda *args, **kwargs: (status, headers or {}, payload)


LOOP_CONNECT_CASES = {
    "401": (401, {"error": {"code": "GEN-UNAUTHORIZED", "message": "Unauthorized"}}, None, ExitCode.CREDENTIALS,
            "Loop rejected this API key"),
    "403": (403, {"message": "Forbidden"}, None, ExitCode.CREDENTIALS, "Loop rejected this API key"),
    "422": (422, {"message": "The given data was invalid.", "errors": {"from": ["The from is invalid."]}}, None,
            ExitCode.API_UNAVAILABLE, "The given data was invalid"),
    "429 forever": (429, {"message": "Too Many Attempts."}, {"Retry-After": "0"}, ExitCode.API_UNAVAILABLE,
                    "rate-limiting"),
    "200 with error": (200, {"error": "Something went wrong"}, None, ExitCode.API_UNAVAILABLE,
                       "Something went wrong"),
    "200 unreadable": (200, b'{"returns": [', None, ExitCode.API_UNAVAILABLE, "unreadable"),
    "500 forever": (500, b"<html>oops</html>", None, ExitCode.API_UNAVAILABLE, "HTTP 500"),
}


@pytest.mark.parametrize("case", LOOP_CONNECT_CASES)
def test_loop_bad_answers_at_connect(case, sb, db):
    status, payload, headers, code, phrase = LOOP_CONNECT_CASES[case]
    loop_answers(sb, status, payload, headers)
    result = connect(sb, db)
    failed_cleanly(result, code, phrase)
    nothing_stored(db)


# -- scan: revoked token, Loop and Shopify answering badly ---------------------------------


@pytest.fixture
def linked(sb, db):
    assert connect(sb, db).code == 0
    return db


@pytest.mark.parametrize("case", ["422", "200 with error", "429 forever", "200 unreadable"])
def test_loop_failing_during_a_scan_leaves_orders_pending(case, sb, linked):
    status, payload, headers, _code, _phrase = LOOP_CONNECT_CASES[case]
    loop_answers(sb, status, payload, headers)
    result = run_cli(["scan", "--db", str(linked)])
    assert result.code == ExitCode.PENDING, result.output
    assert "Traceback" not in result.output
    assert rows(linked, "SELECT * FROM notes") == []
    assert all(not r.notes for r in sb.world.loop_returns.values())
    check_holds_match(sb, linked)
    # Loop recovers: the next scan finishes the job.
    del sb.app.loop.handle
    assert run_cli(["scan", "--db", str(linked)]).code == 0
    assert sum(len(r.notes) for r in sb.world.loop_returns.values()) == 4


def check_holds_match(sb, db: Path) -> None:
    app = next(a.id for a in sb.world.apps.values() if a.title == "loopsync")
    at_shopify = {h.fulfillment_order_id: h.id for h in sb.world.holds() if h.app_id == app}
    active = dict(rows(db, "SELECT fulfillment_order_id, hold_id FROM holds WHERE status = 'active'"))
    assert active == at_shopify


SHOPIFY_CASES = {
    "malformed JSON": (200, b'{"data": {"orders": {"nodes": [', "unreadable answer"),
    "errors without data": (200, {"errors": [{"message": "Internal error. Looks like something went wrong"}]},
                            "Internal error"),
    "errors with data": (200, {"data": {"orders": {"nodes": [], "pageInfo": {"hasNextPage": False}}},
                               "errors": [{"message": "Field 'x' is deprecated", "path": ["orders"]}]},
                         "incomplete"),
    "null orders": (200, {"data": {"orders": None}}, "left out the orders list"),
    "null data": (200, {"data": None}, "carried no data"),
    "null node fields": (200, {"data": {"orders": {"nodes": [{"id": "gid://shopify/Order/1", "name": None}],
                                                   "pageInfo": {"hasNextPage": False}}}}, "left out"),
    "502 forever": (502, b"<html>Bad Gateway</html>", "HTTP 502"),
}


@pytest.mark.parametrize("case", SHOPIFY_CASES)
def test_shopify_bad_answers_during_a_scan(case, sb, linked):
    status, payload, phrase = SHOPIFY_CASES[case]
    sb.app.graphql().handle = lambda **kwargs: (status, {}, payload)
    result = run_cli(["scan", "--db", str(linked)])
    failed_cleanly(result, ExitCode.API_UNAVAILABLE, phrase)
    nothing_acted(sb, linked)
    assert rows(linked, "SELECT value FROM meta WHERE key LIKE '%cursor%'") == []


# -- Loop's notes list in each shape ---------------------------------------------------------


@pytest.mark.parametrize("shape", ["documented", "bare_array"])
def test_each_notes_list_shape(shape, sb, linked):
    sb.world.loop_notes_shape = shape
    # A note by someone else already on one return: ours is added beside it, once.
    ret = next(r for r in sb.world.loop_returns.values() if r.order_name == "#1086")
    from datetime import UTC, datetime

    from loopsync.sandbox.world import LoopNote

    ret.notes.append(LoopNote(id=sb.world.next_note_id(), content="Customer called about sizing",
                              created_at=datetime.now(UTC)))
    for _ in range(3):
        result = run_cli(["scan", "--db", str(linked)])
        assert result.code == 0, result.output
    ours = {r.order_name: [n.content for n in r.notes if n.content.startswith("[loopsync]")]
            for r in sb.world.loop_returns.values()}
    assert sorted(k for k, v in ours.items() if v) == ["#1086", "#1091", "#1092", "#1095"]
    assert all(len(v) <= 1 for v in ours.values())
    assert "Customer called about sizing" in [n.content for n in ret.notes]


# -- notes that would be too long ------------------------------------------------------------


def test_a_very_long_shipping_window_metafield_is_shortened(sb, linked):
    long_window = "Late January 2027, " + "depending on the factory's next production run " * 8
    with sb.world.lock:
        boots = next(v for v in sb.world.variants.values() if v.sku == "BOOT-10-PRE")
        boots.metafields[("preorder", "shipping_window")].value = long_window
    result = run_cli(["scan", "--db", str(linked)])
    assert result.code == 0, result.output
    notes = [n.content for r in sb.world.loop_returns.values() for n in r.notes]
    assert len(notes) == 4 and all(len(n) <= 255 for n in notes)
    long_ones = [n for n in notes if "production run" in n]
    assert len(long_ones) == 2 and all(n.endswith("….") and "Late January 2027" in n for n in long_ones)
    assert sorted(c for (c,) in rows(linked, "SELECT content FROM notes")) == sorted(notes)


def test_a_very_long_override_window_is_refused_and_one_stored_before_is_shortened(sb, linked):
    tee = next(v for v in sb.world.variants.values() if v.sku == "TEE-M")
    window = "Restocking " + "x" * 300
    added = run_cli(["preorders", "add", tee.id, "--window", window, "--db", str(linked)])
    failed_cleanly(added, ExitCode.USAGE, "at most 150 characters")
    with Store.open(linked) as store:
        store.config.add_override(tee.id, window)  # as an older loopsync, which had no limit, stored it
    result = run_cli(["scan", "--db", str(linked)])
    assert result.code == 0, result.output
    ret = next(r for r in sb.world.loop_returns.values() if r.order_name == "#1090")
    assert len(ret.notes) == 1 and len(ret.notes[0].content) <= 255 and ret.notes[0].content.endswith("….")


# -- the state file --------------------------------------------------------------------------


@contextlib.contextmanager
def read_only(path: Path):
    """Read-only even for root (chattr +i); plain chmod otherwise."""
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
            pytest.skip("running as root on a filesystem without chattr +i: cannot make a file read-only")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], capture_output=True)
    else:
        path.chmod(0o400)
        try:
            yield
        finally:
            path.chmod(0o600)


def test_read_only_state_file(sb, linked):
    before = linked.read_bytes()
    with read_only(linked):
        result = run_cli(["scan", "--db", str(linked)])
    failed_cleanly(result, ExitCode.USAGE, "read-only")
    assert linked.read_bytes() == before
    nothing_acted(sb, linked)


def test_locked_state_file(sb, linked, monkeypatch):
    # The real wait is 10 s; what is tested is what happens when it runs out.
    monkeypatch.setattr(service, "open_store", lambda db: Store.open(Path(db), busy_timeout=0.3))
    holder = sqlite3.connect(linked, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result = run_cli(["preorders", "add", "123", "--window", "March", "--db", str(linked)])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    failed_cleanly(result, ExitCode.USAGE, str(linked))
    assert rows(linked, "SELECT * FROM overrides") == []


# Text that is not SQLite and a directory are in the MISTAKES table below.
@pytest.mark.parametrize("damage", ["zeroed pages", "truncated", "other sqlite db", "unmanaged column",
                                    "missing column"])
def test_corrupt_state_file(damage, sb, linked, tmp_path):
    target = linked
    if damage == "zeroed pages":
        data = bytearray(target.read_bytes())
        data[100:4096 * 2] = b"\x00" * (4096 * 2 - 100)
        target.write_bytes(bytes(data))
        for suffix in ("-wal", "-shm"):
            Path(str(target) + suffix).unlink(missing_ok=True)
    elif damage == "truncated":
        target.write_bytes(target.read_bytes()[:50])
    elif damage in ("unmanaged column", "missing column"):
        # Someone (or another tool) changed the schema by hand, after a scan left rows to read.
        assert run_cli(["scan", "--db", str(target)]).code == 0
        con = sqlite3.connect(target)
        if damage == "unmanaged column":
            con.execute("ALTER TABLE holds ADD COLUMN warehouse_note TEXT")
        else:
            con.execute("ALTER TABLE scans DROP COLUMN error")
        con.commit()
        con.close()
    else:
        target = tmp_path / "other.db"
        con = sqlite3.connect(target)
        con.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY)")
        con.commit()
        con.close()
    before = target.read_bytes()
    for args in (["status"], ["scan"], ["preorders", "list"]):
        result = run_cli([*args, "--db", str(target)])
        failed_cleanly(result, ExitCode.USAGE, str(target))
        # Say what is wrong with the file, not "check its permissions".
        assert "not a loopsync state file" in result.err or "damaged" in result.err, result.err
    assert target.read_bytes() == before


def test_older_schema_is_migrated_and_keeps_its_data(tmp_path):
    """A state file written by a loopsync that knew only the first migration."""
    db = tmp_path / "old.db"
    from sqlite_utils import Database

    fd = os.open(db, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)
    old = Database(str(db))
    migrations.apply(old, stop_before="m002_client_credentials")
    now = "2026-11-01T00:00:00+00:00"
    old.execute(
        "INSERT INTO connection (id, shop, shopify_token, loop_api_key, scopes, connected_at, updated_at)"
        " VALUES (1, 'old-shop.myshopify.com', 'shpat_old', 'loop_old', '[]', ?, ?)", [now, now])
    old.execute("INSERT INTO overrides (variant_id, window, added_at) VALUES ('gid://shopify/ProductVariant/7',"
                " 'Spring 2027', ?)", [now])
    old.execute("INSERT INTO holds (fulfillment_order_id, order_id, order_name, hold_id, handle, window, placed_at)"
                " VALUES ('gid://shopify/FulfillmentOrder/1', 'gid://shopify/Order/1', 'EXC-1-1',"
                " 'gid://shopify/FulfillmentHold/1', 'loopsync-preorder', 'Spring 2027', ?)", [now])
    old.conn.commit()
    old.close()

    # Commands that only look read it as it is, migrated in memory, and leave the file alone.
    before = db.read_bytes()
    status = run_cli(["status", "--json", "--db", str(db)])
    assert status.code == 0, status.output
    doc = json.loads(status.out)
    assert "old-shop.myshopify.com" in status.out and "EXC-1-1" in status.out, doc
    listed = run_cli(["preorders", "list", "--json", "--db", str(db)])
    assert json.loads(listed.out) == [{"variant_id": "gid://shopify/ProductVariant/7", "window": "Spring 2027"}]
    assert db.read_bytes() == before
    # The first command that writes migrates the file itself.
    assert run_cli(["config", "set", "note_label", "loopsync", "--db", str(db)]).code == 0
    con = sqlite3.connect(db)
    try:
        columns = {r[1] for r in con.execute("PRAGMA table_info(connection)")}
        assert {"shopify_auth", "client_id", "access_token"} <= columns
        assert con.execute("SELECT shop, shopify_token, shopify_auth FROM connection").fetchall() == [
            ("old-shop.myshopify.com", "shpat_old", "token")]
    finally:
        con.close()


# -- the mistakes that were tested twice, once each, in one table ---------------------------
# Each case: how the world and the state file are set up, the command ({db} is the state file),
# the exit code and the phrases of its one error sentence, and what must not have changed.


@dataclass
class Ctx:
    sb: Sandbox
    db: Path
    tmp: Path
    probe: WorldProbe
    mark: int = 0
    before: dict = field(default_factory=dict)


@dataclass
class Mistake:
    args: list[str]
    code: ExitCode
    phrases: tuple[str, ...]
    given: tuple[Callable[[Ctx], None], ...] = ()
    then: tuple[Callable[[Ctx], None], ...] = ()
    env: dict[str, str] | None = None  # sandbox_env(sb, **env) when set


def _connect(ctx: Ctx) -> None:
    assert connect(ctx.sb, ctx.db).code == 0


def _no_webhook_secret(ctx: Ctx) -> None:
    # Whatever the sandbox's environment gives `connect`, this state file has no webhook secret.
    con = sqlite3.connect(ctx.db)
    con.execute("UPDATE connection SET webhook_secret = NULL, previous_webhook_secret = NULL")
    con.commit()
    con.close()


def _scan_first(ctx: Ctx) -> None:
    assert run_cli(["scan", "--db", str(ctx.db)]).code == 0
    ctx.before["holds"] = sorted(h.id for h in ctx.sb.world.holds())
    ctx.before["rows"] = (rows(ctx.db, "SELECT * FROM orders"), rows(ctx.db, "SELECT * FROM actions"))


def _revoke_shopify_token(ctx: Ctx) -> None:
    with ctx.sb.world.lock:
        for token in [t for t, issued in ctx.sb.world.tokens.items() if issued.expires_at is None]:
            del ctx.sb.world.tokens[token]


def _revoke_loop_key(ctx: Ctx) -> None:
    with ctx.sb.world.lock:
        del ctx.sb.world.loop_api_keys["loop_sandbox_demo_key"]
    ctx.before["undo"] = lambda: ctx.sb.world.loop_api_keys.__setitem__("loop_sandbox_demo_key", {"returns"})


def _loop_forbids(ctx: Ctx) -> None:
    status, payload, headers, _code, _phrase = LOOP_CONNECT_CASES["403"]
    loop_answers(ctx.sb, status, payload, headers)
    ctx.before["undo"] = lambda: delattr(ctx.sb.app.loop, "handle")


NOT_SQLITE = b"this is not an SQLite database, just some text somebody saved here\n" * 20


def _not_sqlite(ctx: Ctx) -> None:
    ctx.db.write_bytes(NOT_SQLITE)


def _a_directory(ctx: Ctx) -> None:
    ctx.db = ctx.tmp / "adir"
    ctx.db.mkdir()


def _no_request(ctx: Ctx) -> None:
    assert ctx.probe.entries(ctx.mark) == []


def _no_state_file(ctx: Ctx) -> None:
    assert not ctx.db.exists()


def _no_mutation(ctx: Ctx) -> None:
    assert ctx.probe.mutations(ctx.mark) == []


def _holds_and_rows_unchanged(ctx: Ctx) -> None:
    assert sorted(h.id for h in ctx.sb.world.holds()) == ctx.before["holds"]
    assert (rows(ctx.db, "SELECT * FROM orders"), rows(ctx.db, "SELECT * FROM actions")) == ctx.before["rows"]


def _nothing_acted_scan_failed(ctx: Ctx) -> None:
    nothing_acted(ctx.sb, ctx.db)
    assert rows(ctx.db, "SELECT outcome FROM scans") == [("failed",)]


def _loop_refused_then_recovers(ctx: Ctx) -> None:
    # Holds and tags placed before Loop refused are real, and recorded as such; no note is claimed.
    assert rows(ctx.db, "SELECT * FROM notes") == []
    check_holds_match(ctx.sb, ctx.db)
    status = json.loads(run_cli(["status", "--db", str(ctx.db), "--json"]).out)
    assert status["last_scan"]["outcome"] == "failed" and status["cursor"] is None
    # Once Loop accepts the key again, the next scan finishes the job without doubling anything.
    with ctx.sb.world.lock:
        ctx.before["undo"]()
    assert run_cli(["scan", "--db", str(ctx.db)]).code == 0
    probe = ctx.probe
    assert sorted(len(probe.our_holds(n)) for n in ("EXC-1086-1", "EXC-1091-1", "EXC-1092-1", "#1095")) == [1] * 4
    for original in ("#1086", "#1091", "#1092", "#1095"):
        assert len(probe.notes(original)) == 1


def _file_untouched(ctx: Ctx) -> None:
    assert ctx.db.read_bytes() == NOT_SQLITE
    assert sorted(p.name for p in ctx.tmp.iterdir()) == ["state.db"]


SHOP = "is not a Shopify shop domain"
NOT_STATE = "not a loopsync state file"
MISTAKES: dict[str, Mistake] = {
    **{f"shop domain {shop!r} in --shop": Mistake(
        ["connect", "--db", "{db}", "--shop", shop], ExitCode.USAGE, (SHOP,), env={},
        then=(_no_request, _no_state_file),
    ) for shop in ("not a shop", "https://example.com/store", "exa_mple.myshopify.com")},
    **{f"shop domain {shop!r} in LOOPSYNC_SHOP": Mistake(
        ["connect", "--db", "{db}"], ExitCode.USAGE, (SHOP,), env={"LOOPSYNC_SHOP": shop},
        then=(_no_request, _no_state_file),
    ) for shop in ("shop name with spaces", "https://evil.example.com/admin", "shop.example.com",
                   "-bad-.myshopify.com", "http://user:pw@shop.myshopify.com", "shop.myshopify.com/../x",
                   "shop.myshopify.com:8443", "ünï.myshopify.com")},
    "release of an unknown order": Mistake(
        ["release", "EXC-9999-1", "--yes", "--db", "{db}"], ExitCode.USAGE, ("EXC-9999-1",),
        given=(_connect, _scan_first), then=(_no_mutation, _holds_and_rows_unchanged),
    ),
    "explain of an unknown order": Mistake(
        ["explain", "EXC-9999-1", "--db", "{db}"], ExitCode.USAGE, ("No order 'EXC-9999-1'",),
        given=(_connect, _scan_first), then=(_no_mutation, _holds_and_rows_unchanged),
    ),
    "history of an order loopsync never recorded": Mistake(
        ["history", "--order", "#1004", "--db", "{db}"], ExitCode.USAGE, ("no record of an order '#1004'",),
        given=(_connect, _scan_first), then=(_no_request, _holds_and_rows_unchanged),
    ),
    "shopify token revoked, then scan": Mistake(
        ["scan", "--db", "{db}"], ExitCode.CREDENTIALS, ("Shopify rejected the access token",),
        given=(_connect, _revoke_shopify_token), then=(_nothing_acted_scan_failed,),
    ),
    "shopify token revoked, then release": Mistake(
        ["release", "EXC-1086-1", "--yes", "--db", "{db}"], ExitCode.CREDENTIALS,
        ("Shopify rejected the access token",), given=(_connect, _revoke_shopify_token), then=(_no_mutation,),
    ),
    "loop key revoked (401), then scan": Mistake(
        ["scan", "--db", "{db}"], ExitCode.CREDENTIALS, ("Loop rejected this API key",),
        given=(_connect, _revoke_loop_key), then=(_loop_refused_then_recovers,),
    ),
    "loop answers 403, then scan": Mistake(
        ["scan", "--db", "{db}"], ExitCode.CREDENTIALS, ("Loop rejected this API key",),
        given=(_connect, _loop_forbids), then=(_loop_refused_then_recovers,),
    ),
    **{f"state file not SQLite, {' '.join(args)}": Mistake(
        [*args, "--db", "{db}"], ExitCode.USAGE, (NOT_STATE, "{db}"), given=(_not_sqlite,), then=(_file_untouched,),
    ) for args in (["scan"], ["status"], ["status", "--json"], ["release", "EXC-1086-1", "--yes"],
                   ["disconnect", "--yes"], ["preorders", "list"], ["preorders", "add", "1", "--window", "Spring"],
                   ["serve", "--port", "0"])},
    "state file not SQLite, connect": Mistake(
        ["connect", "--db", "{db}"], ExitCode.USAGE, (NOT_STATE, "{db}"), env={}, given=(_not_sqlite,),
        then=(_file_untouched, _no_request),
    ),
    "serve without a webhook secret": Mistake(
        ["serve", "--db", "{db}", "--port", "0"], ExitCode.USAGE, ("LOOPSYNC_SHOPIFY_WEBHOOK_SECRET",),
        given=(_connect, _no_webhook_secret), then=(_no_mutation,),
    ),
    "serve --scan-every soon": Mistake(
        ["serve", "--db", "{db}", "--port", "0", "--scan-every", "soon"], ExitCode.USAGE, ("--scan-every",),
        given=(_connect,), then=(_no_mutation,),
    ),
    "serve --port 70000": Mistake(
        ["serve", "--db", "{db}", "--port", "70000"], ExitCode.USAGE, ("--port", "70000"),
        given=(_connect,), then=(_no_mutation,),
    ),
    **{f"state file is a directory, {' '.join(args)}": Mistake(
        [*args, "--db", "{db}"], ExitCode.USAGE, (NOT_STATE, "{db}"), given=(_a_directory,),
    ) for args in (["status"], ["scan"], ["preorders", "list"])},
}


@pytest.mark.parametrize("name", MISTAKES)
def test_a_mistake(name, sb, tmp_path):
    mistake = MISTAKES[name]
    ctx = Ctx(sb=sb, db=tmp_path / "state.db", tmp=tmp_path, probe=WorldProbe(sb))
    for step in mistake.given:
        step(ctx)
    ctx.mark = ctx.probe.mark()
    env = None if mistake.env is None else sandbox_env(sb, **mistake.env)

    result = run_cli([a.format(db=ctx.db) for a in mistake.args], env=env)

    phrases = [p.format(db=ctx.db) for p in mistake.phrases]
    assert_clean_error(result, mistake.code, *phrases)
    failed_cleanly(result, mistake.code, *phrases)
    assert_no_secrets(result)
    for check in mistake.then:
        check(ctx)
