"""SQLite's POSIX locks belong to the process: closing *any* descriptor of the database file drops
every lock the process holds on it. Opening the state file must therefore never open and close
the file itself while a connection to it may be open, or another process closing its own
connection believes it is the last one and deletes the WAL index under our feet."""

from __future__ import annotations

import subprocess
import sys

from loopsync.store import Store


def test_a_second_open_in_one_process_keeps_the_first_ones_locks(tmp_path):
    db = tmp_path / "state.db"
    first = Store.open(db)
    first.config.add_override("gid://shopify/ProductVariant/1", "Spring")
    second = Store.open(db)  # e.g. a library caller, or a test, opening it again
    other = subprocess.run(
        [sys.executable, "-c", "import sys; from loopsync.store import Store; s = Store.open(sys.argv[1]);"
         " s.config.add_override('gid://shopify/ProductVariant/2', 'Summer'); s.close()", str(db)],
        capture_output=True, text=True, timeout=60,
    )
    assert other.returncode == 0, other.stderr
    # The other process knew we still had the file open: it left the WAL index alone.
    assert db.with_name("state.db-shm").exists()
    third = Store.open(db)
    assert third.config.overrides() == {"gid://shopify/ProductVariant/1": "Spring", "gid://shopify/ProductVariant/2": "Summer"}
    assert first.config.overrides() == third.config.overrides()
    for store in (first, second, third):
        store.close()
