"""The test helpers themselves: the no-network guard and the state-file reader must fail loudly."""

from __future__ import annotations

import socket
import sqlite3

import pytest
import requests

from support.network import NetworkUsed
from support.state import rows


def test_the_guard_refuses_a_connect_even_to_a_live_local_server(no_network):
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        with pytest.raises(NetworkUsed):
            socket.create_connection(listener.getsockname(), timeout=1)
        # Not an OSError, so requests and urllib3 let it through instead of retrying or wrapping it.
        with pytest.raises(NetworkUsed):
            requests.get(f"http://127.0.0.1:{listener.getsockname()[1]}/", timeout=1)
    finally:
        listener.close()
    assert len(no_network.attempts) == 2
    no_network.attempts.clear()  # seen and checked here, so the teardown check passes


@pytest.mark.no_network
def test_the_marker_turns_the_guard_on(request):
    with pytest.raises(NetworkUsed):
        socket.create_connection(("127.0.0.1", 9), timeout=1)
    guard = request.getfixturevalue("no_network")
    assert guard.attempts == ["('127.0.0.1', 9)"]
    guard.attempts.clear()


def test_a_swallowed_connect_still_fails_the_test(pytester):
    pytester.makeconftest("from support.network import no_network  # noqa: F401\n")
    pytester.makepyfile("""
        import socket

        def test_swallows(no_network):
            try:
                socket.create_connection(("127.0.0.1", 9), timeout=1)
            except Exception:
                pass
    """)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:xdist")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*under the no-network guard connected to: ('127.0.0.1', 9)*"])


def test_without_the_guard_local_sockets_work():
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        socket.create_connection(listener.getsockname(), timeout=1).close()
    finally:
        listener.close()


def test_state_rows_raise_on_a_query_the_schema_cannot_answer(tmp_path):
    db = tmp_path / "state.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE holds (id INTEGER)")
    con.close()

    assert rows(db, "SELECT id FROM holds") == []
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        rows(db, "SELECT * FROM connection")
    with pytest.raises(sqlite3.OperationalError, match="no such column"):
        rows(db, "SELECT status FROM holds")
