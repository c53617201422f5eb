"""The schema's state names: one StrEnum per constrained column, agreeing with its CHECK clause."""

from __future__ import annotations

import sqlite3

import pytest

from loopsync.store import Store
from loopsync.store.schema import ActionStatus, HoldStatus, ReleasedBy, ScanOutcome

O1 = "gid://shopify/Order/1"
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
