"""A person's mistake is a usage error (exit 2) with the sentence that says what to fix, never
"an unexpected problem" (exit 70): bad --record and --replay files, every `sandbox serve` mistake,
and every bad `webhooks --url`."""

from __future__ import annotations

import functools
import shutil
import socket
import threading
from pathlib import Path

import pytest
import yaml

from loopsync.sandbox import server

ROOT = Path(__file__).resolve().parent.parent
CONNECT_CASSETTE = ROOT / "cassettes" / "connect-accepted" / "01-connect.yaml"
# What `connect --replay` needs besides the cassette: the recorded shop, placeholder credentials.
REPLAY_ENV = {
    "LOOPSYNC_SHOP": "sandbox-store.myshopify.com",
    "LOOPSYNC_SHOPIFY_API_URL": "http://sandbox.test",
    "LOOPSYNC_LOOP_API_URL": "http://sandbox.test",
    "LOOPSYNC_SHOPIFY_TOKEN": "[scrubbed]",
    "LOOPSYNC_LOOP_API_KEY": "[scrubbed]",
}


@pytest.fixture
def state(cli, tmp_path) -> Path:
    """A state file that exists (scan refuses a missing one before it looks at --record)."""
    db = tmp_path / "state.db"
    assert cli(["config", "set", "note_label", "loopsync", "--db", str(db)]).code == 0
    return db


@pytest.fixture
def not_serving(monkeypatch):
    """Should a case wrongly start the sandbox, it stops at once instead of serving until Ctrl-C."""
    stop = threading.Event()
    stop.set()
    monkeypatch.setattr(server, "serve", functools.partial(server.serve, stop_event=stop))


@pytest.fixture
def busy_port():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    yield holder.getsockname()[1]
    holder.close()


def _edited_cassette(tmp_path: Path, edit) -> Path:
    doc = yaml.safe_load(CONNECT_CASSETTE.read_text(encoding="utf-8"))
    edit(doc)
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


RECORD_CASES = {
    "a directory": (lambda tmp: str(tmp), "is a directory: name a file in it"),
    "an empty name": (lambda tmp: "", "--record needs a file name"),
    "a directory that does not exist": (lambda tmp: str(tmp / "no-such-dir" / "x.yaml"), "does not exist"),
}


@pytest.mark.parametrize("case", RECORD_CASES)
def test_record_path_mistakes(case, cli, state, tmp_path, checks):
    make, phrase = RECORD_CASES[case]
    before = sorted(p.name for p in tmp_path.iterdir())

    result = cli(["scan", "--db", str(state), "--record", make(tmp_path)])

    checks.clean_error(result, 2, phrase)
    # Nothing was written or created for the recording: no directory, no cassette, no snapshot.
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_replay_of_an_empty_name(cli, state, checks):
    checks.clean_error(cli(["scan", "--db", str(state), "--replay", ""]), 2, "--replay needs a file name")


CASSETTE_EDITS = {
    "status removed": lambda d: d["interactions"][0]["response"].pop("status"),
    "status code as text": lambda d: d["interactions"][0]["response"]["status"].update(code="two hundred"),
    "uri removed": lambda d: d["interactions"][1]["request"].pop("uri"),
    "method as a number": lambda d: d["interactions"][0]["request"].update(method=5),
    "headers as a list": lambda d: d["interactions"][0]["request"].update(headers=["Content-Type"]),
    "body as a number": lambda d: d["interactions"][0]["response"].update(body=5),
    "interaction as a number": lambda d: d["interactions"].append(5),
    "interactions as a mapping": lambda d: d.update(interactions={"first": 1}),
    "sleeps as text": lambda d: d.update(sleeps=["soon"]),
    "sleeps as a number": lambda d: d.update(sleeps=3),
}


@pytest.mark.parametrize("case", CASSETTE_EDITS)
def test_a_hand_edited_cassette_with_a_bad_field(case, cli, db, tmp_path, checks):
    cassette = _edited_cassette(tmp_path, CASSETTE_EDITS[case])

    result = cli(["connect", "--db", str(db), "--replay", str(cassette)], env=REPLAY_ENV)

    checks.clean_error(result, 2, f"{cassette} cannot be replayed", "edited by hand")


def test_the_unedited_cassette_replays(cli, db, tmp_path):
    """The edits above are what is wrong: the same file as recorded replays fine."""
    cassette = tmp_path / "as-recorded.yaml"
    shutil.copy(CONNECT_CASSETTE, cassette)
    result = cli(["connect", "--db", str(db), "--replay", str(cassette)], env=REPLAY_ENV)
    assert result.code == 0, result.output


def test_a_binary_file_given_as_a_cassette(cli, state, checks):
    checks.clean_error(cli(["scan", "--db", str(state), "--replay", str(state)]), 2, "is not a loopsync cassette")


SERVE_CASES = {
    "a fault rate above 1": (["--faults", "5xx=2"], "--faults 5xx=2: fault rate for 5xx must be between 0 and 1"),
    "an unknown fault": (["--faults", "flood=0.1"], "unknown fault kind 'flood'"),
    "a port above 65535": (["--port", "70000"], "--port must be a number from 0 to 65535"),
    "a negative port": (["--port", "-1"], "--port must be a number from 0 to 65535"),
    "a missing scenario file": (["--scenario", "{tmp}/missing.yaml"], "missing.yaml' does not exist"),
    "an unknown scenario name": (["--scenario", "nope"], "no scenario named 'nope'"),
    "a scenario that is not YAML": (["--scenario", "{tmp}/broken.yaml"], "not valid YAML"),
    "a scenario with a bad section": (["--scenario", "{tmp}/bad.json"], "shop: expected a mapping"),
    "a port in use": (["--port", "{busy}"], "is already in use: pick another --port"),
    "plain http to another machine": (["--webhooks-to", "http://hooks.example/h"],
                                      "--webhooks-to must be an https:// address"),
}


@pytest.mark.parametrize("case", SERVE_CASES)
def test_sandbox_serve_mistakes(case, cli, tmp_path, busy_port, not_serving, checks):
    (tmp_path / "broken.yaml").write_text("shop: [\n", encoding="utf-8")
    (tmp_path / "bad.json").write_text('{"shop": 3}', encoding="utf-8")
    args, phrase = SERVE_CASES[case]
    args = [a.format(tmp=tmp_path, busy=busy_port) for a in args]

    result = cli(["sandbox", "serve", *args])

    checks.clean_error(result, 2, phrase)


WEBHOOK_URL_CASES = {
    "plain http to another machine": ("http://hooks.shop.example.net", "--url must use https://"),
    "another scheme": ("ftp://hooks.shop.example.net", "--url must be an address like https://"),
    "no scheme": ("hooks.shop.example.net", "--url must be an address like https://"),
    # The password must not be echoed back.
    "a password in it": ("https://user:secret-pass@hooks.shop.example.net", "without a user name, password"),
    "a query": ("https://hooks.shop.example.net/?t=x", "without a user name, password, query"),
}


@pytest.mark.parametrize("command", ["install", "uninstall", "toml"])
@pytest.mark.parametrize("case", WEBHOOK_URL_CASES)
def test_webhooks_url_mistakes(case, command, cli, tmp_path, checks):
    url, phrase = WEBHOOK_URL_CASES[case]
    db = tmp_path / "none.db"
    args = ["webhooks", command, "--url", url] + (["--db", str(db)] if command != "toml" else [])

    result = cli(args)

    checks.clean_error(result, 2, phrase)
    assert "secret-pass" not in result.output and url not in result.output
    assert not db.exists()  # refused before any state file is looked for
