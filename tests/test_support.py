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



def test_a_forked_command_is_a_process_of_its_own(tmp_path, sandbox, connected):
    """What the crash matrix relies on: the child gets its own argv, env, cwd, streams and exit
    status, and a SIGKILL shows as -9, as with subprocess.Popen."""
    import fcntl
    import os
    import signal

    from support.forkserver import ForkServer
    from support.harness import has_open, wait_for
    from support.sandbox import sandbox_env

    server = ForkServer.get()
    env = {"PATH": os.environ.get("PATH", ""), "COLUMNS": "200"}
    work = tmp_path / "elsewhere"
    work.mkdir()
    made = server.spawn(["connect", "--db", "relative.db"], env={**env, **sandbox_env(sandbox)}, cwd=str(work),
                        out=tmp_path / "a.out", err=tmp_path / "a.err")
    assert made.wait(timeout=30) == 0, made.communicate()
    assert (work / "relative.db").exists()
    refused = server.spawn(["scan", "--db", "missing.db"], env=env, cwd=str(work),
                           out=tmp_path / "b.out", err=tmp_path / "b.err")
    out, err = refused.communicate(timeout=30)
    assert refused.returncode == 2 and out == "", (out, err)
    assert "no state file at missing.db" in err and "Traceback" not in err
    assert refused.pid != os.getpid()

    # A scan that waits on a lock this test holds: alive until killed, then reported as -9.
    lock = connected.with_name(connected.name + ".lock")
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        waiting = server.spawn(["scan", "--wait", "--db", str(connected)], env=env,
                               out=tmp_path / "c.out", err=tmp_path / "c.err")
        try:
            assert wait_for(lambda: has_open(waiting.pid, lock), timeout=60), "the scan never reached the lock"
            assert waiting.poll() is None
        finally:
            waiting.kill()
        assert waiting.wait(timeout=30) == -signal.SIGKILL
