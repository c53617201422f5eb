"""Replay the cassette library with no server and no network, and prove replays are strict.

Every story in cassettes/ is replayed from an empty state file, command by command,
with ``--replay`` and placeholder credentials; each command must end as the live
run did (exit code, JSON output, stderr, state file rows).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import socket
import sys
from pathlib import Path

import pytest
import yaml

from loopsync import recording

ROOT = Path(__file__).resolve().parent.parent
CASSETTES = ROOT / "cassettes"
STORIES = sorted(p.parent.name for p in CASSETTES.glob("*/story.yaml"))
TOKEN_SHAPED = re.compile(r"shpat_[A-Za-z0-9]{8,}|shpss_[A-Za-z0-9]{8,}")
# The demo's fake credentials, which the recordings used: none may be in a cassette.
DEMO_SECRETS = ("shpat_sandbox_demo_token", "shpss_sandbox_demo_secret", "loop_sandbox_demo_key",
                "loop_sandbox_no_scope_key", "shpat_sandbox_upsell_guard_token")


def _load_recorder():
    spec = importlib.util.spec_from_file_location("record_cassettes", ROOT / "scripts" / "record_cassettes.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


recorder = _load_recorder()


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test: replays must not need a server."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"a replay tried to open a network connection: {args[:2]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _story(name: str, root: Path = CASSETTES) -> dict:
    return yaml.safe_load((root / name / "story.yaml").read_text(encoding="utf-8"))


def _replay(cli, story_dir: Path, step: dict, db: Path) -> dict:
    result = cli([*step["args"], "--db", str(db), "--replay", str(story_dir / step["cassette"])], env=step["env"])
    return recorder.outcome(result.code, result.out, result.err, db)


def _expected(step: dict) -> dict:
    return {k: step[k] for k in ("exit_code", "stdout", "stderr", "state")}


def test_the_library_covers_the_issue():
    assert set(STORIES) == set(recorder.STORIES), "re-record with `make cassettes`"


@pytest.mark.parametrize("name", STORIES)
def test_story_replays_as_recorded(name, cli, tmp_path, no_network):
    db = tmp_path / "replay.db"
    for step in _story(name)["steps"]:
        assert _replay(cli, CASSETTES / name, step, db) == _expected(step), f"{name}/{step['cassette']}"


def test_every_cassette_belongs_to_a_story():
    listed = {(name, step["cassette"]) for name in STORIES for step in _story(name)["steps"]}
    on_disk = {(p.parent.name, p.name) for p in CASSETTES.glob("*/*.yaml") if p.name != "story.yaml"}
    assert on_disk == listed


def test_no_credential_is_in_the_library():
    for path in CASSETTES.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert not TOKEN_SHAPED.search(text), path
            for secret in DEMO_SECRETS:
                assert secret not in text, (path, secret)


# --- what the stories show -------------------------------------------------------------


def _interactions(path: Path) -> list[dict]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))["interactions"]


def _operation(interaction: dict) -> str | None:
    body = interaction["request"]["body"]
    return body["json"].get("operationName") if isinstance(body, dict) and isinstance(body.get("json"), dict) else None


def test_second_scan_and_scan_after_release_make_no_change():
    for path in (CASSETTES / "demo-store" / "03-second-scan.yaml",
                 CASSETTES / "manual-release" / "04-scan-after-release.yaml"):
        interactions = _interactions(path)
        assert interactions
        mutations = [op for op in map(_operation, interactions) if op and "Hold" in op or op == "LoopsyncTagsAdd"]
        notes = [i for i in interactions if i["request"]["method"] == "POST" and i["request"]["uri"].endswith("/note")]
        assert mutations == [] and notes == [], path


def test_throttled_scan_waited_and_repeated_the_same_request():
    path = CASSETTES / "throttled-scan" / "02-scan.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    throttled = [i for i in doc["interactions"] if "THROTTLED" in str(i["response"]["body"])]
    assert throttled and sum(doc["sleeps"]) > 0
    # A THROTTLED answer is followed by the identical request, answered differently.
    first = doc["interactions"].index(throttled[0])
    retry = doc["interactions"][first + 1]
    assert retry["request"]["body"]["json"]["variables"] == throttled[0]["request"]["body"]["json"]["variables"]
    assert "THROTTLED" not in str(retry["response"]["body"])


def test_token_renewal_fetches_a_token_only_when_it_is_about_to_expire():
    def token_requests(step: str) -> int:
        path = next((CASSETTES / "token-renewal").glob(f"*-{step}.yaml"))
        return sum(i["request"]["uri"].endswith("/admin/oauth/access_token") for i in _interactions(path))

    assert (token_requests("connect"), token_requests("scan"), token_requests("scan-a-day-later")) == (1, 0, 1)
    form = next(i for i in _interactions(CASSETTES / "token-renewal" / "01-connect.yaml")
                if i["request"]["uri"].endswith("/oauth/access_token"))
    assert "client_secret=[scrubbed]" in form["request"]["body"]
    assert form["response"]["body"]["json"]["access_token"] == recording.PLACEHOLDER


# --- strictness ----------------------------------------------------------------------------------


def _copy_story(name: str, tmp_path: Path) -> Path:
    dest = tmp_path / name
    shutil.copytree(CASSETTES / name, dest)
    return dest


def _edit_cassette(path: Path, edit) -> None:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    edit(doc["interactions"])
    path.write_text(yaml.dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")


def _replay_story_until_last(cli, story_dir: Path, db: Path):
    steps = _story(story_dir.name, story_dir.parent)["steps"]
    for step in steps[:-1]:
        assert _replay(cli, story_dir, step, db) == _expected(step)
    last = steps[-1]
    return cli([*last["args"], "--db", str(db), "--replay", str(story_dir / last["cassette"])], env=last["env"])


def test_a_missing_interaction_fails_the_replay(cli, tmp_path, no_network):
    story = _copy_story("demo-store", tmp_path)

    def drop_first_note(interactions):
        index = next(i for i, x in enumerate(interactions) if x["request"]["uri"].endswith("/note"))
        del interactions[index]

    _edit_cassette(story / "02-first-scan.yaml", drop_first_note)
    db = tmp_path / "replay.db"
    steps = _story("demo-store", tmp_path)["steps"]
    _replay(cli, story, steps[0], db)
    result = cli([*steps[1]["args"], "--db", str(db), "--replay", str(story / steps[1]["cassette"])],
                 env=steps[1]["env"])
    assert result.code == 2, result.output
    assert "holds no recorded answer for POST http://sandbox.test/api/v1/warehouse/return/" in result.err
    assert "[scrubbed]" not in result.err


def test_a_run_that_stops_early_fails_the_replay(cli, tmp_path, no_network):
    story = _copy_story("demo-store", tmp_path)
    _edit_cassette(story / "03-second-scan.yaml", lambda interactions: interactions.append(interactions[0]))
    result = _replay_story_until_last(cli, story, tmp_path / "replay.db")
    assert result.code == 2, result.output
    assert "it did less than the recorded run" in result.err


def test_identical_requests_are_answered_in_recorded_order(cli, tmp_path, no_network):
    story = _copy_story("throttled-scan", tmp_path)

    def swap_first_throttle_with_its_retry(interactions):
        first = next(i for i, x in enumerate(interactions) if "THROTTLED" in str(x["response"]["body"]))
        interactions[first], interactions[first + 1] = interactions[first + 1], interactions[first]

    _edit_cassette(story / "02-scan.yaml", swap_first_throttle_with_its_retry)
    result = _replay_story_until_last(cli, story, tmp_path / "replay.db")
    # The data answer now comes first, so the run never makes the retry the file expects.
    assert result.code == 2, result.output


def test_a_different_request_body_does_not_match(cli, tmp_path, no_network):
    """--since changes the orders query's variables: the recorded answer must not be used."""
    story = _copy_story("demo-store", tmp_path)
    steps = _story("demo-store", tmp_path)["steps"]
    db = tmp_path / "replay.db"
    _replay(cli, story, steps[0], db)
    result = cli(["scan", "--since", "3d", "--db", str(db), "--replay", str(story / steps[1]["cassette"])],
                 env=steps[1]["env"])
    assert result.code == 2, result.output
    assert "(LoopsyncOrderSummariesPage)" in result.err


# --- determinism ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["demo-store", "throttled-scan", "token-renewal"])
def test_recording_twice_gives_identical_files(name, tmp_path):
    first = recorder.record_story(name, recorder.STORIES[name], tmp_path / "a")
    second = recorder.record_story(name, recorder.STORIES[name], tmp_path / "b")
    files = sorted(p.name for p in first.iterdir())
    assert files == sorted(p.name for p in second.iterdir())
    for file in files:
        assert (first / file).read_bytes() == (second / file).read_bytes(), file


def test_the_network_guard_works(no_network):
    import requests

    with pytest.raises(AssertionError, match="network connection"):
        requests.get("http://127.0.0.1:9/", timeout=1)


def test_release_after_ship_lifts_only_the_holds_loopsync_placed():
    def ops(path: Path, name: str) -> list[dict]:
        return [i for i in _interactions(path) if _operation(i) == name]

    story = CASSETTES / "release-after-ship"
    placed = {
        i["response"]["body"]["json"]["data"]["fulfillmentOrderHold"]["fulfillmentHold"]["id"]
        for i in ops(story / "02-scan.yaml", "LoopsyncFulfillmentOrderHold")
    }
    released = [i["request"]["body"]["json"]["variables"]["holdIds"]
                for i in ops(story / "03-scan-after-ship.yaml", "LoopsyncFulfillmentOrderReleaseHold")]
    # Two jacket exchanges shipped (EXC-1086-1, and EXC-1092-1 whose FO Upsell Guard also holds).
    assert len(released) == 2
    assert all(len(ids) == 1 and ids[0] in placed for ids in released)
