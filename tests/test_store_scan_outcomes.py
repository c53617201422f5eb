"""The `interrupted` scan outcome and the migration (m003) that lets older state files record it."""

from __future__ import annotations

import sqlite3

import pytest
from sqlite_utils import Database

from loopsync import store as store_mod
from loopsync.store import SCHEMA_VERSION, Store

O1 = "gid://shopify/Order/1"


def test_a_scan_can_be_recorded_as_interrupted(tmp_path):
    with Store.open(tmp_path / "s.db") as s:
        scan = s.ledger.scan_started(since=None)
        s.ledger.scan_finished(scan, "interrupted", {"holds": 3}, error="SIGINT")
        last = s.ledger.last_scan()
        assert (last.outcome, last.error, last.counters, last.cursor_after) == ("interrupted", "SIGINT", {"holds": 3}, None)
        # An interrupted scan is finished: the next one does not call it crashed.
        s.ledger.scan_started(since=None)
        assert s.db.execute("SELECT outcome FROM scans ORDER BY id DESC").fetchall() == [("running",), ("interrupted",)]


def test_m003_keeps_every_scan_and_what_points_at_them(tmp_path):
    path = tmp_path / "old.db"
    db = Database(path)
    store_mod.migrations.apply(db, stop_before="m003_scan_outcome_interrupted")
    now = "2026-11-01T00:00:00+00:00"
    for outcome in ("ok", "pending", "failed"):
        db.execute("INSERT INTO scans (started_at, finished_at, outcome, counters) VALUES (?, ?, ?, '{}')",
                   [now, now, outcome])
    db.execute("DELETE FROM scans WHERE id = 3")
    db.execute("INSERT INTO decisions (scan_id, order_id, decision, reason, at) VALUES (2, ?, 'held', 'x', ?)", [O1, now])
    db.execute("INSERT INTO actions (scan_id, order_id, kind, target, key, created_at) VALUES (2, ?, 'hold', 'fo', 'k', ?)",
               [O1, now])
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO scans (started_at, outcome) VALUES (?, 'interrupted')", [now])
    db.conn.commit()
    db.close()

    with Store.open(path) as s:
        assert len(store_mod.migrations.applied(s.db)) == SCHEMA_VERSION
        assert s.db.execute("SELECT id, outcome FROM scans ORDER BY id DESC").fetchall() == [(2, "pending"), (1, "ok")]
        assert s.db.execute("SELECT scan_id FROM decisions").fetchall() == [(2,)]
        assert s.db.execute("SELECT scan_id FROM actions WHERE order_id = ?", [O1]).fetchall() == [(2,)]
        # The id of the deleted scan is not handed out again, and the new outcome is accepted.
        new = s.ledger.scan_started(since=None)
        assert new == 4
        s.ledger.scan_finished(new, "interrupted")
        # Actions and decisions still refuse a scan that does not exist.
        with pytest.raises(Exception, match="could not be used|FOREIGN KEY"):
            s.ledger.begin_action("hold", O1, "fo", "k2", scan_id=99)
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
        assert con.execute("SELECT name FROM sqlite_temp_master").fetchall() == []
    finally:
        con.close()
