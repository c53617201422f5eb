"""The webhook secret `loopsync serve` verifies with: stored by `connect` like the other secrets,
shown only as a fingerprint, kept verifying for 2 hours after a rotation, never in a recording."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from loopsync.settings import fingerprint
from loopsync.store import Store
from loopsync.store.part import parse_iso

SECRET = "whsec_test_first_5f3e2d1c0b"
ROTATED = "whsec_test_second_9a8b7c6d5e"
LOOP_SECRET = "loopwh_test_3c4d5e6f7a"


@pytest.fixture
def cli(secret_safe_cli):
    return secret_safe_cli


def _stored(db):
    with Store.open(db) as store:
        return store.config.connection()


def test_connect_stores_the_webhook_secret_and_status_shows_only_its_fingerprint(cli, sandbox, env_for, db):
    result = cli(["connect", "--db", str(db), "--json"], env=env_for(sandbox, LOOPSYNC_SHOPIFY_WEBHOOK_SECRET=SECRET))

    assert result.code == 0, result.output
    assert _stored(db).webhook_secret == SECRET
    status = cli(["status", "--db", str(db), "--json"])
    assert json.loads(status.out)["connection"]["webhook_secret_fingerprint"] == fingerprint(SECRET)
    table = cli(["status", "--db", str(db)])
    assert f"Webhook secret: {fingerprint(SECRET)}" in table.out
    for shown in (result, status, table):
        assert SECRET not in shown.output


def test_with_client_credentials_the_webhook_secret_defaults_to_the_client_secret(cli, sandbox, env_for, db):
    creds = sandbox.credentials
    env = env_for(sandbox, LOOPSYNC_SHOPIFY_CLIENT_ID=creds["client_id"],
                  LOOPSYNC_SHOPIFY_CLIENT_SECRET=creds["client_secret"])
    del env["LOOPSYNC_SHOPIFY_TOKEN"]
    env.pop("LOOPSYNC_SHOPIFY_WEBHOOK_SECRET", None)  # the sandbox's environment names one; this case gives none

    assert cli(["connect", "--db", str(db)], env=env).code == 0

    assert _stored(db).webhook_secret == creds["client_secret"]


def test_a_new_secret_keeps_the_previous_one_for_two_hours(cli, sandbox, env_for, db):
    assert cli(["connect", "--db", str(db)], env=env_for(sandbox, LOOPSYNC_SHOPIFY_WEBHOOK_SECRET=SECRET)).code == 0
    # A connect that gives no webhook secret (rotating the Loop key, say) keeps the stored one.
    without = env_for(sandbox)
    without.pop("LOOPSYNC_SHOPIFY_WEBHOOK_SECRET", None)
    assert cli(["connect", "--db", str(db)], env=without).code == 0
    assert _stored(db).webhook_secret == SECRET and _stored(db).previous_webhook_secret is None

    result = cli(["connect", "--db", str(db), "--json"], env=env_for(sandbox, LOOPSYNC_SHOPIFY_WEBHOOK_SECRET=ROTATED))

    assert result.code == 0, result.output
    conn = _stored(db)
    assert (conn.webhook_secret, conn.previous_webhook_secret) == (ROTATED, SECRET)
    grace = parse_iso(conn.previous_webhook_secret_until) - parse_iso(conn.updated_at)
    assert grace == timedelta(hours=2)
    assert json.loads(result.out)["connection"]["webhook_previous_secret_until"] == conn.previous_webhook_secret_until


def test_a_recording_never_holds_the_webhook_secrets(cli, sandbox, env_for, db, tmp_path):
    env = env_for(sandbox, LOOPSYNC_SHOPIFY_WEBHOOK_SECRET=SECRET, LOOPSYNC_LOOP_WEBHOOK_SECRET=LOOP_SECRET)
    assert cli(["connect", "--db", str(db)], env=env).code == 0
    assert cli(["connect", "--db", str(db)], env=env_for(sandbox, LOOPSYNC_SHOPIFY_WEBHOOK_SECRET=ROTATED)).code == 0
    cassette = tmp_path / "incident.yaml"

    result = cli(["scan", "--db", str(db), "--record", str(cassette)])

    assert result.code == 0, result.output
    written = [p for p in tmp_path.iterdir() if p.name.startswith("incident")]
    assert len(written) >= 2, written  # the cassette and the state snapshot next to it
    for path in written:
        data = path.read_bytes()
        assert SECRET.encode() not in data and ROTATED.encode() not in data, path
        assert LOOP_SECRET.encode() not in data, path
