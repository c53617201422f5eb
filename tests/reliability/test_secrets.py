"""Secrets: run every command with known secret values, on happy and failing paths and with
--debug, and grep everything captured. The state file is the one place they may be (mode 0600)."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

from loopsync.sandbox.scenarios import add_exchange
from loopsync.sandbox.server import Sandbox
from loopsync.sandbox.world import IssuedToken
from support.forkserver import ForkServer
from support.harness import demo_world, run_cli

TOKEN = "shpat_S3CRETtoken_7f3a9c11d2"
CLIENT_ID = "cid_S3CRETclient_5e1b77"
CLIENT_SECRET = "shpss_S3CRETsecret_b81e42"
LOOP_KEY = "loop_S3CRETkey_4d2c9f0a"
WRONG_LOOP_KEY = "loop_S3CRETwrong_0000aa"
WRONG_TOKEN = "shpat_S3CRETwrong_ffff00"
WEBHOOK_SECRET = "whsec_S3CRETwebhook_c0ffee11"
LOOP_WEBHOOK_SECRET = "loopwh_S3CRETloophook_9a8b7c"
KNOWN = [TOKEN, CLIENT_ID, CLIENT_SECRET, LOOP_KEY, WRONG_LOOP_KEY, WRONG_TOKEN, WEBHOOK_SECRET, LOOP_WEBHOOK_SECRET]


def secret_world():
    world = demo_world()
    app = next(a for a in world.apps.values() if a.title == "loopsync")
    for token in list(app.static_tokens):
        del world.tokens[token]
    app.static_tokens = {TOKEN}
    world.tokens[TOKEN] = IssuedToken(token=TOKEN, app_id=app.id, expires_at=None)
    app.client_id, app.client_secret = CLIENT_ID, CLIENT_SECRET
    world.loop_api_keys = {LOOP_KEY: {"returns"}}
    return world


class Capture:
    """Everything loopsync showed anyone: streams, log records, exception texts and tracebacks."""

    def __init__(self, sb: Sandbox, caplog, tmp: Path) -> None:
        self.sb = sb
        self.caplog = caplog
        self.tmp = tmp
        self.forks = 0
        self.texts: list[tuple[str, str]] = []

    def env(self, **extra: str) -> dict[str, str]:
        env = {"LOOPSYNC_SHOP": "sandbox-store.myshopify.com", "LOOPSYNC_SHOPIFY_API_URL": self.sb.url,
               "LOOPSYNC_LOOP_API_URL": self.sb.url}
        env.update(extra)
        return env

    def cli(self, args: list[str], **env: str) -> int:
        label = " ".join(args)
        try:
            result = run_cli(args, env=self.env(**env))
        except BaseException as exc:  # a crash's traceback is output too
            self.texts.append((label, "".join(traceback.format_exception(exc))))
            self.texts.append((label, repr(exc) + str(exc.args)))
            return -1
        self.texts.append((label, result.out + result.err))
        self.last = result
        return result.code

    def subprocess(self, args: list[str], *, real: bool = False, **env: str) -> int:
        """The command in a process of its own: what the interpreter itself prints is output too.

        Forked from the warm zygote (support/forkserver.py); ``real`` starts `python -m loopsync`."""
        full = {k: v for k, v in os.environ.items() if not k.startswith("LOOPSYNC_")}
        full.update(self.env(**env))
        if real:
            proc = subprocess.run([sys.executable, "-m", "loopsync", *args], env=full, capture_output=True,
                                  text=True, timeout=120)
            code, out, err = proc.returncode, proc.stdout, proc.stderr
        else:
            self.forks += 1
            streams = self.tmp / f"process-{self.forks}"
            forked = ForkServer.get().spawn(args, env=full, out=streams.with_suffix(".out"),
                                            err=streams.with_suffix(".err"))
            out, err = forked.communicate(timeout=120)
            code = forked.returncode
        self.texts.append(("subprocess " + " ".join(args), out + err))
        return code

    def leaks(self, secrets: list[str]) -> list[str]:
        found = []
        logs = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in self.caplog.records)
        for label, text in [*self.texts, ("logs", logs)]:
            for secret in secrets:
                if secret in text:
                    found.append(f"{secret[:8]}… in {label}")
        return found


@pytest.fixture
def capture(caplog, tmp_path_factory):
    caplog.set_level(logging.DEBUG)
    with Sandbox(secret_world()) as sb:
        yield Capture(sb, caplog, tmp_path_factory.mktemp("streams"))


def test_no_command_shows_a_secret(capture, tmp_path):
    c = capture
    db = str(tmp_path / "state.db")
    cc_db = str(tmp_path / "cc.db")
    token_env = {"LOOPSYNC_SHOPIFY_TOKEN": TOKEN, "LOOPSYNC_LOOP_API_KEY": LOOP_KEY,
                 "LOOPSYNC_SHOPIFY_WEBHOOK_SECRET": WEBHOOK_SECRET, "LOOPSYNC_LOOP_WEBHOOK_SECRET": LOOP_WEBHOOK_SECRET}
    cc_env = {"LOOPSYNC_SHOPIFY_CLIENT_ID": CLIENT_ID, "LOOPSYNC_SHOPIFY_CLIENT_SECRET": CLIENT_SECRET,
              "LOOPSYNC_LOOP_API_KEY": LOOP_KEY}

    # Failing connects first (wrong keys, with and without --debug), then good ones.
    assert c.cli(["connect", "--db", db], LOOPSYNC_SHOPIFY_TOKEN=TOKEN, LOOPSYNC_LOOP_API_KEY=WRONG_LOOP_KEY) == 4
    assert c.cli(["connect", "--db", db, "--json"], LOOPSYNC_SHOPIFY_TOKEN=WRONG_TOKEN,
                 LOOPSYNC_LOOP_API_KEY=LOOP_KEY) == 4
    assert c.cli(["--debug", "connect", "--db", db], LOOPSYNC_SHOPIFY_TOKEN=WRONG_TOKEN,
                 LOOPSYNC_LOOP_API_KEY=WRONG_LOOP_KEY) == 4
    assert c.subprocess(["--debug", "connect", "--db", db], real=True, LOOPSYNC_SHOPIFY_TOKEN=TOKEN,
                        LOOPSYNC_LOOP_API_KEY=WRONG_LOOP_KEY) != 0
    assert c.cli(["connect", "--db", db, "--shop", "bad shop"], **token_env) == 2
    assert c.cli(["connect", "--db", db, "--json"], **token_env) == 0
    assert c.cli(["connect", "--db", cc_db], **cc_env) == 0
    with c.sb.world.lock:
        minted = [t for t, issued in c.sb.world.tokens.items() if issued.expires_at is not None]
    assert minted, "the client-credentials connect should have minted a token"

    for target in (db, cc_db):
        for args in (["status"], ["status", "--json"], ["scan", "--dry-run"], ["scan", "-v"], ["scan", "--json"],
                     ["preorders", "add", "1", "--window", "Soon"], ["preorders", "list", "--json"],
                     ["preorders", "remove", "1"], ["release", "EXC-1086-1", "--yes", "--json"],
                     ["release", "NOPE-1", "--yes"], ["--debug", "release", "NOPE-1", "--yes"]):
            c.cli([*args, "--db", target])
        assert c.subprocess(["scan", "--db", target, "--json", "--since", "1d"]) in (0, 1)

    # Failing scans, with and without --debug: first Loop rejects the key (a new pre-order
    # exchange makes the scan ask Loop), then Shopify rejects the token and the client secret.
    with c.sb.world.lock:
        add_exchange(c.sb.world, {"original": "#1001", "lines": [{"sku": "JKT-L-PRE"}]})
        c.sb.world.loop_api_keys.clear()
    for target in (db, cc_db):
        assert c.cli(["scan", "--db", target, "--since", "1d"]) == 4, c.last.output
        assert c.cli(["--debug", "scan", "--db", target, "--since", "1d"]) == 4
        assert c.subprocess(["--debug", "scan", "--db", target, "--since", "1d"]) != 0
    with c.sb.world.lock:
        c.sb.world.tokens.clear()
        next(a for a in c.sb.world.apps.values() if a.title == "loopsync").client_secret = "rotated-elsewhere"
    for target in (db, cc_db):
        assert c.cli(["scan", "--db", target, "--since", "1d"]) == 4
        assert c.cli(["--debug", "scan", "--db", target, "--since", "1d"]) == 4
        assert c.subprocess(["--debug", "scan", "--db", target, "--since", "1d"]) != 0
        c.cli(["--debug", "status", "--json", "--db", target])
    c.cli(["disconnect", "--yes", "--db", db])
    c.cli(["status", "--db", db])

    # Make sure the debug traceback really was captured, or the grep proves nothing.
    assert any("Traceback" in text for _, text in c.texts)
    assert c.leaks([*KNOWN, *minted]) == []

    # The state file is where they are kept: readable by its owner only.
    for target in (db, cc_db):
        assert stat.S_IMODE(Path(target).stat().st_mode) == 0o600
    assert CLIENT_SECRET.encode() in Path(cc_db).read_bytes() or any(
        CLIENT_SECRET.encode() in p.read_bytes() for p in Path(cc_db).parent.glob("cc.db*"))


def test_a_state_file_readable_by_others_warns(capture, tmp_path):
    db = tmp_path / "state.db"
    assert capture.cli(["connect", "--db", str(db)], LOOPSYNC_SHOPIFY_TOKEN=TOKEN, LOOPSYNC_LOOP_API_KEY=LOOP_KEY) == 0
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    result = run_cli(["status", "--db", str(db)])
    assert "warning" not in result.err.lower()
    db.chmod(0o644)
    for args in (["status"], ["scan"]):
        result = run_cli([*args, "--db", str(db)], env=capture.env())
        assert "readable by other users" in result.err and "chmod 600" in result.err, result.err
        assert all(s not in result.output for s in KNOWN)
