"""Progress and logs: a Rich progress bar on stderr only when stderr is a terminal (checked with a
pseudo-terminal), nothing animated under cron or a pipe, and `--log-format json`: one JSON object per
action on stderr, no secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from support.checks import DEMO_SECRETS

FIELDS = {"ts", "scan_id", "order", "order_id", "kind", "status", "target", "detail"}


def _scan_process(db, stderr) -> subprocess.Popen:
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100"}
    env.pop("NO_COLOR", None)
    return subprocess.Popen(
        [sys.executable, "-m", "loopsync", "scan", "--db", str(db)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, env=env,
    )


def test_a_scan_at_a_terminal_shows_a_progress_bar_on_stderr(connected):
    import pty  # POSIX only, as the terminal it stands for

    master, slave = pty.openpty()
    proc = _scan_process(connected, slave)
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the scan closed its end of the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    proc.wait(timeout=60)
    proc.stdout.close()

    assert proc.returncode == 0, seen.decode(errors="replace")
    assert b"Orders read" in seen and b"Exchanges reconciled" in seen
    assert b"\x1b[" in seen  # drawn and redrawn in place: a terminal's control sequences


def test_a_scan_off_a_terminal_draws_no_progress(connected):
    proc = _scan_process(connected, subprocess.PIPE)
    out, err = proc.communicate(timeout=60)

    assert proc.returncode == 0, err
    # Cron mails whatever is printed: a quiet scan prints nothing at all, and never a control sequence.
    assert out == b"" and err == b""


def test_log_format_json_is_one_object_per_action_on_stderr(cli, connected, probe, checks):
    result = cli(["--log-format", "json", "scan", "--db", str(connected)])

    assert result.code == 0, result.output
    checks.no_secrets(result)
    assert result.out == ""
    lines = [json.loads(line) for line in result.err.splitlines()]
    assert all(set(line) == FIELDS for line in lines)
    *actions, end = lines
    assert (end["kind"], end["status"], end["scan_id"]) == ("scan", "ok", 1)
    assert end["detail"].startswith("Scan: 16 orders read, 6 Loop exchanges; 4 held")
    assert sorted((a["order"], a["kind"]) for a in actions) == sorted(
        (name, kind) for name in ("#1095", "EXC-1086-1", "EXC-1091-1", "EXC-1092-1") for kind in ("hold", "tag", "note")
    )
    hold = next(a for a in actions if a["order"] == "EXC-1086-1" and a["kind"] == "hold")
    [fo] = probe.fulfillment_orders("EXC-1086-1")
    assert (hold["status"], hold["target"], hold["detail"], hold["scan_id"]) == (
        "done", fo.id, "whole fulfillment order", 1,
    )
    assert hold["ts"].endswith("Z")
    for secret in DEMO_SECRETS:
        assert secret not in result.err


def test_log_format_json_names_a_pending_order_and_exits_1(cli, connected, probe):
    from loopsync.sandbox.builders import add_hold

    app = next(a.id for a in probe.world.apps.values() if a.title == "loopsync")
    [fo] = probe.fulfillment_orders("EXC-1086-1")
    for n in range(10):  # Shopify's limit of ten holds per app: loopsync's is refused
        add_hold(probe.world, fo.id, app, handle=f"other-{n}")

    result = cli(["--log-format", "json", "scan", "--db", str(connected)])

    assert result.code == 1, result.output
    logged = [json.loads(line) for line in result.err.splitlines() if line.startswith("{")]
    failed = [(e["kind"], e["status"]) for e in logged if e["order"] == "EXC-1086-1"]
    assert ("hold", "failed") in failed and ("pending", "pending") in failed
    assert logged[-1]["kind"] == "scan" and logged[-1]["status"] == "pending"
