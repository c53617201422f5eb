"""Fixtures shared by the product's tests.

No test touches real state or the internet: every LOOPSYNC_* variable is
removed, the user data directory points into tmp, and the APIs are the sandbox
on 127.0.0.1.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

from loopsync.cli import main
from loopsync.sandbox.server import Sandbox


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory, monkeypatch) -> None:
    for name in list(os.environ):
        if name.startswith("LOOPSYNC_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg")))


@pytest.fixture
def server():
    """A scripted HTTP server on 127.0.0.1, for answers the sandbox never gives (tests/fakehttp.py)."""
    from fakehttp import FakeServer

    with FakeServer() as srv:
        yield srv


@pytest.fixture
def fake_time():
    """An injected clock and sleep: sleeping advances the clock and is recorded."""
    from fakehttp import FakeTime

    return FakeTime()


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A fresh demo store per test, served over real HTTP on 127.0.0.1."""
    with Sandbox(scenario="demo") as sb:
        yield sb


@pytest.fixture
def db(tmp_path) -> Path:
    return tmp_path / "state.db"


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def output(self) -> str:
        return self.out + self.err


class _NoTTY(io.StringIO):
    def isatty(self) -> bool:
        return False


def run_cli(args: list[str], *, env: dict[str, str] | None = None, stdin: str = "") -> Result:
    """Run the CLI in-process exactly as the console script would, capturing both streams."""
    out, err = io.StringIO(), io.StringIO()
    saved_env = {k: os.environ.get(k) for k in (env or {})}
    saved_stdin = sys.stdin
    os.environ.update(env or {})
    sys.stdin = _NoTTY(stdin)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = main(args)
    finally:
        sys.stdin = saved_stdin
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return Result(int(code), out.getvalue(), err.getvalue())


@pytest.fixture
def cli() -> Callable[..., Result]:
    return run_cli


def sandbox_env(sb: Sandbox, **extra: str) -> dict[str, str]:
    """The environment `loopsync connect` needs to reach this sandbox with its demo credentials."""
    creds = sb.credentials
    env = {
        "LOOPSYNC_SHOP": creds["shop_domain"],
        "LOOPSYNC_SHOPIFY_API_URL": sb.url,
        "LOOPSYNC_LOOP_API_URL": sb.url,
        "LOOPSYNC_SHOPIFY_TOKEN": creds["shopify_token"],
        "LOOPSYNC_LOOP_API_KEY": creds["loop_api_key"],
    }
    env.update(extra)
    return env


@pytest.fixture
def connected(sandbox, db, cli) -> Path:
    """A state file connected to the demo sandbox with its static token."""
    result = cli(["connect", "--db", str(db)], env=sandbox_env(sandbox))
    assert result.code == 0, result.output
    return db


# -- end-to-end helpers: what the sandbox world saw -----------------------------

# The demo store's credentials: none of them may ever appear in loopsync's output.
DEMO_SECRETS = (
    "shpat_sandbox_demo_token",
    "shpss_sandbox_demo_secret",
    "loop_sandbox_demo_key",
    "loop_sandbox_no_scope_key",
    "shpat_sandbox_upsell_guard_token",
)


class WorldProbe:
    """Reads a running sandbox's world the way the end-to-end tests assert on it."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.world = sb.world

    def mark(self) -> int:
        with self.world.lock:
            return len(self.world.log)

    def entries(self, since: int = 0):
        with self.world.lock:
            return list(self.world.log[since:])

    def mutations(self, since: int = 0) -> list[str]:
        return [m for e in self.entries(since) for m in e.mutations]

    def loop_posts(self, since: int = 0) -> list[str]:
        return [e.path for e in self.entries(since) if e.api == "loop" and e.method != "GET"]

    def loop_requests(self, since: int = 0) -> list[str]:
        return [e.path for e in self.entries(since) if e.api == "loop"]

    def order(self, name: str):
        order = self.world.order_by_name(name)
        assert order is not None, f"no order {name} in the sandbox"
        return order

    def fulfillment_orders(self, name: str):
        order = self.order(name)
        return [self.world.fulfillment_orders[i] for i in order.fulfillment_order_ids]

    def holds(self, name: str):
        return [h for fo in self.fulfillment_orders(name) for h in fo.holds]

    def our_holds(self, name: str):
        return [h for h in self.holds(name) if h.handle.startswith("loopsync")]

    def variant(self, sku: str) -> str:
        return next(v.id for v in self.world.variants.values() if v.sku == sku)

    def sku_of_line(self, line_item_id: str) -> str | None:
        for order in self.world.orders.values():
            for li in order.line_items:
                if li.id == line_item_id:
                    return li.sku
        return None

    def loop_return_for(self, original: str):
        return next(r for r in self.world.loop_returns.values() if r.order_name == original)

    def notes(self, original: str) -> list[str]:
        return [n.content for n in self.loop_return_for(original).notes]

    def issued_tokens(self) -> list[str]:
        with self.world.lock:
            return [t.token for t in self.world.tokens.values() if t.expires_at is not None]


@pytest.fixture
def probe(sandbox) -> WorldProbe:
    return WorldProbe(sandbox)


def assert_no_secrets(result: Result, *extra: str) -> None:
    for secret in (*DEMO_SECRETS, *extra):
        assert secret not in result.output, f"a secret leaked into the output: {secret[:6]}…"


def assert_clean_error(result: Result, code: int, *fragments: str) -> None:
    """One clear sentence on stderr, the documented exit code, no traceback, nothing on stdout."""
    assert result.code == code, result.output
    assert "Traceback" not in result.output
    assert result.out == ""
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1, result.err
    for fragment in fragments:
        assert fragment in result.err, result.err


@pytest.fixture
def checks():
    """The assertion helpers above, for test modules (conftest is not importable by name here)."""
    from types import SimpleNamespace

    return SimpleNamespace(no_secrets=assert_no_secrets, clean_error=assert_clean_error, secrets=DEMO_SECRETS)


@pytest.fixture
def env_for() -> Callable[..., dict[str, str]]:
    """``sandbox_env`` as a fixture: test modules cannot import it, several files are named conftest."""
    return sandbox_env


@pytest.fixture
def secret_safe_cli(checks) -> Callable[..., Result]:
    """``cli`` that also fails the test if any demo credential shows up in what a command printed."""

    def run(args: list[str], **kwargs) -> Result:
        result = run_cli(args, **kwargs)
        checks.no_secrets(result)
        return result

    return run
