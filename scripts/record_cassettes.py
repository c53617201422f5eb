"""Record the cassette library in cassettes/ from the sandbox (`make cassettes`).

Each story is a short sequence of loopsync commands against a fresh demo store
whose clock is frozen at ``NOW``; every command's traffic goes to its own cassette
(``cassettes/<story>/NN-<step>.yaml``), and ``story.yaml`` lists the commands with
what the live run produced: exit code, JSON output, the messages on stderr and
the state file's rows. tests/test_cassettes.py replays every story from an empty
state file with ``--replay`` and no server, and expects the same.

Time is virtual: the sandbox's clock and loopsync's advance together only when
loopsync sleeps (a throttle wait), so recording twice gives identical files.

    python scripts/record_cassettes.py [--out DIR] [STORY ...]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from loopsync import recording
from loopsync.cli import main as cli_main
from loopsync.sandbox.faults import FaultPlan
from loopsync.sandbox.scenarios import add_exchange, load_scenario
from loopsync.sandbox.server import Sandbox
from loopsync.sandbox.world import World

ROOT = Path(__file__).resolve().parent.parent
CASSETTES = ROOT / "cassettes"
NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
DB_MARK = "<db>"
TIME_MARK = "<time>"
# Columns the state file fills from the machine's own clock (not loopsync's API clock): they differ per run.
# A cached token's expiry comes from loopsync's clock, which cassettes fix, so it is compared.
TIME_COLUMNS = re.compile(r"^(?!access_token_expires_at$).*(^|_)at$|^first_seen$|^last_seen$")
SECRET_COLUMNS = {"shopify_token", "client_secret", "loop_api_key", "access_token", "webhook_secret", "previous_webhook_secret"}
FINGERPRINTS = {"shopify_fingerprint", "loop_fingerprint", "webhook_secret_fingerprint"}
TABLES = ("connection", "meta", "scans", "decisions", "actions", "holds", "orders", "notes", "overrides")

# What a developer sets to replay: no real credential anywhere.
REPLAY_ENV = {
    "LOOPSYNC_SHOP": "sandbox-store.myshopify.com",
    "LOOPSYNC_SHOPIFY_API_URL": recording.SANDBOX_ORIGIN,
    "LOOPSYNC_LOOP_API_URL": recording.SANDBOX_ORIGIN,
    "LOOPSYNC_SHOPIFY_TOKEN": recording.PLACEHOLDER,
    "LOOPSYNC_LOOP_API_KEY": recording.PLACEHOLDER,
}
CLIENT_CREDENTIALS_REPLAY_ENV = {
    **{k: v for k, v in REPLAY_ENV.items() if k != "LOOPSYNC_SHOPIFY_TOKEN"},
    "LOOPSYNC_SHOPIFY_CLIENT_ID": "sandbox-client-id",
    "LOOPSYNC_SHOPIFY_CLIENT_SECRET": recording.PLACEHOLDER,
}


# --- normalising what a run produced ----------------------------------------------------


def _mask(key: str, value: Any) -> Any:
    if value is None:
        return None
    if key in FINGERPRINTS or key in SECRET_COLUMNS:
        return "<set>"
    if TIME_COLUMNS.search(key):
        return TIME_MARK
    return _clean(value)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return recording.LOOPBACK_ORIGIN.sub(recording.SANDBOX_ORIGIN, value)
    if isinstance(value, dict):
        return {k: _mask(k, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def state_rows(db: Path) -> dict[str, list[dict[str, Any]]]:
    """The state file's rows, with secrets and machine-clock timestamps masked."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        out = {}
        for table in TABLES:
            rows = conn.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()  # noqa: S608 - fixed names
            out[table] = [{k: _mask(k, row[k]) for k in row.keys()} for row in rows]
        return out
    finally:
        conn.close()


def outcome(code: int, out: str, err: str, db: Path) -> dict[str, Any]:
    """Exit code, stdout (parsed when JSON), stderr and state rows, comparable between live and replay."""
    try:
        stdout: Any = _clean(json.loads(out)) if out.strip() else None
    except ValueError:
        stdout = out
    err = err.replace(str(db), DB_MARK)
    return {"exit_code": code, "stdout": stdout, "stderr": _clean(err), "state": state_rows(db)}


class _NoTTY(io.StringIO):
    def isatty(self) -> bool:
        return False


def run(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """The CLI in-process, as the console script runs it, with only ``env``'s LOOPSYNC_* variables."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("LOOPSYNC_")}
    for k in saved:
        del os.environ[k]
    os.environ.update(env)
    out, err, stdin = io.StringIO(), io.StringIO(), sys.stdin
    sys.stdin = _NoTTY("")
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = cli_main(args)
    finally:
        sys.stdin = stdin
        for k in env:
            os.environ.pop(k, None)
        os.environ.update(saved)
    return int(code), out.getvalue(), err.getvalue()


# --- stories ---------------------------------------------------------------------------------


@dataclass
class Step:
    name: str
    args: list[str]
    before: Callable[[Sandbox], None] | None = None  # changes the world first (a pre-order ships ...)
    client_credentials: bool = False
    loop_key: str | None = None  # another Loop key than the demo's


@dataclass
class Story:
    description: str
    steps: list[Step]
    setup: Callable[[Sandbox], None] | None = None
    env: dict[str, str] = field(default_factory=dict)


def _variant(world: World, sku: str) -> str:
    return next(v.id for v in world.variants.values() if v.sku == sku)


def _ship_jacket(sb: Sandbox) -> None:
    sb.world.take_off_preorder(_variant(sb.world, "JKT-L-PRE"))


def _drop_fulfillment_scopes(sb: Sandbox) -> None:
    app = next(a for a in sb.world.apps.values() if a.title == "loopsync")
    app.scopes = [s for s in app.scopes if "fulfillment_orders" not in s]


def _exchange_without_return(sb: Sandbox) -> None:
    add_exchange(sb.world, {"mode": "separate", "original": "#1010", "name": "EXC-1010-1", "created": "-30m",
                            "lines": [{"sku": "JKT-L-PRE"}], "return": None})


def _throttle(sb: Sandbox) -> None:
    # Seeded: the same requests meet the same THROTTLED answers every recording.
    sb.faults = sb.app.faults = FaultPlan.coerce("throttle=0.3,seed=5")


def _almost_a_day_later(sb: Sandbox) -> None:
    # The 24-hour token now expires within loopsync's 5-minute renewal margin.
    sb.world.advance(timedelta(hours=23, minutes=57))


CONNECT = Step("connect", ["connect", "--json"])
SCAN = Step("scan", ["scan", "--json"])

STORIES: dict[str, Story] = {
    "connect-accepted": Story("connect with a static Admin API token and a good Loop key", [CONNECT]),
    "connect-rejected-by-loop": Story(
        "Loop rejects a key without the Returns permission: exit 4, nothing stored",
        [Step("connect", ["connect", "--json"], loop_key="loop_sandbox_no_scope_key")],
    ),
    "connect-missing-scope": Story(
        "the Shopify app lacks the fulfillment-order scopes: exit 4 naming them, nothing stored",
        [CONNECT],
        setup=_drop_fulfillment_scopes,
    ),
    "demo-store": Story(
        "first scan of the demo store (separate and native exchanges, a split hold, another app's hold, "
        "notes in Loop), then a second scan that changes nothing",
        [CONNECT, Step("first-scan", ["scan", "--json"]), Step("second-scan", ["scan", "--json"])],
    ),
    "throttled-scan": Story(
        "the first scan meets Shopify's THROTTLED answers (and Loop's 429s) and waits them out",
        [CONNECT, Step("scan", ["scan", "--json"], before=_throttle)],
    ),
    "return-not-found": Story(
        "an exchange whose Loop return does not exist yet: held and tagged, note pending, exit 1",
        [CONNECT, SCAN],
        setup=_exchange_without_return,
    ),
    "release-after-ship": Story(
        "the jacket pre-order ships: the next scan lifts loopsync's holds on its exchanges, not Upsell Guard's",
        [CONNECT, SCAN, Step("scan-after-ship", ["scan", "--json"], before=_ship_jacket)],
    ),
    "manual-release": Story(
        "support releases EXC-1086-1 by hand; the next scan leaves it alone",
        [CONNECT, SCAN, Step("release", ["release", "EXC-1086-1", "--yes", "--json"]),
         Step("scan-after-release", ["scan", "--json"])],
    ),
    "token-renewal": Story(
        "a Dev Dashboard app: connect exchanges the client credentials for a token, a scan reuses it, "
        "and a scan almost a day later renews it first",
        [Step("connect", ["connect", "--json"], client_credentials=True),
         Step("scan", ["scan", "--json"], client_credentials=True),
         Step("scan-a-day-later", ["scan", "--json"], before=_almost_a_day_later, client_credentials=True)],
    ),
}


def _live_env(sb: Sandbox, step: Step) -> dict[str, str]:
    creds = sb.credentials
    env = {
        "LOOPSYNC_SHOP": str(creds["shop_domain"]),
        "LOOPSYNC_SHOPIFY_API_URL": sb.url,
        "LOOPSYNC_LOOP_API_URL": sb.url,
        "LOOPSYNC_LOOP_API_KEY": step.loop_key or str(creds["loop_api_key"]),
    }
    if step.client_credentials:
        env["LOOPSYNC_SHOPIFY_CLIENT_ID"] = str(creds["client_id"])
        env["LOOPSYNC_SHOPIFY_CLIENT_SECRET"] = str(creds["client_secret"])
    else:
        env["LOOPSYNC_SHOPIFY_TOKEN"] = str(creds["shopify_token"])
    return env


def record_story(name: str, story: Story, out_dir: Path) -> Path:
    """Run the story against a fresh frozen demo store, writing its cassettes and story.yaml."""
    story_dir = out_dir / name
    shutil.rmtree(story_dir, ignore_errors=True)
    story_dir.mkdir(parents=True)
    world = World(now=NOW)
    load_scenario(world, "demo")
    steps_doc = []
    with tempfile.TemporaryDirectory() as tmp, Sandbox(world) as sb:
        db = Path(tmp) / "state.db"
        if story.setup:
            story.setup(sb)
        for number, step in enumerate(story.steps, start=1):
            if step.before:
                step.before(sb)
            cassette = story_dir / f"{number:02d}-{step.name}.yaml"
            advance = lambda seconds: sb.world.advance(timedelta(seconds=seconds))  # noqa: E731
            with recording.recording(cassette, "record", start=sb.world.now(), real_sleep=False, on_sleep=advance):
                code, out, err = run([*step.args, "--db", str(db)], _live_env(sb, step))
            steps_doc.append(
                {
                    "cassette": cassette.name,
                    "args": step.args,
                    "env": CLIENT_CREDENTIALS_REPLAY_ENV if step.client_credentials else REPLAY_ENV,
                    **outcome(code, out, err, db),
                }
            )
    doc = {"description": story.description, "recorded_from": "demo", "steps": steps_doc}
    (story_dir / "story.yaml").write_text(
        yaml.dump(doc, Dumper=recording._Dumper, sort_keys=False, allow_unicode=True, width=110), encoding="utf-8"
    )
    return story_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Record loopsync's cassette library from the sandbox.")
    parser.add_argument("--out", type=Path, default=CASSETTES, help="where to write (default: cassettes/)")
    parser.add_argument("stories", nargs="*", help=f"stories to record (default: all): {', '.join(STORIES)}")
    args = parser.parse_args(argv)
    unknown = [s for s in args.stories if s not in STORIES]
    if unknown:
        parser.error(f"unknown stories: {', '.join(unknown)}")
    for name in args.stories or STORIES:
        path = record_story(name, STORIES[name], args.out)
        print(f"recorded {path.relative_to(args.out.parent) if path.is_relative_to(args.out.parent) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
