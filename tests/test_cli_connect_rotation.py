"""Rotating one credential with `connect` keeps the other, and both `--…-stdin` inputs are
read in a documented order: line 1 the Shopify token, line 2 the Loop key."""

from __future__ import annotations

import pytest

from loopsync.sandbox.world import IssuedToken
from loopsync.store import Store

NEW_LOOP_KEY = "loop_sandbox_rotated_key"
NEW_TOKEN = "shpat_sandbox_rotated_token"


@pytest.fixture
def cli(secret_safe_cli):
    return secret_safe_cli


@pytest.fixture
def rotated(sandbox):
    """The sandbox also accepts a second Loop key and a second token for loopsync's app."""
    world = sandbox.world
    with world.lock:
        world.loop_api_keys[NEW_LOOP_KEY] = {"returns"}
        app = next(a for a in world.apps.values() if a.title == "loopsync")
        app.static_tokens.add(NEW_TOKEN)
        world.tokens[NEW_TOKEN] = IssuedToken(token=NEW_TOKEN, app_id=app.id, expires_at=None)
    return sandbox


def _urls_only(sandbox, env_for) -> dict[str, str]:
    """Where the APIs are, and no credential: what a merchant rotating one key has set."""
    env = env_for(sandbox)
    for name in ("LOOPSYNC_SHOPIFY_TOKEN", "LOOPSYNC_LOOP_API_KEY"):
        del env[name]
    return env


def _stored(db):
    with Store.open(db) as store:
        return store.config.connection()


def test_rotating_only_the_loop_key_keeps_the_stored_shopify_token(cli, connected, rotated, env_for, checks):
    before = _stored(connected)

    result = cli(["connect", "--db", str(connected), "--loop-key-stdin"],
                 env=_urls_only(rotated, env_for), stdin=NEW_LOOP_KEY + "\n")

    assert result.code == 0, result.output
    checks.no_secrets(result, NEW_LOOP_KEY)
    after = _stored(connected)
    assert after.loop_api_key == NEW_LOOP_KEY
    assert (after.shopify_auth, after.shopify_token) == ("token", before.shopify_token)
    assert cli(["scan", "--db", str(connected)]).code == 0


def test_rotating_only_the_shopify_token_keeps_the_stored_loop_key(cli, connected, rotated, env_for):
    before = _stored(connected)

    result = cli(["connect", "--db", str(connected), "--shopify-token-stdin"],
                 env=_urls_only(rotated, env_for), stdin=NEW_TOKEN + "\n")

    assert result.code == 0, result.output
    after = _stored(connected)
    assert (after.shopify_token, after.loop_api_key) == (NEW_TOKEN, before.loop_api_key)


def test_rotating_the_loop_key_of_a_client_credentials_connection_keeps_the_client(cli, sandbox, rotated, db, env_for):
    env = _urls_only(sandbox, env_for)
    creds = {"LOOPSYNC_SHOPIFY_CLIENT_ID": sandbox.credentials["client_id"],
             "LOOPSYNC_SHOPIFY_CLIENT_SECRET": sandbox.credentials["client_secret"],
             "LOOPSYNC_LOOP_API_KEY": sandbox.credentials["loop_api_key"]}
    assert cli(["connect", "--db", str(db)], env={**env, **creds}).code == 0

    result = cli(["connect", "--db", str(db)], env={**env, "LOOPSYNC_LOOP_API_KEY": NEW_LOOP_KEY})

    assert result.code == 0, result.output
    after = _stored(db)
    assert after.shopify_auth == "client_credentials" and after.loop_api_key == NEW_LOOP_KEY
    assert (after.client_id, after.client_secret) == (creds["LOOPSYNC_SHOPIFY_CLIENT_ID"],
                                                      creds["LOOPSYNC_SHOPIFY_CLIENT_SECRET"])


def test_both_stdin_inputs_are_read_token_first_then_loop_key(cli, rotated, db, env_for):
    result = cli(["connect", "--db", str(db), "--loop-key-stdin", "--shopify-token-stdin"],
                 env=_urls_only(rotated, env_for), stdin=f"{NEW_TOKEN}\n{NEW_LOOP_KEY}\n")

    assert result.code == 0, result.output
    stored = _stored(db)
    assert (stored.shopify_token, stored.loop_api_key) == (NEW_TOKEN, NEW_LOOP_KEY)


def test_both_stdin_inputs_need_two_lines(cli, rotated, db, env_for, checks):
    result = cli(["connect", "--db", str(db), "--loop-key-stdin", "--shopify-token-stdin"],
                 env=_urls_only(rotated, env_for), stdin=NEW_TOKEN + "\n")

    checks.clean_error(result, 2, "Loop Returns API key")
    assert _stored(db) is None


def test_a_new_state_file_still_needs_both(cli, sandbox, db, env_for, checks):
    result = cli(["connect", "--db", str(db), "--loop-key-stdin"],
                 env=_urls_only(sandbox, env_for), stdin=sandbox.credentials["loop_api_key"] + "\n")

    checks.clean_error(result, 2, "LOOPSYNC_SHOPIFY_TOKEN", "--shopify-token-stdin")
    assert _stored(db) is None


def test_after_disconnect_a_new_shopify_token_alone_cannot_reconnect_loop(cli, connected, rotated, env_for, checks):
    assert cli(["disconnect", "--yes", "--db", str(connected)]).code == 0

    result = cli(["connect", "--db", str(connected), "--shopify-token-stdin"],
                 env=_urls_only(rotated, env_for), stdin=NEW_TOKEN + "\n")

    checks.clean_error(result, 2, "LOOPSYNC_LOOP_API_KEY", "--loop-key-stdin")
    assert _stored(connected).loop_api_key is None
