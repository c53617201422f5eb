"""`--record` / `--replay` as operators and developers use them: scrubbing, the README workflow, errors."""

from __future__ import annotations

import re
import secrets
import shlex
import shutil
import socket
import sys
from pathlib import Path

import pytest
import yaml

from loopsync.sandbox.scenarios import SCENARIO_DIR
from loopsync.sandbox.server import Sandbox

README = Path(__file__).resolve().parent.parent / "README.md"


def _secret_store(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The demo store with fresh credentials nobody has seen, some not shaped like Shopify tokens."""
    known = {
        "shopify_token": "shpat_" + secrets.token_hex(16),
        "client_secret": "cs-" + secrets.token_hex(16),
        "loop_key": "lk-" + secrets.token_hex(16),
    }
    text = (SCENARIO_DIR / "demo.yaml").read_text(encoding="utf-8")
    text = text.replace("shpat_sandbox_demo_token", known["shopify_token"])
    text = text.replace("shpss_sandbox_demo_secret", known["client_secret"])
    text = text.replace("loop_sandbox_demo_key", known["loop_key"])
    path = tmp_path / "store.yaml"
    path.write_text(text, encoding="utf-8")
    return path, known


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_no_known_secret_reaches_a_recording(cli, tmp_path, env_for):
    scenario, known = _secret_store(tmp_path)
    out = tmp_path / "recordings"
    out.mkdir()  # --record writes into a directory that exists; it does not create one
    with Sandbox(scenario=str(scenario)) as sb:
        env = env_for(sb)
        static_db, cc_db = str(tmp_path / "static.db"), str(tmp_path / "cc.db")
        runs = [
            (["connect", "--db", static_db, "--record", str(out / "connect.yaml")], env),
            (["scan", "--db", static_db, "--record", str(out / "scan.yaml")], {}),
            (["release", "EXC-1086-1", "--yes", "--db", static_db, "--record", str(out / "release.yaml")], {}),
        ]
        cc_env = {k: v for k, v in env.items() if k != "LOOPSYNC_SHOPIFY_TOKEN"}
        cc_env |= {"LOOPSYNC_SHOPIFY_CLIENT_ID": "sandbox-client-id", "LOOPSYNC_SHOPIFY_CLIENT_SECRET": known["client_secret"]}
        runs += [
            (["connect", "--db", cc_db, "--record", str(out / "cc-connect.yaml")], cc_env),
            (["scan", "--db", cc_db, "--record", str(out / "cc-scan.yaml")], {}),
        ]
        for args, run_env in runs:
            result = cli(args, env=run_env)
            assert result.code in (0, 1), result.output
        issued = [t for t, issued in sb.world.tokens.items() if issued.expires_at is not None]
    assert issued, "the client-credentials runs should have been issued a token"
    leaks = [*known.values(), *issued]
    written = _files(out)
    assert {p.name for p in written} >= {"scan.yaml", "scan.state.db", "cc-connect.yaml", "cc-scan.state.db"}
    for path in written:
        data = path.read_bytes()
        for secret in leaks:
            assert secret.encode() not in data, f"a secret is in {path.name}"
        assert not re.search(rb"shpat_[A-Za-z0-9]{8,}|shpss_[A-Za-z0-9]{8,}", data), path.name
    # Scrubbed, yet replayable: the snapshot holds placeholders and the cassette answers everything.
    shutil.copy(out / "cc-scan.state.db", tmp_path / "replay.db")
    replay = cli(["scan", "--db", str(tmp_path / "replay.db"), "--replay", str(out / "cc-scan.yaml")])
    assert replay.code in (0, 1), replay.output


def _readme_commands() -> list[str]:
    section = README.read_text(encoding="utf-8").split("## Reporting a problem", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for line in section.splitlines() if line.startswith("    ") and line.strip()]


def test_readme_workflow_works_as_written(cli, sandbox, connected, tmp_path, monkeypatch):
    commands = _readme_commands()
    assert commands[0].startswith("loopsync scan --record ") and any("--replay" in c for c in commands)
    monkeypatch.chdir(tmp_path)
    operator, developer = commands[:1], commands[1:]

    # The operator: a state file connected to the store, found through LOOPSYNC_DB.
    live = {}
    for command in operator:
        argv = shlex.split(command)
        live[command] = cli(argv[1:], env={"LOOPSYNC_DB": str(connected)})
        assert live[command].code == 0, live[command].output
    assert Path("incident.yaml").is_file() and Path("incident.state.db").is_file()
    live_status = cli(["status", "--json", "--db", str(connected)])
    sandbox.stop()  # the developer has no server

    real_connect = socket.socket.connect
    monkeypatch.setattr(socket.socket, "connect", lambda *a: pytest.fail("the replay used the network"))
    outputs = {}
    for command in developer:
        argv = shlex.split(command)
        if argv[0] == "cp":
            shutil.copy(argv[1], argv[2])
            continue
        outputs[command] = cli(argv[1:])
        assert outputs[command].code == 0, outputs[command].output
    monkeypatch.setattr(socket.socket, "connect", real_connect)

    replayed = next(r for c, r in outputs.items() if "--replay" in c)
    assert replayed.out == live[operator[0]].out and replayed.err == live[operator[0]].err
    assert "held" in replayed.output.lower()
    replay_status = cli(["status", "--json", "--db", "replay.db"])
    assert _decisions(replay_status.out) == _decisions(live_status.out)


def _decisions(status_json: str) -> dict:
    import json

    doc = json.loads(status_json)
    return {
        "held": [{k: v for k, v in h.items() if k != "placed_at"} for h in doc["held"]],
        "pending": doc["pending"],
        "counters": doc["last_scan"]["counters"],
        "outcome": doc["last_scan"]["outcome"],
        "cursor": doc["cursor"],
    }


def test_anonymize_replaces_the_shop_domain(cli, sandbox, connected, tmp_path, env_for):
    domain = sandbox.credentials["shop_domain"]
    result = cli(["connect", "--db", str(connected), "--record", str(tmp_path / "c.yaml"), "--anonymize"],
                 env=env_for(sandbox))
    assert result.code == 0, result.output
    result = cli(["scan", "--db", str(connected), "--record", str(tmp_path / "s.yaml"), "--anonymize", "--json"])
    assert result.code == 0, result.output
    written = [p for p in _files(tmp_path) if p.suffix == ".yaml" or p.name.endswith(".state.db")]
    assert len(written) == 4
    for path in written:
        assert domain.encode() not in path.read_bytes(), path.name
    assert "anonymized-shop.myshopify.com" in (tmp_path / "c.yaml").read_text(encoding="utf-8")
    assert yaml.safe_load((tmp_path / "s.yaml").read_text(encoding="utf-8"))["anonymized"] is True
    shutil.copy(tmp_path / "s.state.db", tmp_path / "replay.db")
    replay = cli(["scan", "--db", str(tmp_path / "replay.db"), "--replay", str(tmp_path / "s.yaml"), "--json"])
    assert replay.code == 0, replay.output
    assert replay.out == result.out


def test_without_vcrpy_the_flags_fail_with_one_sentence(cli, connected, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "vcr", None)  # `import vcr` now raises ImportError
    for flag in ("--record", "--replay"):
        result = cli(["scan", "--db", str(connected), flag, str(tmp_path / "x.yaml")])
        assert result.code == 2, result.output
        assert result.err.strip() == (
            "Error: --record and --replay need the vcrpy package, which is not installed: pip install vcrpy"
        )
    assert not list(tmp_path.glob("x*"))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--record", "a.yaml", "--replay", "b.yaml"], "Use --record or --replay, not both."),
        (["--anonymize"], "--anonymize only applies to --record."),
        (["--replay", "missing.yaml"], "There is no cassette at missing.yaml."),
    ],
)
def test_flag_mistakes_are_usage_errors(cli, connected, tmp_path, monkeypatch, extra, message):
    monkeypatch.chdir(tmp_path)
    result = cli(["scan", "--db", str(connected), *extra])
    assert result.code == 2, result.output
    assert message in result.err


def test_a_file_that_is_not_a_cassette_is_refused(cli, connected, tmp_path):
    bogus = tmp_path / "notes.yaml"
    bogus.write_text("just: some yaml\n", encoding="utf-8")
    result = cli(["scan", "--db", str(connected), "--replay", str(bogus)])
    assert result.code == 2 and "is not a loopsync cassette" in result.err, result.output
