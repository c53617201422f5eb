"""One state file is one store: after `connect`, an environment naming another shop or
another API URL is refused (exit 2), never silently replaced by the stored connection."""

from __future__ import annotations

import json

import pytest

from loopsync.store import Store

OTHER = "other-shop.myshopify.com"
CONNECTED = "sandbox-store.myshopify.com"

COMMANDS = [
    ["scan"],
    ["scan", "--dry-run"],
    ["release", "EXC-1086-1", "--yes"],
    ["status"],
    ["status", "--json"],
    ["disconnect", "--yes"],
]


@pytest.fixture
def cli(secret_safe_cli):
    return secret_safe_cli


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_another_shop_in_the_environment_is_refused(cli, connected, probe, checks, command):
    mark = probe.mark()

    result = cli([*command, "--db", str(connected)], env={"LOOPSYNC_SHOP": OTHER})

    checks.clean_error(result, 2, f"connected to {CONNECTED}, not {OTHER}")
    assert probe.entries(mark) == []  # not one request to the stored shop
    with Store.open(connected) as store:
        assert store.config.connection().loop_api_key  # disconnect did nothing either


@pytest.mark.parametrize("same", [CONNECTED, "sandbox-store", "https://SANDBOX-store.myshopify.com/"])
def test_the_connected_shop_in_the_environment_is_fine(cli, connected, same):
    result = cli(["scan", "--db", str(connected), "--json"], env={"LOOPSYNC_SHOP": same})

    assert result.code == 0, result.output
    assert json.loads(result.out)["holds_placed"] == 4


@pytest.mark.parametrize("variable", ["LOOPSYNC_SHOPIFY_API_URL", "LOOPSYNC_LOOP_API_URL"])
@pytest.mark.parametrize("command", [["scan"], ["release", "EXC-1086-1", "--yes"], ["status"]], ids=" ".join)
def test_another_api_url_in_the_environment_is_refused(cli, connected, probe, checks, variable, command):
    mark = probe.mark()

    result = cli([*command, "--db", str(connected)], env={variable: "http://127.0.0.1:9/other"})

    checks.clean_error(result, 2, variable, "loopsync connect")
    assert "127.0.0.1:9" not in result.err  # a URL can carry a token: not echoed
    assert probe.entries(mark) == []


def test_the_stored_api_urls_in_the_environment_are_fine(cli, connected, sandbox):
    env = {"LOOPSYNC_SHOPIFY_API_URL": sandbox.url + "/", "LOOPSYNC_LOOP_API_URL": sandbox.url}

    assert cli(["scan", "--db", str(connected)], env=env).code == 0


def test_connect_refuses_another_shop_on_a_connected_state_file(cli, connected, sandbox, env_for, probe, checks):
    before = json.loads(cli(["status", "--db", str(connected), "--json"]).out)["connection"]
    mark = probe.mark()

    result = cli(["connect", "--db", str(connected)], env=env_for(sandbox, LOOPSYNC_SHOP=OTHER))
    flag = cli(["connect", "--db", str(connected), "--shop", OTHER], env=env_for(sandbox))

    for refused in (result, flag):
        checks.clean_error(refused, 2, f"connected to {CONNECTED}, not {OTHER}", "--db")
    assert probe.entries(mark) == []
    assert json.loads(cli(["status", "--db", str(connected), "--json"]).out)["connection"] == before

