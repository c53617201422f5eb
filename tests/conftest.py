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
