"""`loopsync demo` (what `make demo` runs): the whole story, quickly, with no secret on screen."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest


@pytest.fixture
def cli(secret_safe_cli):
    """Every command these tests run is also checked for leaked credentials."""
    return secret_safe_cli


JACKET_NOTE = "[loopsync] This exchange item is on pre-order, estimated shipping: 15 March 2027."
BOOTS_NOTE = "[loopsync] This exchange item is on pre-order, estimated shipping: Late January 2027."


def test_the_demo_command_shows_hold_note_and_release_in_under_30_seconds(tmp_path, checks):
    # The installed console script, as `make demo` runs it, in a clean environment.
    script = Path(sys.executable).with_name("loopsync")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPSYNC_")}
    env.update(COLUMNS="200", XDG_DATA_HOME=str(tmp_path / "xdg"), HOME=str(tmp_path))
    started = time.monotonic()

    proc = subprocess.run([str(script), "demo"], capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)

    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert elapsed < 30
    assert float(re.search(r"Demo finished in (\d+\.\d) s", proc.stdout).group(1)) < 10
    out = proc.stdout
    assert "Traceback" not in out + proc.stderr
    for secret in checks.secrets:
        assert secret not in out + proc.stderr
    # The hold: every pre-order exchange, the split one included.
    assert "4 held, 4 tagged, 4 noted, 0 released, 0 pending" in out
    for name in ("EXC-1086-1", "EXC-1091-1", "EXC-1092-1", "#1095"):
        assert name in out
    assert "pre-order lines only (split)" in out
    # The notes as Loop shows them.
    assert JACKET_NOTE in out and BOOTS_NOTE in out
    # The release after the jacket ships, with its note in Loop, then a scan that changes nothing.
    assert "0 held, 0 tagged, 2 noted, 2 released, 0 pending" in out
    assert "The pre-order item is ready: the hold was released." in out
    assert "its pre-order item shipped" in out
    assert "Shopify mutations sent by this scan: 0" in out
    # Webhook mode: serve holds one new exchange from the sandbox's delivery, with no scan, in well under 1 s.
    held = re.search(r"Webhook: EXC-2001-1 held (\d+\.\d\d) s after it was created \(no scan\)\.", out)
    assert held, out
    assert float(held.group(1)) < 1.0
    # Nothing left behind in the user's data directory.
    assert not (tmp_path / "xdg" / "loopsync").exists()


def test_demo_keep_db_leaves_a_state_file_with_the_story_in_it(cli, tmp_path, checks):
    db = tmp_path / "demo.db"

    result = cli(["demo", "--keep-db", str(db)], env={"COLUMNS": "200"})

    assert result.code == 0, result.output
    checks.no_secrets(result)
    assert str(db) in result.out
    status = json.loads(cli(["status", "--db", str(db), "--json"]).out)
    assert sorted(h["order"] for h in status["held"]) == ["#1095", "EXC-1091-1", "EXC-2001-1"]
    assert status["last_scan"]["outcome"] == "ok"
    assert status["connection"]["shop"] == "sandbox-store.myshopify.com"
