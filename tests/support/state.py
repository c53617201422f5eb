"""Reading (and, to damage it, writing) a state file behind loopsync's back.

These helpers never swallow SQL errors: a query against a table or column that does
not exist is a broken test (or a schema change the test must follow), not "no rows".
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


def rows(db: Path, sql: str, params: tuple | list = ()) -> list[tuple]:
    """The rows of ``sql`` read through a read-only connection (the test never writes by accident)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def one(db: Path, sql: str, params: tuple | list = ()):
    """The first column of the single row ``sql`` returns."""
    found = rows(db, sql, params)
    assert len(found) == 1, f"{sql!r} returned {len(found)} rows, wanted 1"
    return found[0][0]


def tables(db: Path) -> set[str]:
    return {name for (name,) in rows(db, "SELECT name FROM sqlite_master WHERE type = 'table'")}


def tamper(db: Path, sql: str) -> None:
    """Change the state file the way a person with `sqlite3` would, while loopsync may have it open."""
    con = sqlite3.connect(db)
    try:
        con.execute(sql)
        con.commit()
    finally:
        con.close()
