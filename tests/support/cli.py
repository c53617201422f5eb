"""Running the CLI in-process exactly as the console script would."""

from __future__ import annotations

import io
import json
import os
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass

from loopsync.cli import main


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


def scan(cli, db, *args, env=None):
    """`loopsync scan --db DB ARGS…` through a test's ``cli`` fixture."""
    return cli(["scan", "--db", str(db), *args], env=env)


def held_orders(cli, db) -> list[str]:
    """The orders `status --json` lists as held by loopsync, sorted."""
    return sorted(h["order"] for h in json.loads(cli(["status", "--db", str(db), "--json"]).out)["held"])
