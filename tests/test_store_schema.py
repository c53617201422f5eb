"""The schema's state names: one StrEnum per constrained column, agreeing with its CHECK clause,
and one word per state (m005)."""

from __future__ import annotations

import sqlite3

import pytest
from sqlite_utils import Database

from loopsync.store import Store
from loopsync.store.schema import ActionStatus, HoldStatus, ReleasedBy, ScanOutcome, migrations

O1, O2 = "gid://shopify/Order/1", "gid://shopify/Order/2"
NOW = "2026-11-01T00:00:00+00:00"

# A row that satisfies every other constraint of its table, with the column under test left open.
_ROWS = {
    ("scans", "outcome"): ("INSERT INTO scans (started_at, outcome) VALUES (?, ?)", [NOW]),
    ("actions", "status"): (
        "INSERT INTO actions (order_id, kind, target, key, created_at, status) VALUES (?, 'tag', 't', 'k', ?, ?)",
        [O1, NOW],
    ),
    ("holds", "status"): (
        "INSERT OR REPLACE INTO holds (fulfillment_order_id, order_id, handle, placed_at, status) "
        "VALUES ('fo', ?, 'h', ?, ?)",
        [O1, NOW],
    ),
    ("holds", "released_by"): (
        "INSERT OR REPLACE INTO holds (fulfillment_order_id, order_id, handle, placed_at, released_by) "
        "VALUES ('fo', ?, 'h', ?, ?)",
        [O1, NOW],
    ),
}
_ENUMS = {
    ("scans", "outcome"): ScanOutcome,
    ("actions", "status"): ActionStatus,
    ("holds", "status"): HoldStatus,
    ("holds", "released_by"): ReleasedBy,
}


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "s.db") as s:
        yield s


@pytest.mark.parametrize(("table", "column"), list(_ENUMS), ids=lambda v: v)
def test_each_state_enum_is_the_check_clause_sqlite_enforces(store, table, column):
    enum = _ENUMS[table, column]
    sql = store.db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", [table]).fetchone()[0]
    # holds.released_by also allows NULL ("CHECK (released_by IS NULL OR released_by IN (...))").
    assert enum.check(column).removeprefix("CHECK (").removesuffix(")") in sql
    insert, params = _ROWS[table, column]
    for member in enum:
        store.db.execute(insert, [*params, member.value])
    with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
        store.db.execute(insert, [*params, "not_a_" + column])


def test_m005_gives_a_manual_release_one_name(tmp_path):
    path = tmp_path / "old.db"
    db = Database(path)
    migrations.apply(db, stop_before="m005_one_name_for_released_manually")
    db.execute(
        """INSERT INTO orders (order_id, name, first_seen, last_seen, state, manual_release)
           VALUES (?, '#EXC-1', ?, ?, 'manually_released', 1), (?, '#EXC-2', ?, ?, 'held', 0)""",
        [O1, NOW, NOW, O2, NOW, NOW],
    )
    db.close()
    with Store.open(path) as s:
        assert s.orders.order(O1).state == "released_manually" and s.orders.is_manually_released(O1)
        assert s.orders.order(O2).state == "held"
        assert s.db.execute("SELECT count(*) FROM orders WHERE state = 'manually_released'").fetchone() == (0,)
