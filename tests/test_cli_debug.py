"""`--debug` adds a traceback on stderr and changes nothing else: the exit code is the same."""

from __future__ import annotations

import pytest

from loopsync import cli as cli_module


def test_debug_keeps_the_credentials_exit_code(cli, sandbox, env_for, db, checks):
    env = env_for(sandbox, LOOPSYNC_SHOPIFY_TOKEN="shpat_not_the_real_token")

    plain = cli(["connect", "--db", str(db)], env=env)
    debug = cli(["connect", "--db", str(db), "--debug"], env=env)

    checks.clean_error(plain, 4, "Shopify rejected the access token")
    assert debug.code == plain.code == 4, debug.output
    assert "Traceback (most recent call last)" in debug.err and "CredentialsError" in debug.err
    # The traceback comes first; the last line is still the sentence a person reads.
    assert debug.err.strip().splitlines()[-1] == plain.err.strip()
    assert debug.out == ""
    checks.no_secrets(debug, "shpat_not_the_real_token")


def test_debug_keeps_the_usage_exit_code(cli, db):
    result = cli(["--debug", "scan", "--db", str(db)])
    assert result.code == 2, result.output
    assert "Traceback" in result.err and result.err.strip().endswith("run `loopsync connect` first.")


def test_debug_on_an_unexpected_problem_exits_70_with_the_traceback(cli, db, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli_module.service, "open_store", broken)
    plain = cli(["config", "set", "note_label", "x", "--db", str(db)])
    debug = cli(["config", "set", "note_label", "x", "--db", str(db), "--debug"])

    assert plain.code == debug.code == 70
    assert "Traceback" not in plain.err and "--debug" in plain.err
    assert "Traceback" in debug.err and "ZeroDivisionError: a bug" in debug.err


@pytest.mark.parametrize("args", [["--bogus-flag"], ["scan", "--since"]])
def test_debug_keeps_click_usage_errors_at_2(cli, args):
    assert cli(["--debug", *args]).code == 2
