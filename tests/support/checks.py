"""Assertions on what a command printed: no secrets, one clean error sentence."""

from __future__ import annotations

from support.cli import Result

# The demo store's credentials: none of them may ever appear in loopsync's output.
DEMO_SECRETS = (
    "shpat_sandbox_demo_token",
    "shpss_sandbox_demo_secret",
    "loop_sandbox_demo_key",
    "loop_sandbox_no_scope_key",
    "shpat_sandbox_upsell_guard_token",
)


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
