"""A scan's lifecycle through the CLI, against the demo sandbox over real HTTP: what the ledger
records per scan, holds whose retry met their own first try, and what a scan says while Loop
is disconnected."""

from __future__ import annotations

import json
import sqlite3

import pytest

from loopsync.sandbox import scenarios


@pytest.fixture
def cli(secret_safe_cli):
    """Every command these tests run is also checked for leaked credentials."""
    return secret_safe_cli


def _scan(cli, db, *args, env=None):
    return cli(["scan", "--db", str(db), *args], env=env)


def _rows(db, sql: str, params=()) -> list[tuple]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


# -- item 10: every action names its scan --------------------------------------------------


def test_a_scans_actions_carry_its_scan_id(cli, connected, sandbox, probe):
    first = json.loads(_scan(cli, connected, "--json").out)
    scenarios.add_exchange(sandbox.world, {"original": "#1002", "name": "EXC-1002-1", "created": "-5m",
                                           "lines": [{"sku": "JKT-L-PRE"}]})
    second = json.loads(_scan(cli, connected, "--json").out)

    by_scan = dict(_rows(connected, "SELECT scan_id, COUNT(*) FROM actions GROUP BY scan_id"))
    # 4 holds, 4 tags, 4 notes in the first scan; 1 of each for the new exchange in the second.
    assert by_scan == {first["scan_id"]: 12, second["scan_id"]: 3}
    assert first["scan_id"] != second["scan_id"]
